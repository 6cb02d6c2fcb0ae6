"""The KPI range: local calendar days of the organization, exact instants, daylight saving."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinicos.governance.kpi import (
    MAX_SPAN_DAYS,
    SLOT_SECONDS,
    bucket_start,
    offset_segments,
    parse_range,
    slot_of,
)
from clinicos.kernel.errors import ValidationFailed


def fields_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> set[str]:
    return {e.field for e in exc.value.errors}


def test_dates_when_given_are_whole_local_days_both_included() -> None:
    r = parse_range("2026-11-01", "2026-11-30", "day", "America/La_Paz")

    assert r.start == datetime(2026, 11, 1, 4, tzinfo=UTC)  # La Paz is UTC-4 all year
    assert r.end == datetime(2026, 12, 1, 4, tzinfo=UTC)


def test_datetimes_when_given_with_an_offset_are_exact_instants() -> None:
    r = parse_range("2026-11-01T10:00:00-03:00", "2026-11-02T00:00:00Z", "day", "UTC")

    assert r.start == datetime(2026, 11, 1, 13, tzinfo=UTC)
    assert r.end == datetime(2026, 11, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "granularity", "field"),
    [
        (None, "2026-11-30", "day", "from"),
        ("2026-11-01", None, "day", "to"),
        ("2026-11-01", "", "day", "to"),
        ("2026-13-01", "2026-11-30", "day", "from"),
        ("yesterday", "2026-11-30", "day", "from"),
        ("2026-11-01T00:00:00", "2026-11-30", "day", "from"),  # no offset: ambiguous
        ("2026-11-30", "2026-11-01", "day", "to"),  # inverted
        ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z", "day", "to"),  # empty
        ("2026-11-01", "2026-11-30", "hour", "granularity"),
        ("2024-01-01", "2026-11-30", "day", "to"),  # longer than a year of days
        ("2026-11-01", "9999-12-31", "month", "to"),
    ],
)
def test_bad_range_when_parsed_is_a_422_naming_the_parameter(
    raw_from: str | None, raw_to: str | None, granularity: str, field: str
) -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_range(raw_from, raw_to, granularity, "America/Sao_Paulo")

    assert f"query.{field}" in fields_of(exc)


def test_span_cap_when_at_the_limit_is_accepted_and_one_day_more_is_not() -> None:
    start = date(2025, 1, 1)
    last_allowed = start + timedelta(days=MAX_SPAN_DAYS["day"] - 1)

    parse_range(start.isoformat(), last_allowed.isoformat(), "day", "UTC")
    with pytest.raises(ValidationFailed):
        parse_range(start.isoformat(), (last_allowed + timedelta(days=1)).isoformat(), "day", "UTC")


def test_bucket_start_when_week_is_monday_and_month_is_the_first() -> None:
    thursday = date(2026, 11, 26)

    assert bucket_start(thursday, "day") == thursday
    assert bucket_start(thursday, "week") == date(2026, 11, 23)
    assert bucket_start(thursday, "month") == date(2026, 11, 1)


def test_offset_segments_when_the_zone_has_no_dst_is_one_stretch() -> None:
    r = parse_range("2026-01-01", "2026-12-31", "month", "America/Sao_Paulo")

    assert offset_segments(r) == [(r.start, r.end, -3 * 3600 // SLOT_SECONDS)]


def test_offset_segments_when_dst_starts_and_ends_split_at_the_exact_instants() -> None:
    r = parse_range("2026-03-01", "2026-11-30", "month", "America/New_York")

    segments = offset_segments(r)

    # US DST 2026: 8 March 07:00 UTC (02:00 EST) to 1 November 06:00 UTC (02:00 EDT).
    spring, autumn = datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)
    assert segments == [(r.start, spring, -20), (spring, autumn, -16), (autumn, r.end, -20)]


@given(
    zone=st.sampled_from(
        [
            "UTC",
            "America/La_Paz",
            "America/Sao_Paulo",
            "America/New_York",
            "Asia/Kathmandu",
            "Australia/Lord_Howe",
            "Europe/Lisbon",
        ]
    ),
    start_minute=st.integers(min_value=0, max_value=400 * 24 * 60),
    length_minutes=st.integers(min_value=1, max_value=300 * 24 * 60),
)
def test_offset_segments_when_any_range_cover_it_with_the_true_offset(
    zone: str, start_minute: int, length_minutes: int
) -> None:
    base = datetime(2025, 6, 1, tzinfo=UTC)
    start = base + timedelta(minutes=start_minute)
    end = start + timedelta(minutes=length_minutes)
    r = parse_range(start.isoformat(), end.isoformat(), "month", zone)

    segments = offset_segments(r)

    assert segments[0][0] == start and segments[-1][1] == end
    for (_, a_end, _), (b_start, _, _) in itertools.pairwise(segments):
        assert a_end == b_start
    tz = ZoneInfo(zone)
    for seg_start, seg_end, offset in segments:
        assert seg_start < seg_end
        for probe in (seg_start, seg_end - timedelta(seconds=1)):
            real = probe.astimezone(tz).utcoffset()
            assert real is not None and int(real.total_seconds()) // SLOT_SECONDS == offset


def test_slot_of_when_counted_is_whole_quarter_hours_since_the_epoch() -> None:
    assert slot_of(datetime(1970, 1, 1, 0, 14, 59, tzinfo=UTC)) == 0
    assert slot_of(datetime(1970, 1, 1, 0, 15, tzinfo=UTC)) == 1
    assert slot_of(datetime(1970, 1, 2, tzinfo=UTC)) == 96

"""De-identification transforms and request checks of research exports: pure functions, no
database."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from clinicos.interop.research import ResearchRequest, research_criteria
from clinicos.interop.research_deid import (
    PSEUDONYM_HEX,
    age_band,
    birth_year,
    coarse_date,
    new_pseudonymizer,
)
from clinicos.kernel.errors import ValidationFailed

EXPORT_DAY = date(2026, 12, 3)


@pytest.mark.parametrize(
    ("birth", "band", "year"),
    [
        (date(2026, 12, 3), "0-4", 2026),
        (date(1961, 12, 4), "60-64", 1961),  # 64 until tomorrow
        (date(1961, 12, 3), "65-69", 1961),  # 65 today
        (date(1937, 12, 4), "85-89", 1937),  # 88
        (date(1936, 12, 4), "85-89", 1936),  # 89, the last age shown
        (date(1936, 12, 3), "90+", None),  # 90 today: collapsed, year withheld
        (date(1910, 1, 1), "90+", None),
    ],
)
def test_age_when_coarsened_is_a_five_year_band_and_collapses_from_90(
    birth: date, band: str, year: int | None
) -> None:
    assert age_band(birth, EXPORT_DAY) == band
    assert birth_year(birth, EXPORT_DAY) == year


def test_age_when_birth_date_unknown_is_none() -> None:
    assert (age_band(None, EXPORT_DAY), birth_year(None, EXPORT_DAY)) == (None, None)


def test_dates_when_coarsened_keep_year_or_month_never_the_day() -> None:
    moment = datetime(2024, 3, 15, 23, 59, tzinfo=UTC)

    assert coarse_date(moment, "year") == "2024"
    assert coarse_date(moment, "month") == "2024-03"
    assert coarse_date(date(2019, 6, 1), "month") == "2019-06"
    assert coarse_date(None, "month") is None


def test_pseudonyms_when_keyed_per_export_are_stable_within_and_differ_across() -> None:
    first, second = new_pseudonymizer(), new_pseudonymizer()
    patient = "3f8e2a1c-0000-4000-8000-000000000001"

    within = {first(patient) for _ in range(3)}
    across = second(patient)

    assert len(within) == 1
    (pseudonym,) = within
    assert len(pseudonym) == PSEUDONYM_HEX and int(pseudonym, 16) >= 0
    assert across != pseudonym
    assert patient not in pseudonym
    assert first("another-patient") != pseudonym


def test_criteria_when_periods_given_become_a_half_open_window_of_whole_periods() -> None:
    months = research_criteria(
        ResearchRequest(
            datasets=("conditions",),
            from_period="2024-03",
            to_period="2024-12",
            date_precision="month",
        )
    )
    years = research_criteria(
        ResearchRequest(datasets=("anticoagulant_prescriptions",), from_period="2024")
    )

    assert (months.start, months.end) == (date(2024, 3, 1), date(2025, 1, 1))
    assert (years.start, years.end) == (date(2024, 1, 1), None)
    assert years.prescriptions and not years.conditions and not years.observation_codes


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (ResearchRequest(datasets=()), "datasets"),
        (ResearchRequest(datasets=("notes",)), "datasets"),
        (ResearchRequest(datasets=("observations",)), "loinc_codes"),
        (ResearchRequest(datasets=("conditions",), loinc_codes=("2160-0",)), "loinc_codes"),
        (ResearchRequest(datasets=("observations",), loinc_codes=("2160-1",)), "loinc_codes"),
        (ResearchRequest(datasets=("conditions",), date_precision="day"), "date_precision"),
        (ResearchRequest(datasets=("conditions",), from_period="2024-03"), "from_period"),
        (ResearchRequest(datasets=("conditions",), to_period="24"), "to_period"),
        (ResearchRequest(datasets=("conditions",), from_period="1066"), "from_period"),
        (
            ResearchRequest(datasets=("conditions",), from_period="2025", to_period="2024"),
            "to_period",
        ),
    ],
    ids=[
        "no-dataset",
        "unknown-dataset",
        "observations-without-codes",
        "codes-without-observations",
        "bad-check-digit",
        "precision",
        "month-bound-with-year-precision",
        "malformed-period",
        "ancient",
        "inverted",
    ],
)
def test_criteria_when_request_invalid_is_a_422_naming_the_field(
    request_: ResearchRequest, field: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        research_criteria(request_)

    assert refused.value.status == 422
    assert [e.field for e in refused.value.errors] == [field]

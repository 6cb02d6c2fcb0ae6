"""The hash chain as plain data: canonical form, hashes, and where the checker finds a break."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinicos.governance.audit.chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    ChainChecker,
    canonical_json,
    chain_key_for,
    compute_hash,
)

ORG = "6a1c3e52-7f0b-4d7e-9a51-2f1d0c9b8a71"
START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def build_chain(length: int, organization_id: str | None = ORG) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    prev = GENESIS_HASH
    for seq in range(1, length + 1):
        row: dict[str, Any] = {
            "id": f"00000000-0000-4000-8000-{seq:012d}",
            "organization_id": organization_id,
            "chain_key": chain_key_for(organization_id),
            "seq": seq,
            "occurred_at": START + timedelta(seconds=seq),
            "actor_type": "user",
            "actor_id": "user-1",
            "action": "patient.read",
            "target_type": "patient",
            "target_id": f"patient-{seq}",
            "purpose": "treatment",
            "outcome": "success",
            "request_id": None,
            "prev_hash": prev,
        }
        row["hash"] = compute_hash(row)
        prev = row["hash"]
        rows.append(row)
    return rows


def check(rows: list[dict[str, Any]], head: tuple[int, str] | None = None) -> Any:
    checker = ChainChecker(rows[0]["chain_key"] if rows else chain_key_for(ORG))
    for row in rows:
        if not checker.feed(row):
            break
    if head is None and rows:
        head = (rows[-1]["seq"], rows[-1]["hash"])
    return checker.finish(*head) if head else checker.finish(None, None)


def test_canonical_json_sorted_compact_utc_microseconds() -> None:
    row = build_chain(1)[0]
    row["occurred_at"] = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=-4)))

    text = canonical_json(row)

    assert text.startswith('{"action":"patient.read","actor_id":"user-1"')
    assert '"occurred_at":"2026-01-02T09:04:05.000000+00:00"' in text
    assert ", " not in text and '": ' not in text
    assert '"hash"' not in text


def test_compute_hash_is_sha256_of_prev_hash_and_canonical_json() -> None:
    row = build_chain(1)[0]

    expected = hashlib.sha256((GENESIS_HASH + canonical_json(row)).encode()).hexdigest()

    assert compute_hash(row) == expected
    assert len(expected) == 64


def test_canonical_json_naive_datetime_rejected() -> None:
    row = build_chain(1)[0]
    row["occurred_at"] = datetime(2026, 1, 2, 5, 4, 5)

    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_json(row)


def test_chain_key_for_installation_events_is_installation() -> None:
    assert chain_key_for(None) == "installation"
    assert chain_key_for(ORG) == ORG


def test_checker_intact_chain_ok() -> None:
    report = check(build_chain(5))

    assert report.ok and report.rows_checked == 5 and report.first_bad_seq is None


def test_checker_empty_chain_without_head_ok() -> None:
    report = ChainChecker("installation").finish(None, None)

    assert report.ok and report.rows_checked == 0


def test_checker_changed_row_reported_at_that_row() -> None:
    rows = build_chain(6)
    rows[2]["target_id"] = "patient-99"

    report = check(rows)

    assert not report.ok
    assert (report.first_bad_seq, report.first_bad_id) == (3, rows[2]["id"])
    assert report.rows_checked == 2
    assert "changed" in (report.reason or "")


def test_checker_deleted_row_reported_at_its_seq() -> None:
    rows = build_chain(6)
    del rows[3]

    report = check(rows)

    assert not report.ok and report.first_bad_seq == 4 and report.first_bad_id is None


def test_checker_reordered_rows_reported_at_first_moved_seq() -> None:
    rows = build_chain(6)
    rows[2], rows[3] = rows[3], rows[2]
    rows[2]["seq"], rows[3]["seq"] = 3, 4

    report = check(rows)

    assert not report.ok and report.first_bad_seq == 3
    assert "reordered" in (report.reason or "")


def test_checker_truncated_tail_reported_after_last_row() -> None:
    rows = build_chain(6)
    head = (6, rows[-1]["hash"])

    report = check(rows[:4], head=head)

    assert not report.ok and report.first_bad_seq == 5 and report.rows_checked == 4
    assert "truncated" in (report.reason or "")


def test_checker_head_hash_mismatch_reported_at_last_row() -> None:
    rows = build_chain(3)

    report = check(rows, head=(3, "f" * 64))

    assert not report.ok and report.first_bad_seq == 3


def test_checker_missing_head_with_rows_not_ok() -> None:
    checker = ChainChecker(ORG)
    for row in build_chain(2):
        checker.feed(row)

    report = checker.finish(None, None)

    assert not report.ok and "head" in (report.reason or "")


def test_checker_rows_beyond_head_reported_after_head() -> None:
    checker = ChainChecker(ORG)
    for row in build_chain(2):
        checker.feed(row)

    report = checker.rows_beyond_head(2)

    assert not report.ok and report.first_bad_seq == 3


def test_checker_only_first_break_reported() -> None:
    rows = build_chain(6)
    rows[1]["action"] = "patient.write"
    rows[4]["action"] = "patient.write"

    report = check(rows)

    assert report.first_bad_seq == 2


_MUTABLE = [f for f in HASHED_FIELDS if f not in {"seq"}]


@given(
    length=st.integers(min_value=1, max_value=12),
    data=st.data(),
    field=st.sampled_from(_MUTABLE),
)
def test_checker_any_single_field_change_found_at_that_row(
    length: int, data: st.DataObject, field: str
) -> None:
    rows = build_chain(length)
    index = data.draw(st.integers(min_value=0, max_value=length - 1))
    original = rows[index][field]
    replacement = (
        original + timedelta(microseconds=1)
        if isinstance(original, datetime)
        else ("x" if original is None else str(original) + "0")
    )
    rows[index][field] = replacement

    report = check(rows, head=(length, build_chain(length)[-1]["hash"]))

    assert not report.ok
    assert report.first_bad_seq == index + 1

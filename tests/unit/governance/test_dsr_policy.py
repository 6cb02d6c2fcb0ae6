"""The rules of data-subject requests as data: the 15-day deadline, what counts as overdue,
and which categories an erasure reaches (each with its legal basis written down)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clinicos.governance.dsr.policy import (
    CATEGORIES,
    ERASABLE,
    ERASURE_CATEGORIES,
    deadline_for,
    erasure_plan,
    is_overdue,
)

RECEIVED = datetime(2026, 12, 31, 22, 30, tzinfo=UTC)


def test_deadline_when_received_is_fifteen_calendar_days_later_across_a_year_end() -> None:
    assert deadline_for(RECEIVED) == datetime(2027, 1, 15, 22, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "after", "overdue"),
    [
        ("received", timedelta(days=15), False),  # due at that instant, not yet late
        ("received", timedelta(days=15, seconds=1), True),
        ("in_progress", timedelta(days=20), True),
        ("completed", timedelta(days=20), False),
        ("rejected", timedelta(days=20), False),
        ("refused", timedelta(days=20), False),
    ],
)
def test_is_overdue_when_open_past_deadline_only(
    status: str, after: timedelta, overdue: bool
) -> None:
    assert is_overdue(status, deadline_for(RECEIVED), RECEIVED + after) is overdue


def test_erasure_plan_when_nothing_named_erases_every_erasable_category_and_refuses_none() -> None:
    assert erasure_plan(None) == (("contact",), ())


@pytest.mark.parametrize(
    ("asked", "erase", "kept"),
    [
        (("contact",), ("contact",), ()),
        (("clinical", "contact"), ("contact",), ("clinical",)),
        (("audit", "identification"), (), ("identification", "audit")),
    ],
)
def test_erasure_plan_when_categories_named_splits_erasable_from_retained(
    asked: tuple[str, ...], erase: tuple[str, ...], kept: tuple[str, ...]
) -> None:
    assert erasure_plan(asked) == (erase, kept)


def test_categories_when_listed_each_carry_a_basis_and_only_contact_is_erasable() -> None:
    assert set(CATEGORIES) == set(ERASURE_CATEGORIES)
    assert ERASABLE == ("contact",)
    for category in CATEGORIES.values():
        assert category.basis and category.holds
    assert "Lei 13.787/2018 art. 6" in CATEGORIES["clinical"].basis
    assert "§164.316(b)(2)(i)" in CATEGORIES["audit"].basis

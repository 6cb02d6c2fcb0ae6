"""Audit fields are short ids and codes; free text (possible PHI) is refused before any write."""

from __future__ import annotations

import pytest

from clinicos.governance import InvalidAuditValue
from clinicos.governance.audit.validation import (
    ACTOR_TYPES,
    OUTCOMES,
    optional_code,
    optional_identifier,
    organization_identifier,
    require_code,
    require_member,
)


@pytest.mark.parametrize(
    "value", ["auth.login", "patient.read", "cds:override", "break_glass-open", "a" * 100]
)
def test_require_code_codes_accepted(value: str) -> None:
    assert require_code("action", value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Read chart of Maria Perez",
        "patient read",
        "Patient.Read",
        "diagnosis=HIV",
        "a" * 101,
        "patient.read\n",
        "ñandú.read",
    ],
)
def test_require_code_free_text_rejected(value: str) -> None:
    with pytest.raises(InvalidAuditValue) as excinfo:
        require_code("action", value)
    assert "action" in str(excinfo.value)
    assert value not in str(excinfo.value) or value == ""  # the value itself is never echoed


def test_invalid_audit_value_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        optional_code("purpose", "for the patient's cancer follow-up")


@pytest.mark.parametrize(
    "value",
    ["3f1e0a9c-1b2d-4e5f-8a9b-0c1d2e3f4a5b", "scheduler:outbox.purge", "req_01HZX", "A" * 200],
)
def test_optional_identifier_ids_accepted(value: str) -> None:
    assert optional_identifier("target_id", value) == value


@pytest.mark.parametrize(
    "value", ["maria@example.org", "Maria Perez", "A" * 201, "id;drop", "", "id\t2"]
)
def test_optional_identifier_free_text_rejected(value: str) -> None:
    with pytest.raises(InvalidAuditValue):
        optional_identifier("target_id", value)


def test_optional_values_none_allowed() -> None:
    assert optional_identifier("actor_id", None) is None
    assert optional_code("purpose", None) is None
    assert organization_identifier(None) is None


@pytest.mark.parametrize("value", ["installation", "x" * 37])
def test_organization_identifier_reserved_or_long_rejected(value: str) -> None:
    with pytest.raises(InvalidAuditValue):
        organization_identifier(value)


def test_require_member_outside_set_rejected() -> None:
    assert require_member("outcome", "denied", OUTCOMES) == "denied"
    assert require_member("actor_type", "anonymous", ACTOR_TYPES) == "anonymous"
    with pytest.raises(InvalidAuditValue):
        require_member("outcome", "maybe", OUTCOMES)

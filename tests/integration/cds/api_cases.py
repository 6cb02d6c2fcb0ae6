"""Request bodies for POST /api/v1/cds/evaluate, built from the published worked cases.

The cases (tests/data/doac-examples.json, a checked copy of shared/clinical's) give measurement
ages in days before the evaluation; here they become dates before AS_OF, which every request
sends explicitly.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from clinicos.bootstrap import Container
from tests.support.clinical_examples import EXAMPLES
from tests.support.tenancy_fixtures import SignedIn, new_member, new_organization, sign_in

EVALUATE = "/api/v1/cds/evaluate"
AS_OF = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
AS_OF_TEXT = "2026-11-22T10:00:00Z"


def load_cases() -> dict[str, dict[str, Any]]:
    """The worked cases by id (numbers as JSON numbers, as a client sends them)."""
    cases = json.loads(EXAMPLES.read_text(encoding="utf-8"))
    return {case["id"]: case for case in cases}


def case_ids() -> list[str]:
    return list(load_cases())


def measured_on(days_ago: int | None) -> str | None:
    return None if days_ago is None else (AS_OF.date() - timedelta(days=days_ago)).isoformat()


def patient_body(case_patient: dict[str, Any]) -> dict[str, Any]:
    """A case's patient as the API's inline ``patient`` (dates instead of days ago)."""
    body = dict(case_patient)
    body["creatinine_measured_at"] = measured_on(body.pop("creatinine_measured_days_ago", None))
    body["weight_measured_at"] = measured_on(body.pop("weight_measured_days_ago", None))
    return body


def request_body(case: dict[str, Any], **patient_changes: Any) -> dict[str, Any]:
    patient = patient_body(case["patient"]) | patient_changes
    return {"as_of": AS_OF_TEXT, "patient": patient, "order": dict(case["order"])}


def base_body() -> dict[str, Any]:
    """A valid request: 60-year-old man, 80 kg, SCr 1.0 a week ago, apixaban 5 mg BID NVAF."""
    week_ago = (AS_OF.date() - timedelta(days=7)).isoformat()
    return {
        "as_of": AS_OF_TEXT,
        "patient": {
            "age_years": 60,
            "sex": "male",
            "weight_kg": 80,
            "weight_measured_at": week_ago,
            "serum_creatinine_mg_dl": 1.0,
            "creatinine_measured_at": week_ago,
            "active_bleeding": False,
            "mechanical_valve": False,
            "pregnant": False,
            "other_medications": [],
        },
        "order": {"drug": "apixaban", "dose_mg": 5, "frequency": "BID", "indication": "nvaf"},
    }


def birth_date_for_age(age: int, on: date) -> str:
    """A birth date that makes someone exactly ``age`` on ``on`` (not a 29 February)."""
    return on.replace(year=on.year - age).isoformat()


async def signed_in(
    container: Container, client: AsyncClient, slug: str, *roles: str
) -> dict[str, SignedIn]:
    """A fresh organization with one signed-in member per role, keyed by role."""
    organization_id = await new_organization(container, slug)
    members: dict[str, SignedIn] = {}
    for role in roles:
        member = await new_member(
            container,
            organization_id=organization_id,
            organization_slug=slug,
            email=f"{role}@{slug}.example.com",
            roles=[role],
        )
        members[role] = await sign_in(client, member)
    return members

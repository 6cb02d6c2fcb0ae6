"""Tenant-isolation cases for the clinical routes (merged into the identity isolation suite):
observations, conditions, allergies, the medication list and prescriptions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text

from tests.support.isolation import API, IdRouteCase, ObjectIds, World, member_of
from tests.support.records_fixtures import create_patient

BODIES: dict[str, dict[str, Any]] = {
    "observations": {
        "code": "29463-7",
        "category": "vital-signs",
        "value": 72.5,
        "unit": "kg",
        "effective_at": "2026-01-10T09:30:00Z",
    },
    "conditions": {"icd10_code": "I48.91", "snomed_code": "49436004"},
    "allergies": {"code_system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7980"},
    "medications": {"code": "11289", "display": "warfarin", "dose": 5, "dose_unit": "mg"},
    "prescriptions": {
        "code": "1364430",
        "display": "apixaban",
        "dose": 5,
        "dose_unit": "mg",
        "frequency": "BID",
        "route": "oral",
        "indication": "nvaf",
    },
}
# The prescription of the cases that issue one (the "issue" route's own-tenant control call, the
# "complete" case): a drug the prescribing gate lets through without an evaluation (metoprolol,
# RxNorm 6918), so they need no weight or creatinine on record; what they test is the routes'
# tenant isolation, not decision support.
UNCHECKED_PRESCRIPTION: dict[str, Any] = {
    "code": "6918",
    "display": "metoprolol",
    "dose": 50,
    "dose_unit": "mg",
    "frequency": "BID",
    "route": "oral",
}
TABLES = {
    "observations": "observation",
    "conditions": "condition",
    "allergies": "allergy",
    "medications": "medication_statement",
    "prescriptions": "prescription",
}
ID_PARAMS = {
    "observations": "observation_id",
    "conditions": "condition_id",
    "allergies": "allergy_id",
    "medications": "medication_id",
    "prescriptions": "prescription_id",
}
PATCHES: dict[str, dict[str, Any]] = {
    "observations": {"display": "Body weight"},
    "conditions": {"display": "Atrial fibrillation"},
    "allergies": {"reaction": "urticaria"},
    "medications": {"frequency": "QD"},
    "prescriptions": {"dose": 2.5},
}


def entry_in_a(
    kind: str, *, issue: bool = False, body: dict[str, Any] | None = None
) -> Callable[[World], Awaitable[ObjectIds]]:
    """A patient of A with one entry of ``kind`` (``body``, else the kind's usual one; an
    issued prescription of a drug the prescribing gate does not check if ``issue``)."""

    async def create(world: World) -> ObjectIds:
        clinician = await member_of(world, world.a, "clinician")
        patient_id = str((await create_patient(world.client, clinician))["id"])
        base = f"{API}/patients/{patient_id}/{kind}"
        entry = body or (UNCHECKED_PRESCRIPTION if issue else BODIES[kind])
        created = await world.client.post(base, json=entry, headers=clinician.headers)
        assert created.status_code == 201, created.text
        entry_id = str(created.json()["id"])
        if issue:
            issued = await world.client.post(f"{base}/{entry_id}/issue", headers=clinician.headers)
            assert issued.status_code == 200, issued.text
        return {"patient_id": patient_id, ID_PARAMS[kind]: entry_id}

    return create


def left_alone(kind: str, *, status: str | None = None) -> Callable[[World, Any], Awaitable[None]]:
    """The patient still has exactly the one entry, unchanged (and in ``status``)."""

    async def check(world: World, ids: Any) -> None:
        async with world.owner_engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(f"SELECT * FROM {TABLES[kind]} WHERE patient_id = :p"),
                    {"p": ids["patient_id"]},
                )
            ).all()
        assert [row.id for row in rows] == [ids[ID_PARAMS[kind]]]
        expected_version = 2 if status == "active" else 1
        assert rows[0].version == expected_version
        if status is not None:
            assert rows[0].status == status

    return check


def _cases() -> dict[tuple[str, str], IdRouteCase]:
    cases: dict[tuple[str, str], IdRouteCase] = {}
    for kind, param in ID_PARAMS.items():
        collection = f"{API}/patients/{{patient_id}}/{kind}"
        one = f"{collection}/{{{param}}}"
        status = "draft" if kind == "prescriptions" else None
        common: dict[str, Any] = {
            "create_in_a": entry_in_a(kind),
            "intact": left_alone(kind, status=status),
            "caller_role": "clinician",
        }
        cases[("POST", collection)] = IdRouteCase(
            **common, body=BODIES[kind], id_field="patient_id"
        )
        cases[("GET", collection)] = IdRouteCase(**common, id_field="patient_id")
        cases[("GET", one)] = IdRouteCase(**common)
        cases[("PATCH", one)] = IdRouteCase(**common, body=PATCHES[kind])
    prescription = f"{API}/patients/{{patient_id}}/prescriptions/{{prescription_id}}"
    draft: dict[str, Any] = {
        "create_in_a": entry_in_a("prescriptions"),
        "intact": left_alone("prescriptions", status="draft"),
        "caller_role": "clinician",
    }
    cases[("POST", f"{prescription}/issue")] = IdRouteCase(
        **(draft | {"create_in_a": entry_in_a("prescriptions", body=UNCHECKED_PRESCRIPTION)})
    )
    cases[("POST", f"{prescription}/cancel")] = IdRouteCase(**draft)
    cases[("POST", f"{prescription}/complete")] = IdRouteCase(
        create_in_a=entry_in_a("prescriptions", issue=True),
        intact=left_alone("prescriptions", status="active"),
        caller_role="clinician",
    )
    return cases


CLINICAL_ID_ROUTE_CASES: dict[tuple[str, str], IdRouteCase] = _cases()

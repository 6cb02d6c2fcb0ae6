"""Tenant-isolation cases for the consent routes (merged into the identity isolation suite):
another organization's patient has no consent history to read and none can be added to it."""

from __future__ import annotations

from sqlalchemy import text

from tests.integration.records.isolation_patients import patient_in_a, patient_unchanged
from tests.support.isolation import API, IdRouteCase, ObjectIds, World, member_of


async def no_consent_recorded(world: World, ids: ObjectIds) -> None:
    await patient_unchanged(world, ids)
    async with world.owner_engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM consent_record WHERE patient_id = :id"), {"id": ids}
        )
    assert count == 0


CONSENTS = f"{API}/patients/{{patient_id}}/consents"
CONSENT_ID_ROUTE_CASES: dict[tuple[str, str], IdRouteCase] = {
    ("GET", CONSENTS): IdRouteCase(
        create_in_a=patient_in_a,
        intact=no_consent_recorded,
        caller_role="clinician",
        id_field="patient_id",
    ),
    ("POST", CONSENTS): IdRouteCase(
        create_in_a=patient_in_a,
        intact=no_consent_recorded,
        caller_role="clinician",
        id_field="patient_id",
        body={
            "purpose": "research",
            "decision": "granted",
            "method": "paper",
            "policy_version": "privacy-2026-01",
        },
    ),
}


async def consent_in_a(world: World) -> dict[str, str]:
    clinician = await member_of(world, world.a, "clinician")
    patient_id = await patient_in_a(world)
    stored = await world.client.post(
        f"{API}/patients/{patient_id}/consents",
        json=CONSENT_ID_ROUTE_CASES[("POST", CONSENTS)].body,
        headers=clinician.headers,
    )
    assert stored.status_code == 201, stored.text
    return {"resource_id": str(stored.json()["id"]), "patient_id": patient_id}


async def consent_unchanged(world: World, ids: ObjectIds) -> None:
    assert isinstance(ids, dict)
    async with world.owner_engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM consent_record WHERE patient_id = :id"),
            {"id": ids["patient_id"]},
        )
    assert count == 1


CONSENT_ID_ROUTE_CASES[("GET", "/fhir/Consent/{resource_id}")] = IdRouteCase(
    create_in_a=consent_in_a, intact=consent_unchanged, caller_role="clinician"
)

"""Tenant-isolation cases for the patient routes (merged into the identity isolation suite)."""

from __future__ import annotations

from sqlalchemy import text

from tests.support.isolation import API, IdRouteCase, ObjectIds, World, member_of
from tests.support.records_fixtures import create_patient


async def patient_in_a(world: World) -> str:
    clinician = await member_of(world, world.a, "clinician")
    return str((await create_patient(world.client, clinician))["id"])


async def patient_unchanged(world: World, ids: ObjectIds) -> None:
    async with world.owner_engine.connect() as conn:
        version = await conn.scalar(text("SELECT version FROM patient WHERE id = :id"), {"id": ids})
    assert version == 1


PATIENT_ID_ROUTE_CASES: dict[tuple[str, str], IdRouteCase] = {
    ("GET", f"{API}/patients/{{patient_id}}"): IdRouteCase(
        create_in_a=patient_in_a, intact=patient_unchanged, caller_role="clinician"
    ),
    ("PATCH", f"{API}/patients/{{patient_id}}"): IdRouteCase(
        create_in_a=patient_in_a,
        intact=patient_unchanged,
        caller_role="clinician",
        body={"phone": "+591 7777 7777"},
    ),
}

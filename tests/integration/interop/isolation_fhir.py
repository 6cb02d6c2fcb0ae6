"""Tenant-isolation cases for the FHIR facade's id routes (merged into the identity suite)."""

from __future__ import annotations

from typing import Any

from tests.integration.records.isolation_notes import create_encounter, encounter_unchanged
from tests.integration.records.isolation_patients import patient_in_a, patient_unchanged
from tests.support.isolation import IdRouteCase, ObjectIds, World, member_of
from tests.support.records_fixtures import create_patient


def _patient_body(ids: ObjectIds) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": ids if isinstance(ids, str) else ids["resource_id"],
        "identifier": [{"system": "https://clinicos.dev/fhir/sid/mrn", "value": "MRN-0001"}],
        "name": [{"family": "Overwritten"}],
        "gender": "unknown",
    }


async def encounter_in_a(world: World) -> dict[str, str]:
    clinician = await member_of(world, world.a, "clinician")
    patient = await create_patient(world.client, clinician)
    encounter = await create_encounter(world.client, clinician, patient["id"])
    return {
        "resource_id": encounter["id"],
        "encounter_id": encounter["id"],
        "patient_id": patient["id"],
    }


def _encounter_body(ids: ObjectIds) -> dict[str, Any]:
    assert isinstance(ids, dict)
    return {
        "resourceType": "Encounter",
        "id": ids["resource_id"],
        "status": "cancelled",
        "class": {"code": "AMB"},
        "subject": {"reference": f"Patient/{ids.get('patient_id', ids['resource_id'])}"},
        "period": {"start": "2026-11-20T10:00:00Z"},
    }


FHIR_ID_ROUTE_CASES: dict[tuple[str, str], IdRouteCase] = {
    ("GET", "/fhir/Patient/{resource_id}"): IdRouteCase(
        create_in_a=patient_in_a, intact=patient_unchanged, caller_role="clinician"
    ),
    ("PUT", "/fhir/Patient/{resource_id}"): IdRouteCase(
        create_in_a=patient_in_a,
        intact=patient_unchanged,
        caller_role="clinician",
        body_for=_patient_body,
    ),
    ("GET", "/fhir/Patient/{patient_id}/$everything"): IdRouteCase(
        create_in_a=patient_in_a,
        intact=patient_unchanged,
        caller_role="clinician",
        owned=lambda bundle: str(bundle["entry"][0]["resource"]["id"]),
    ),
    ("GET", "/fhir/Encounter/{resource_id}"): IdRouteCase(
        create_in_a=encounter_in_a, intact=encounter_unchanged, caller_role="clinician"
    ),
    ("PUT", "/fhir/Encounter/{resource_id}"): IdRouteCase(
        create_in_a=encounter_in_a,
        intact=encounter_unchanged,
        caller_role="clinician",
        body_for=_encounter_body,
    ),
}

"""Tenant-isolation cases for the FHIR facade's id routes (merged into the identity suite)."""

from __future__ import annotations

from typing import Any

from tests.integration.records.isolation_patients import patient_in_a, patient_unchanged
from tests.support.isolation import IdRouteCase, ObjectIds


def _patient_body(ids: ObjectIds) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": ids if isinstance(ids, str) else ids["resource_id"],
        "identifier": [{"system": "https://clinicos.dev/fhir/sid/mrn", "value": "MRN-0001"}],
        "name": [{"family": "Overwritten"}],
        "gender": "unknown",
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
}

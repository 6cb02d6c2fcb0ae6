"""Tenant-isolation cases for the encounter and note routes (merged into the identity isolation
suite), and the helpers that make encounters and notes through the API for the record tests."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy import text

from tests.support.isolation import API, IdRouteCase, ObjectIds, World, member_of
from tests.support.records_fixtures import create_patient
from tests.support.tenancy_fixtures import SignedIn

PATIENT = f"{API}/patients/{{patient_id}}"
ENCOUNTERS = f"{PATIENT}/encounters"
ENCOUNTER = f"{ENCOUNTERS}/{{encounter_id}}"
NOTES = f"{PATIENT}/notes"
NOTE = f"{NOTES}/{{note_id}}"


# -- helpers (also used by test_encounters_api.py and test_notes_api.py) ------------------------


def encounter_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "planned",
        "class_code": "AMB",
        "type_code": "185349003",
        "type_display": "Encounter for check up",
        "reason_text": "Control de anticoagulación",
        "period_start": "2026-11-20T14:00:00Z",
    }
    body.update(overrides)
    return body


async def create_encounter(
    client: AsyncClient, who: SignedIn, patient_id: str, **overrides: Any
) -> dict[str, Any]:
    """Record an encounter through the API; fails the test unless it is created."""
    response = await client.post(
        f"/api/v1/patients/{patient_id}/encounters",
        json=encounter_body(**overrides),
        headers=who.headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def create_note(
    client: AsyncClient, who: SignedIn, patient_id: str, **overrides: Any
) -> dict[str, Any]:
    """Start a draft note through the API; fails the test unless it is created."""
    body: dict[str, Any] = {"kind": "progress", "text": "Paciente estable."} | overrides
    response = await client.post(
        f"/api/v1/patients/{patient_id}/notes", json=body, headers=who.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def finalize(
    client: AsyncClient, who: SignedIn, patient_id: str, note_id: str
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/patients/{patient_id}/notes/{note_id}/finalize", headers=who.headers
    )
    assert response.status_code == 200, response.text
    final: dict[str, Any] = response.json()
    return final


# -- what each case puts in A, and how it checks it was left alone -------------------------------


async def _patient_in_a(world: World) -> dict[str, str]:
    clinician = await member_of(world, world.a, "clinician")
    return {"patient_id": str((await create_patient(world.client, clinician))["id"])}


async def _encounter_in_a(world: World) -> dict[str, str]:
    clinician = await member_of(world, world.a, "clinician")
    patient = await create_patient(world.client, clinician)
    encounter = await create_encounter(world.client, clinician, patient["id"])
    return {"patient_id": patient["id"], "encounter_id": encounter["id"]}


async def _final_note_in_a(world: World) -> dict[str, str]:
    clinician = await member_of(world, world.a, "clinician")
    patient = await create_patient(world.client, clinician)
    note = await create_note(world.client, clinician, patient["id"])
    await finalize(world.client, clinician, patient["id"], note["id"])
    return {"patient_id": patient["id"], "note_id": note["id"]}


async def _draft_of_caller_in_a(world: World) -> dict[str, str]:
    """With ``created_by_caller``, ``world.a`` is A's clinician who will call the route."""
    patient = await create_patient(world.client, world.a)
    note = await create_note(world.client, world.a, patient["id"])
    return {"patient_id": patient["id"], "note_id": note["id"]}


async def _rows(world: World, sql: str, ids: ObjectIds) -> list[tuple[Any, ...]]:
    assert isinstance(ids, dict)
    async with world.owner_engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql), ids)).all()]


async def _no_encounters(world: World, ids: ObjectIds) -> None:
    found = await _rows(world, "SELECT id FROM encounter WHERE patient_id = :patient_id", ids)
    assert found == []


async def _no_notes(world: World, ids: ObjectIds) -> None:
    found = await _rows(world, "SELECT id FROM clinical_note WHERE patient_id = :patient_id", ids)
    assert found == []


async def encounter_unchanged(world: World, ids: ObjectIds) -> None:
    found = await _rows(
        world, "SELECT status, version FROM encounter WHERE id = :encounter_id", ids
    )
    assert found == [("planned", 1)]


async def _final_note_unchanged(world: World, ids: ObjectIds) -> None:
    found = await _rows(world, "SELECT status, version FROM clinical_note WHERE id = :note_id", ids)
    assert found == [("final", 2)]
    addenda = await _rows(
        world, "SELECT id FROM clinical_note WHERE amends_note_id = :note_id", ids
    )
    assert addenda == []


async def _draft_unchanged(world: World, ids: ObjectIds) -> None:
    found = await _rows(
        world,
        "SELECT status, version, content_sha256 FROM clinical_note WHERE id = :note_id",
        ids,
    )
    assert found == [("draft", 1, None)]


NEW_NOTE = {"kind": "progress", "text": "Nota de otra organización."}

NOTE_ID_ROUTE_CASES: dict[tuple[str, str], IdRouteCase] = {
    # Encounters (clinical permissions).
    ("POST", ENCOUNTERS): IdRouteCase(
        create_in_a=_patient_in_a,
        intact=_no_encounters,
        caller_role="clinician",
        body=encounter_body(),
        id_field="patient_id",
    ),
    ("GET", ENCOUNTERS): IdRouteCase(
        create_in_a=_encounter_in_a,
        intact=encounter_unchanged,
        caller_role="pharmacist",
        id_field="patient_id",
    ),
    ("GET", ENCOUNTER): IdRouteCase(
        create_in_a=_encounter_in_a, intact=encounter_unchanged, caller_role="nurse"
    ),
    ("PATCH", ENCOUNTER): IdRouteCase(
        create_in_a=_encounter_in_a,
        intact=encounter_unchanged,
        caller_role="clinician",
        body={"status": "in-progress"},
    ),
    # Notes (note permissions).
    ("POST", NOTES): IdRouteCase(
        create_in_a=_patient_in_a,
        intact=_no_notes,
        caller_role="clinician",
        body=NEW_NOTE,
        id_field="patient_id",
    ),
    ("GET", NOTES): IdRouteCase(
        create_in_a=_final_note_in_a,
        intact=_final_note_unchanged,
        caller_role="nurse",
        id_field="patient_id",
    ),
    ("GET", NOTE): IdRouteCase(
        create_in_a=_final_note_in_a, intact=_final_note_unchanged, caller_role="clinician"
    ),
    # A draft is its author's alone: A's caller writes it, then acts on it.
    ("PATCH", NOTE): IdRouteCase(
        create_in_a=_draft_of_caller_in_a,
        intact=_draft_unchanged,
        caller_role="clinician",
        created_by_caller=True,
        body={"text": "Texto cambiado."},
    ),
    ("POST", f"{NOTE}/finalize"): IdRouteCase(
        create_in_a=_draft_of_caller_in_a,
        intact=_draft_unchanged,
        caller_role="clinician",
        created_by_caller=True,
    ),
    ("POST", f"{NOTE}/discard"): IdRouteCase(
        create_in_a=_draft_of_caller_in_a,
        intact=_draft_unchanged,
        caller_role="nurse",
        created_by_caller=True,
    ),
    ("POST", f"{NOTE}/addenda"): IdRouteCase(
        create_in_a=_final_note_in_a,
        intact=_final_note_unchanged,
        caller_role="clinician",
        body={"text": "Adenda: dosis corregida."},
        id_field="amends_note_id",
    ),
}

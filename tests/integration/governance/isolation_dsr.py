"""Tenant-isolation cases for data-subject requests and legal holds (merged into the identity
isolation suite): another organization's patient, request or hold answers 404, and is left as
it was — no request taken, no report made, nothing erased, no hold placed or lifted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from tests.integration.records.isolation_patients import patient_in_a
from tests.support.isolation import API, IdRouteCase, ObjectIds, World


async def _count(world: World, sql: str, ids: ObjectIds) -> Any:
    async with world.owner_engine.connect() as conn:
        return await conn.scalar(text(sql), {"id": ids})


async def no_request_taken(world: World, ids: ObjectIds) -> None:
    sql = "SELECT count(*) FROM data_subject_request WHERE patient_id = :id"
    assert await _count(world, sql, ids) == 0


async def no_hold_placed(world: World, ids: ObjectIds) -> None:
    assert await _count(world, "SELECT count(*) FROM legal_hold WHERE patient_id = :id", ids) == 0


def _request_in_a(kind: str, **extra: Any) -> Any:
    async def create(world: World) -> str:
        patient_id = await patient_in_a(world)
        filed = await world.client.post(
            f"{API}/patients/{patient_id}/data-requests",
            json={"kind": kind, **extra},
            headers=world.a.headers,
        )
        assert filed.status_code == 201, filed.text
        return str(filed.json()["id"])

    return create


async def request_untouched(world: World, ids: ObjectIds) -> None:
    async with world.owner_engine.connect() as conn:
        status, steps = (
            await conn.execute(
                text(
                    "SELECT status, (SELECT count(*) FROM data_subject_request_step s "
                    "WHERE s.request_id = r.id) FROM data_subject_request r WHERE id = :id"
                ),
                {"id": ids},
            )
        ).one()
    assert (status, steps) == ("received", 1)


async def hold_in_a(world: World) -> str:
    patient_id = await patient_in_a(world)
    placed = await world.client.post(
        f"{API}/patients/{patient_id}/legal-holds",
        json={"reason_code": "litigation"},
        headers=world.a.headers,
    )
    assert placed.status_code == 201, placed.text
    return str(placed.json()["id"])


async def hold_in_place(world: World, ids: ObjectIds) -> None:
    sql = "SELECT count(*) FROM legal_hold WHERE id = :id AND lifted_at IS NULL"
    assert await _count(world, sql, ids) == 1


REQUESTS = f"{API}/data-requests/{{request_id}}"
CORRECTION = {
    "target": "demographics",
    "field": "given_name",
    "proposed_value": "Ana",
    "reason": "spelling",
}
DSR_ID_ROUTE_CASES: dict[tuple[str, str], IdRouteCase] = {
    ("POST", f"{API}/patients/{{patient_id}}/data-requests"): IdRouteCase(
        create_in_a=patient_in_a,
        intact=no_request_taken,
        caller_role="clinician",
        id_field="patient_id",
        body={"kind": "access"},
    ),
    ("GET", REQUESTS): IdRouteCase(create_in_a=_request_in_a("access"), intact=request_untouched),
    ("POST", f"{REQUESTS}/access-report"): IdRouteCase(
        create_in_a=_request_in_a("access"), intact=request_untouched, id_field="request_id"
    ),
    ("POST", f"{REQUESTS}/export"): IdRouteCase(
        create_in_a=_request_in_a("portability"),
        intact=request_untouched,
        owned=lambda bundle: str(bundle["identifier"]["value"]),
    ),
    ("POST", f"{REQUESTS}/erasure"): IdRouteCase(
        create_in_a=_request_in_a("erasure"), intact=request_untouched, id_field="request_id"
    ),
    ("POST", f"{REQUESTS}/decision"): IdRouteCase(
        create_in_a=_request_in_a("correction", correction=CORRECTION),
        intact=request_untouched,
        body={"decision": "reject", "note": "not supported by the documents"},
    ),
    ("POST", f"{API}/patients/{{patient_id}}/legal-holds"): IdRouteCase(
        create_in_a=patient_in_a,
        intact=no_hold_placed,
        id_field="patient_id",
        body={"reason_code": "litigation"},
    ),
    ("GET", f"{API}/patients/{{patient_id}}/legal-holds"): IdRouteCase(
        create_in_a=patient_in_a, intact=no_hold_placed, id_field="patient_id"
    ),
    ("POST", f"{API}/legal-holds/{{hold_id}}/lift"): IdRouteCase(
        create_in_a=hold_in_a, intact=hold_in_place, body={"reason_code": "resolved"}
    ),
}

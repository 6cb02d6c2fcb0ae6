"""FHIR ``Encounter`` ↔ the record's encounter.

``status`` (planned, in-progress, finished, cancelled, entered-in-error), ``class`` (v3 ActCode
AMB, EMER, IMP, VR, HH), the first ``type`` coding, ``reasonCode[0].text`` (stored encrypted),
``period``. Other elements (participants, locations, service provider …) are not stored."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from fhir.resources.R4B.encounter import Encounter as FhirEncounter

from clinicos.identity import Permission
from clinicos.interop.fhir.base import (
    READ_WRITE,
    FhirContext,
    Resolver,
    SearchPage,
    SearchRequest,
    by_ids,
    fhir_instant,
    instant,
    meta,
    reference_id,
    validate_model,
)
from clinicos.interop.fhir.outcome import FhirBadRequest, invalid
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.records import (
    EncounterFields,
    EncounterView,
    add_encounter,
    get_encounter,
    list_encounters,
    patient_of_entry,
    record_encounter,
    update_encounter,
)

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def to_fhir(view: EncounterView) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": view.id,
        "meta": meta(view.version, view.updated_at),
        "status": view.status,
        "class": {"system": ACT_CODE, "code": view.class_code},
        "subject": {"reference": f"Patient/{view.patient_id}"},
        "period": {"start": fhir_instant(view.period_start)},
    }
    if view.period_end is not None:
        resource["period"]["end"] = fhir_instant(view.period_end)
    if view.type_code or view.type_display:
        coding = {k: v for k, v in (("code", view.type_code), ("display", view.type_display)) if v}
        resource["type"] = [{"coding": [coding]}]
    if view.reason_text:
        resource["reasonCode"] = [{"text": view.reason_text}]
    return resource


def from_fhir(data: Any, resolver: Resolver | None = None) -> tuple[str, EncounterFields]:
    """``(patient id, fields)`` of a FHIR Encounter; 422 naming the element otherwise."""
    encounter = validate_model(FhirEncounter, "Encounter", data)
    patient_id = reference_id(
        encounter.subject.reference if encounter.subject else None,
        "Patient",
        "Encounter.subject",
        resolver,
    )
    if encounter.period is None or encounter.period.start is None:
        raise invalid("Encounter.period.start", "the start of the encounter is required")
    type_code = type_display = None
    for concept in encounter.type or []:
        for coding in concept.coding or []:
            type_code, type_display = coding.code, coding.display
            break
        if type_code or type_display:
            break
    reason = None
    for concept in encounter.reasonCode or []:
        reason = concept.text or next((c.display for c in concept.coding or [] if c.display), None)
        if reason:
            break
    return patient_id, EncounterFields(
        status=encounter.status or "",
        class_code=encounter.class_fhir.code or "" if encounter.class_fhir else "",
        period_start=instant(encounter.period.start, "Encounter.period.start"),
        period_end=instant(encounter.period.end, "Encounter.period.end")
        if encounter.period.end
        else None,
        type_code=(type_code or None) and type_code[:64],
        type_display=(type_display or None) and type_display[:200],
        reason_text=reason,
    )


class EncounterResource:
    name = "Encounter"
    read_permission = Permission.clinical_read
    write_permission = Permission.clinical_write
    search_parameters: tuple[str, ...] = ("patient", "subject")
    phi_parameters: tuple[str, ...] = ()
    interactions: tuple[str, ...] = READ_WRITE

    async def read(self, ctx: FhirContext, resource_id: str) -> dict[str, Any]:
        patient_id = await patient_of_entry(
            uows=ctx.uows, actor=ctx.actor, kind="encounter", entry_id=resource_id
        )
        view = await get_encounter(
            uows=ctx.uows,
            phi=ctx.phi,
            actor=ctx.actor,
            patient_id=patient_id,
            encounter_id=resource_id,
        )
        return to_fhir(view)

    async def search(self, ctx: FhirContext, search: SearchRequest) -> SearchPage:
        if search.ids and search.patient_id is None:
            return await by_ids(self, ctx, search.ids)
        if search.patient_id is None:
            raise FhirBadRequest("search Encounter by 'patient' (or 'subject')")
        page = await list_encounters(
            uows=ctx.uows,
            phi=ctx.phi,
            actor=ctx.actor,
            patient_id=search.patient_id,
            limit=search.count,
            cursor=search.cursor,
        )
        items = [v for v in page.items if not search.ids or v.id in search.ids]
        return SearchPage(resources=[to_fhir(v) for v in items], next_cursor=page.next_cursor)

    async def create(self, ctx: FhirContext, resource: dict[str, Any]) -> dict[str, Any]:
        patient_id, values = from_fhir(resource)
        view = await record_encounter(
            uows=ctx.uows, phi=ctx.phi, actor=ctx.actor, patient_id=patient_id, values=values
        )
        return to_fhir(view)

    async def update(
        self, ctx: FhirContext, resource_id: str, resource: dict[str, Any], version: int | None
    ) -> dict[str, Any]:
        patient_id, values = from_fhir(resource)
        stored_patient = await patient_of_entry(
            uows=ctx.uows, actor=ctx.actor, kind="encounter", entry_id=resource_id
        )
        if stored_patient != patient_id:
            raise invalid("Encounter.subject", "an encounter cannot move to another patient")
        view = await update_encounter(
            uows=ctx.uows,
            phi=ctx.phi,
            actor=ctx.actor,
            patient_id=patient_id,
            encounter_id=resource_id,
            changes={f.name: getattr(values, f.name) for f in fields(EncounterFields)},
            expected_version=version,
        )
        return to_fhir(view)

    async def add(
        self, uow: SqlUnitOfWork, ctx: FhirContext, resource: dict[str, Any], resolver: Resolver
    ) -> tuple[str, int]:
        patient_id, values = from_fhir(resource, resolver)
        row = await add_encounter(uow, ctx.phi, ctx.actor, values, patient_id=patient_id)
        return row.id, row.version

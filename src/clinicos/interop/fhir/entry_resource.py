"""One ``ResourceType`` for every clinical entry the record keeps per patient (observations,
conditions, allergies, the medication list, prescriptions): the FHIR interactions are the same
shape for each — only the mapping and the record's use cases differ, and those are data here.

Reads by id find the patient first (``records.patient_of_entry``, no audit row) and then call
the patient-scoped use case (one audit row); searches require the patient; an update restates
the whole entry and may not move it to another patient."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from clinicos.identity import Permission
from clinicos.interop.fhir.base import (
    READ_WRITE,
    FhirContext,
    Resolver,
    SearchPage,
    SearchRequest,
    by_ids,
    entry_criteria,
)
from clinicos.interop.fhir.outcome import FhirBadRequest, element_paths, invalid
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.records import patient_of_entry

UseCase = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class EntryUseCases:
    """The record's use cases of one family, called with the record's keyword conventions:
    ``get(uows, actor, patient_id, <id_arg>)``, ``list(uows, actor, patient_id, <criteria_arg>,
    limit, cursor)``, ``record(uows, phi, actor, patient_id, values)``, ``update(uows, phi, actor,
    patient_id, <id_arg>, changes, expected_version)`` and ``add(uow, phi, actor, patient_id,
    values)`` (inside a bundle's transaction)."""

    get: UseCase
    list: UseCase
    record: UseCase
    update: UseCase
    add: UseCase
    id_arg: str
    criteria_arg: str = "criteria"


@dataclass
class EntryResource:
    """A FHIR resource type over one family of clinical entries."""

    name: str
    kind: str  # records.patient_of_entry's name for the family
    subject: str  # the element naming the patient: "subject" or "patient"
    search_parameters: tuple[str, ...]
    to_fhir: Callable[[Any], dict[str, Any]]
    from_fhir: Callable[[Any, Resolver | None], tuple[str, Any]]
    use_cases: EntryUseCases
    paths: Mapping[str, str]
    read_permission: Permission = Permission.clinical_read
    write_permission: Permission = Permission.clinical_write
    phi_parameters: tuple[str, ...] = ()
    interactions: tuple[str, ...] = READ_WRITE

    async def patient_of(self, ctx: FhirContext, resource_id: str) -> str:
        return await patient_of_entry(
            uows=ctx.uows, actor=ctx.actor, kind=self.kind, entry_id=resource_id
        )

    async def read(self, ctx: FhirContext, resource_id: str) -> dict[str, Any]:
        patient_id = await self.patient_of(ctx, resource_id)
        row = await self.use_cases.get(
            uows=ctx.uows,
            actor=ctx.actor,
            patient_id=patient_id,
            **{self.use_cases.id_arg: resource_id},
        )
        return self.to_fhir(row)

    async def search(self, ctx: FhirContext, search: SearchRequest) -> SearchPage:
        if search.ids and search.patient_id is None:
            return await by_ids(self, ctx, search.ids)
        if search.patient_id is None:
            raise FhirBadRequest(f"search {self.name} by 'patient'")
        page = await self.use_cases.list(
            uows=ctx.uows,
            actor=ctx.actor,
            patient_id=search.patient_id,
            limit=search.count,
            cursor=search.cursor,
            **{self.use_cases.criteria_arg: entry_criteria(search)},
        )
        rows = [r for r in page.items if not search.ids or r.id in search.ids]
        return SearchPage(resources=[self.to_fhir(r) for r in rows], next_cursor=page.next_cursor)

    async def create(self, ctx: FhirContext, resource: dict[str, Any]) -> dict[str, Any]:
        patient_id, values = self.from_fhir(resource, None)
        with element_paths(self.name, self.paths):
            row = await self.use_cases.record(
                uows=ctx.uows, phi=ctx.phi, actor=ctx.actor, patient_id=patient_id, values=values
            )
        return self.to_fhir(row)

    async def same_patient(self, ctx: FhirContext, resource_id: str, patient_id: str) -> None:
        """An update names the entry's own patient (422 at the subject element otherwise)."""
        if await self.patient_of(ctx, resource_id) != patient_id:
            raise invalid(f"{self.name}.{self.subject}", "an entry cannot move to another patient")

    async def update(
        self, ctx: FhirContext, resource_id: str, resource: dict[str, Any], version: int | None
    ) -> dict[str, Any]:
        """Restate the entry: what the record lets change changes; a changed element it keeps
        fixed (a result's code, when it was measured …) is a 422 naming that element."""
        patient_id, values = self.from_fhir(resource, None)
        await self.same_patient(ctx, resource_id, patient_id)
        with element_paths(self.name, self.paths):
            row = await self.use_cases.update(
                uows=ctx.uows,
                phi=ctx.phi,
                actor=ctx.actor,
                patient_id=patient_id,
                changes={f.name: getattr(values, f.name) for f in fields(values)},
                expected_version=version,
                **{self.use_cases.id_arg: resource_id},
            )
        return self.to_fhir(row)

    async def add(
        self, uow: SqlUnitOfWork, ctx: FhirContext, resource: dict[str, Any], resolver: Resolver
    ) -> tuple[str, int]:
        patient_id, values = self.from_fhir(resource, resolver)
        with element_paths(self.name, self.paths):
            row = await self.use_cases.add(
                uow, ctx.phi, ctx.actor, patient_id=patient_id, values=values
            )
        return row.id, row.version

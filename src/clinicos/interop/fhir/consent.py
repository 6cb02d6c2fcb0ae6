"""FHIR ``Consent`` (read and search): each recorded decision of governance's consent history
as one Consent resource. Read-only here — decisions are recorded through
``POST /api/v1/patients/{id}/consents``, where the method and policy version are required.

Mapping (R4 Consent): ``status`` active (a grant still in force) | rejected (a denial) |
inactive (a revocation, or a decision a newer one replaced); ``scope`` from the consentscope
system (treatment, research, else patient-privacy); ``category`` LOINC 59284-0 "Patient
Consent"; ``patient``; ``dateTime`` when the patient gave it; ``policyRule`` the policy text
version shown; ``provision`` permit or deny, for the purpose (our code system); the method as
an extension."""

from __future__ import annotations

from typing import Any

from clinicos.governance import (
    ConsentView,
    consent_history,
    consent_record,
    record_audit,
    superseded,
)
from clinicos.identity import Permission
from clinicos.interop.fhir.base import (
    FhirContext,
    Resolver,
    SearchPage,
    SearchRequest,
    by_ids,
    coding,
    fhir_instant,
)
from clinicos.interop.fhir.outcome import FhirBadRequest, FhirNotSupported
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.records import require_patient

SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
PURPOSE_SYSTEM = "https://clinicos.dev/fhir/CodeSystem/consent-purpose"
METHOD_EXTENSION = "https://clinicos.dev/fhir/StructureDefinition/consent-method"
_SCOPES = {"treatment": "treatment", "research": "research"}
_STATUS = {"granted": "active", "denied": "rejected", "revoked": "inactive"}
_NOT_HERE = "consent is recorded through POST /api/v1/patients/{id}/consents"


def to_fhir(view: ConsentView, *, replaced: bool) -> dict[str, Any]:
    status = "inactive" if replaced else _STATUS[view.decision]
    return {
        "resourceType": "Consent",
        "id": view.id,
        "meta": {"versionId": "1", "lastUpdated": fhir_instant(view.recorded_at)},
        "extension": [{"url": METHOD_EXTENSION, "valueCode": view.method}],
        "status": status,
        "scope": {"coding": [coding(SCOPE, _SCOPES.get(view.purpose, "patient-privacy"))]},
        "category": [{"coding": [coding("http://loinc.org", "59284-0", "Patient Consent")]}],
        "patient": {"reference": f"Patient/{view.patient_id}"},
        "dateTime": fhir_instant(view.given_at),
        "policyRule": {"text": view.policy_version},
        "provision": {
            "type": "permit" if view.decision == "granted" else "deny",
            "purpose": [coding(PURPOSE_SYSTEM, view.purpose)],
        },
    }


async def _audit(uow: SqlUnitOfWork, ctx: FhirContext, patient_id: str) -> None:
    await record_audit(
        uow,
        organization_id=ctx.actor.organization_id,
        actor_type="user",
        actor_id=ctx.actor.user_id,
        action="consent.read",
        target_type="patient",
        target_id=patient_id,
        purpose="consent",
        request_id=ctx.actor.request_id,
    )


class ConsentResource:
    name = "Consent"
    read_permission = Permission.consent_read
    write_permission = Permission.consent_write
    search_parameters: tuple[str, ...] = ("patient",)
    phi_parameters: tuple[str, ...] = ()
    interactions: tuple[str, ...] = ("read", "search-type")

    async def read(self, ctx: FhirContext, resource_id: str) -> dict[str, Any]:
        async with ctx.uows(ctx.actor.organization_id) as uow:
            view = await consent_record(uow, ctx.actor, resource_id)
            replaced = await superseded(uow, ctx.actor, view)
            await _audit(uow, ctx, view.patient_id)
            await uow.commit()
        return to_fhir(view, replaced=replaced)

    async def search(self, ctx: FhirContext, search: SearchRequest) -> SearchPage:
        if search.ids and search.patient_id is None:
            return await by_ids(self, ctx, search.ids)
        if search.patient_id is None:
            raise FhirBadRequest("search Consent by 'patient'")
        async with ctx.uows(ctx.actor.organization_id) as uow:
            await require_patient(uow, ctx.actor, search.patient_id)
            views = await consent_history(uow, ctx.actor, search.patient_id)
            await _audit(uow, ctx, search.patient_id)
            await uow.commit()
        current: set[str] = set()
        resources = []
        for view in views:  # newest first: the first of each purpose is in force
            replaced = view.purpose in current
            current.add(view.purpose)
            if not search.ids or view.id in search.ids:
                resources.append(to_fhir(view, replaced=replaced))
        if not search.newest_first:
            resources.reverse()
        # A patient's decisions are few (a handful per purpose): one page, no cursor; more than
        # `_count` is said in the bundle (an OperationOutcome warning), never cut silently.
        return SearchPage(
            resources=resources[: search.count],
            next_cursor=None,
            truncated=len(resources) > search.count,
        )

    async def create(self, ctx: FhirContext, resource: dict[str, Any]) -> dict[str, Any]:
        raise FhirNotSupported(_NOT_HERE)

    async def update(
        self, ctx: FhirContext, resource_id: str, resource: dict[str, Any], version: int | None
    ) -> dict[str, Any]:
        raise FhirNotSupported(_NOT_HERE)

    async def add(
        self, uow: SqlUnitOfWork, ctx: FhirContext, resource: dict[str, Any], resolver: Resolver
    ) -> tuple[str, int]:
        raise FhirNotSupported(_NOT_HERE)

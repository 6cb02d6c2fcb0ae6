"""Answering data-subject requests: the access report (FHIR Bundle + readable summary), the
portability export, erasure of what the law lets us erase (refused — and recorded as refused —
under a legal hold or a legal retention) and the decision on a correction."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from clinicos.governance.consent import consent_history
from clinicos.governance.dsr.holds import active_holds
from clinicos.governance.dsr.policy import CATEGORIES, LANGUAGES, erasure_plan
from clinicos.governance.dsr.ports import DsrContext
from clinicos.governance.dsr.requests import (
    MAX_TEXT,
    RequestView,
    advance,
    audit,
    invalid,
    load,
    require_open,
    seal,
    start,
    steps_of,
    view_of,
)
from clinicos.governance.dsr.summary import summarize
from clinicos.governance.models import AuditEvent
from clinicos.kernel.errors import Conflict

# An access report lists at most this many accesses (the newest); a longer trail is said in
# the summary and the result, never cut silently. The audit API pages through the rest.
MAX_ACCESSES = 10_000


class LegalHoldActive(Conflict):
    code = "legal_hold"
    title = "The patient's data is under a legal hold"


class LegalRetention(Conflict):
    code = "legal_retention"
    title = "The law requires us to keep this data"


@dataclass(frozen=True)
class AccessReport:
    request: RequestView
    bundle: dict[str, Any]
    language: str
    summary: str


@dataclass(frozen=True)
class ErasureResult:
    request: RequestView
    erased: dict[str, list[str]]
    retained: dict[str, str]


def _language(requested: str | None, preferred: str | None) -> str:
    """The summary's language: the one asked for, else the patient's preferred one when we
    have its messages (``pt-BR`` → ``pt``), else English."""
    if requested is not None:
        if requested not in LANGUAGES:
            raise invalid(("language",), f"one of {list(LANGUAGES)}", "enum")
        return requested
    base = (preferred or "").split("-")[0].lower()
    return base if base in LANGUAGES else "en"


def _counts(bundle: dict[str, Any]) -> dict[str, int]:
    return dict(Counter(e["resource"]["resourceType"] for e in bundle["entry"]))


async def access_report(
    ctx: DsrContext, *, request_id: str, base_url: str, language: str | None = None
) -> AccessReport:
    """Everything held about the patient as a FHIR Bundle — the record, consent decisions and
    who accessed the record (this organization's audit rows naming this patient, newest
    ``MAX_ACCESSES``) — and a summary; the request is completed, all in one transaction."""
    actor = ctx.actor
    async with ctx.uows(actor.organization_id) as uow:
        row = await load(uow, actor, request_id)
        require_open(row, "access")
        await start(uow, actor, row)
        record = await ctx.ports.read_subject(uow, ctx.phi, actor, row.patient_id)
        consents = await consent_history(uow, actor, row.patient_id)
        accesses = list(
            (
                await uow.session.scalars(
                    select(AuditEvent)
                    .where(
                        AuditEvent.organization_id == actor.organization_id,
                        AuditEvent.target_type == "patient",
                        AuditEvent.target_id == row.patient_id,
                    )
                    .order_by(AuditEvent.seq.desc())
                    .limit(MAX_ACCESSES + 1)
                )
            ).all()
        )
        truncated = len(accesses) > MAX_ACCESSES
        accesses = list(reversed(accesses[:MAX_ACCESSES]))
        now = uow.clock.now()
        bundle = ctx.ports.to_bundle(
            record,
            consents=consents,
            accesses=accesses,
            base_url=base_url,
            request_id=row.id,
            generated_at=now,
        )
        chosen = _language(language, record.patient.preferred_language)
        summary = summarize(bundle, language=chosen, request_id=row.id, generated_at=now)
        if truncated:
            summary += f"\n(Only the newest {MAX_ACCESSES} accesses are listed.)\n"
        row.result = {"resources": _counts(bundle), "accesses_truncated": truncated}
        await advance(uow, actor, row, "report_generated", "completed", note_code="delivered")
        await audit(uow, actor, "dsr.access.report", patient_id=row.patient_id)
        view = view_of(ctx.phi, row, await steps_of(uow, row), now, disclose=True)
        await uow.commit()
    return AccessReport(request=view, bundle=bundle, language=chosen, summary=summary)


async def portability_export(ctx: DsrContext, *, request_id: str, base_url: str) -> dict[str, Any]:
    """The patient's data — record and consent decisions, not our access log — as a FHIR
    ``collection`` Bundle (LGPD Art. 18 V, GDPR Art. 20); the request is completed."""
    actor = ctx.actor
    async with ctx.uows(actor.organization_id) as uow:
        row = await load(uow, actor, request_id)
        require_open(row, "portability")
        await start(uow, actor, row)
        record = await ctx.ports.read_subject(uow, ctx.phi, actor, row.patient_id)
        consents = await consent_history(uow, actor, row.patient_id)
        bundle = ctx.ports.to_bundle(
            record,
            consents=consents,
            accesses=(),
            base_url=base_url,
            request_id=row.id,
            generated_at=uow.clock.now(),
        )
        row.result = {"resources": _counts(bundle)}
        await advance(uow, actor, row, "export_generated", "completed", note_code="delivered")
        await audit(uow, actor, "dsr.portability.export", patient_id=row.patient_id)
        await uow.commit()
    return bundle


async def erase(ctx: DsrContext, *, request_id: str) -> ErasureResult:
    """Erase what the request asks and the law lets us erase. A legal hold (409 ``legal_hold``)
    or a category under legal retention among those asked (409 ``legal_retention``, naming each
    category and its basis) refuses the whole request: the refusal — step, status ``refused``,
    audit entry with outcome ``denied`` — is committed before the 409 is raised, and nothing is
    erased. Without categories, everything erasable is erased and what we keep is reported."""
    actor = ctx.actor
    async with ctx.uows(actor.organization_id) as uow:
        row = await load(uow, actor, request_id)
        require_open(row, "erasure")
        await start(uow, actor, row)
        holds = await active_holds(uow, actor.organization_id, row.patient_id)
        to_erase, kept = erasure_plan(tuple(row.categories) if row.categories else None)
        refusal: Conflict | None = None
        if holds:
            reasons = sorted({h.reason_code for h in holds})
            row.result = {"hold_ids": [h.id for h in holds], "hold_reasons": reasons}
            refusal = LegalHoldActive(
                f"erasure refused: the patient's data is under a legal hold ({', '.join(reasons)})",
                data={"hold_ids": [h.id for h in holds], "reason_codes": reasons},
            )
        elif kept:
            bases = {c: CATEGORIES[c].basis for c in kept}
            row.result = {"retained": bases}
            refusal = LegalRetention(
                "erasure refused: "
                + "; ".join(f"{c} must be kept — {basis}" for c, basis in bases.items()),
                data={"categories": bases},
            )
        if refusal is not None:
            await advance(uow, actor, row, "refused", "refused", note_code=refusal.code)
            await audit(
                uow, actor, "dsr.erasure.refuse", patient_id=row.patient_id, outcome="denied"
            )
            await uow.commit()
            raise refusal
        erased: dict[str, list[str]] = {}
        if "contact" in to_erase:
            erased["contact"] = list(
                await ctx.ports.erase_contact(uow, ctx.phi, actor, row.patient_id)
            )
        retained = {c.code: c.basis for c in CATEGORIES.values() if c.code not in to_erase}
        row.result = {"erased": erased, "retained": sorted(retained)}
        await advance(uow, actor, row, "erased", "completed", note_code="erased")
        await audit(uow, actor, "dsr.erasure.erase", patient_id=row.patient_id)
        view = view_of(ctx.phi, row, await steps_of(uow, row), uow.clock.now(), disclose=True)
        await uow.commit()
    return ErasureResult(request=view, erased=erased, retained=retained)


async def decide_correction(
    ctx: DsrContext, *, request_id: str, accept: bool, note: str | None
) -> RequestView:
    """Accept (the record applies the change through its own update use case, in its own
    transaction, with its own audit entry and version) or reject (a note saying why is
    required) a correction request; then the decision is recorded — step, status, encrypted
    note, audit — in one transaction. A change the record refuses (409/422) records nothing.
    Should recording the decision fail after the record changed, deciding again re-applies the
    same value (no change) and records it."""
    note = note.strip() if note else None
    if not accept and not note:
        raise invalid(("note",), "a rejection needs a note saying why")
    if note is not None and len(note) > MAX_TEXT:
        raise invalid(("note",), f"at most {MAX_TEXT} characters")
    actor = ctx.actor
    async with ctx.uows(actor.organization_id) as uow:
        row = await load(uow, actor, request_id)
        require_open(row, "correction")
        view = view_of(ctx.phi, row, [], uow.clock.now(), disclose=True)
    correction = view.correction
    version = None
    if accept and correction is not None:
        version = await ctx.ports.apply_correction(
            uows=ctx.uows,
            phi=ctx.phi,
            actor=actor,
            patient_id=row.patient_id,
            target=correction.target,
            entry_id=correction.entry_id,
            field=correction.field,
            proposed_value=correction.proposed_value,
        )
    async with ctx.uows(actor.organization_id) as uow:
        row = await load(uow, actor, request_id)
        require_open(row, "correction")
        await start(uow, actor, row)
        row.decision_note = seal(ctx.phi, row, "decision_note", note)
        outcome, action = ("accepted", "accept") if accept else ("rejected", "reject")
        if version is not None:
            row.result = {"applied_version": version}
        await advance(
            uow, actor, row, outcome, "completed" if accept else "rejected", note_code=outcome
        )
        await audit(uow, actor, f"dsr.correction.{action}", patient_id=row.patient_id)
        decided = view_of(ctx.phi, row, await steps_of(uow, row), uow.clock.now(), disclose=True)
        await uow.commit()
    return decided

"""Consent: what each patient agreed to, for which purpose, how and when — and the one check
every other context calls before it uses a patient's data for a purpose that needs consent.

The history is append-only (``consent_record``); the current decision for a purpose is the
newest row. Purposes, defaults and legal bases (docs/contexts/governance.md):

- ``treatment``: care does not rest on consent under LGPD Art. 11 II f (health protection by
  professionals) nor HIPAA §164.506 (treatment, payment, operations), so it counts as granted
  until the patient's objection is recorded (``denied``/``revoked``) — our policy choice.
- every other purpose (``research``, ``messaging:*``, ``ai_assistance``) needs an explicit
  ``granted`` (LGPD Art. 7 I / Art. 11 I: specific and highlighted consent); no record, a
  denial or a revocation refuses it. A revocation takes effect at once (Art. 8 §5): the check
  reads the table in the caller's transaction, never a cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from sqlalchemy import select

from clinicos.governance.audit import record_audit
from clinicos.governance.events import ConsentRecorded
from clinicos.governance.models import ConsentRecord
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import Conflict, FieldError, NotFound, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork

Purpose = Literal[
    "treatment",
    "research",
    "messaging:whatsapp",
    "messaging:sms",
    "messaging:email",
    "ai_assistance",
]
Decision = Literal["granted", "denied", "revoked"]
Method = Literal["paper", "verbal", "whatsapp_opt_in", "portal"]
PURPOSES: tuple[str, ...] = get_args(Purpose)
DECISIONS: tuple[str, ...] = get_args(Decision)
METHODS: tuple[str, ...] = get_args(Method)
# Purposes that hold until the patient objects (see the module docstring).
IMPLIED_UNTIL_REFUSED: frozenset[str] = frozenset({"treatment"})
# A consent given on paper may be entered later, but not years later nor in the future.
MAX_BACKDATING = timedelta(days=30)
CLOCK_SKEW = timedelta(minutes=5)

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]
# Raises the record's not-found when the patient is not the actor's organization's (the
# composition root passes records' check: governance does not import records).
PatientCheck = Callable[[SqlUnitOfWork, Actor, str], Awaitable[None]]


class ConsentRequired(Conflict):
    code = "consent_required"
    title = "The patient has not consented to this use of their data"


@dataclass(frozen=True)
class ConsentView:
    id: str
    patient_id: str
    purpose: str
    decision: str
    method: str
    policy_version: str
    recorded_by: str
    recorded_at: datetime
    given_at: datetime


@dataclass(frozen=True)
class ConsentState:
    """The current decision for one purpose, and whether it allows the use now."""

    purpose: str
    allowed: bool
    decision: str | None  # None: nothing recorded (the purpose's default applies)
    latest: ConsentView | None


def _view(row: ConsentRecord) -> ConsentView:
    return ConsentView(
        id=row.id,
        patient_id=row.patient_id,
        purpose=row.purpose,
        decision=row.decision,
        method=row.method,
        policy_version=row.policy_version,
        recorded_by=row.recorded_by,
        recorded_at=row.recorded_at,
        given_at=row.given_at,
    )


def _invalid(field: str, message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(
        f"invalid fields: {field}", errors=(FieldError((field,), message, kind),)
    )


def check_purpose(purpose: str) -> None:
    """422 naming ``purpose`` with the accepted values when it is not one we know."""
    if purpose not in PURPOSES:
        raise _invalid("purpose", f"one of {list(PURPOSES)}", "enum")


async def _latest(
    uow: SqlUnitOfWork, organization_id: str, patient_id: str, purpose: str
) -> ConsentRecord | None:
    row: ConsentRecord | None = await uow.session.scalar(
        select(ConsentRecord)
        .where(
            ConsentRecord.organization_id == organization_id,
            ConsentRecord.patient_id == patient_id,
            ConsentRecord.purpose == purpose,
        )
        .order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id.desc())
        .limit(1)
    )
    return row


def _state(purpose: str, row: ConsentRecord | None) -> ConsentState:
    if row is None:
        allowed = purpose in IMPLIED_UNTIL_REFUSED
        return ConsentState(purpose=purpose, allowed=allowed, decision=None, latest=None)
    return ConsentState(
        purpose=purpose,
        allowed=row.decision == "granted",
        decision=row.decision,
        latest=_view(row),
    )


async def consent_state(
    uow: SqlUnitOfWork, actor: Actor, patient_id: str, purpose: str
) -> ConsentState:
    """The current decision for ``purpose``, read in the caller's transaction (no audit)."""
    check_purpose(purpose)
    return _state(purpose, await _latest(uow, actor.organization_id, patient_id, purpose))


async def require_consent(uow: SqlUnitOfWork, actor: Actor, patient_id: str, purpose: str) -> None:
    """Refuse (409 ``consent_required``, naming the purpose, never the patient) unless the
    patient's current decision allows ``purpose``. The one check other contexts call, inside
    their own unit of work, right before they use the data."""
    state = await consent_state(uow, actor, patient_id, purpose)
    if not state.allowed:
        why = "no consent recorded" if state.decision is None else f"consent {state.decision}"
        raise ConsentRequired(f"{purpose}: {why}")


async def record_consent(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    patient_check: PatientCheck,
    patient_id: str,
    purpose: str,
    decision: str,
    method: str,
    policy_version: str,
    given_at: datetime | None = None,
) -> ConsentView:
    """Append one decision: the row, its audit entry and a ``ConsentRecorded`` event, in one
    transaction. ``revoked`` needs a current ``granted`` (409 otherwise: there is nothing to
    withdraw; a refusal is ``denied``)."""
    check_purpose(purpose)
    if decision not in DECISIONS:
        raise _invalid("decision", f"one of {list(DECISIONS)}", "enum")
    if method not in METHODS:
        raise _invalid("method", f"one of {list(METHODS)}", "enum")
    policy_version = policy_version.strip()
    if not 1 <= len(policy_version) <= 64:
        raise _invalid("policy_version", "1-64 characters naming the policy text shown")
    async with uows(actor.organization_id) as uow:
        await patient_check(uow, actor, patient_id)
        now = uow.clock.now()
        given = given_at or now
        if given.tzinfo is None:
            raise _invalid("given_at", "a timezone-aware datetime is required", "naive")
        if given > now + CLOCK_SKEW:
            raise _invalid("given_at", "may not be in the future", "future")
        if given < now - MAX_BACKDATING:
            raise _invalid("given_at", f"at most {MAX_BACKDATING.days} days ago", "too_old")
        current = await _latest(uow, actor.organization_id, patient_id, purpose)
        if decision == "revoked" and (current is None or current.decision != "granted"):
            raise Conflict(f"{purpose}: there is no granted consent to revoke")
        row = ConsentRecord(
            id=new_id(),
            organization_id=actor.organization_id,
            patient_id=patient_id,
            purpose=purpose,
            decision=decision,
            method=method,
            policy_version=policy_version,
            recorded_by=actor.user_id,
            recorded_at=now,
            given_at=given,
        )
        uow.session.add(row)
        await uow.session.flush()
        await record_audit(
            uow,
            organization_id=actor.organization_id,
            actor_type="user",
            actor_id=actor.user_id,
            action=f"consent.{decision}",
            target_type="patient",
            target_id=patient_id,
            purpose="consent",
            request_id=actor.request_id,
        )
        uow.record(
            ConsentRecorded(
                organization_id=actor.organization_id,
                consent_id=row.id,
                patient_id=patient_id,
                purpose=purpose,
                decision=decision,
            )
        )
        await uow.commit()
    return _view(row)


async def consent_overview(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    patient_check: PatientCheck,
    patient_id: str,
) -> tuple[list[ConsentState], list[ConsentView]]:
    """The current state of every purpose and the whole history (newest first), with one
    audit entry for the disclosure."""
    async with uows(actor.organization_id) as uow:
        await patient_check(uow, actor, patient_id)
        rows = list(
            (
                await uow.session.scalars(
                    select(ConsentRecord)
                    .where(
                        ConsentRecord.organization_id == actor.organization_id,
                        ConsentRecord.patient_id == patient_id,
                    )
                    .order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id.desc())
                )
            ).all()
        )
        await record_audit(
            uow,
            organization_id=actor.organization_id,
            actor_type="user",
            actor_id=actor.user_id,
            action="consent.read",
            target_type="patient",
            target_id=patient_id,
            purpose="consent",
            request_id=actor.request_id,
        )
        await uow.commit()
    newest: dict[str, ConsentRecord] = {}
    for row in rows:
        newest.setdefault(row.purpose, row)
    states = [_state(purpose, newest.get(purpose)) for purpose in PURPOSES]
    return states, [_view(r) for r in rows]


async def consent_history(
    uow: SqlUnitOfWork, actor: Actor, patient_id: str, purposes: tuple[str, ...] = ()
) -> list[ConsentView]:
    """A patient's decisions, newest first (optionally for some purposes), in the caller's
    transaction and without an audit entry: for facades that audit their own disclosure
    (FHIR ``Consent`` search, the data-subject access report)."""
    query = select(ConsentRecord).where(
        ConsentRecord.organization_id == actor.organization_id,
        ConsentRecord.patient_id == patient_id,
    )
    if purposes:
        query = query.where(ConsentRecord.purpose.in_(purposes))
    rows = await uow.session.scalars(
        query.order_by(ConsentRecord.recorded_at.desc(), ConsentRecord.id.desc())
    )
    return [_view(r) for r in rows]


async def consent_record(uow: SqlUnitOfWork, actor: Actor, consent_id: str) -> ConsentView:
    """One decision of the actor's organization by id, in the caller's transaction and without
    an audit entry (the facade audits its disclosure); 404 otherwise."""
    row = await uow.session.scalar(
        select(ConsentRecord).where(
            ConsentRecord.id == consent_id,
            ConsentRecord.organization_id == actor.organization_id,
        )
    )
    if row is None:
        raise NotFound("no such consent record")
    return _view(row)


async def superseded(uow: SqlUnitOfWork, actor: Actor, view: ConsentView) -> bool:
    """Whether a newer decision for the same patient and purpose replaced this one."""
    latest = await _latest(uow, actor.organization_id, view.patient_id, view.purpose)
    return latest is not None and latest.id != view.id

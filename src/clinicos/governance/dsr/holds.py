"""Legal holds: an administrator places one on a patient's data (litigation, an investigation …)
and lifts it later, each with a reason code; while any hold is in place, erasure is refused.
``under_legal_hold`` is the check other jobs call too (the retention purge must skip held data)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from clinicos.governance.audit import record_audit
from clinicos.governance.dsr.policy import HOLD_REASONS, LIFT_REASONS
from clinicos.governance.dsr.ports import DsrContext
from clinicos.governance.dsr.requests import invalid
from clinicos.governance.events import LegalHoldLifted, LegalHoldPlaced
from clinicos.governance.models import LegalHold
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import Conflict, NotFound
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork

PURPOSE = "legal_hold"


@dataclass(frozen=True)
class HoldView:
    id: str
    patient_id: str
    reason_code: str
    reference: str | None
    placed_by: str
    placed_at: datetime
    lifted_by: str | None
    lifted_at: datetime | None
    lift_reason_code: str | None

    @property
    def active(self) -> bool:
        return self.lifted_at is None


def _view(row: LegalHold) -> HoldView:
    return HoldView(
        id=row.id,
        patient_id=row.patient_id,
        reason_code=row.reason_code,
        reference=row.reference,
        placed_by=row.placed_by,
        placed_at=row.placed_at,
        lifted_by=row.lifted_by,
        lifted_at=row.lifted_at,
        lift_reason_code=row.lift_reason_code,
    )


async def active_holds(uow: SqlUnitOfWork, organization_id: str, patient_id: str) -> list[HoldView]:
    """The patient's holds not lifted, oldest first, in the caller's transaction (no audit)."""
    rows = await uow.session.scalars(
        select(LegalHold)
        .where(
            LegalHold.organization_id == organization_id,
            LegalHold.patient_id == patient_id,
            LegalHold.lifted_at.is_(None),
        )
        .order_by(LegalHold.placed_at, LegalHold.id)
    )
    return [_view(r) for r in rows]


async def under_legal_hold(uow: SqlUnitOfWork, organization_id: str, patient_id: str) -> bool:
    """Whether any hold on the patient's data is in place (read in the caller's transaction)."""
    return bool(await active_holds(uow, organization_id, patient_id))


async def _audit(uow: SqlUnitOfWork, actor: Actor, action: str, patient_id: str) -> None:
    await record_audit(
        uow,
        organization_id=actor.organization_id,
        actor_type=actor.actor_type,
        actor_id=actor.user_id,
        action=action,
        target_type="patient",
        target_id=patient_id,
        purpose=PURPOSE,
        request_id=actor.request_id,
    )


async def place_hold(
    ctx: DsrContext, *, patient_id: str, reason_code: str, reference: str | None
) -> HoldView:
    """Place a hold on the organization's patient (404 otherwise): row, audit, event."""
    if reason_code not in HOLD_REASONS:
        raise invalid(("reason_code",), f"one of {list(HOLD_REASONS)}", "enum")
    actor = ctx.actor
    async with ctx.uows(actor.organization_id) as uow:
        await ctx.ports.require_patient(uow, actor, patient_id)
        row = LegalHold(
            id=new_id(),
            organization_id=actor.organization_id,
            patient_id=patient_id,
            reason_code=reason_code,
            reference=reference,
            placed_by=actor.user_id,
            placed_at=uow.clock.now(),
        )
        uow.session.add(row)
        await uow.session.flush()
        await _audit(uow, actor, "legal_hold.place", patient_id)
        uow.record(
            LegalHoldPlaced(
                organization_id=actor.organization_id,
                hold_id=row.id,
                patient_id=patient_id,
                reason_code=reason_code,
            )
        )
        await uow.commit()
    return _view(row)


async def lift_hold(ctx: DsrContext, *, hold_id: str, reason_code: str) -> HoldView:
    """Lift a hold (404 for another organization's; 409 if already lifted): audit, event."""
    if reason_code not in LIFT_REASONS:
        raise invalid(("reason_code",), f"one of {list(LIFT_REASONS)}", "enum")
    actor = ctx.actor
    async with ctx.uows(actor.organization_id) as uow:
        row = await uow.session.scalar(
            select(LegalHold).where(
                LegalHold.id == hold_id, LegalHold.organization_id == actor.organization_id
            )
        )
        if row is None:
            raise NotFound("no such legal hold in this organization")
        if row.lifted_at is not None:
            raise Conflict("this legal hold was already lifted")
        row.lifted_at = uow.clock.now()
        row.lifted_by = actor.user_id
        row.lift_reason_code = reason_code
        await uow.session.flush()
        await _audit(uow, actor, "legal_hold.lift", row.patient_id)
        uow.record(
            LegalHoldLifted(
                organization_id=actor.organization_id,
                hold_id=row.id,
                patient_id=row.patient_id,
                reason_code=reason_code,
            )
        )
        await uow.commit()
    return _view(row)


async def patient_holds(ctx: DsrContext, *, patient_id: str) -> list[HoldView]:
    """Every hold of the patient, newest first (404 for another organization's patient)."""
    actor = ctx.actor
    async with ctx.uows(actor.organization_id) as uow:
        await ctx.ports.require_patient(uow, actor, patient_id)
        rows = await uow.session.scalars(
            select(LegalHold)
            .where(
                LegalHold.organization_id == actor.organization_id,
                LegalHold.patient_id == patient_id,
            )
            .order_by(LegalHold.placed_at.desc(), LegalHold.id.desc())
        )
        views = [_view(r) for r in rows]
        await _audit(uow, actor, "legal_hold.read", patient_id)
        await uow.commit()
    return views

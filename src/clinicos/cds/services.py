"""Decision-support use cases: run the order check and record it as a governance event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from clinicos.cds.engine import Evaluation, Facts, Order, RulePack, evaluate
from clinicos.cds.engine.inputs import MAX_AGE_YEARS
from clinicos.cds.events import EvaluationRecorded
from clinicos.cds.models import CdsEvaluation
from clinicos.cds.packs import active_rule_pack
from clinicos.governance import record_audit
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]

AUDIT_ACTION = "cds.evaluate"
AUDIT_TARGET_TYPE = "cds_evaluation"
# The field path of the inline patient, as request validation reports it (problem `errors`).
PATIENT_LOC: tuple[str, ...] = ("body", "patient")


@dataclass(frozen=True)
class RecordedEvaluation:
    """An evaluation and the id of its governance record."""

    evaluation_id: str
    evaluation: Evaluation


async def record_inline_evaluation(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    facts: Facts,
    order: Order,
    as_of: datetime | None = None,
    rule_pack: RulePack | None = None,
    production: bool = False,
) -> RecordedEvaluation:
    """Check one order against facts given inline, and record the check in one transaction:
    the ``cds_evaluation`` row, its audit entry and the ``cds.EvaluationRecorded`` event.

    The pack is ``rule_pack`` if given, else the organization's active pack with its overlay
    (``clinicos.cds.packs.active_rule_pack``; in production without an approved active pack,
    ``RulePackNotActive``, a 503). An engine failure propagates (a 500, never a PASS);
    nothing is recorded then.
    """
    async with uows(actor.organization_id) as uow:
        pack = rule_pack or await active_rule_pack(uow, production=production)
        now = uow.clock.now()
        as_of = as_of or now
        _require_plausible_age(facts, as_of)
        evaluation = evaluate(facts, order, pack, as_of)
        row = _evaluation_row(actor=actor, order=order, evaluation=evaluation, evaluated_at=now)
        uow.session.add(row)
        await uow.session.flush()
        await record_audit(
            uow,
            organization_id=actor.organization_id,
            actor_type="user",
            actor_id=actor.user_id,
            action=AUDIT_ACTION,
            target_type=AUDIT_TARGET_TYPE,
            target_id=row.id,
            purpose="treatment",
            outcome="success",
            request_id=actor.request_id,
        )
        uow.record(_recorded_event(row))
        await uow.commit()
    return RecordedEvaluation(evaluation_id=row.id, evaluation=evaluation)


def _require_plausible_age(facts: Facts, as_of: datetime) -> None:
    """A birth date is only checkable against the evaluation date: refuse impossible ages
    as a 422 on the field, before the engine (whose ValueError would be a 500)."""
    if facts.birth_date is None:
        return
    try:
        facts.age_on(as_of.date())
    except ValueError:
        raise ValidationFailed(
            "invalid fields: body.patient.birth_date",
            errors=(
                FieldError(
                    loc=(*PATIENT_LOC, "birth_date"),
                    message=f"age on the as_of date must be 0-{MAX_AGE_YEARS} years",
                ),
            ),
        ) from None


def _evaluation_row(
    *, actor: Actor, order: Order, evaluation: Evaluation, evaluated_at: datetime
) -> CdsEvaluation:
    return CdsEvaluation(
        id=new_id(),
        organization_id=actor.organization_id,
        evaluated_by=actor.user_id,
        evaluated_at=evaluated_at,
        as_of=evaluation.as_of,
        drug=order.drug,
        indication=order.indication,
        outcome=evaluation.outcome,
        crcl_ml_min=evaluation.crcl_ml_min,
        reason_keys=[reason.key for reason in evaluation.reasons],
        rule_pack_id=evaluation.rule_pack.id,
        rule_pack_version=evaluation.rule_pack.version,
        input_hash=evaluation.input_hash,
    )


def _recorded_event(row: CdsEvaluation) -> EvaluationRecorded:
    return EvaluationRecorded(
        organization_id=row.organization_id,
        evaluation_id=row.id,
        evaluated_by=row.evaluated_by,
        drug=row.drug,
        indication=row.indication,
        outcome=row.outcome,
        reason_keys=list(row.reason_keys),
        rule_pack_id=row.rule_pack_id,
        rule_pack_version=row.rule_pack_version,
        input_hash=row.input_hash,
    )

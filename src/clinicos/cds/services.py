"""Decision-support use cases: run the order check — on facts given inline, or on a patient's
stored record (where valid attestations may carry it past ATTEST) — and record it as a
governance event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table

from clinicos.cds.attestations import attested_outcome
from clinicos.cds.engine import (
    AttestedOutcome,
    Evaluation,
    Facts,
    Order,
    RulePack,
    evaluate,
    order_fingerprint,
)
from clinicos.cds.engine.inputs import MAX_AGE_YEARS
from clinicos.cds.events import EvaluationRecorded
from clinicos.cds.models import CdsEvaluation
from clinicos.cds.packs import active_rule_pack
from clinicos.cds.record_facts import RecordFacts, gather_record_facts
from clinicos.governance import record_audit
from clinicos.identity import Permission
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import DomainError, FieldError, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.observability.metrics import CDS_ENGINE_FAILURES
from clinicos.platform.phi import PhiKeyring

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]

AUDIT_ACTION = "cds.evaluate"
AUDIT_TARGET_TYPE = "cds_evaluation"
# Record mode audits the access to the patient's record, as records does (records.services.
# common.audit_access: target = the patient whose data was read).
AUDIT_PATIENT_TARGET_TYPE = "patient"
# Reading the stored record is a clinical read: record mode needs what records' JSON API needs
# to read a patient (demographics: age and sex) and their clinical entries (observations,
# medications, conditions), on top of cds:evaluate (the route's permission).
RECORD_MODE_PERMISSIONS = (Permission.patient_read, Permission.clinical_read)
# The field path of the inline patient, as request validation reports it (problem `errors`).
PATIENT_LOC: tuple[str, ...] = ("body", "patient")


@dataclass(frozen=True)
class PrescriptionRef:
    """The draft prescription an evaluation checked, at the version it had then (records' row
    version: any edit of the draft raises it)."""

    prescription_id: str
    version: int


@dataclass(frozen=True)
class RecordedEvaluation:
    """An evaluation and the id of its governance record. ``attested``: record mode's outcome
    with the attestations that cover it (None inline: no patient, no attestation)."""

    evaluation_id: str
    evaluation: Evaluation
    record: RecordFacts | None = None
    attested: AttestedOutcome | None = None

    @property
    def outcome(self) -> str:
        """The outcome the decision used (past ATTEST when attestations covered every gate)."""
        return self.evaluation.outcome if self.attested is None else self.attested.outcome


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
        return await record_inline_evaluation_in(
            uow,
            actor=actor,
            facts=facts,
            order=order,
            as_of=as_of,
            rule_pack=rule_pack,
            production=production,
        )


async def record_inline_evaluation_in(
    uow: SqlUnitOfWork,
    *,
    actor: Actor,
    facts: Facts,
    order: Order,
    as_of: datetime | None = None,
    rule_pack: RulePack | None = None,
    production: bool = False,
) -> RecordedEvaluation:
    """:func:`record_inline_evaluation` in an open unit of work scoped to the actor's
    organization (the API's, in which the actor's session was checked); commits it."""
    _require_scope(uow, actor)
    pack = rule_pack or await active_rule_pack(uow, production=production)
    recorded = await evaluate_inline(
        uow, actor=actor, facts=facts, order=order, as_of=as_of, rule_pack=pack
    )
    await uow.commit()
    return recorded


def _require_scope(uow: SqlUnitOfWork, actor: Actor) -> None:
    if uow.organization_id != actor.organization_id:
        raise ValueError("the unit of work is not scoped to the actor's organization")


async def evaluate_inline(
    uow: SqlUnitOfWork,
    *,
    actor: Actor,
    facts: Facts,
    order: Order,
    rule_pack: RulePack,
    as_of: datetime | None = None,
) -> RecordedEvaluation:
    """Check one order against inline facts and write its governance record (row, audit entry,
    event) in the caller's unit of work, without committing — so a caller that writes more
    (the CDS Hooks service: its cards) commits everything once. ``as_of`` defaults to the unit
    of work's clock."""
    now = uow.clock.now()
    as_of = as_of or now
    _require_plausible_age(facts, as_of)
    evaluation = checked_evaluate(facts, order, rule_pack, as_of, path="inline")
    evaluation_id = await append_evaluation(
        uow, actor=actor, order=order, evaluation=evaluation, evaluated_at=now
    )
    return RecordedEvaluation(evaluation_id=evaluation_id, evaluation=evaluation)


class EngineFailed(DomainError):
    """The engine raised instead of answering: the order is neither passed nor recorded."""

    status = 500
    code = "cds_engine_failed"
    title = "Decision support could not check this order"


def checked_evaluate(
    facts: Facts, order: Order, rule_pack: RulePack, as_of: datetime, *, path: str
) -> Evaluation:
    """The engine's answer, or — when it raises — a 500 ``cds_engine_failed`` and one
    increment of ``clinicos_cds_engine_failures_total{path}`` for the alert: a failure must
    never read as PASS, and nothing of the failed check is recorded (the caller's transaction
    rolls back). The exception's text is not passed on (it could quote patient facts)."""
    try:
        return evaluate(facts, order, rule_pack, as_of)
    except Exception as exc:
        CDS_ENGINE_FAILURES.labels(path=path).inc()
        raise EngineFailed("the decision-support engine failed; the order was not checked") from exc


async def record_patient_evaluation(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    order: Order,
    as_of: datetime | None = None,
    rule_pack: RulePack | None = None,
    production: bool = False,
) -> RecordedEvaluation:
    """Check one order against the patient's stored record (record mode), in one transaction:
    read the record (:func:`clinicos.cds.record_facts.gather_record_facts`), evaluate, and write
    the ``cds_evaluation`` row naming the patient, one audit entry for the access and the
    check, and the ``cds.EvaluationRecorded`` event.

    Needs ``patient:read`` and ``clinical:read`` besides the route's ``cds:evaluate`` (403
    otherwise, before anything is read). Another organization's patient, or none: 404
    ``not_found``. A record without a usable sex or birth date: 409 ``cds_record_incomplete``.
    Missing weight or creatinine are not errors: the engine answers ATTEST — unless valid
    attestations of this patient's order cover every ATTEST reason
    (:mod:`clinicos.cds.attestations`); the outcome is then computed from the other reasons.
    """
    for permission in RECORD_MODE_PERMISSIONS:
        actor.require(permission.value)
    async with uows(actor.organization_id) as uow:
        return await record_patient_evaluation_in(
            uow,
            phi=phi,
            actor=actor,
            patient_id=patient_id,
            order=order,
            as_of=as_of,
            rule_pack=rule_pack,
            production=production,
        )


async def record_patient_evaluation_in(
    uow: SqlUnitOfWork,
    *,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    order: Order,
    as_of: datetime | None = None,
    rule_pack: RulePack | None = None,
    production: bool = False,
) -> RecordedEvaluation:
    """:func:`record_patient_evaluation` in an open unit of work scoped to the actor's
    organization; checks the record-mode permissions before reading anything, commits."""
    for permission in RECORD_MODE_PERMISSIONS:
        actor.require(permission.value)
    _require_scope(uow, actor)
    pack = rule_pack or await active_rule_pack(uow, production=production)
    now = uow.clock.now()
    as_of = as_of or now
    record, evaluation, attested = await evaluate_record(
        uow,
        phi=phi,
        actor=actor,
        patient_id=patient_id,
        order=order,
        pack=pack,
        as_of=as_of,
        now=now,
        path="record",
    )
    evaluation_id = await append_evaluation(
        uow,
        actor=actor,
        order=order,
        evaluation=evaluation,
        evaluated_at=now,
        patient_id=record.patient_id,
        attested=attested,
    )
    await uow.commit()
    return RecordedEvaluation(
        evaluation_id=evaluation_id, evaluation=evaluation, record=record, attested=attested
    )


async def evaluate_record(
    uow: SqlUnitOfWork,
    *,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    order: Order,
    pack: RulePack,
    as_of: datetime,
    now: datetime,
    path: str,
) -> tuple[RecordFacts, Evaluation, AttestedOutcome]:
    """Record mode's decision, shared by the evaluate API and the prescribing gate: the facts
    read from the record, the engine's evaluation on them (``path`` labels an engine failure's
    metric), and the outcome once the patient's valid attestations are applied."""
    record = await gather_record_facts(
        uow, phi=phi, actor=actor, patient_id=patient_id, pack=pack, as_of=as_of
    )
    evaluation = checked_evaluate(record.facts, order, pack, as_of, path=path)
    attested = await attested_outcome(
        uow,
        actor=actor,
        patient_id=record.patient_id,
        order=order,
        evaluation=evaluation,
        now=now,
    )
    return record, evaluation, attested


async def append_evaluation(
    uow: SqlUnitOfWork,
    *,
    actor: Actor,
    order: Order,
    evaluation: Evaluation,
    evaluated_at: datetime,
    patient_id: str | None = None,
    prescription: PrescriptionRef | None = None,
    override_id: str | None = None,
    attested: AttestedOutcome | None = None,
) -> str:
    """Write one evaluation's governance record in the caller's unit of work (no commit): the
    row, exactly one audit entry and the event. With a patient, the audit entry's target is
    the patient (an access to their record, as records audits one); inline, the evaluation.
    The prescribing gate passes the draft it checks (``prescription``, stored on the row and in
    the event) and the override it honoured, if any (``override_id``, in the event). With
    ``attested``, the row and event carry its outcome and the attestation ids it used. The
    audit entry's actor type is the actor's (``user``, or ``service`` for a CDS client)."""
    row = _evaluation_row(
        actor=actor,
        order=order,
        evaluation=evaluation,
        evaluated_at=evaluated_at,
        patient_id=patient_id,
    )
    if attested is not None:
        row["outcome"] = attested.outcome
        row["attestation_ids"] = list(attested.attestation_ids) or None
    if prescription is not None:
        row["prescription_id"] = prescription.prescription_id
        row["prescription_version"] = prescription.version
    # A Core insert of the row (the ORM's unit of work cost more than the statement itself);
    # nothing reads the row back through this session's identity map.
    await uow.session.execute(_INSERT_EVALUATION, row)
    await record_audit(
        uow,
        organization_id=actor.organization_id,
        actor_type=actor.actor_type,
        actor_id=actor.user_id,
        action=AUDIT_ACTION,
        target_type=AUDIT_TARGET_TYPE if patient_id is None else AUDIT_PATIENT_TARGET_TYPE,
        target_id=row["id"] if patient_id is None else patient_id,
        purpose="treatment",
        outcome="success",
        request_id=actor.request_id,
    )
    uow.record(_recorded_event(row, override_id))
    return str(row["id"])


_INSERT_EVALUATION = cast(Table, CdsEvaluation.__table__).insert()


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
    *,
    actor: Actor,
    order: Order,
    evaluation: Evaluation,
    evaluated_at: datetime,
    patient_id: str | None,
) -> dict[str, Any]:
    """The ``cds_evaluation`` row's values, every column named (unset ones None)."""
    return {
        "id": new_id(),
        "organization_id": actor.organization_id,
        "evaluated_by": actor.user_id,
        "evaluated_at": evaluated_at,
        "as_of": evaluation.as_of,
        "drug": order.drug,
        "indication": order.indication,
        "outcome": evaluation.outcome,
        "crcl_ml_min": evaluation.crcl_ml_min,
        "reason_keys": [reason.key for reason in evaluation.reasons],
        "rule_pack_id": evaluation.rule_pack.id,
        "rule_pack_version": evaluation.rule_pack.version,
        "input_hash": evaluation.input_hash,
        "patient_id": patient_id,
        "prescription_id": None,
        "prescription_version": None,
        "dose_mg": order.dose_mg,
        "frequency": order.frequency,
        "order_fingerprint": order_fingerprint(order),
        "attestation_ids": None,
    }


def _recorded_event(row: dict[str, Any], override_id: str | None) -> EvaluationRecorded:
    attestation_ids = row["attestation_ids"]
    return EvaluationRecorded(
        organization_id=row["organization_id"],
        evaluation_id=row["id"],
        evaluated_by=row["evaluated_by"],
        drug=row["drug"],
        indication=row["indication"],
        outcome=row["outcome"],
        reason_keys=list(row["reason_keys"]),
        rule_pack_id=row["rule_pack_id"],
        rule_pack_version=row["rule_pack_version"],
        input_hash=row["input_hash"],
        patient_id=row["patient_id"],
        prescription_id=row["prescription_id"],
        prescription_version=row["prescription_version"],
        override_id=override_id,
        attestation_ids=None if attestation_ids is None else list(attestation_ids),
    )

"""Override use cases (issue 5 point 5, and the override half of point 7): a clinician proceeds
past a BLOCK or WARN evaluation with a reason code; a BLOCK override waits for a pharmacist's
second sign-off (per policy). Each step writes its audit row and domain event in the same
transaction. The free-text comment may hold PHI: it is stored, never logged, audited or emitted.

The read side follows the use cases: stored evaluations explained by their pack, a prescription's
evaluations and overrides, and the sign-off queue (which shows a reviewer the comment, audited).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from clinicos.cds.catalogue import packaged_packs
from clinicos.cds.engine import RulePack, parse_rule_pack
from clinicos.cds.events import OverrideCosigned, OverrideRecorded
from clinicos.cds.models import CdsEvaluation, CdsOverride
from clinicos.cds.packs import RulePackNotActive, active_rule_pack
from clinicos.governance import record_audit
from clinicos.identity import Permission
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import Conflict, FieldError, NotFound, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]

APPROVED = "approved"
PENDING_COSIGN = "pending_cosign"
OVERRIDABLE_OUTCOMES = frozenset({"BLOCK", "WARN"})
OTHER = "other"
REASON_SYSTEM = "https://clinicos.dev/cds/override-reasons"
AUDIT_OVERRIDE = "cds.override"
AUDIT_COSIGN = "cds.override_cosign"
AUDIT_TARGET_TYPE = "cds_override"
_DISPLAYS = {
    "benefit_outweighs_risk": "Benefit outweighs risk",
    "patient_tolerating": "Patient already tolerating the medication",
    "specialist_recommendation": "Specialist recommendation",
    "data_out_of_date": "Patient data out of date",
    "other": "Other (comment required)",
}


class EvaluationNotOverridable(Conflict):
    code = "cds_evaluation_not_overridable"
    title = "Only BLOCK and WARN evaluations can be overridden"


class OverrideExists(Conflict):
    code = "cds_override_exists"
    title = "This evaluation already has an override"


class OverrideNotPending(Conflict):
    code = "cds_override_not_pending"
    title = "This override is not awaiting a co-signature"


class SelfCosignRefused(Conflict):
    code = "cds_override_self_cosign"
    title = "An override cannot be co-signed by its author"


@dataclass(frozen=True)
class OverridePolicy:
    """What the organization accepts: the reason codes, and whether BLOCK needs a co-sign."""

    reason_codes: tuple[str, ...]
    block_needs_cosign: bool = True


@dataclass(frozen=True)
class OverrideReason:
    """One reason as a CDS Hooks ``overrideReasons`` Coding."""

    code: str
    system: str
    display: str


@dataclass(frozen=True)
class OverrideView:
    """An override as the API shows it (no comment: it is write-only free text)."""

    override_id: str
    evaluation_id: str
    status: str
    reason_code: str
    created_by: str
    created_at: datetime
    cosigned_by: str | None
    cosigned_at: datetime | None


def override_reasons(codes: Sequence[str]) -> list[OverrideReason]:
    """The configured reason codes as CDS Hooks Codings, in configured order."""
    return [
        OverrideReason(code=code, system=REASON_SYSTEM, display=_display(code)) for code in codes
    ]


def _display(code: str) -> str:
    return _DISPLAYS.get(code) or code.replace("_", " ").capitalize()


async def record_override(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    policy: OverridePolicy,
    evaluation_id: str,
    reason_code: str,
    comment: str | None,
    phi: PhiKeyring,
) -> OverrideView:
    """Override one BLOCK/WARN evaluation of the actor's organization with a reason.

    Another organization's evaluation is a 404 (as is an unknown id); PASS/ATTEST or a second
    override a 409; an unknown reason code, or ``other`` without a comment, a 422.
    """
    comment = _checked_comment(policy, reason_code, comment)
    async with uows(actor.organization_id) as uow:
        evaluation = await _evaluation(uow, actor, evaluation_id)
        if evaluation.outcome not in OVERRIDABLE_OUTCOMES:
            raise EvaluationNotOverridable(
                f"a {evaluation.outcome} evaluation cannot be overridden; "
                "ATTEST is resolved by attesting or updating the data"
            )
        await _require_no_override(uow, evaluation_id)
        needs_cosign = evaluation.outcome == "BLOCK" and policy.block_needs_cosign
        row_id = new_id()
        row = CdsOverride(
            id=row_id,
            organization_id=actor.organization_id,
            evaluation_id=evaluation.id,
            reason_code=reason_code,
            # Free text may name the patient: encrypted at rest, bound to this row and column.
            comment=phi.encrypt(
                comment,
                organization_id=actor.organization_id,
                table="cds_override",
                column="comment",
                row_id=row_id,
            ),
            status=PENDING_COSIGN if needs_cosign else APPROVED,
            created_by=actor.user_id,
            created_at=uow.clock.now(),
        )
        uow.session.add(row)
        try:
            await uow.session.flush()
        except IntegrityError:  # a concurrent override of the same evaluation won the race
            raise OverrideExists("an evaluation is overridden at most once") from None
        await _audit(uow, actor, AUDIT_OVERRIDE, row.id)
        uow.record(_recorded_event(row, evaluation))
        await uow.commit()
    return _view(row)


async def cosign_override(*, uows: UnitOfWorkFor, actor: Actor, override_id: str) -> OverrideView:
    """A pharmacist's second sign-off of a pending BLOCK override: it becomes approved.

    Unknown or another organization's id → 404; not pending, or by its author → 409.
    """
    async with uows(actor.organization_id) as uow:
        # Locked on PostgreSQL, so two concurrent co-signs cannot both pass the status check.
        row = await uow.session.get(CdsOverride, override_id, with_for_update=True)
        if row is None or row.organization_id != actor.organization_id:
            raise NotFound("no such override")
        if row.status != PENDING_COSIGN:
            raise OverrideNotPending("only an override awaiting a co-signature can be co-signed")
        if row.created_by == actor.user_id:
            raise SelfCosignRefused("the second sign-off must come from someone else")
        evaluation = await uow.session.get(CdsEvaluation, row.evaluation_id)
        row.status = APPROVED
        row.cosigned_by = actor.user_id
        row.cosigned_at = uow.clock.now()
        await uow.session.flush()
        await _audit(uow, actor, AUDIT_COSIGN, row.id)
        uow.record(_cosigned_event(row, evaluation))
        await uow.commit()
    return _view(row)


def _checked_comment(policy: OverridePolicy, reason_code: str, comment: str | None) -> str | None:
    """The comment to store (None when blank); 422 on an unknown code or a bare ``other``."""
    if reason_code not in policy.reason_codes:
        raise ValidationFailed(
            "invalid fields: body.reason_code",
            errors=(
                FieldError(
                    loc=("body", "reason_code"),
                    message="must be one of: " + ", ".join(policy.reason_codes),
                ),
            ),
        )
    text = comment.strip() if comment is not None else ""
    if reason_code == OTHER and not text:
        raise ValidationFailed(
            "invalid fields: body.comment",
            errors=(
                FieldError(loc=("body", "comment"), message="required when reason_code is other"),
            ),
        )
    return text or None


async def _evaluation(uow: SqlUnitOfWork, actor: Actor, evaluation_id: str) -> CdsEvaluation:
    evaluation = await uow.session.get(CdsEvaluation, evaluation_id)
    # Row-level security hides other tenants' rows on PostgreSQL; SQLite relies on this check.
    if evaluation is None or evaluation.organization_id != actor.organization_id:
        raise NotFound("no such evaluation")
    return evaluation


async def _require_no_override(uow: SqlUnitOfWork, evaluation_id: str) -> None:
    existing = await uow.session.scalar(
        select(CdsOverride.id).where(CdsOverride.evaluation_id == evaluation_id)
    )
    if existing is not None:
        raise OverrideExists("an evaluation is overridden at most once")


async def _audit(uow: SqlUnitOfWork, actor: Actor, action: str, override_id: str) -> None:
    await record_audit(
        uow,
        organization_id=actor.organization_id,
        # "user", or "service" for a CDS Hooks client reporting an override (hooks/auth.py).
        actor_type=actor.actor_type,
        actor_id=actor.user_id,
        action=action,
        target_type=AUDIT_TARGET_TYPE,
        target_id=override_id,
        purpose="treatment",
        outcome="success",
        request_id=actor.request_id,
    )


def _raised_keys(evaluation: CdsEvaluation) -> list[str]:
    """The evaluation's reason keys that raised its outcome: INFO reasons left out.

    A key's severity is fixed by the pack the evaluation used (a local overlay may only make a
    rule stricter, so a key that is not INFO in the base pack is not INFO locally either); a key
    the shipped packs do not know is kept rather than guessed away.
    """
    info = _info_keys(evaluation.rule_pack_id, evaluation.rule_pack_version.split("+", 1)[0])
    return sorted(k for k in evaluation.reason_keys if k not in info)


@cache
def _info_keys(pack_id: str, version: str) -> frozenset[str]:
    packaged = packaged_packs().get((pack_id, version))
    if packaged is None:
        return frozenset()
    pack = parse_rule_pack(packaged.text)
    return frozenset(key for key, rule in pack.rules.items() if rule.severity == "INFO")


def _recorded_event(row: CdsOverride, evaluation: CdsEvaluation) -> OverrideRecorded:
    return OverrideRecorded(
        organization_id=row.organization_id,
        override_id=row.id,
        evaluation_id=row.evaluation_id,
        created_by=row.created_by,
        reason_code=row.reason_code,
        status=row.status,
        outcome=evaluation.outcome,
        drug=evaluation.drug,
        reason_keys=_raised_keys(evaluation),
    )


def _cosigned_event(row: CdsOverride, evaluation: CdsEvaluation | None) -> OverrideCosigned:
    return OverrideCosigned(
        organization_id=row.organization_id,
        override_id=row.id,
        evaluation_id=row.evaluation_id,
        created_by=row.created_by,
        cosigned_by=row.cosigned_by or "",
        reason_code=row.reason_code,
        status=row.status,
        outcome=evaluation.outcome if evaluation is not None else "BLOCK",
        drug=evaluation.drug if evaluation is not None else None,
        reason_keys=_raised_keys(evaluation) if evaluation is not None else None,
    )


def _view(row: CdsOverride) -> OverrideView:
    return OverrideView(
        override_id=row.id,
        evaluation_id=row.evaluation_id,
        status=row.status,
        reason_code=row.reason_code,
        created_by=row.created_by,
        created_at=row.created_at,
        cosigned_by=row.cosigned_by,
        cosigned_at=row.cosigned_at,
    )


# -- the read side: stored evaluations explained, an order's overrides, the co-sign queue ------

AUDIT_OVERRIDE_READ = "cds.override_read"
# The sign-off queue is one screen: the oldest requests first, never unbounded.
MAX_PENDING = 200


@dataclass(frozen=True)
class StoredReason:
    """One reason key of a stored evaluation, explained by the rule pack that produced it
    (``severity``/``source``/``policy`` None and no messages when no installed pack knows it)."""

    key: str
    severity: str | None
    messages: Mapping[str, str]
    source: str | None
    policy: str | None

    def message(self, language: str) -> str:
        return self.messages.get(language) or self.messages.get("en") or self.key


@dataclass(frozen=True)
class StoredEvaluation:
    """A recorded evaluation as decision support can explain it afterwards: the order, the
    outcome and CrCl, and each reason key with its pack's texts (the engine's suggestions are
    not stored, so none is given)."""

    evaluation_id: str
    evaluated_at: datetime
    evaluated_by: str
    patient_id: str | None
    prescription_id: str | None
    prescription_version: int | None
    drug: str
    dose_mg: Decimal | None
    frequency: str | None
    indication: str
    outcome: str
    crcl_ml_min: Decimal | None
    reasons: tuple[StoredReason, ...]
    rule_pack_id: str
    rule_pack_version: str


@dataclass(frozen=True)
class OrderOverride:
    """An override of one of a prescription's evaluations, and the draft version it was for."""

    override: OverrideView
    prescription_version: int | None
    outcome: str


@dataclass(frozen=True)
class OrderDecisions:
    """What decision support decided about one prescription: its newest evaluation (None before
    the first issue attempt) and the overrides of its evaluations, newest first."""

    latest: StoredEvaluation | None
    overrides: tuple[OrderOverride, ...]


@dataclass(frozen=True)
class PendingCosign:
    """A BLOCK override awaiting a second sign-off, with the evaluation it overrides and the
    prescriber's comment (free text, decrypted for the reviewer's eyes only)."""

    override: OverrideView
    evaluation: StoredEvaluation
    comment: str | None


async def explain_evaluation(
    *, uows: UnitOfWorkFor, actor: Actor, evaluation_id: str
) -> StoredEvaluation:
    """One of the organization's evaluations, explained (404 for another's, or none)."""
    actor.require(Permission.cds_evaluate.value)
    async with uows(actor.organization_id) as uow:
        row = await _evaluation(uow, actor, evaluation_id)
        explain = await _explainer(uow)
        return _stored(row, explain)


async def order_decisions(
    *, uows: UnitOfWorkFor, actor: Actor, prescription_id: str
) -> OrderDecisions:
    """The prescribing gate's record of one prescription: its newest evaluation and every
    override of its evaluations (the prescription itself is records' to read and scope)."""
    actor.require(Permission.cds_evaluate.value)
    async with uows(actor.organization_id) as uow:
        latest = await uow.session.scalar(
            select(CdsEvaluation)
            .where(
                CdsEvaluation.organization_id == actor.organization_id,
                CdsEvaluation.prescription_id == prescription_id,
            )
            .order_by(CdsEvaluation.evaluated_at.desc(), CdsEvaluation.id.desc())
            .limit(1)
        )
        rows = await uow.session.execute(
            select(CdsOverride, CdsEvaluation.prescription_version, CdsEvaluation.outcome)
            .join(CdsEvaluation, CdsOverride.evaluation_id == CdsEvaluation.id)
            .where(
                CdsOverride.organization_id == actor.organization_id,
                CdsEvaluation.organization_id == actor.organization_id,
                CdsEvaluation.prescription_id == prescription_id,
            )
            .order_by(CdsOverride.created_at.desc(), CdsOverride.id)
        )
        overrides = tuple(
            OrderOverride(override=_view(row), prescription_version=version, outcome=outcome)
            for row, version, outcome in rows
        )
        explain = await _explainer(uow)
        return OrderDecisions(
            latest=None if latest is None else _stored(latest, explain), overrides=overrides
        )


async def pending_cosign(
    *, uows: UnitOfWorkFor, phi: PhiKeyring, actor: Actor, limit: int = MAX_PENDING
) -> list[PendingCosign]:
    """The organization's overrides awaiting a second sign-off, oldest first, for a reviewer
    (``cds:cosign``). The comments are decrypted for display, so each override shown gets an
    audit entry (a read of free text that may hold PHI), committed with the read."""
    actor.require(Permission.cds_cosign.value)
    limit = max(1, min(limit, MAX_PENDING))
    async with uows(actor.organization_id) as uow:
        rows = (
            await uow.session.execute(
                select(CdsOverride, CdsEvaluation)
                .join(CdsEvaluation, CdsOverride.evaluation_id == CdsEvaluation.id)
                .where(
                    CdsOverride.organization_id == actor.organization_id,
                    CdsEvaluation.organization_id == actor.organization_id,
                    CdsOverride.status == PENDING_COSIGN,
                )
                .order_by(CdsOverride.created_at, CdsOverride.id)
                .limit(limit)
            )
        ).all()
        explain = await _explainer(uow)
        pending = [
            PendingCosign(
                override=_view(override),
                evaluation=_stored(evaluation, explain),
                comment=phi.decrypt(
                    override.comment,
                    organization_id=override.organization_id,
                    table="cds_override",
                    column="comment",
                    row_id=override.id,
                ),
            )
            for override, evaluation in rows
        ]
        for item in pending:
            await _audit(uow, actor, AUDIT_OVERRIDE_READ, item.override.override_id)
        await uow.commit()
    return pending


Explain = Callable[[str, str, str], StoredReason]


async def _explainer(uow: SqlUnitOfWork) -> Explain:
    """Explains (pack id, pack version, key): by the organization's active pack (its overlay's
    texts) when the evaluation used it, else by the packaged base version it was built on."""
    try:
        active: RulePack | None = await active_rule_pack(uow, production=False)
    except RulePackNotActive:
        active = None

    def explain(pack_id: str, version: str, key: str) -> StoredReason:
        pack = active
        if pack is None or (pack.id, pack.version) != (pack_id, version):
            pack = _packaged(pack_id, version.split("+", 1)[0])
        rule = None if pack is None else pack.rules.get(key)
        if rule is None:
            return StoredReason(key=key, severity=None, messages={}, source=None, policy=None)
        return StoredReason(
            key=key,
            severity=rule.severity,
            messages=rule.messages.model_dump(),
            source=rule.source,
            policy=rule.policy,
        )

    return explain


@cache
def _packaged(pack_id: str, version: str) -> RulePack | None:
    packaged = packaged_packs().get((pack_id, version))
    return None if packaged is None else parse_rule_pack(packaged.text)


def _stored(row: CdsEvaluation, explain: Explain) -> StoredEvaluation:
    return StoredEvaluation(
        evaluation_id=row.id,
        evaluated_at=row.evaluated_at,
        evaluated_by=row.evaluated_by,
        patient_id=row.patient_id,
        prescription_id=row.prescription_id,
        prescription_version=row.prescription_version,
        drug=row.drug,
        dose_mg=row.dose_mg,
        frequency=row.frequency,
        indication=row.indication,
        outcome=row.outcome,
        crcl_ml_min=row.crcl_ml_min,
        reasons=tuple(
            explain(row.rule_pack_id, row.rule_pack_version, key) for key in row.reason_keys
        ),
        rule_pack_id=row.rule_pack_id,
        rule_pack_version=row.rule_pack_version,
    )

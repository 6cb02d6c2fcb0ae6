"""The prescribing gate (issue 5 point 6): records' ``PrescriptionCheck`` for anticoagulants —
the draft read as the engine's order, the facts read from the record, one recorded evaluation,
and the decision to let the draft be issued or to refuse it.

- PASS: issued at once.
- WARN: issued only with an override (of an evaluation of this draft at this version), or
  after the order is changed.
- BLOCK: issued only with an *approved* override (co-signed per the override policy,
  ``overrides.py``).
- ATTEST: not issued until the missing or stale data is recorded, or a clinician attests to
  it for this patient and order (``attestations.py``); with every ATTEST reason attested, the
  outcome is computed from the other reasons (an attested PASS issues; BLOCK and WARN need
  their overrides as above).

An override honoured here must name an earlier evaluation of **the same prescription at the
same version** (any edit of the draft raises records' row version, so an edited order needs a
new decision), and its evaluation's reason keys must include every non-INFO key of the new one
(a problem that appeared since needs a decision of its own). ATTEST is resolved by data, never
by an override (overrides.py), so a BLOCK that also lacks data stays refused until the data
is recorded or attested.

Every check of an anticoagulant writes exactly one ``cds_evaluation`` row (with the patient,
prescription and version), one audit entry and one ``cds.EvaluationRecorded`` event — a refusal
too: records commits the check's own writes when it raises ``PrescriptionRefused``. Other drugs
pass without an evaluation. The engine knows five anticoagulants (the pack's ``drugs``); the
parenteral ones of the duplicate list (heparin, enoxaparin …) are not orders it can check.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, get_args

from sqlalchemy import select

from clinicos.cds.engine import (
    AttestedOutcome,
    Evaluation,
    Order,
    RulePack,
    load_rule_pack,
)
from clinicos.cds.engine.keys import Frequency, Indication
from clinicos.cds.models import CdsEvaluation, CdsOverride
from clinicos.cds.overrides import APPROVED
from clinicos.cds.packs import RulePackNotActive, active_rule_pack
from clinicos.cds.record_facts import recognise_medications
from clinicos.cds.services import PrescriptionRef, append_evaluation, evaluate_record
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError, ValidationFailed
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records import MedicationEntry, PrescriptionRefused

# The engine checks doses in milligrams (Order.dose_mg, the labels' unit). Converting other
# units (g, mcg, tablets) is not attempted: a dose unit the gate cannot read is a 422, never a
# silent pass.
DOSE_UNIT = "mg"
FREQUENCIES: tuple[str, ...] = get_args(Frequency)
INDICATIONS: tuple[str, ...] = get_args(Indication)
OVERRIDES_ROUTE = "POST /api/v1/cds/overrides"
ATTESTATIONS_ROUTE = "POST /api/v1/cds/attestations"


class OrderBlocked(PrescriptionRefused):
    code = "cds_blocked"
    title = "Decision support blocks this order"


class OverrideRequired(PrescriptionRefused):
    code = "cds_override_required"
    title = "This order needs an override before it can be issued"


class AttestationRequired(PrescriptionRefused):
    code = "cds_attestation_required"
    title = "Data the order check needs is missing or stale"


class GatedPrescription(Protocol):
    """What the gate reads of records' prescription row (structurally: cds imports no records
    model, only its package root)."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def code_system(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def display(self) -> str: ...
    @property
    def dose(self) -> Decimal | None: ...
    @property
    def dose_unit(self) -> str | None: ...
    @property
    def frequency(self) -> str | None: ...
    @property
    def indication(self) -> str | None: ...


@dataclass(frozen=True)
class PrescribingGate:
    """records' ``PrescriptionCheck`` backed by the DOAC engine (built once by the composition
    root: ``Container.prescription_check``).

    ``production``: evaluate only with an approved, activated pack (else 503
    ``rule_pack_not_active``, and nothing is recorded — an anticoagulant is never issued
    unchecked). ``rule_pack`` pins a pack instead of the organization's active one (tests).
    """

    phi: PhiKeyring
    production: bool = False
    rule_pack: RulePack | None = None

    async def __call__(
        self,
        uow: SqlUnitOfWork,
        actor: Actor,
        *,
        prescription: GatedPrescription,
        patient_id: str,
    ) -> str | None:
        pack = await self._pack(uow, prescription)
        drug = None if pack is None else anticoagulant_of(prescription, pack)
        if pack is None or drug is None:
            return None
        order = order_of(prescription, drug)
        now = uow.clock.now()
        record, evaluation, attested = await evaluate_record(
            uow,
            phi=self.phi,
            actor=actor,
            patient_id=patient_id,
            order=order,
            pack=pack,
            as_of=now,
            now=now,
            path="prescribing",
        )
        ref = PrescriptionRef(prescription_id=prescription.id, version=prescription.version)
        override_id = await honoured_override(uow, actor, ref, evaluation, attested)
        evaluation_id = await append_evaluation(
            uow,
            actor=actor,
            order=order,
            evaluation=evaluation,
            evaluated_at=now,
            patient_id=record.patient_id,
            prescription=ref,
            override_id=override_id,
            attested=attested,
        )
        if attested.outcome == "PASS" or override_id is not None:
            return evaluation_id
        raise refusal(evaluation_id, evaluation, attested)

    async def _pack(self, uow: SqlUnitOfWork, prescription: GatedPrescription) -> RulePack | None:
        """The pack to check with. When none is active (production), a drug the packaged pack
        does not know still passes (None), but an anticoagulant is refused (503)."""
        if self.rule_pack is not None:
            return self.rule_pack
        try:
            return await active_rule_pack(uow, production=self.production)
        except RulePackNotActive:
            if anticoagulant_of(prescription, load_rule_pack()) is None:
                return None
            raise


def anticoagulant_of(prescription: GatedPrescription, pack: RulePack) -> str | None:
    """The pack's drug this prescription orders, or None for any other drug: by RxNorm
    ingredient code first, else the generic name in the display (terminology.md "Drugs";
    the same recognition as record mode's medication list, record_facts.py). A display naming
    two anticoagulants cannot be one checked order: 422 on ``display``."""
    entry = MedicationEntry(
        entry_id=prescription.id,
        source="prescription",
        code_system=prescription.code_system,
        code=prescription.code,
        display=prescription.display,
    )
    drugs = sorted(
        {found.name for found in recognise_medications([entry], pack) if found.name in pack.drugs}
    )
    if len(drugs) > 1:
        raise ValidationFailed(
            "invalid fields: display",
            errors=(
                FieldError(
                    ("display",),
                    "names more than one anticoagulant; prescribe one drug per order",
                    "value_error",
                ),
            ),
        )
    return drugs[0] if drugs else None


def order_of(prescription: GatedPrescription, drug: str) -> Order:
    """The engine's order from the draft (dose, dose unit and frequency are present: records
    checks them before the check runs). Every field the engine cannot read is named in one
    422, with the accepted values."""
    problems: list[FieldError] = []
    if prescription.dose_unit != DOSE_UNIT:
        problems.append(
            FieldError(("dose_unit",), f"an anticoagulant's dose is checked in {DOSE_UNIT}", "enum")
        )
    if prescription.frequency not in FREQUENCIES:
        problems.append(
            FieldError(
                ("frequency",),
                "an anticoagulant is checked at one of: " + ", ".join(FREQUENCIES),
                "enum",
            )
        )
    if prescription.indication not in INDICATIONS:
        kind = "missing" if prescription.indication is None else "enum"
        problems.append(
            FieldError(
                ("indication",),
                "an anticoagulant needs its indication, one of: " + ", ".join(INDICATIONS),
                kind,
            )
        )
    if problems:
        raise ValidationFailed(
            "invalid fields: " + ", ".join(p.field for p in problems), errors=tuple(problems)
        )
    return Order.model_validate(
        {
            "drug": drug,
            "dose_mg": prescription.dose,
            "frequency": prescription.frequency,
            "indication": prescription.indication,
        }
    )


async def honoured_override(
    uow: SqlUnitOfWork,
    actor: Actor,
    ref: PrescriptionRef,
    evaluation: Evaluation,
    attested: AttestedOutcome,
) -> str | None:
    """The override that lets this WARN or BLOCK order through, or None.

    It overrides an earlier evaluation of the same prescription at the same version (the draft
    unedited since), whose reason keys include every non-INFO key of ``evaluation``. For WARN
    any recorded override will do (each has a reason code); for BLOCK the override must be
    approved (co-signed where the policy asks for it) and of a BLOCK evaluation, so that a
    WARN override approved at once can never stand for a BLOCK (e.g. after an overlay raised
    a rule's severity). Never while an ATTEST reason is left unattested: missing data is
    resolved by data or an attestation, not by an override (overrides.py). The outcome is the
    one past the attestations (``attested``), and attested ATTEST reasons need no override:
    the attestation is their decision."""
    if attested.outcome not in ("WARN", "BLOCK") or attested.unattested:
        return None
    needed = {
        reason.key
        for reason in evaluation.reasons
        if reason.severity != "INFO" and reason.key not in attested.attested
    }
    candidates = await uow.session.execute(
        select(
            CdsOverride.id,
            CdsOverride.status,
            CdsEvaluation.outcome,
            CdsEvaluation.reason_keys,
        )
        .join(CdsEvaluation, CdsOverride.evaluation_id == CdsEvaluation.id)
        .where(
            CdsEvaluation.organization_id == actor.organization_id,
            CdsOverride.organization_id == actor.organization_id,
            CdsEvaluation.prescription_id == ref.prescription_id,
            CdsEvaluation.prescription_version == ref.version,
        )
        .order_by(CdsOverride.created_at.desc(), CdsOverride.id)
    )
    for override_id, status, outcome, reason_keys in candidates:
        if not needed <= set(reason_keys):
            continue
        if attested.outcome == "BLOCK" and (status != APPROVED or outcome != "BLOCK"):
            continue
        return str(override_id)
    return None


def refusal(
    evaluation_id: str, evaluation: Evaluation, attested: AttestedOutcome
) -> PrescriptionRefused:
    """The problem for a refused order: what to do next, and the evaluation to act on. The
    detail names only the evaluation (an opaque id): no drug, no reason key — error messages
    carry no PHI (ARCHITECTURE.md), and reason keys can reveal the patient's conditions. The
    keys travel in the problem's data, the answer to the prescriber's own request
    (``attested``: the ATTEST reason keys an attestation covers, and by which)."""
    data: dict[str, Any] = {
        "evaluation_id": evaluation_id,
        "outcome": attested.outcome,
        "reasons": [reason.key for reason in evaluation.reasons],
        "attested": dict(attested.attested),
    }
    if attested.unattested:
        return AttestationRequired(
            "the order cannot be fully checked: the record lacks a current weight or "
            f"serum creatinine (evaluation {evaluation_id}); record them, or attest that "
            f"proceeding without them is acceptable ({ATTESTATIONS_ROUTE} naming that "
            "evaluation), then issue again (no override stands in for missing data)",
            data=data,
        )
    if attested.outcome == "BLOCK":
        return OrderBlocked(
            f"decision support blocks this order (evaluation {evaluation_id}): it can be "
            f"issued unchanged only after an override of that evaluation ({OVERRIDES_ROUTE}) "
            "is approved, with a pharmacist's co-signature where the organization's policy "
            "asks for one",
            data=data,
        )
    return OverrideRequired(
        f"decision support warns about this order (evaluation {evaluation_id}): record "
        f"an override of that evaluation with a reason ({OVERRIDES_ROUTE}) and issue again, "
        "or change the order",
        data=data,
    )

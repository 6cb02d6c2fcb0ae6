"""The decision-support API's contract: evaluation, override and attestation request and
response bodies, and language choice."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from clinicos.cds.attestations import (
    MAX_EXPIRY_HOURS,
    MAX_REASON_CHARS,
    VALUE_FIELDS,
    FreshValue,
)
from clinicos.cds.engine import AttestableFact, AttestedOutcome, Evaluation, Facts, Order, Reason
from clinicos.cds.engine.inputs import Medication
from clinicos.cds.record_facts import RecordFacts
from clinicos.kernel.errors import FieldError, ValidationFailed
from clinicos.platform.http.strict import StrictBody

Language = Literal["en", "es", "pt"]
LANGUAGES: tuple[Language, ...] = ("en", "es", "pt")
DEFAULT_LANGUAGE: Language = "en"
_BY_PRIMARY_TAG: dict[str, Language] = {language: language for language in LANGUAGES}
# Limits on what a caller controls (CONVENTIONS.md): list lengths and string lengths.
MAX_OTHER_MEDICATIONS = 100
MAX_MEDICATION_CHARS = 200
MAX_OVERRIDE_COMMENT_CHARS = 1000
# Record ids are UUIDs (36 characters); a little slack for other id shapes, never unbounded.
MAX_PATIENT_ID_CHARS = 64
ONE_SUBJECT = (
    "give exactly one of 'patient' (the facts inline) and 'patient_id' (the stored record)"
)


class EvaluationPatient(Facts):
    """The patient's facts, given inline (the engine's ``Facts`` with size limits)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="EvaluationPatient")

    other_medications: tuple[Annotated[Medication, Field(max_length=MAX_MEDICATION_CHARS)], ...] = (
        Field(default=(), max_length=MAX_OTHER_MEDICATIONS)
    )


class EvaluationOrder(Order):
    """The draft anticoagulant order (the engine's ``Order``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="EvaluationOrder")


class EvaluationRequest(StrictBody):
    """``POST /api/v1/cds/evaluate``: check one order against facts given inline (``patient``)
    or against the stored record of one of the organization's patients (``patient_id``)."""

    model_config = ConfigDict(extra="forbid")

    as_of: AwareDatetime | None = Field(
        default=None, description="When the check applies (timezone-aware); default now."
    )
    patient: EvaluationPatient | None = Field(
        default=None, description="The patient's facts inline (or give `patient_id`)."
    )
    patient_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATIENT_ID_CHARS,
        description="Evaluate against this patient's stored record (or give `patient`).",
    )
    order: EvaluationOrder

    def require_one_subject(self) -> None:
        """Exactly one of ``patient`` and ``patient_id``: a 422 naming both fields otherwise.

        Checked here rather than in a model validator so the problem names the fields (a
        model-level error has no field path)."""
        if (self.patient is None) == (self.patient_id is None):
            raise ValidationFailed(
                "invalid fields: body.patient, body.patient_id",
                errors=(
                    FieldError(loc=("body", "patient"), message=ONE_SUBJECT, type="one_of"),
                    FieldError(loc=("body", "patient_id"), message=ONE_SUBJECT, type="one_of"),
                ),
            )


class ReasonRead(BaseModel):
    """One reason. ``attested``: an ATTEST reason whose fact a valid attestation of this
    patient's order covers (``attestation_id``); false/null otherwise."""

    key: str
    severity: str
    message: str
    source: str
    policy: str
    suggestion: str | None
    attested: bool = False
    attestation_id: str | None = None


class RulePackRead(BaseModel):
    id: str
    version: str


class WeightRead(BaseModel):
    value_kg: float
    value: float
    unit: str
    measured_at: date
    observation_id: str


class CreatinineRead(BaseModel):
    value: float
    unit: str
    code: str
    measured_at: date
    observation_id: str


class MedicationFactRead(BaseModel):
    name: str
    source: str
    entry_id: str
    matched_by: str


class ConditionFactRead(BaseModel):
    fact: str
    entry_id: str
    code_system: str
    code: str


class FactsRead(BaseModel):
    """Record mode: the facts the engine was given and where each came from in the record —
    PHI-light (no names, no birth date: an age in whole years)."""

    patient_id: str
    age_years: int
    sex: str
    weight: WeightRead | None
    creatinine: CreatinineRead | None
    medications: list[MedicationFactRead]
    conditions: list[ConditionFactRead]
    active_bleeding: bool
    mechanical_valve: bool
    pregnant: bool


class EvaluationRead(BaseModel):
    """The engine's answer, explained in one language; PHI-free. ``facts`` explains the inputs
    read from the record in record mode (null when the caller gave them inline)."""

    evaluation_id: str
    outcome: str
    crcl_ml_min: float | None
    reasons: list[ReasonRead]
    rule_pack: RulePackRead
    as_of: datetime
    facts: FactsRead | None = None


def _reason_read(reason: Reason, language: Language, attestation_id: str | None) -> ReasonRead:
    suggestion = reason.suggestion.text[language] if reason.suggestion is not None else None
    return ReasonRead(
        key=reason.key,
        severity=reason.severity,
        message=reason.message(language),
        source=reason.source,
        policy=reason.policy,
        suggestion=suggestion,
        attested=attestation_id is not None,
        attestation_id=attestation_id,
    )


def facts_read(record: RecordFacts) -> FactsRead:
    weight, creatinine, facts = record.weight, record.creatinine, record.facts
    return FactsRead(
        patient_id=record.patient_id,
        age_years=record.age_years,
        sex=record.sex,
        weight=None
        if weight is None
        else WeightRead(
            value_kg=float(weight.value_kg),
            value=float(weight.value),
            unit=weight.unit,
            measured_at=weight.measured_at,
            observation_id=weight.observation_id,
        ),
        creatinine=None
        if creatinine is None
        else CreatinineRead(
            value=float(creatinine.value),
            unit=creatinine.unit,
            code=creatinine.code,
            measured_at=creatinine.measured_at,
            observation_id=creatinine.observation_id,
        ),
        medications=[
            MedicationFactRead(
                name=m.name, source=m.source, entry_id=m.entry_id, matched_by=m.matched_by
            )
            for m in record.medications
        ],
        conditions=[
            ConditionFactRead(
                fact=c.fact, entry_id=c.entry_id, code_system=c.code_system, code=c.code
            )
            for c in record.conditions
        ],
        active_bleeding=facts.active_bleeding,
        mechanical_valve=facts.mechanical_valve,
        pregnant=facts.pregnant,
    )


def evaluation_read(
    *,
    evaluation_id: str,
    evaluation: Evaluation,
    language: Language,
    record: RecordFacts | None = None,
    attested: AttestedOutcome | None = None,
) -> EvaluationRead:
    """``attested`` (record mode): the outcome past the attestations, and which reasons they
    cover."""
    crcl = evaluation.crcl_ml_min
    covered = {} if attested is None else attested.attested
    return EvaluationRead(
        evaluation_id=evaluation_id,
        outcome=evaluation.outcome if attested is None else attested.outcome,
        # Already rounded half-up to 0.1 by the engine; one decimal is exact as a JSON number.
        crcl_ml_min=None if crcl is None else float(crcl),
        reasons=[
            _reason_read(reason, language, covered.get(reason.key)) for reason in evaluation.reasons
        ],
        rule_pack=RulePackRead(id=evaluation.rule_pack.id, version=evaluation.rule_pack.version),
        as_of=evaluation.as_of,
        facts=None if record is None else facts_read(record),
    )


def preferred_language(accept_language: str | None) -> Language:
    """The best of en/es/pt by ``Accept-Language`` q-values (RFC 9110 12.5.4); default en.

    identity exposes no public read of the organization's locale yet, so the header decides.
    """
    best: tuple[float, int, Language] | None = None
    for position, item in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-", 1)[0]
        if primary not in _BY_PRIMARY_TAG:
            continue
        quality = _quality(params)
        if quality <= 0:
            continue
        candidate = (quality, -position, _BY_PRIMARY_TAG[primary])
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best is not None else DEFAULT_LANGUAGE


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0


class OverrideRequest(StrictBody):
    """``POST /api/v1/cds/overrides``: proceed past a BLOCK or WARN evaluation, with a reason."""

    model_config = ConfigDict(extra="forbid")

    evaluation_id: str = Field(min_length=1, max_length=36, description="The evaluation.")
    reason_code: str = Field(
        min_length=1, max_length=64, description="One of `GET /api/v1/cds/override-reasons`."
    )
    comment: str | None = Field(
        default=None,
        max_length=MAX_OVERRIDE_COMMENT_CHARS,
        description="Free text (required for `other`); stored only, never logged or audited.",
    )


class OverrideReasonRead(BaseModel):
    """A CDS Hooks ``overrideReasons`` Coding."""

    code: str
    system: str
    display: str


class OverrideRead(BaseModel):
    """An override and its sign-off state (the comment is not echoed)."""

    override_id: str
    evaluation_id: str
    status: str
    reason_code: str
    created_by: str
    created_at: datetime
    cosigned_by: str | None
    cosigned_at: datetime | None


ONE_FORM = "give exactly one of 'facts' with 'reason' (an attestation) and 'record' (a new value)"
RECORD_ONLY = "not used with 'record' (recording a value is not an attestation)"
ONE_VALUE = (
    "give exactly one of serum_creatinine_mg_dl, serum_creatinine_umol_l and weight_kg, "
    "with measured_at"
)


class AttestationRecordBody(StrictBody):
    """The fresh value to record instead of attesting: one of the three, and when it was
    measured (the sample's collection time, timezone-aware)."""

    model_config = ConfigDict(extra="forbid")

    serum_creatinine_mg_dl: Decimal | None = Field(default=None, gt=0)
    serum_creatinine_umol_l: Decimal | None = Field(default=None, gt=0)
    weight_kg: Decimal | None = Field(default=None, gt=0)
    measured_at: AwareDatetime

    def fresh_value(self) -> FreshValue:
        """The one value given; a 422 on ``body.record`` otherwise."""
        given = [name for name in VALUE_FIELDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValidationFailed(
                "invalid fields: body.record",
                errors=(FieldError(loc=("body", "record"), message=ONE_VALUE, type="one_of"),),
            )
        return FreshValue(
            field=given[0], value=getattr(self, given[0]), measured_at=self.measured_at
        )


class AttestationRequest(StrictBody):
    """``POST /api/v1/cds/attestations``: attest ``facts`` with a ``reason`` for the patient and
    order of an ATTEST-bearing evaluation, or ``record`` the fresh value instead."""

    model_config = ConfigDict(extra="forbid")

    evaluation_id: str = Field(
        min_length=1, max_length=36, description="An evaluation with ATTEST reasons."
    )
    facts: list[AttestableFact] | None = Field(
        default=None,
        min_length=1,
        max_length=2,
        description="The facts behind the evaluation's ATTEST reasons that are attested.",
    )
    reason: str | None = Field(
        default=None,
        max_length=MAX_REASON_CHARS,
        description="Why proceeding without the data is acceptable (required with `facts`); "
        "stored encrypted, never returned, logged or audited.",
    )
    expires_in_hours: int | None = Field(
        default=None,
        ge=1,
        le=MAX_EXPIRY_HOURS,
        description="Default 24, at most 72 (clinicos policy).",
    )
    record: AttestationRecordBody | None = Field(
        default=None, description="Record the value in the patient's record instead."
    )

    def require_one_form(self) -> None:
        """Exactly one of ``facts`` (+ ``reason``) and ``record``: a 422 naming the fields."""
        if self.record is None and self.facts is None:
            raise ValidationFailed(
                "invalid fields: body.facts, body.record",
                errors=(
                    FieldError(loc=("body", "facts"), message=ONE_FORM, type="one_of"),
                    FieldError(loc=("body", "record"), message=ONE_FORM, type="one_of"),
                ),
            )
        if self.record is not None:
            extra = [
                name
                for name in ("facts", "reason", "expires_in_hours")
                if getattr(self, name) is not None
            ]
            if extra:
                raise ValidationFailed(
                    "invalid fields: " + ", ".join(f"body.{name}" for name in extra),
                    errors=tuple(
                        FieldError(loc=("body", name), message=RECORD_ONLY, type="one_of")
                        for name in extra
                    ),
                )


class AttestationRead(BaseModel):
    """An attestation (``kind`` "attestation"; the reason is never echoed), or the observation
    recorded instead (``kind`` "observation": ``observation_id``, no attestation, no expiry)."""

    kind: Literal["attestation", "observation"]
    attestation_id: str | None
    observation_id: str | None
    evaluation_id: str
    patient_id: str
    facts: list[str]
    attested_by: str
    attested_at: datetime
    expires_at: datetime | None

"""The decision-support API's contract: evaluation and override request and response bodies,
and language choice."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from clinicos.cds.engine import Evaluation, Facts, Order, Reason
from clinicos.cds.engine.inputs import Medication

Language = Literal["en", "es", "pt"]
LANGUAGES: tuple[Language, ...] = ("en", "es", "pt")
DEFAULT_LANGUAGE: Language = "en"
_BY_PRIMARY_TAG: dict[str, Language] = {language: language for language in LANGUAGES}
# Limits on what a caller controls (CONVENTIONS.md): list lengths and string lengths.
MAX_OTHER_MEDICATIONS = 100
MAX_MEDICATION_CHARS = 200
MAX_OVERRIDE_COMMENT_CHARS = 1000
RECORD_MODE_UNAVAILABLE = (
    "record mode (patient_id) is not available yet: it arrives with the records capability; "
    "send the patient's facts inline in 'patient'"
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


def _refuse_record_mode(value: Any) -> Any:
    raise ValueError(RECORD_MODE_UNAVAILABLE)


class EvaluationRequest(BaseModel):
    """``POST /api/v1/cds/evaluate``: check one order against facts given inline."""

    model_config = ConfigDict(extra="forbid")

    as_of: AwareDatetime | None = Field(
        default=None, description="When the check applies (timezone-aware); default now."
    )
    patient: EvaluationPatient
    order: EvaluationOrder
    # Declared only to answer it clearly; any value (even null) is refused until records land.
    patient_id: Annotated[Any, AfterValidator(_refuse_record_mode)] = Field(
        default=None, description="Not available yet (record mode arrives with records)."
    )


class ReasonRead(BaseModel):
    key: str
    severity: str
    message: str
    source: str
    policy: str
    suggestion: str | None


class RulePackRead(BaseModel):
    id: str
    version: str


class EvaluationRead(BaseModel):
    """The engine's answer, explained in one language; PHI-free."""

    evaluation_id: str
    outcome: str
    crcl_ml_min: float | None
    reasons: list[ReasonRead]
    rule_pack: RulePackRead
    as_of: datetime


def _reason_read(reason: Reason, language: Language) -> ReasonRead:
    suggestion = reason.suggestion.text[language] if reason.suggestion is not None else None
    return ReasonRead(
        key=reason.key,
        severity=reason.severity,
        message=reason.message(language),
        source=reason.source,
        policy=reason.policy,
        suggestion=suggestion,
    )


def evaluation_read(
    *, evaluation_id: str, evaluation: Evaluation, language: Language
) -> EvaluationRead:
    crcl = evaluation.crcl_ml_min
    return EvaluationRead(
        evaluation_id=evaluation_id,
        outcome=evaluation.outcome,
        # Already rounded half-up to 0.1 by the engine; one decimal is exact as a JSON number.
        crcl_ml_min=None if crcl is None else float(crcl),
        reasons=[_reason_read(reason, language) for reason in evaluation.reasons],
        rule_pack=RulePackRead(id=evaluation.rule_pack.id, version=evaluation.rule_pack.version),
        as_of=evaluation.as_of,
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


class OverrideRequest(BaseModel):
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

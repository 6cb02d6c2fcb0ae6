"""Attestation use cases (issue 5 point 4): a clinician vouches, with a reason, that missing or
stale data (serum creatinine, weight) is acceptable for one patient's order for a while — or
records the fresh value in the patient's record instead — and the finding of the attestations
that cover a new evaluation of that order.

The outcome policy with attestations is the engine's pure ``outcome_with_attestations``; this
module only finds the valid attestations (same organization, patient and order fingerprint,
unexpired by the unit of work's clock) and writes new ones. An attestation is one
``cds_attestation`` row, one audit entry and one ``cds.AttestationRecorded`` event, committed
together. Its free-text reason may hold PHI: sealed in the row, never logged, audited, emitted
or returned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from sqlalchemy import select

from clinicos.cds.engine import (
    ATTESTABLE_FACTS,
    GATE_FACTS,
    AttestableFact,
    AttestedOutcome,
    Evaluation,
    Order,
    order_fingerprint,
    outcome_with_attestations,
)
from clinicos.cds.events import AttestationRecorded
from clinicos.cds.models import CdsAttestation, CdsEvaluation
from clinicos.cds.record_facts import CREATININE_MASS, CREATININE_MOLES, WEIGHT
from clinicos.governance import record_audit
from clinicos.identity import Permission
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError, NotFound, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records import ObservationFields, add_observation, observation_problems

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]

# Our policy, not a label's: an attestation lasts 24 hours unless the clinician says otherwise,
# and never more than 72 — long enough to cover a weekend until the lab or the scale is
# available, short enough that a standing exemption from the data gates cannot build up.
DEFAULT_EXPIRY_HOURS = 24
MAX_EXPIRY_HOURS = 72
MAX_REASON_CHARS = 500
AUDIT_ACTION = "cds.attest"
AUDIT_TARGET_TYPE = "cds_attestation"
ENCRYPTED_TABLE = "cds_attestation"


ValueField = Literal["serum_creatinine_mg_dl", "serum_creatinine_umol_l", "weight_kg"]
VALUE_FIELDS: tuple[ValueField, ...] = (
    "serum_creatinine_mg_dl",
    "serum_creatinine_umol_l",
    "weight_kg",
)


@dataclass(frozen=True)
class FreshValue:
    """A measurement given instead of an attestation: ``field`` is the request's name for it
    (``serum_creatinine_mg_dl``, ``serum_creatinine_umol_l``, ``weight_kg``)."""

    field: ValueField
    value: Decimal
    measured_at: datetime


@dataclass(frozen=True)
class _Measurement:
    fact: AttestableFact
    code: str
    unit: str
    category: Literal["laboratory", "vital-signs"]
    display: str


# terminology.md "Observations": the LOINC code and UCUM unit of each value the record form
# takes, recorded as records would record it from a lab result or a scale.
_MEASUREMENTS: dict[ValueField, _Measurement] = {
    "serum_creatinine_mg_dl": _Measurement(
        "serum_creatinine",
        CREATININE_MASS,
        "mg/dL",
        "laboratory",
        "Creatinine [Mass/volume] in Serum or Plasma",
    ),
    "serum_creatinine_umol_l": _Measurement(
        "serum_creatinine",
        CREATININE_MOLES,
        "umol/L",
        "laboratory",
        "Creatinine [Moles/volume] in Serum or Plasma",
    ),
    "weight_kg": _Measurement("weight", WEIGHT, "kg", "vital-signs", "Body weight"),
}


@dataclass(frozen=True)
class AttestationView:
    """What the API answers: an attestation (``kind`` "attestation", no reason: it is
    write-only free text), or the observation recorded instead (``kind`` "observation")."""

    kind: Literal["attestation", "observation"]
    evaluation_id: str
    patient_id: str
    facts: tuple[str, ...]
    attestation_id: str | None
    observation_id: str | None
    attested_by: str
    attested_at: datetime
    expires_at: datetime | None


def _invalid(
    loc: tuple[str | int, ...], message: str, kind: str = "value_error"
) -> ValidationFailed:
    field = ".".join(str(p) for p in loc)
    return ValidationFailed(
        f"invalid fields: {field}", errors=(FieldError(loc=loc, message=message, type=kind),)
    )


# -- attest ---------------------------------------------------------------------------------------


async def record_attestation(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    evaluation_id: str,
    facts: Sequence[str],
    reason: str | None,
    expires_in_hours: int | None = None,
) -> AttestationView:
    """Attest ``facts`` for the patient and order of an ATTEST-bearing evaluation, with a reason.

    Another organization's evaluation, or none: 404. An evaluation without ATTEST reasons or
    without a patient (inline mode), a fact not behind one of its ATTEST reasons, a missing or
    over-long reason, an expiry outside 1-72 hours: 422 naming the field. Needs
    ``cds:override`` (clinicians: an attestation, like an override, is a prescriber's
    reasoned decision to proceed)."""
    actor.require(Permission.cds_override.value)
    text = _checked_reason(reason)
    hours = _checked_hours(expires_in_hours)
    async with uows(actor.organization_id) as uow:
        row = await _attestable_evaluation(uow, actor, evaluation_id)
        attested = _checked_facts(facts, _gated_facts(row))
        assert row.patient_id is not None and row.order_fingerprint is not None  # checked
        assert row.dose_mg is not None and row.frequency is not None  # with the fingerprint
        now = uow.clock.now()
        attestation_id = new_id()
        attestation = CdsAttestation(
            id=attestation_id,
            organization_id=actor.organization_id,
            patient_id=row.patient_id,
            evaluation_id=row.id,
            drug=row.drug,
            dose_mg=row.dose_mg,
            frequency=row.frequency,
            indication=row.indication,
            order_fingerprint=row.order_fingerprint,
            facts=list(attested),
            # Free text may name the patient: encrypted at rest, bound to this row and column.
            reason=phi.encrypt(
                text,
                organization_id=actor.organization_id,
                table=ENCRYPTED_TABLE,
                column="reason",
                row_id=attestation_id,
            ),
            attested_by=actor.user_id,
            attested_at=now,
            expires_at=now + timedelta(hours=hours),
        )
        uow.session.add(attestation)
        await uow.session.flush()
        await record_audit(
            uow,
            organization_id=actor.organization_id,
            actor_type=actor.actor_type,
            actor_id=actor.user_id,
            action=AUDIT_ACTION,
            target_type=AUDIT_TARGET_TYPE,
            target_id=attestation_id,
            purpose="treatment",
            outcome="success",
            request_id=actor.request_id,
        )
        uow.record(
            AttestationRecorded(
                organization_id=actor.organization_id,
                attestation_id=attestation_id,
                evaluation_id=row.id,
                patient_id=row.patient_id,
                attested_by=actor.user_id,
                drug=row.drug,
                indication=row.indication,
                order_fingerprint=row.order_fingerprint,
                facts=list(attested),
                expires_at=attestation.expires_at,
            )
        )
        await uow.commit()
    return AttestationView(
        kind="attestation",
        evaluation_id=row.id,
        patient_id=row.patient_id,
        facts=attested,
        attestation_id=attestation_id,
        observation_id=None,
        attested_by=actor.user_id,
        attested_at=attestation.attested_at,
        expires_at=attestation.expires_at,
    )


async def record_fresh_value(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    evaluation_id: str,
    value: FreshValue,
) -> AttestationView:
    """Record the missing or stale value as a final Observation in the patient's record
    (records' ``add_observation``, in this unit of work: its row, audit entry and event), so
    the next evaluation simply has the data. No attestation row is written.

    Same evaluation checks as :func:`record_attestation`; the value's fact must be behind one
    of the evaluation's ATTEST reasons. Needs ``clinical:write`` as well (what records' API
    needs to add an observation). Implausible values or a future ``measured_at``: 422 on
    ``body.record.<field>``."""
    actor.require(Permission.cds_override.value)
    actor.require(Permission.clinical_write.value)
    measurement = _MEASUREMENTS[value.field]
    async with uows(actor.organization_id) as uow:
        row = await _attestable_evaluation(uow, actor, evaluation_id)
        assert row.patient_id is not None  # checked
        if measurement.fact not in _gated_facts(row):
            raise _invalid(
                ("body", "record", value.field),
                f"the evaluation has no ATTEST reason about {measurement.fact}",
            )
        fields = ObservationFields(
            code=measurement.code,
            category=measurement.category,
            status="final",
            effective_at=value.measured_at,
            display=measurement.display,
            value=value.value,
            unit=measurement.unit,
        )
        now = uow.clock.now()
        _raise_record_problems(observation_problems(fields, now), value.field)
        observation = await add_observation(
            uow, phi, actor, patient_id=row.patient_id, values=fields
        )
        await uow.commit()
    return AttestationView(
        kind="observation",
        evaluation_id=row.id,
        patient_id=row.patient_id,
        facts=(measurement.fact,),
        attestation_id=None,
        observation_id=observation.id,
        attested_by=actor.user_id,
        attested_at=now,
        expires_at=None,
    )


def _raise_record_problems(problems: Sequence[FieldError], field: str) -> None:
    """records' observation problems, renamed to the request's fields (``value``/``unit`` →
    the value's field, ``effective_at`` → ``measured_at``)."""
    if not problems:
        return
    renamed = {"value": field, "unit": field, "effective_at": "measured_at"}
    errors = tuple(
        FieldError(
            loc=("body", "record", renamed.get(str(p.loc[0]), field)),
            message=p.message,
            type=p.type,
        )
        for p in problems
    )
    names = ", ".join(sorted({e.field for e in errors}))
    raise ValidationFailed(f"invalid fields: {names}", errors=errors)


def _checked_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise _invalid(("body", "reason"), "an attestation needs a reason", "missing")
    if len(text) > MAX_REASON_CHARS:
        raise _invalid(("body", "reason"), f"at most {MAX_REASON_CHARS} characters", "too_long")
    return text


def _checked_hours(hours: int | None) -> int:
    hours = DEFAULT_EXPIRY_HOURS if hours is None else hours
    if not 1 <= hours <= MAX_EXPIRY_HOURS:
        raise _invalid(
            ("body", "expires_in_hours"),
            f"must be 1-{MAX_EXPIRY_HOURS} hours (default {DEFAULT_EXPIRY_HOURS}; our policy)",
            "range",
        )
    return hours


def _gated_facts(row: CdsEvaluation) -> frozenset[str]:
    return frozenset(GATE_FACTS[key] for key in row.reason_keys if key in GATE_FACTS)


def _checked_facts(facts: Sequence[str], gated: frozenset[str]) -> tuple[str, ...]:
    """The facts to attest, each behind one of the evaluation's ATTEST reasons, once."""
    if not facts:
        raise _invalid(("body", "facts"), "name at least one fact to attest", "missing")
    seen: list[str] = []
    for index, fact in enumerate(facts):
        if fact in seen:
            raise _invalid(("body", "facts", index), "appears twice", "duplicate")
        if fact not in gated:
            raise _invalid(
                ("body", "facts", index),
                "not behind any ATTEST reason of the evaluation; attestable here: "
                + ", ".join(sorted(gated)),
                "enum",
            )
        seen.append(fact)
    return tuple(seen)


async def _attestable_evaluation(
    uow: SqlUnitOfWork, actor: Actor, evaluation_id: str
) -> CdsEvaluation:
    """The evaluation to attest for: the organization's (404 otherwise, the id never echoed),
    with ATTEST reasons, a patient and a recorded order (422 on ``body.evaluation_id``)."""
    row = await uow.session.get(CdsEvaluation, evaluation_id)
    # Row-level security hides other tenants' rows on PostgreSQL; SQLite relies on this check.
    if row is None or row.organization_id != actor.organization_id:
        raise NotFound("no such evaluation")
    loc = ("body", "evaluation_id")
    if not _gated_facts(row):
        raise _invalid(
            loc,
            "the evaluation has no ATTEST reason (missing or stale weight or serum creatinine): "
            "there is nothing to attest",
        )
    if row.patient_id is None:
        raise _invalid(
            loc,
            "an inline evaluation names no patient, and attestations are scoped to a patient: "
            "evaluate in record mode (patient_id) or issue through the prescribing gate, then "
            "attest on that evaluation",
        )
    if row.order_fingerprint is None:
        raise _invalid(loc, "the evaluation predates attestations; evaluate the order again")
    return row


# -- the read side: which attestations cover a new evaluation -----------------------------------


async def covering_attestations(
    uow: SqlUnitOfWork, *, organization_id: str, patient_id: str, order: Order, now: datetime
) -> dict[AttestableFact, str]:
    """Each fact attested for this patient and order by an unexpired attestation, mapped to the
    newest such attestation's id (by the unit of work's clock: ``now`` < ``expires_at``)."""
    rows = await uow.session.execute(
        select(CdsAttestation.id, CdsAttestation.facts)
        .where(
            CdsAttestation.organization_id == organization_id,
            CdsAttestation.patient_id == patient_id,
            CdsAttestation.order_fingerprint == order_fingerprint(order),
            CdsAttestation.attested_at <= now,
            CdsAttestation.expires_at > now,
        )
        .order_by(CdsAttestation.attested_at.desc(), CdsAttestation.id)
    )
    covered: dict[AttestableFact, str] = {}
    for attestation_id, facts in rows:
        for fact in ATTESTABLE_FACTS:
            if fact in facts:
                covered.setdefault(fact, attestation_id)
    return covered


async def attested_outcome(
    uow: SqlUnitOfWork,
    *,
    actor: Actor,
    patient_id: str,
    order: Order,
    evaluation: Evaluation,
    now: datetime,
) -> AttestedOutcome:
    """The evaluation's outcome with the attestations that cover it (none looked up when it has
    no ATTEST reason)."""
    covered: dict[AttestableFact, str] = {}
    if any(reason.severity == "ATTEST" for reason in evaluation.reasons):
        covered = await covering_attestations(
            uow,
            organization_id=actor.organization_id,
            patient_id=patient_id,
            order=order,
            now=now,
        )
    return outcome_with_attestations(evaluation.reasons, covered)

"""What the record does for a patient's data-subject rights (LGPD Art. 18, GDPR Art. 15-20),
inside the caller's unit of work: read everything held about one patient, erase the contact
details the law lets us erase, and check and apply a correction through the record's own
update use cases (so the record's history, versions, audit entries and events are kept).

Governance tracks the request and decides; it calls these through its HTTP edge (governance
does not import records). Clinical entries and identification stay under their legal
retention: nothing here deletes or blanks them (docs/contexts/governance.md, *Data-subject
rights*, lists each category and its legal basis)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, get_args

from sqlalchemy import select

from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError, ValidationFailed
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records.events import PatientUpdated
from clinicos.records.models import (
    Allergy,
    ClinicalNote,
    Condition,
    Encounter,
    MedicationStatement,
    Observation,
    Prescription,
)
from clinicos.records.services.clinical.allergies import (
    AllergyClinicalStatus,
    AllergyVerificationStatus,
    Criticality,
    update_allergy,
)
from clinicos.records.services.clinical.conditions import (
    ConditionClinicalStatus,
    ConditionVerificationStatus,
    update_condition,
)
from clinicos.records.services.clinical.observation_rules import ObservationStatus
from clinicos.records.services.clinical.observations import update_observation
from clinicos.records.services.common import (
    UnitOfWorkFor,
    audit_access,
    load_patient,
)
from clinicos.records.services.contact_rules import is_email, is_phone
from clinicos.records.services.encounters import EncounterView, open_encounter
from clinicos.records.services.medications.statements import StatementStatus, update_medication
from clinicos.records.services.notes import FINAL, NoteView, open_note
from clinicos.records.services.patients import (
    PatientView,
    _fields_of,
    _seal,
    open_patient,
    update_patient,
)

# The purpose every access below is audited under (a code: governance's audit contract).
PURPOSE = "data_subject_rights"
# Contact details: how the clinic reaches the patient (messaging, reminders). Not part of the
# medical record's identification (CFM Res. 1.638/2002 art. 5 I a lists name, birth date, sex,
# mother's name, birthplace and address), so erasable on request (LGPD Art. 18 VI) — our
# reading, written down in docs/contexts/governance.md.
CONTACT_FIELDS = ("phone", "email", "preferred_language")
SEXES = ("male", "female", "other", "unknown")


@dataclass(frozen=True)
class SubjectRecord:
    """Everything the record holds about one patient: demographics (decrypted), encounters,
    final notes (a draft is its author's unfinished work, not yet part of the record), and
    every clinical entry (rows, read in the caller's transaction)."""

    patient: PatientView
    encounters: list[EncounterView]
    notes: list[NoteView]
    observations: list[Observation]
    conditions: list[Condition]
    allergies: list[Allergy]
    medications: list[MedicationStatement]
    prescriptions: list[Prescription]


async def read_subject_record(
    uow: SqlUnitOfWork, phi: PhiKeyring, actor: Actor, patient_id: str
) -> SubjectRecord:
    """Everything about one patient of the actor's organization (404 otherwise), oldest first,
    with one ``records.patient.subject_read`` audit entry (purpose ``data_subject_rights``).
    No commit: the caller's unit of work holds the disclosure and its audit."""
    patient = await load_patient(uow, actor, patient_id)

    async def rows(model: Any) -> list[Any]:
        found = await uow.session.scalars(
            select(model)
            .where(model.organization_id == actor.organization_id, model.patient_id == patient.id)
            .order_by(model.created_at, model.id)
        )
        return list(found.all())

    encounters: list[Encounter] = await rows(Encounter)
    notes = [n for n in await rows(ClinicalNote) if n.status == FINAL]
    addenda: dict[str, list[str]] = {}
    for note in notes:
        if note.amends_note_id is not None:
            addenda.setdefault(note.amends_note_id, []).append(note.id)
    record = SubjectRecord(
        patient=open_patient(phi, patient),
        encounters=[open_encounter(phi, e) for e in encounters],
        notes=[open_note(phi, n, tuple(addenda.get(n.id, ()))) for n in notes],
        observations=await rows(Observation),
        conditions=await rows(Condition),
        allergies=await rows(Allergy),
        medications=await rows(MedicationStatement),
        prescriptions=await rows(Prescription),
    )
    await audit_access(
        uow, actor, "records.patient.subject_read", target_id=patient.id, purpose=PURPOSE
    )
    return record


async def erase_contact_details(
    uow: SqlUnitOfWork, phi: PhiKeyring, actor: Actor, patient_id: str
) -> tuple[str, ...]:
    """Blank the patient's contact details (``CONTACT_FIELDS``) and their search indexes in the
    caller's unit of work; returns the fields that held a value. The patient's version moves on,
    ``PatientUpdated`` names the fields and one ``records.patient.erase_contact`` audit entry is
    written (also when nothing was left to erase: the request was still acted on)."""
    row = await load_patient(uow, actor, patient_id)
    current = _fields_of(open_patient(phi, row))
    erased = tuple(f for f in CONTACT_FIELDS if getattr(current, f) is not None)
    if erased:
        blank: dict[str, Any] = dict.fromkeys(erased)
        _seal(phi, row, replace(current, **blank))
        row.updated_at = uow.clock.now()
        await uow.session.flush()
        uow.record(
            PatientUpdated(
                organization_id=actor.organization_id, patient_id=row.id, fields=list(erased)
            )
        )
    await audit_access(
        uow, actor, "records.patient.erase_contact", target_id=row.id, purpose=PURPOSE
    )
    return erased


# -- corrections ---------------------------------------------------------------------------------

Parser = Callable[[str], Any]


def _text(limit: int, *, required: bool = False) -> Parser:
    def parse(value: str) -> str | None:
        value = value.strip()
        if not value:
            if required:
                raise ValueError("may not be empty")
            return None
        if len(value) > limit:
            raise ValueError(f"at most {limit} characters")
        return value

    return parse


def _one_of(values: tuple[str, ...]) -> Parser:
    def parse(value: str) -> str:
        if value not in values:
            raise ValueError(f"one of {list(values)}")
        return value

    return parse


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("a date as YYYY-MM-DD") from None


def _email(value: str) -> str | None:
    parsed = _text(254)(value)
    if parsed is not None and not is_email(parsed):  # the JSON API's rule: no way around it
        raise ValueError("an email address")
    return parsed


def _phone(value: str) -> str | None:
    parsed = _text(32)(value)
    if parsed is not None and not is_phone(parsed):
        raise ValueError("a phone number: digits, spaces and + ( ) . / -")
    return parsed


def _decimal(value: str) -> Decimal:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError("a number") from None
    if not number.is_finite():
        raise ValueError("a number")
    return number


# What a patient may ask to correct, per target, and how the proposed text becomes a value.
# Identifiers we assign (MRN), codes and measurement times are not patient-correctable: a wrong
# one is corrected by the clinic recording a new entry. Sizes follow docs/contexts/records.md.
CORRECTABLE: Mapping[str, Mapping[str, Parser]] = {
    "demographics": {
        "given_name": _text(100),
        "family_name": _text(100, required=True),
        "birth_date": _day,
        "sex": _one_of(SEXES),
        "national_id": _text(32),
        "phone": _phone,
        "email": _email,
        "preferred_language": _text(16),
    },
    "condition": {
        "clinical_status": _one_of(get_args(ConditionClinicalStatus)),
        "verification_status": _one_of(get_args(ConditionVerificationStatus)),
        "onset_date": _day,
        "abatement_date": _day,
    },
    "allergy": {
        "clinical_status": _one_of(get_args(AllergyClinicalStatus)),
        "verification_status": _one_of(get_args(AllergyVerificationStatus)),
        "criticality": _one_of(get_args(Criticality)),
        "reaction": _text(200),
    },
    "observation": {
        "status": _one_of(get_args(ObservationStatus)),
        "value": _decimal,
    },
    "medication_statement": {
        "status": _one_of(get_args(StatementStatus)),
        "effective_end": _day,
    },
}
_ENTRY_MODELS: Mapping[str, Any] = {
    "condition": Condition,
    "allergy": Allergy,
    "observation": Observation,
    "medication_statement": MedicationStatement,
}
UpdateUseCase = Callable[..., Awaitable[Any]]
_UPDATES: Mapping[str, tuple[UpdateUseCase, str]] = {
    "condition": (update_condition, "condition_id"),
    "allergy": (update_allergy, "allergy_id"),
    "observation": (update_observation, "observation_id"),
    "medication_statement": (update_medication, "medication_id"),
}


def _invalid(field: str, message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(
        f"invalid fields: {field}", errors=(FieldError(("correction", field), message, kind),)
    )


def parse_correction(target: str, field: str, proposed_value: str) -> Any:
    """The typed value of a proposed correction; 422 naming ``correction.target``,
    ``correction.field`` or ``correction.proposed_value`` (never echoing the value)."""
    fields = CORRECTABLE.get(target)
    if fields is None:
        raise _invalid("target", f"one of {sorted(CORRECTABLE)}", "enum")
    parser = fields.get(field)
    if parser is None:
        raise _invalid("field", f"for {target}: one of {sorted(fields)}", "enum")
    try:
        return parser(proposed_value)
    except ValueError as exc:
        raise _invalid("proposed_value", f"{field} must be {exc}") from None


async def check_correction(
    uow: SqlUnitOfWork,
    actor: Actor,
    *,
    patient_id: str,
    target: str,
    entry_id: str | None,
    field: str,
    proposed_value: str,
) -> None:
    """Whether a correction request names something that exists and can be corrected: the
    patient (404), the target and field (422), a value of the right shape (422), and for a
    clinical entry, an entry of this patient (422 naming ``correction.entry_id``). Reads no PHI,
    so no audit entry (the caller audits the request)."""
    await load_patient(uow, actor, patient_id)
    parse_correction(target, field, proposed_value)
    if target == "demographics":
        if entry_id is not None:
            raise _invalid("entry_id", "demographics are corrected without an entry id")
        return
    if entry_id is None:
        raise _invalid("entry_id", f"the id of the {target.replace('_', ' ')} is required")
    found = await uow.session.scalar(
        select(_ENTRY_MODELS[target].id).where(
            _ENTRY_MODELS[target].id == entry_id,
            _ENTRY_MODELS[target].organization_id == actor.organization_id,
            _ENTRY_MODELS[target].patient_id == patient_id,
        )
    )
    if found is None:
        raise _invalid("entry_id", f"no such {target.replace('_', ' ')} for this patient")


async def apply_correction(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    target: str,
    entry_id: str | None,
    field: str,
    proposed_value: str,
) -> int:
    """Apply an accepted correction through the record's own update use case — its own unit of
    work, audit entry (``records.<kind>.update``), version and event — and return the entry's
    new version. What the record refuses (a status move FHIR does not allow, a value that fails
    its checks) is its usual 409/422, and nothing changes."""
    value = parse_correction(target, field, proposed_value)
    if target == "demographics":
        view = await update_patient(
            uows=uows, phi=phi, actor=actor, patient_id=patient_id, changes={field: value}
        )
        return view.version
    if entry_id is None:
        raise _invalid("entry_id", f"the id of the {target.replace('_', ' ')} is required")
    update, id_arg = _UPDATES[target]
    row = await update(
        uows=uows,
        phi=phi,
        actor=actor,
        patient_id=patient_id,
        changes={field: value},
        **{id_arg: entry_id},
    )
    return int(row.version)


__all__ = [
    "CONTACT_FIELDS",
    "CORRECTABLE",
    "SubjectRecord",
    "apply_correction",
    "check_correction",
    "erase_contact_details",
    "parse_correction",
    "read_subject_record",
]

"""Prescriptions (FHIR ``MedicationRequest``): draft → active → completed | cancelled.

Issuing passes through one hook, :class:`PrescriptionCheck`: the seam where decision support
examines the order (and may refuse it, :class:`PrescriptionRefused`) inside the issuing
transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy import select

from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import Conflict, FieldError
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records.errors import InvalidTransition
from clinicos.records.models import MedicationStatement, Prescription
from clinicos.records.services.common import UnitOfWorkFor, audit_access, check_version, load_entry
from clinicos.records.services.entries import (
    EntryColumns,
    EntryCriteria,
    EntryPage,
    add_entry,
    apply_fields,
    aware_utc,
    coded_as,
    criteria_clauses,
    entry_event,
    fields_of,
    length_problems,
    list_entries,
    merge,
    new_row,
    raise_invalid,
    read_entry,
    update_entry,
)
from clinicos.records.services.medications.statements import (
    MEDICATION_UPDATABLE,
    MedicationFields,
    medication_problems,
    normalise_medication,
)

PrescriptionStatus = Literal["draft", "active", "completed", "cancelled"]
PRESCRIPTION_TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"active", "cancelled"}),
    "active": frozenset({"completed", "cancelled"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}
# What ending a prescription does to the medication-list entry its issue created.
_STATEMENT_ON_END = {"completed": "completed", "cancelled": "stopped"}
_END_ACTION = {"completed": "complete", "cancelled": "cancel"}
# A prescription is signed with everything a dispenser needs.
REQUIRED_TO_ISSUE = ("dose", "dose_unit", "frequency", "route")


class PrescriptionNotEditable(Conflict):
    code = "prescription_not_editable"
    title = "Only a draft prescription can be edited"


class PrescriptionRefused(Conflict):
    """The prescription check examined the order and refused to let it be issued (decision
    support: a BLOCK, a WARN without an override, missing data). Unlike any other error, the
    check's own records of that decision are kept: see :class:`PrescriptionCheck`. Subclasses
    (in the checking context) give the specific ``code``; ``data`` says what the client needs
    to act on it (ids and codes only, never patient facts)."""

    code = "prescription_refused"
    title = "The prescription check refused this order"


# -- the seam to decision support ---------------------------------------------------------------


class PrescriptionCheck(Protocol):
    """The check a prescription passes on its way from draft to active.

    Called by :func:`issue_prescription` inside the issuing unit of work, after the status and
    completeness checks and before anything changes, with the draft ``prescription`` row and
    its ``patient_id``. It returns the id of the evaluation it recorded (stored as the
    prescription's ``cds_evaluation_id``) or None, and may read and write in ``uow`` (its
    evaluation, governance event, audit entry) but must not commit.

    To refuse the order it raises :class:`PrescriptionRefused`: the issue then **commits** the
    unit of work — which at that point holds only the check's own writes, because the check
    runs before anything about the prescription changes — and re-raises, so a refusal leaves
    its governance record (the evidence that the order was stopped, and the evaluation an
    override must name) while the prescription stays an unchanged draft. Any other exception
    rolls everything back, the check's writes included: an error is not a decision."""

    async def __call__(
        self, uow: SqlUnitOfWork, actor: Actor, *, prescription: Prescription, patient_id: str
    ) -> str | None: ...


# FHIR MedicationRequest search: ``authoredon`` (our ``date``) is when the draft was written.
PRESCRIPTION_COLUMNS = EntryColumns(
    code=coded_as(Prescription.code_system, Prescription.code),
    status=Prescription.status,
    date=Prescription.created_at,
)


async def allow_every_prescription(
    uow: SqlUnitOfWork, actor: Actor, *, prescription: Prescription, patient_id: str
) -> str | None:
    """The default :class:`PrescriptionCheck`: lets every prescription through and records
    nothing (imports of history, tests of the lifecycle alone).

    The API's issuing routes pass decision support's check instead
    (``Container.prescription_check``, built by the composition root from
    ``clinicos.cds.prescribing``), so records never imports cds."""
    return None


# -- prescriptions ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PrescriptionFields(MedicationFields):
    """What a prescriber writes in a draft. ``indication``: a code (for anticoagulants the
    decision-support indication key: ``nvaf``, ``vte_treatment``, ``vte_prophylaxis``)."""

    indication: str | None = None
    encounter_id: str | None = None


PRESCRIPTION_UPDATABLE = (*MEDICATION_UPDATABLE, "indication")


async def create_prescription(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    values: PrescriptionFields,
) -> Prescription:
    """Write a draft prescription; the actor is its prescriber until someone else issues it."""
    async with uows(actor.organization_id) as uow:
        row = await add_prescription(uow, phi, actor, patient_id=patient_id, values=values)
        await uow.commit()
    return row


async def add_prescription(
    uow: SqlUnitOfWork,
    phi: PhiKeyring,
    actor: Actor,
    *,
    patient_id: str,
    values: PrescriptionFields,
    status: PrescriptionStatus = "draft",
    issued_at: datetime | None = None,
    ended_at: datetime | None = None,
    row_id: str | None = None,
) -> Prescription:
    """Add a prescription inside the caller's unit of work: row, audit entry, event.

    A draft by default. An import may record an order as it already stands elsewhere (active
    from ``issued_at``, or ended at ``ended_at``); that records history: it passes no
    :class:`PrescriptionCheck` and adds nothing to the medication list (an import brings its
    own statements). Issuing here always goes through :func:`issue_prescription`."""
    issued_at = aware_utc(issued_at, "issued_at") if issued_at else None
    ended_at = aware_utc(ended_at, "ended_at") if ended_at else None
    raise_invalid(_history_problems(status, issued_at, ended_at))

    def apply(row: Prescription, values: PrescriptionFields) -> None:
        apply_fields(row, values)
        row.status = status
        row.prescriber_id = actor.user_id
        row.issued_at = issued_at
        row.ended_at = ended_at

    row: Prescription = await add_entry(
        uow,
        actor,
        model=Prescription,
        noun="prescription",
        resource_type="MedicationRequest",
        patient_id=patient_id,
        values=normalise_medication(values),
        problems=medication_problems,
        apply=apply,
        row_id=row_id,
    )
    return row


def _history_problems(
    status: str, issued_at: datetime | None, ended_at: datetime | None
) -> list[FieldError]:
    if status not in PRESCRIPTION_TRANSITIONS:
        return [FieldError(("status",), f"one of {list(PRESCRIPTION_TRANSITIONS)}", "enum")]
    if status in ("active", "completed") and issued_at is None:
        return [FieldError(("issued_at",), f"a {status} prescription was issued", "missing")]
    if status == "draft" and issued_at is not None:
        return [FieldError(("issued_at",), "a draft is not issued", "value_form")]
    if ended_at is not None and status not in ("completed", "cancelled"):
        return [FieldError(("ended_at",), f"a {status} prescription has not ended", "value_form")]
    if ended_at is not None and issued_at is not None and ended_at < issued_at:
        return [FieldError(("ended_at",), "may not be before issued_at", "order")]
    return []


async def get_prescription(
    *, uows: UnitOfWorkFor, actor: Actor, patient_id: str, prescription_id: str
) -> Prescription:
    row: Prescription = await read_entry(
        uows=uows,
        actor=actor,
        model=Prescription,
        noun="prescription",
        patient_id=patient_id,
        row_id=prescription_id,
    )
    return row


async def list_prescriptions(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    patient_id: str,
    status: str | None = None,
    criteria: EntryCriteria | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> EntryPage:
    where = [] if status is None else [Prescription.status == status]
    where = [*where, *criteria_clauses(criteria, PRESCRIPTION_COLUMNS)]
    return await list_entries(
        uows=uows,
        actor=actor,
        model=Prescription,
        noun="prescription",
        patient_id=patient_id,
        where=where,
        limit=limit,
        cursor=cursor,
        descending=not (criteria and criteria.oldest_first),
    )


async def update_prescription(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    prescription_id: str,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
) -> Prescription:
    """Edit a draft (409 ``prescription_not_editable`` once issued or ended)."""

    def guard(row: Prescription) -> None:
        if row.status != "draft":
            raise PrescriptionNotEditable(f"this prescription is {row.status}")

    def revise(current: PrescriptionFields, changes: Mapping[str, Any], now: datetime) -> Any:
        updated = normalise_medication(merge(current, changes, PRESCRIPTION_UPDATABLE))
        raise_invalid(medication_problems(updated, now))
        return updated

    row: Prescription = await update_entry(
        uows=uows,
        actor=actor,
        model=Prescription,
        read=lambda row: fields_of(PrescriptionFields, row),
        noun="prescription",
        resource_type="MedicationRequest",
        patient_id=patient_id,
        row_id=prescription_id,
        changes=changes,
        expected_version=expected_version,
        revise=revise,
        guard=guard,
    )
    return row


def _require_transition(row: Prescription, to: str) -> None:
    if to not in PRESCRIPTION_TRANSITIONS[row.status]:
        raise InvalidTransition(f"a {row.status} prescription cannot become {to}")


async def issue_prescription(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    prescription_id: str,
    expected_version: int | None = None,
    check: PrescriptionCheck = allow_every_prescription,
) -> Prescription:
    """Sign a draft: draft → active, issued now by the actor (its prescriber from now on).

    The draft must name dose, dose unit, frequency and route (422 naming what is missing).
    Then ``check`` — decision support's seam — sees the order. If it refuses
    (:class:`PrescriptionRefused`) the prescription is unchanged and only the check's own
    records are committed; any other error changes nothing. Otherwise the prescription is
    active with the check's evaluation id and the drug enters the medication list (a
    ``MedicationStatement`` whose ``source_prescription_id`` is this prescription), in the same
    transaction as the check's records."""
    async with uows(actor.organization_id) as uow:
        row = await load_entry(uow, actor, Prescription, prescription_id, patient_id=patient_id)
        check_version(row, expected_version)
        await _issue_in(uow, actor, row, check)
    return row


def _require_issuable(row: Prescription) -> None:
    """draft → active must be a legal move and the order complete (409 / 422)."""
    _require_transition(row, "active")
    missing = [field for field in REQUIRED_TO_ISSUE if getattr(row, field) is None]
    raise_invalid([FieldError((f,), "required to issue", "missing") for f in missing])


async def _issue(
    uow: SqlUnitOfWork, actor: Actor, row: Prescription, check: PrescriptionCheck
) -> None:
    _require_issuable(row)
    evaluation_id = await check(uow, actor, prescription=row, patient_id=row.patient_id)
    now = uow.clock.now()
    row.status = "active"
    row.issued_at = now
    row.prescriber_id = actor.user_id
    row.cds_evaluation_id = evaluation_id
    row.updated_at = now
    statement = _statement_for(uow, actor, row)
    uow.session.add(statement)
    await uow.session.flush()
    uow.record(entry_event(actor, row, "MedicationRequest", "active"))
    uow.record(entry_event(actor, statement, "MedicationStatement", "created"))


def _statement_for(uow: SqlUnitOfWork, actor: Actor, row: Prescription) -> MedicationStatement:
    statement: MedicationStatement = new_row(
        MedicationStatement, uow, actor, row.patient_id, row_id=None
    )
    medication = fields_of(MedicationFields, row)
    apply_fields(statement, medication)
    statement.status = "active"
    statement.effective_start = row.issued_at.date() if row.issued_at else None
    statement.source_prescription_id = row.id
    return statement


async def complete_prescription(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    prescription_id: str,
    expected_version: int | None = None,
) -> Prescription:
    """active → completed; its medication-list entry is completed too."""
    return await _end(uows, actor, patient_id, prescription_id, expected_version, "completed")


async def cancel_prescription(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    prescription_id: str,
    expected_version: int | None = None,
) -> Prescription:
    """draft | active → cancelled; an issued one's medication-list entry is stopped."""
    return await _end(uows, actor, patient_id, prescription_id, expected_version, "cancelled")


async def _end(
    uows: UnitOfWorkFor,
    actor: Actor,
    patient_id: str,
    prescription_id: str,
    expected_version: int | None,
    to: str,
) -> Prescription:
    async with uows(actor.organization_id) as uow:
        row = await load_entry(uow, actor, Prescription, prescription_id, patient_id=patient_id)
        check_version(row, expected_version)
        await _finish(uow, actor, row, to)
        action = f"records.prescription.{_END_ACTION[to]}"
        await audit_access(uow, actor, action, target_id=row.patient_id)
        await uow.commit()
    return row


async def _finish(uow: SqlUnitOfWork, actor: Actor, row: Prescription, to: str) -> None:
    _require_transition(row, to)
    now = uow.clock.now()
    row.status = to
    row.ended_at = now
    row.updated_at = now
    statements = await uow.session.scalars(
        select(MedicationStatement).where(
            MedicationStatement.organization_id == actor.organization_id,
            MedicationStatement.source_prescription_id == row.id,
            MedicationStatement.status.in_(("active", "on-hold")),
        )
    )
    for statement in statements:
        statement.status = _STATEMENT_ON_END[to]
        statement.effective_end = now.date()
        statement.updated_at = now
        uow.record(entry_event(actor, statement, "MedicationStatement", statement.status))
    await uow.session.flush()
    uow.record(entry_event(actor, row, "MedicationRequest", to))


async def restate_prescription(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    prescription_id: str,
    values: PrescriptionFields,
    status: str,
    expected_version: int | None = None,
    check: PrescriptionCheck = allow_every_prescription,
) -> Prescription:
    """Bring a prescription to the state a client restates in full (a FHIR ``PUT``): a draft
    takes the new fields; then, if ``status`` differs, the prescription moves there the way the
    single-step use cases move it — issuing passes ``check`` (decision support), ending stops
    its medication-list entry. Once issued, the order's fields are fixed (422 naming a changed
    one); an impossible move is a 409.

    One transaction and one audit entry, except when a request both edits a draft and issues
    it: the edits are then committed first as their own update (audit ``update``), and the
    issue runs in a second unit of work exactly like :func:`issue_prescription`. The check
    must see — and its evaluation must name — the draft's edited version, so that an override
    recorded on a refusal applies to that version, and a refusal must commit nothing but the
    check's own records. So an issue refused by the check (or failing in it) leaves the draft
    with the edits the client sent, still a draft; the status move and the order's
    completeness are checked before the edits are committed."""
    async with uows(actor.organization_id) as uow:
        row = await load_entry(uow, actor, Prescription, prescription_id, patient_id=patient_id)
        check_version(row, expected_version)
        current = fields_of(PrescriptionFields, row)
        changes = {f: getattr(values, f) for f in PRESCRIPTION_UPDATABLE}
        editable = PRESCRIPTION_UPDATABLE if row.status == "draft" else ()
        updated = normalise_medication(merge(current, changes, editable))
        raise_invalid(
            medication_problems(updated, uow.clock.now()) + length_problems(Prescription, updated)
        )
        if values.encounter_id != current.encounter_id:
            raise_invalid(
                [FieldError(("encounter_id",), "cannot be changed once recorded", "immutable")]
            )
        edited = updated != current
        if edited:
            apply_fields(row, updated)
            row.updated_at = uow.clock.now()
            await uow.session.flush()
            uow.record(entry_event(actor, row, "MedicationRequest", "updated"))
        if status != row.status and status not in PRESCRIPTION_TRANSITIONS:
            raise_invalid(
                [FieldError(("status",), f"one of {list(PRESCRIPTION_TRANSITIONS)}", "enum")]
            )
        issuing = status != row.status and status == "active"
        if issuing:
            _require_issuable(row)
            if not edited:
                # Nothing to save first: issue in this very unit of work.
                await _issue_in(uow, actor, row, check)
                return row
        action = "update"
        if status != row.status and not issuing:
            await _finish(uow, actor, row, status)
            action = _END_ACTION[status]
        await audit_access(uow, actor, f"records.prescription.{action}", target_id=row.patient_id)
        await uow.commit()
    if not issuing:
        return row
    # The edits are saved; issue the edited version (a concurrent change meanwhile is a 409).
    return await issue_prescription(
        uows=uows,
        phi=phi,
        actor=actor,
        patient_id=patient_id,
        prescription_id=prescription_id,
        expected_version=row.version,
        check=check,
    )


async def _issue_in(
    uow: SqlUnitOfWork, actor: Actor, row: Prescription, check: PrescriptionCheck
) -> None:
    """Issue ``row`` in ``uow`` and commit; on a refusal, commit the check's records alone."""
    try:
        await _issue(uow, actor, row, check)
    except PrescriptionRefused:
        # The check runs before the row changes, so the transaction holds only the check's
        # writes (evaluation, audit entry, event): keep them as the record of the refusal
        # (PrescriptionCheck's contract), then report the refusal.
        await uow.commit()
        raise
    await audit_access(uow, actor, "records.prescription.issue", target_id=row.patient_id)
    await uow.commit()

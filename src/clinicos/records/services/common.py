"""What every record use case shares: tenant-scoped loading, the audit entry per PHI access,
and sealing/opening a row's PHI columns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select

from clinicos.governance import record_audit
from clinicos.kernel.actor import Actor
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records.errors import PatientNotFound, RecordNotFound, VersionConflict
from clinicos.records.models import Patient

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]
Row = TypeVar("Row")

PURPOSE = "treatment"


async def audit_access(
    uow: SqlUnitOfWork,
    actor: Actor,
    action: str,
    *,
    target_type: str = "patient",
    target_id: str | None,
    purpose: str = PURPOSE,
) -> None:
    """One audit entry for one access to one patient's PHI, in the caller's transaction.

    ``target`` is the patient (whose data was disclosed or changed); ``action`` says what
    (``records.note.read``, ``records.observation.create`` …)."""
    await record_audit(
        uow,
        organization_id=actor.organization_id,
        actor_type="user",
        actor_id=actor.user_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        purpose=purpose,
        outcome="success",
        request_id=actor.request_id,
    )


async def load_patient(uow: SqlUnitOfWork, actor: Actor, patient_id: str) -> Patient:
    """The actor's organization's patient, or 404 (another tenant's patient is also a 404)."""
    patient = await uow.session.scalar(
        select(Patient).where(
            Patient.id == patient_id, Patient.organization_id == actor.organization_id
        )
    )
    if patient is None:
        raise PatientNotFound("no such patient in this organization")
    return patient


async def load_entry(
    uow: SqlUnitOfWork, actor: Actor, model: type[Row], entry_id: str, *, patient_id: str | None
) -> Row:
    """One patient-scoped row of ``model`` in the actor's organization (and of ``patient_id``
    when given), or 404."""
    table: Any = model
    query = select(model).where(
        table.id == entry_id, table.organization_id == actor.organization_id
    )
    if patient_id is not None:
        query = query.where(table.patient_id == patient_id)
    row = await uow.session.scalar(query)
    if row is None:
        raise RecordNotFound(f"no such {table.__tablename__.replace('_', ' ')} for this patient")
    return row


def check_version(row: Any, expected: int | None) -> None:
    """Optimistic concurrency: ``expected`` (If-Match / body ``version``) must be current."""
    if expected is not None and expected != row.version:
        raise VersionConflict(
            f"expected version {expected}, the current version is {row.version}; "
            "read it again and reapply the change"
        )


class Cells:
    """Seal and open one row's PHI columns: the keyring bound to organization, table, row."""

    def __init__(self, phi: PhiKeyring, *, organization_id: str, table: str, row_id: str) -> None:
        self._phi = phi
        self._cell = {"organization_id": organization_id, "table": table, "row_id": row_id}

    def seal(self, column: str, value: str | None) -> str | None:
        return self._phi.encrypt(value, column=column, **self._cell)

    def open(self, column: str, token: str | None) -> str | None:
        return self._phi.decrypt(token, column=column, **self._cell)

    @classmethod
    def of(cls, phi: PhiKeyring, row: Any) -> Cells:
        return cls(phi, organization_id=row.organization_id, table=row.__tablename__, row_id=row.id)

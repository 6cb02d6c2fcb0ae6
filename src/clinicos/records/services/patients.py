"""Patient use cases: register, read, update, search — identifying fields sealed at rest,
exact-match search through blind indexes, one audit entry per patient disclosed or changed."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import BadRequest
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring, normalise_digits
from clinicos.records.errors import DuplicateMrn
from clinicos.records.events import PatientRegistered, PatientUpdated
from clinicos.records.models import Patient
from clinicos.records.services.common import (
    Cells,
    UnitOfWorkFor,
    audit_access,
    check_version,
    load_patient,
)

TABLE = "patient"
MAX_PAGE = 100


@dataclass(frozen=True)
class Address:
    lines: tuple[str, ...] = ()
    city: str | None = None
    district: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None

    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["lines"] = list(self.lines)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Address:
        data = json.loads(text)
        return cls(**{**data, "lines": tuple(data.get("lines") or ())})


@dataclass(frozen=True)
class PatientFields:
    """Demographics as the caller gives them (plaintext; sealed by the service)."""

    mrn: str
    family_name: str
    sex: str
    given_name: str | None = None
    birth_date: date | None = None
    national_id: str | None = None
    phone: str | None = None
    email: str | None = None
    address: Address | None = None
    preferred_language: str | None = None
    active: bool = True


@dataclass(frozen=True)
class PatientView(PatientFields):
    """A patient as read back (decrypted), with identity and version."""

    id: str = ""
    organization_id: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 1

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.given_name, self.family_name) if part)


@dataclass(frozen=True)
class PatientSearch:
    """Exact-match criteria (all given ones must match); none given lists every patient."""

    mrn: str | None = None
    name: str | None = None
    family_name: str | None = None
    national_id: str | None = None
    phone: str | None = None
    email: str | None = None
    ids: tuple[str, ...] = field(default=())
    active: bool | None = None

    def is_empty(self) -> bool:
        return not any(getattr(self, f.name) not in (None, ()) for f in fields(self))


@dataclass(frozen=True)
class PatientPage:
    items: list[PatientView]
    next_cursor: str | None


# -- sealing -----------------------------------------------------------------------------------


def _full_name(given: str | None, family: str) -> str:
    return f"{given or ''} {family}"


def _indexes(phi: PhiKeyring, values: PatientFields) -> dict[str, str | None]:
    def index(column: str, value: str | None) -> str | None:
        return phi.blind_index(value, table=TABLE, column=column)

    digits = {
        "national_id": normalise_digits(values.national_id) if values.national_id else None,
        "phone": normalise_digits(values.phone) if values.phone else None,
    }
    return {
        "mrn_index": index("mrn", values.mrn),
        "family_name_index": index("family_name", values.family_name),
        "name_index": index("name", _full_name(values.given_name, values.family_name)),
        # A national id of letters only (rare) is indexed as written.
        "national_id_index": index("national_id", digits["national_id"] or values.national_id),
        "phone_index": index("phone", digits["phone"] or None),
        "email_index": index("email", values.email),
    }


def _seal(phi: PhiKeyring, row: Patient, values: PatientFields) -> None:
    cells = Cells.of(phi, row)
    row.mrn = cells.seal("mrn", values.mrn) or ""
    row.given_name = cells.seal("given_name", values.given_name)
    row.family_name = cells.seal("family_name", values.family_name) or ""
    row.birth_date = cells.seal(
        "birth_date", values.birth_date.isoformat() if values.birth_date else None
    )
    row.national_id = cells.seal("national_id", values.national_id)
    row.phone = cells.seal("phone", values.phone)
    row.email = cells.seal("email", values.email)
    row.address = cells.seal("address", values.address.to_json() if values.address else None)
    row.sex = values.sex
    row.preferred_language = values.preferred_language
    row.active = values.active
    for column, value in _indexes(phi, values).items():
        setattr(row, column, value)


def open_patient(phi: PhiKeyring, row: Patient) -> PatientView:
    """Decrypt a patient row. A token that does not open raises ``PhiDecryptionFailed`` (an
    explicit 500 and an alert metric), never a blank or garbled field."""
    cells = Cells.of(phi, row)
    birth = cells.open("birth_date", row.birth_date)
    address = cells.open("address", row.address)
    return PatientView(
        id=row.id,
        organization_id=row.organization_id,
        mrn=cells.open("mrn", row.mrn) or "",
        given_name=cells.open("given_name", row.given_name),
        family_name=cells.open("family_name", row.family_name) or "",
        birth_date=date.fromisoformat(birth) if birth else None,
        sex=row.sex,
        national_id=cells.open("national_id", row.national_id),
        phone=cells.open("phone", row.phone),
        email=cells.open("email", row.email),
        address=Address.from_json(address) if address else None,
        preferred_language=row.preferred_language,
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


def _fields_of(view: PatientView) -> PatientFields:
    return PatientFields(**{f.name: getattr(view, f.name) for f in fields(PatientFields)})


# -- use cases ---------------------------------------------------------------------------------


async def register_patient(
    *, uows: UnitOfWorkFor, phi: PhiKeyring, actor: Actor, values: PatientFields
) -> PatientView:
    """Register a patient in the actor's organization. A taken MRN is a 409."""
    async with uows(actor.organization_id) as uow:
        row = await add_patient(uow, phi, actor, values)
        await uow.commit()
    return open_patient(phi, row)


async def add_patient(
    uow: SqlUnitOfWork,
    phi: PhiKeyring,
    actor: Actor,
    values: PatientFields,
    *,
    row_id: str | None = None,
) -> Patient:
    """Register a patient inside the caller's unit of work (FHIR transactions, imports):
    row, audit entry and event; no commit."""
    await _require_free_mrn(uow, phi, actor, values.mrn, except_id=None)
    now = uow.clock.now()
    row = Patient(
        id=row_id or new_id(),
        organization_id=actor.organization_id,
        created_by=actor.user_id,
        created_at=now,
        updated_at=now,
    )
    _seal(phi, row, values)
    uow.session.add(row)
    try:
        await uow.session.flush()
    except IntegrityError:  # a concurrent registration won the race for the MRN
        raise DuplicateMrn("this MRN is already in use in this organization") from None
    await audit_access(uow, actor, "records.patient.create", target_id=row.id)
    uow.record(PatientRegistered(organization_id=actor.organization_id, patient_id=row.id))
    return row


async def get_patient(
    *, uows: UnitOfWorkFor, phi: PhiKeyring, actor: Actor, patient_id: str
) -> PatientView:
    async with uows(actor.organization_id) as uow:
        row = await load_patient(uow, actor, patient_id)
        view = open_patient(phi, row)
        await audit_access(uow, actor, "records.patient.read", target_id=row.id)
        await uow.commit()
    return view


async def update_patient(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
) -> PatientView:
    """Apply ``changes`` (field → new value; None clears an optional field) to a patient.
    A stale ``expected_version`` is a 409, as is an MRN another patient holds."""
    async with uows(actor.organization_id) as uow:
        row = await load_patient(uow, actor, patient_id)
        check_version(row, expected_version)
        current = _fields_of(open_patient(phi, row))
        unknown = set(changes) - {f.name for f in fields(PatientFields)}
        if unknown:
            raise ValueError(f"unknown patient fields: {sorted(unknown)}")
        updated = replace(current, **changes)
        if updated.mrn != current.mrn:
            await _require_free_mrn(uow, phi, actor, updated.mrn, except_id=row.id)
        if updated != current:
            _seal(phi, row, updated)
            row.updated_at = uow.clock.now()
            try:
                await uow.session.flush()
            except IntegrityError:
                raise DuplicateMrn("this MRN is already in use in this organization") from None
            uow.record(
                PatientUpdated(
                    organization_id=actor.organization_id,
                    patient_id=row.id,
                    fields=sorted(k for k in changes if getattr(updated, k) != getattr(current, k)),
                )
            )
        await audit_access(uow, actor, "records.patient.update", target_id=row.id)
        await uow.commit()
    return open_patient(phi, row)


async def search_patients(
    *,
    uows: UnitOfWorkFor,
    phi: PhiKeyring,
    actor: Actor,
    criteria: PatientSearch,
    limit: int = 20,
    cursor: str | None = None,
) -> PatientPage:
    """Exact-match search (every given criterion must match), newest registration first,
    keyset-paginated. Each patient on the page gets its own audit entry (their demographics
    were disclosed); an empty page writes none."""
    limit = max(1, min(limit, MAX_PAGE))
    async with uows(actor.organization_id) as uow:
        query = select(Patient).where(Patient.organization_id == actor.organization_id)
        query = _apply_criteria(query, phi, criteria)
        if cursor is not None:
            created_at, row_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    Patient.created_at < created_at,
                    and_(Patient.created_at == created_at, Patient.id < row_id),
                )
            )
        query = query.order_by(Patient.created_at.desc(), Patient.id.desc()).limit(limit + 1)
        rows = list((await uow.session.scalars(query)).all())
        page, more = rows[:limit], len(rows) > limit
        items = [open_patient(phi, row) for row in page]
        for row in page:
            await audit_access(uow, actor, "records.patient.search", target_id=row.id)
        await uow.commit()
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if more and page else None
    return PatientPage(items=items, next_cursor=next_cursor)


def _apply_criteria(query: Any, phi: PhiKeyring, criteria: PatientSearch) -> Any:
    def index(column: str, value: str) -> str:
        # A value that normalises to nothing can match nothing (not everything).
        return phi.blind_index(value, table=TABLE, column=column) or "-"

    if criteria.mrn is not None:
        query = query.where(Patient.mrn_index == index("mrn", criteria.mrn))
    if criteria.name is not None:
        query = query.where(Patient.name_index == index("name", criteria.name))
    if criteria.family_name is not None:
        query = query.where(Patient.family_name_index == index("family_name", criteria.family_name))
    if criteria.national_id is not None:
        value = normalise_digits(criteria.national_id) or criteria.national_id
        query = query.where(Patient.national_id_index == index("national_id", value))
    if criteria.phone is not None:
        query = query.where(Patient.phone_index == index("phone", normalise_digits(criteria.phone)))
    if criteria.email is not None:
        query = query.where(Patient.email_index == index("email", criteria.email))
    if criteria.ids:
        query = query.where(Patient.id.in_(criteria.ids))
    if criteria.active is not None:
        query = query.where(Patient.active.is_(criteria.active))
    return query


async def _require_free_mrn(
    uow: SqlUnitOfWork, phi: PhiKeyring, actor: Actor, mrn: str, *, except_id: str | None
) -> None:
    mrn_index = phi.blind_index(mrn, table=TABLE, column="mrn")
    query = select(Patient.id).where(
        Patient.organization_id == actor.organization_id, Patient.mrn_index == mrn_index
    )
    if except_id is not None:
        query = query.where(Patient.id != except_id)
    if await uow.session.scalar(query) is not None:
        raise DuplicateMrn("this MRN is already in use in this organization")


# -- cursors -----------------------------------------------------------------------------------


class InvalidCursor(BadRequest):
    code = "invalid_cursor"
    title = "The paging cursor is not valid"


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; a malformed cursor is a 400 naming the parameter."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, row_id = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None or not row_id:
            raise ValueError
        # 0001-01-01T00:00+14:00 parses but has no UTC instant (the column stores UTC).
        created_at = created_at.astimezone(UTC)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("query parameter 'cursor' is not a cursor this API issued") from None
    return created_at, row_id

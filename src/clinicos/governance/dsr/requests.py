"""Tracking data-subject requests: taking one (with its deadline), reading and listing them,
and the one way a request moves — a step appended to its history, the status updated, an audit
entry — that every fulfilment uses."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.orm.exc import StaleDataError

from clinicos.governance.audit import record_audit
from clinicos.governance.dsr.policy import (
    CATEGORIES,
    CHANNELS,
    KINDS,
    OPEN_STATUSES,
    deadline_for,
    is_overdue,
)
from clinicos.governance.dsr.ports import DsrContext
from clinicos.governance.events import DataSubjectRequestClosed, DataSubjectRequestReceived
from clinicos.governance.models import DataSubjectRequest, DataSubjectRequestStep
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import BadRequest, Conflict, FieldError, NotFound, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring

TABLE = "data_subject_request"
PURPOSE = "data_subject_rights"
MAX_PAGE = 100
MAX_TEXT = 1000
_NOT_FOUND = "no such data-subject request in this organization"


class RequestClosed(Conflict):
    code = "request_closed"
    title = "The data-subject request is already closed"


class WrongRequestKind(Conflict):
    code = "wrong_request_kind"
    title = "This action does not apply to this kind of request"


@dataclass(frozen=True)
class Correction:
    target: str
    entry_id: str | None
    field: str
    proposed_value: str
    reason: str


@dataclass(frozen=True)
class StepView:
    seq: int
    occurred_at: datetime
    actor_id: str
    action: str
    status: str
    note_code: str | None


@dataclass(frozen=True)
class RequestView:
    id: str
    patient_id: str
    kind: str
    status: str
    channel: str
    received_by: str
    received_at: datetime
    deadline_at: datetime
    overdue: bool
    handled_by: str | None
    completed_at: datetime | None
    outcome_code: str | None
    correction: Correction | None
    decision_note: str | None
    erasure_categories: list[str] | None
    result: dict[str, Any] | None
    steps: list[StepView]


def invalid(field: tuple[str, ...], message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(
        f"invalid fields: {'.'.join(field)}", errors=(FieldError(field, message, kind),)
    )


def _cell(phi: PhiKeyring, row: DataSubjectRequest) -> dict[str, str]:
    return {"organization_id": row.organization_id, "table": TABLE, "row_id": row.id}


def seal(phi: PhiKeyring, row: DataSubjectRequest, column: str, value: str | None) -> str | None:
    return phi.encrypt(value, column=column, **_cell(phi, row))


def view_of(
    phi: PhiKeyring,
    row: DataSubjectRequest,
    steps: list[DataSubjectRequestStep],
    now: datetime,
    *,
    disclose: bool,
) -> RequestView:
    """A request as read back. ``disclose``: open the correction's free text (a read that is
    audited as a disclosure); listings leave it out."""

    def opened(column: str, token: str | None) -> str | None:
        return phi.decrypt(token, column=column, **_cell(phi, row)) if disclose else None

    correction = None
    if row.kind == "correction" and row.correction_target and row.correction_field:
        correction = Correction(
            target=row.correction_target,
            entry_id=row.correction_entry_id,
            field=row.correction_field,
            proposed_value=opened("proposed_value", row.proposed_value) or "",
            reason=opened("request_reason", row.request_reason) or "",
        )
    return RequestView(
        id=row.id,
        patient_id=row.patient_id,
        kind=row.kind,
        status=row.status,
        channel=row.channel,
        received_by=row.received_by,
        received_at=row.received_at,
        deadline_at=row.deadline_at,
        overdue=is_overdue(row.status, row.deadline_at, now),
        handled_by=row.handled_by,
        completed_at=row.completed_at,
        outcome_code=row.outcome_code,
        correction=correction,
        decision_note=opened("decision_note", row.decision_note),
        erasure_categories=row.categories,
        result=row.result,
        steps=[
            StepView(s.seq, s.occurred_at, s.actor_id, s.action, s.status, s.note_code)
            for s in steps
        ],
    )


async def audit(
    uow: SqlUnitOfWork,
    actor: Actor,
    action: str,
    *,
    patient_id: str,
    outcome: str = "success",
) -> None:
    """One audit entry naming the patient whose request (and data) was acted on."""
    await record_audit(
        uow,
        organization_id=actor.organization_id,
        actor_type=actor.actor_type,
        actor_id=actor.user_id,
        action=action,
        target_type="patient",
        target_id=patient_id,
        purpose=PURPOSE,
        outcome=outcome,
        request_id=actor.request_id,
    )


async def load(uow: SqlUnitOfWork, actor: Actor, request_id: str) -> DataSubjectRequest:
    """The organization's request, or 404 (another tenant's request too)."""
    row = await uow.session.scalar(
        select(DataSubjectRequest).where(
            DataSubjectRequest.id == request_id,
            DataSubjectRequest.organization_id == actor.organization_id,
        )
    )
    if row is None:
        raise NotFound(_NOT_FOUND)
    return row


async def steps_of(uow: SqlUnitOfWork, row: DataSubjectRequest) -> list[DataSubjectRequestStep]:
    found = await uow.session.scalars(
        select(DataSubjectRequestStep)
        .where(
            DataSubjectRequestStep.organization_id == row.organization_id,
            DataSubjectRequestStep.request_id == row.id,
        )
        .order_by(DataSubjectRequestStep.seq)
    )
    return list(found.all())


def require_open(row: DataSubjectRequest, kind: str) -> None:
    """409 unless the request is of ``kind`` and still open."""
    if row.kind != kind:
        raise WrongRequestKind(f"this is a {row.kind} request, not a {kind} request")
    if row.status not in OPEN_STATUSES:
        raise RequestClosed(f"the request is already {row.status}")


async def advance(
    uow: SqlUnitOfWork,
    actor: Actor,
    row: DataSubjectRequest,
    action: str,
    status: str,
    *,
    note_code: str | None = None,
) -> None:
    """Append one step and move the request to ``status``; a step that closes the request sets
    ``completed_at``, the outcome and a ``DataSubjectRequestClosed`` event. A concurrent change
    of the same request is a 409 (the row's version)."""
    now = uow.clock.now()
    last = await uow.session.scalar(
        select(func.max(DataSubjectRequestStep.seq)).where(
            DataSubjectRequestStep.organization_id == row.organization_id,
            DataSubjectRequestStep.request_id == row.id,
        )
    )
    uow.session.add(
        DataSubjectRequestStep(
            id=new_id(),
            organization_id=row.organization_id,
            request_id=row.id,
            seq=(last or 0) + 1,
            occurred_at=now,
            actor_id=actor.user_id,
            action=action,
            status=status,
            note_code=note_code,
        )
    )
    row.status = status
    if action != "received":
        row.handled_by = actor.user_id
    if status not in OPEN_STATUSES:
        row.completed_at = now
        row.outcome_code = note_code
        uow.record(
            DataSubjectRequestClosed(
                organization_id=row.organization_id,
                request_id=row.id,
                patient_id=row.patient_id,
                kind=row.kind,
                status=status,
                outcome_code=note_code,
            )
        )
    try:
        await uow.session.flush()
    except StaleDataError:
        raise Conflict("the request changed meanwhile; read it again") from None


async def start(uow: SqlUnitOfWork, actor: Actor, row: DataSubjectRequest) -> None:
    """A received request is in progress once someone acts on it (a step of its own)."""
    if row.status == "received":
        await advance(uow, actor, row, "started", "in_progress")


# -- use cases ----------------------------------------------------------------------------------


async def submit_request(
    ctx: DsrContext,
    *,
    patient_id: str,
    kind: str,
    channel: str,
    correction: Correction | None = None,
    erasure_categories: tuple[str, ...] | None = None,
) -> RequestView:
    """Take a patient's request: the row (deadline = receipt + 15 days), its first step, an
    audit entry and a ``DataSubjectRequestReceived`` event, in one transaction. A correction
    must name something that can be corrected (records checks it: 422 naming the field)."""
    if kind not in KINDS:
        raise invalid(("kind",), f"one of {list(KINDS)}", "enum")
    if channel not in CHANNELS:
        raise invalid(("channel",), f"one of {list(CHANNELS)}", "enum")
    if (correction is not None) != (kind == "correction"):
        raise invalid(("correction",), "required for a correction request, and only for one")
    if erasure_categories is not None:
        if kind != "erasure":
            raise invalid(("erasure_categories",), "only for an erasure request")
        unknown = [c for c in erasure_categories if c not in CATEGORIES]
        if unknown or not erasure_categories:
            raise invalid(("erasure_categories",), f"one or more of {sorted(CATEGORIES)}", "enum")
    if correction is not None and not 1 <= len(correction.reason.strip()) <= MAX_TEXT:
        raise invalid(("correction", "reason"), f"1-{MAX_TEXT} characters saying why")
    if correction is not None and len(correction.proposed_value) > MAX_TEXT:
        raise invalid(("correction", "proposed_value"), f"at most {MAX_TEXT} characters")
    actor = ctx.actor
    async with ctx.uows(actor.organization_id) as uow:
        await ctx.ports.require_patient(uow, actor, patient_id)
        if correction is not None:
            await ctx.ports.check_correction(
                uow,
                actor,
                patient_id=patient_id,
                target=correction.target,
                entry_id=correction.entry_id,
                field=correction.field,
                proposed_value=correction.proposed_value,
            )
        now = uow.clock.now()
        row = DataSubjectRequest(
            id=new_id(),
            organization_id=actor.organization_id,
            patient_id=patient_id,
            kind=kind,
            status="received",
            channel=channel,
            received_by=actor.user_id,
            received_at=now,
            deadline_at=deadline_for(now),
            categories=sorted(set(erasure_categories)) if erasure_categories else None,
        )
        if correction is not None:
            row.correction_target = correction.target
            row.correction_entry_id = correction.entry_id
            row.correction_field = correction.field
            row.proposed_value = seal(ctx.phi, row, "proposed_value", correction.proposed_value)
            row.request_reason = seal(ctx.phi, row, "request_reason", correction.reason.strip())
        uow.session.add(row)
        await uow.session.flush()
        await advance(uow, actor, row, "received", "received")
        await audit(uow, actor, f"dsr.{kind}.receive", patient_id=patient_id)
        uow.record(
            DataSubjectRequestReceived(
                organization_id=actor.organization_id,
                request_id=row.id,
                patient_id=patient_id,
                kind=kind,
            )
        )
        view = view_of(ctx.phi, row, await steps_of(uow, row), now, disclose=True)
        await uow.commit()
    return view


async def read_request(ctx: DsrContext, *, request_id: str) -> RequestView:
    """One request with its history; its free text is disclosed, so the read is audited."""
    actor = ctx.actor
    async with ctx.uows(actor.organization_id) as uow:
        row = await load(uow, actor, request_id)
        view = view_of(ctx.phi, row, await steps_of(uow, row), uow.clock.now(), disclose=True)
        await audit(uow, actor, "dsr.request.read", patient_id=row.patient_id)
        await uow.commit()
    return view


@dataclass(frozen=True)
class RequestFilter:
    status: str | None = None
    kind: str | None = None
    overdue: bool | None = None
    patient_id: str | None = None


@dataclass(frozen=True)
class RequestPage:
    items: list[RequestView]
    next_cursor: str | None


def _encode(row: DataSubjectRequest) -> str:
    raw = f"{row.received_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, row_id = raw.partition("|")
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None or not row_id:
            raise ValueError
        # 0001-01-01T00:00+14:00 parses but has no UTC instant (the column stores UTC).
        at = at.astimezone(UTC)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(
            "query parameter 'cursor' is not a cursor this API issued", code="invalid_cursor"
        ) from None
    return at, row_id


async def list_requests(
    ctx: DsrContext, *, criteria: RequestFilter, limit: int = 50, cursor: str | None = None
) -> RequestPage:
    """The organization's requests, newest first, filtered by status, kind, patient and
    whether they are overdue (open past their deadline); keyset-paginated. Codes, ids and
    dates only (no free text), with one audit entry for the listing."""
    actor = ctx.actor
    limit = max(1, min(limit, MAX_PAGE))
    async with ctx.uows(actor.organization_id) as uow:
        now = uow.clock.now()
        query = select(DataSubjectRequest).where(
            DataSubjectRequest.organization_id == actor.organization_id
        )
        if criteria.status is not None:
            query = query.where(DataSubjectRequest.status == criteria.status)
        if criteria.kind is not None:
            query = query.where(DataSubjectRequest.kind == criteria.kind)
        if criteria.patient_id is not None:
            query = query.where(DataSubjectRequest.patient_id == criteria.patient_id)
        if criteria.overdue is not None:
            late = and_(
                DataSubjectRequest.status.in_(OPEN_STATUSES), DataSubjectRequest.deadline_at < now
            )
            query = query.where(late if criteria.overdue else not_(late))
        if cursor is not None:
            at, row_id = _decode(cursor)
            query = query.where(
                or_(
                    DataSubjectRequest.received_at < at,
                    and_(DataSubjectRequest.received_at == at, DataSubjectRequest.id < row_id),
                )
            )
        query = query.order_by(
            DataSubjectRequest.received_at.desc(), DataSubjectRequest.id.desc()
        ).limit(limit + 1)
        rows = list((await uow.session.scalars(query)).all())
        page = rows[:limit]
        items = [view_of(ctx.phi, r, [], now, disclose=False) for r in page]
        await record_audit(
            uow,
            organization_id=actor.organization_id,
            actor_type=actor.actor_type,
            actor_id=actor.user_id,
            action="dsr.request.list",
            target_type="data_subject_requests",
            target_id=actor.organization_id,
            purpose=PURPOSE,
            request_id=actor.request_id,
        )
        await uow.commit()
    more = len(rows) > limit and bool(page)
    return RequestPage(items=items, next_cursor=_encode(page[-1]) if more else None)

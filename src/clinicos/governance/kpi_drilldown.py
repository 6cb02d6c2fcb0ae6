"""The events behind a KPI figure (the dashboard's drill-down): one organization's projected
decision-support events of a range, newest first, keyset-paginated.

Each figure of :func:`clinicos.governance.kpi.kpi_report` that counts events names the rows it
counts here (``KPI_EVENT_METRICS``): ``blocks`` lists the evaluations whose outcome was BLOCK,
``overrides`` the overrides recorded, and so on. The range is read exactly as the report reads
it (whole local days, or instants with an offset). Codes and ids only, never patient facts.
Rows purged by retention are gone from this list, while the report's daily counters keep them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, func, or_, select

from clinicos.governance.kpi import KpiRange, parse_range
from clinicos.governance.models import KpiEvent
from clinicos.identity import organization_profile
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError, ValidationFailed
from clinicos.platform.db.uow import SqlUnitOfWork

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]

# metric → (event kind, evaluation outcome or None for any): the same definitions as KpiCounts.
KPI_EVENT_METRICS: dict[str, tuple[str, str | None]] = {
    "evaluations": ("evaluation", None),
    "blocks": ("evaluation", "BLOCK"),
    "warnings": ("evaluation", "WARN"),
    "attest_required": ("evaluation", "ATTEST"),
    "attestations": ("attestation", None),
    "overrides": ("override", None),
}
MAX_EVENTS_PAGE = 200
# The widest range the report accepts (by month): a listing is paged, so any report's range
# can be drilled into.
_RANGE_POLICY = "month"
UNKNOWN_REASON = "unknown"  # the report's key for overrides stored without a reason code
_REASON = re.compile(r"^[a-z0-9_]{1,64}$")
_CURSOR = re.compile(r"^([0-9]{1,20})_([A-Za-z0-9-]{1,36})$")


@dataclass(frozen=True)
class KpiEventView:
    event_id: str
    occurred_at: datetime
    kind: str
    evaluation_id: str
    outcome: str | None
    drug: str | None
    reason_code: str | None
    rule_keys: tuple[str, ...]
    approved: bool


@dataclass(frozen=True)
class KpiEventPage:
    range: KpiRange
    timezone: str
    metric: str
    reason_code: str | None
    total: int  # every matching event of the range, not only this page
    items: list[KpiEventView]
    next_before: str | None  # pass as ``before`` for the next (older) page


async def kpi_events(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    metric: str,
    raw_from: str | None,
    raw_to: str | None,
    reason_code: str | None = None,
    limit: int = 50,
    before: str | None = None,
) -> KpiEventPage:
    """The events a KPI ``metric`` counts over a range, newest first (422 naming the parameter
    on a bad metric, range, reason or cursor). ``reason_code`` narrows overrides to one reason
    (``unknown``: those stored without one)."""
    if not 1 <= limit <= MAX_EVENTS_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_EVENTS_PAGE}")
    errors: list[FieldError] = []
    if metric not in KPI_EVENT_METRICS:
        errors.append(
            FieldError(("query", "kind"), f"must be one of: {', '.join(KPI_EVENT_METRICS)}")
        )
    if reason_code is not None and (metric != "overrides" or not _REASON.fullmatch(reason_code)):
        errors.append(FieldError(("query", "reason"), "is not an override reason code"))
    cursor = _parse_cursor(before, errors)
    async with uows(actor.organization_id) as uow:
        profile = await organization_profile(uow, actor.organization_id)
        try:
            kpi_range = parse_range(raw_from, raw_to, _RANGE_POLICY, profile.timezone)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
        if errors:
            raise ValidationFailed("the KPI drill-down is not valid", errors=errors)
        kind, outcome = KPI_EVENT_METRICS[metric]
        conditions = [
            KpiEvent.organization_id == actor.organization_id,
            KpiEvent.occurred_at >= kpi_range.start,
            KpiEvent.occurred_at < kpi_range.end,
            KpiEvent.kind == kind,
        ]
        if outcome is not None:
            conditions.append(KpiEvent.outcome == outcome)
        if reason_code == UNKNOWN_REASON:
            conditions.append(
                or_(KpiEvent.reason_code.is_(None), KpiEvent.reason_code == UNKNOWN_REASON)
            )
        elif reason_code is not None:
            conditions.append(KpiEvent.reason_code == reason_code)
        total = int(
            await uow.session.scalar(select(func.count()).select_from(KpiEvent).where(*conditions))
            or 0
        )
        query = select(KpiEvent).where(*conditions)
        if cursor is not None:
            at, event_id = cursor
            query = query.where(
                or_(
                    KpiEvent.occurred_at < at,
                    and_(KpiEvent.occurred_at == at, KpiEvent.event_id < event_id),
                )
            )
        rows = list(
            await uow.session.scalars(
                query.order_by(KpiEvent.occurred_at.desc(), KpiEvent.event_id.desc()).limit(limit)
            )
        )
        items = [_view(row) for row in rows]
    last = items[-1] if len(items) == limit else None
    return KpiEventPage(
        range=kpi_range,
        timezone=profile.timezone,
        metric=metric,
        reason_code=reason_code,
        total=total,
        items=items,
        next_before=_cursor_of(last) if last is not None else None,
    )


def _view(row: KpiEvent) -> KpiEventView:
    return KpiEventView(
        event_id=row.event_id,
        occurred_at=row.occurred_at,
        kind=row.kind,
        evaluation_id=row.evaluation_id,
        outcome=row.outcome,
        drug=row.drug,
        reason_code=row.reason_code,
        rule_keys=tuple(row.rule_keys or ()),
        approved=bool(row.approved),
    )


def _cursor_of(view: KpiEventView) -> str:
    moment = view.occurred_at.astimezone(UTC)
    micros = int(moment.timestamp()) * 1_000_000 + moment.microsecond
    return f"{micros}_{view.event_id}"


def _parse_cursor(raw: str | None, errors: list[FieldError]) -> tuple[datetime, str] | None:
    """``<microseconds since the epoch>_<event id>`` of the last row of the previous page."""
    if raw is None:
        return None
    found = _CURSOR.fullmatch(raw)
    if found is None:
        errors.append(FieldError(("query", "before"), "is not a page cursor"))
        return None
    micros = int(found.group(1))
    try:
        at = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
            microsecond=micros % 1_000_000
        )
    except (OverflowError, OSError, ValueError):
        errors.append(FieldError(("query", "before"), "is not a page cursor"))
        return None
    return at, found.group(2)

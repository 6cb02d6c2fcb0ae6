"""Audit read side: one organization's events, newest first, filtered, keyset-paginated."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clinicos.governance.audit.chain import chain_key_for
from clinicos.governance.audit.scope import require_session_scope
from clinicos.governance.audit.validation import (
    OUTCOMES,
    optional_code,
    optional_identifier,
    organization_identifier,
    require_member,
)
from clinicos.governance.models import AuditEvent

MAX_PAGE_SIZE = 500


async def list_audit_events(
    session: AsyncSession,
    *,
    organization_id: str | None,
    actor_id: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    occurred_from: datetime | None = None,
    occurred_to: datetime | None = None,
    limit: int = 50,
    before_seq: int | None = None,
    outcome: str | None = None,
) -> list[AuditEvent]:
    """Events of one chain (an organization's, or the installation's for None), newest first.

    ``occurred_from`` is inclusive and ``occurred_to`` exclusive; ``outcome`` is one of
    ``success``, ``denied``, ``failure``. For the next page pass the
    last event's ``seq`` as ``before_seq``: keyset pagination stays fast at any depth and
    does not skip or repeat rows while new events arrive.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    organization_identifier(organization_id)
    await require_session_scope(session, organization_id)
    query = select(AuditEvent).where(AuditEvent.chain_key == chain_key_for(organization_id))
    # Scoped twice on purpose: by chain and by organization, so neither alone can leak.
    if organization_id is None:
        query = query.where(AuditEvent.organization_id.is_(None))
    else:
        query = query.where(AuditEvent.organization_id == organization_id)
    filters = (
        (AuditEvent.actor_id, optional_identifier("actor_id", actor_id)),
        (AuditEvent.action, optional_code("action", action)),
        (AuditEvent.target_type, optional_code("target_type", target_type)),
        (AuditEvent.target_id, optional_identifier("target_id", target_id)),
    )
    for column, value in filters:
        if value is not None:
            query = query.where(column == value)
    if outcome is not None:
        query = query.where(AuditEvent.outcome == require_member("outcome", outcome, OUTCOMES))
    if occurred_from is not None:
        query = query.where(AuditEvent.occurred_at >= occurred_from)
    if occurred_to is not None:
        query = query.where(AuditEvent.occurred_at < occurred_to)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    query = query.order_by(AuditEvent.seq.desc()).limit(limit)
    events = list((await session.execute(query)).scalars().all())
    for event in events:
        # Read-only snapshots: detached, so the unit of work's closing rollback (which expires
        # what its session holds) leaves them readable for the schema that renders them.
        session.expunge(event)
    return events

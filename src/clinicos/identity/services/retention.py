"""Retention of sign-in records: sessions that ended long ago, and spent account tokens.

Called by governance's retention job (``clinicos.governance.retention``), which owns the policy;
identity deletes its own rows. The sign-in *events* are audit rows and follow the audit
retention, not this one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select

from clinicos.identity.models import AccountToken, AuthSession, RecoveryCode, RefreshToken
from clinicos.platform.db.uow import SqlUnitOfWork


async def purge_ended_sessions(
    uow: SqlUnitOfWork, *, organization_id: str, ended_before: datetime, limit: int
) -> int:
    """Delete up to ``limit`` of the organization's sessions that expired or were revoked
    before ``ended_before``, with their refresh tokens; the number of sessions deleted."""
    ended = or_(AuthSession.expires_at < ended_before, AuthSession.revoked_at < ended_before)
    ids = list(
        await uow.session.scalars(
            select(AuthSession.id)
            .where(AuthSession.organization_id == organization_id, ended)
            .order_by(AuthSession.created_at)
            .limit(limit)
        )
    )
    if not ids:
        return 0
    await uow.session.execute(delete(RefreshToken).where(RefreshToken.session_id.in_(ids)))
    result = await uow.session.execute(delete(AuthSession).where(AuthSession.id.in_(ids)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def purge_spent_account_tokens(uow: SqlUnitOfWork, *, ended_before: datetime) -> int:
    """Delete password-reset/verification tokens used or expired, and recovery codes used,
    before ``ended_before`` (installation-wide: they belong to users, not organizations)."""
    tokens = await uow.session.execute(
        delete(AccountToken).where(
            or_(AccountToken.used_at < ended_before, AccountToken.expires_at < ended_before)
        )
    )
    codes = await uow.session.execute(
        delete(RecoveryCode).where(RecoveryCode.used_at < ended_before)
    )
    return int(tokens.rowcount or 0) + int(codes.rowcount or 0)  # type: ignore[attr-defined]

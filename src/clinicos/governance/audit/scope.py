"""Which tenant a session reads as: guards that stop a wrongly scoped read passing as empty."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from clinicos.platform.db.uow import SqlUnitOfWork

_SCOPE_SQL = text(
    "SELECT row_security_active('audit_event') AS rls, "
    "nullif(current_setting('app.organization_id', true), '') AS org"
)


def session_of(uow_or_session: SqlUnitOfWork | AsyncSession) -> AsyncSession:
    if isinstance(uow_or_session, SqlUnitOfWork):
        return uow_or_session.session
    return uow_or_session


async def require_session_scope(session: AsyncSession, organization_id: str | None) -> None:
    """On PostgreSQL, refuse to read a chain the session's row-level security hides.

    Without this, verifying organization A from a transaction scoped to B (or to none) would
    see zero rows and no head, and report an intact, empty chain.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    scope = (await session.execute(_SCOPE_SQL)).one()
    if scope.rls and scope.org != organization_id:
        raise ValueError(
            "this transaction is scoped to another organization; open the unit of work with "
            "the organization being read (container.uow(organization_id))"
        )

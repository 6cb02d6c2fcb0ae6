"""How identity writes its security events to governance's audit trail."""

from __future__ import annotations

from clinicos.governance import record_audit
from clinicos.kernel.actor import Actor, SystemActor
from clinicos.platform.db.uow import SqlUnitOfWork


async def _scoped(uow: SqlUnitOfWork, organization_id: str | None) -> None:
    # Identity's own tables are installation-level, so re-pointing the tenant setting mid-way
    # changes nothing for them; it lets the audit row pass row-level security.
    if uow.organization_id != organization_id:
        await uow.scope_to(organization_id)


async def audit_security(
    uow: SqlUnitOfWork,
    *,
    action: str,
    outcome: str,
    organization_id: str | None,
    user_id: str | None,
    request_id: str | None,
    target_type: str | None = "user",
    target_id: str | None = None,
) -> None:
    await _scoped(uow, organization_id)
    await record_audit(
        uow,
        organization_id=organization_id,
        actor_type="user" if user_id else "anonymous",
        actor_id=user_id,
        action=action,
        target_type=target_type,
        target_id=target_id if target_id is not None else user_id,
        purpose="security",
        outcome=outcome,
        request_id=request_id,
    )


async def audit_by_actor(
    uow: SqlUnitOfWork,
    actor: Actor | SystemActor,
    *,
    action: str,
    target_type: str,
    target_id: str | None,
    outcome: str = "success",
    purpose: str = "operations",
    organization_id: str | None = None,
) -> None:
    is_user = isinstance(actor, Actor)
    await _scoped(uow, organization_id or actor.organization_id)
    await record_audit(
        uow,
        organization_id=organization_id or actor.organization_id,
        actor_type="user" if is_user else "system",
        actor_id=actor.user_id if isinstance(actor, Actor) else actor.name,
        action=action,
        target_type=target_type,
        target_id=target_id,
        purpose=purpose,
        outcome=outcome,
        request_id=actor.request_id,
    )

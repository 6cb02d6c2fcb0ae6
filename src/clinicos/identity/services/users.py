"""User and membership use cases: create, grant and revoke roles, disable, unlock, change
password."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, select, update

from clinicos.identity.errors import AlreadyExists
from clinicos.identity.events import UserCreated, UserDisabled
from clinicos.identity.models import (
    USER_ACTIVE,
    USER_DISABLED,
    AuthSession,
    Membership,
    UserAccount,
)
from clinicos.identity.passwords import password_problems
from clinicos.identity.permissions import Role
from clinicos.identity.runtime import IdentityRuntime
from clinicos.identity.services.audit import audit_by_actor
from clinicos.kernel.actor import Actor, SystemActor
from clinicos.kernel.errors import Conflict, FieldError, NotFound, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork


def normalize_email(email: str, *, field: str = "email") -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(
            "invalid email address", errors=[FieldError((field,), "not a valid email address")]
        ) from exc


def check_new_password(password: str, *, email: str | None, field: str = "password") -> None:
    problems = password_problems(password, email=email)
    if problems:
        raise ValidationFailed(
            "the password does not meet the policy",
            errors=[FieldError((field,), p, "password_policy") for p in problems],
        )


def parse_roles(roles: Iterable[str]) -> list[Role]:
    parsed: list[Role] = []
    for role in roles:
        try:
            parsed.append(Role(role))
        except ValueError as exc:
            raise ValidationFailed(
                "unknown role",
                errors=[FieldError(("roles",), f"one of {[r.value for r in Role]}")],
            ) from exc
    if not parsed:
        raise ValidationFailed("at least one role", errors=[FieldError(("roles",), "empty")])
    return sorted(set(parsed))


async def create_user(
    *,
    uow: SqlUnitOfWork,
    runtime: IdentityRuntime,
    actor: Actor | SystemActor,
    organization_id: str,
    email: str,
    display_name: str,
    roles: Sequence[str],
    password: str | None,
) -> UserAccount:
    address = normalize_email(email)
    role_list = parse_roles(roles)
    if not 1 <= len(display_name.strip()) <= 200:
        raise ValidationFailed(
            "invalid display name", errors=[FieldError(("display_name",), "1 to 200 characters")]
        )
    if password is not None:
        check_new_password(password, email=address)
    if await uow.session.scalar(select(UserAccount.id).where(UserAccount.email == address)):
        raise AlreadyExists("a user with this email exists")
    now = uow.clock.now()
    user = UserAccount(
        id=new_id(),
        email=address,
        display_name=display_name.strip(),
        status=USER_ACTIVE,
        password_hash=runtime.passwords.hash(password) if password is not None else None,
        password_changed_at=now if password is not None else None,
        failed_login_count=0,
        created_at=now,
    )
    uow.session.add(user)
    await uow.session.flush()
    await _add_memberships(uow, user.id, organization_id, role_list)
    await audit_by_actor(
        uow,
        actor,
        action="user.create",
        target_type="user",
        target_id=user.id,
        organization_id=organization_id,
    )
    uow.record(
        UserCreated(
            organization_id=organization_id, user_id=user.id, roles=[r.value for r in role_list]
        )
    )
    return user


async def grant_roles(
    *,
    uow: SqlUnitOfWork,
    actor: Actor | SystemActor,
    organization_id: str,
    email: str,
    roles: Sequence[str],
) -> UserAccount:
    """Give an existing user roles in an organization (a second clinic, a new duty)."""
    user = await uow.session.scalar(
        select(UserAccount).where(UserAccount.email == normalize_email(email))
    )
    if user is None:
        raise NotFound("no such user")
    await _add_memberships(uow, user.id, organization_id, parse_roles(roles))
    await audit_by_actor(
        uow,
        actor,
        action="user.grant_roles",
        target_type="user",
        target_id=user.id,
        organization_id=organization_id,
    )
    return user


async def revoke_role(*, uow: SqlUnitOfWork, actor: Actor, user_id: str, role: str) -> UserAccount:
    """Take one role in the actor's organization away from a member. The last role is kept (a
    user without one is disabled instead), and an admin cannot drop their own admin role, so
    the clinic never loses its last administrator this way."""
    user = await require_member(uow, organization_id=actor.organization_id, user_id=user_id)
    parsed = parse_roles([role])[0]
    held = await roles_in(uow, user.id, actor.organization_id)
    if parsed.value not in held:
        raise Conflict("the user does not hold this role", code="role_not_held")
    if len(held) == 1:
        raise Conflict(
            "this is the user's only role here; disable the user instead", code="last_role"
        )
    if user.id == actor.user_id and parsed is Role.admin:
        raise Conflict("you cannot remove your own admin role", code="own_admin_role")
    await uow.session.execute(
        delete(Membership).where(
            Membership.user_id == user.id,
            Membership.organization_id == actor.organization_id,
            Membership.role == parsed.value,
        )
    )
    await audit_by_actor(
        uow, actor, action="user.revoke_role", target_type="user", target_id=user.id
    )
    return user


async def _add_memberships(
    uow: SqlUnitOfWork, user_id: str, organization_id: str, roles: list[Role]
) -> None:
    held = set(
        (
            await uow.session.scalars(
                select(Membership.role).where(
                    Membership.user_id == user_id, Membership.organization_id == organization_id
                )
            )
        ).all()
    )
    now = uow.clock.now()
    for role in roles:
        if role.value not in held:
            uow.session.add(
                Membership(
                    id=new_id(),
                    user_id=user_id,
                    organization_id=organization_id,
                    role=role.value,
                    created_at=now,
                )
            )
    await uow.session.flush()


async def roles_in(uow: SqlUnitOfWork, user_id: str, organization_id: str) -> frozenset[str]:
    rows = await uow.session.scalars(
        select(Membership.role).where(
            Membership.user_id == user_id, Membership.organization_id == organization_id
        )
    )
    return frozenset(rows.all())


async def require_member(uow: SqlUnitOfWork, *, organization_id: str, user_id: str) -> UserAccount:
    """The user, if they belong to this organization; otherwise not found (never 403)."""
    user = await uow.session.scalar(
        select(UserAccount)
        .join(Membership, Membership.user_id == UserAccount.id)
        .where(UserAccount.id == user_id, Membership.organization_id == organization_id)
        .limit(1)
    )
    if user is None:
        raise NotFound("no such user")
    return user


async def list_members(
    uow: SqlUnitOfWork, *, organization_id: str
) -> list[tuple[UserAccount, list[str]]]:
    rows = (
        await uow.session.execute(
            select(UserAccount, Membership.role)
            .join(Membership, Membership.user_id == UserAccount.id)
            .where(Membership.organization_id == organization_id)
            .order_by(UserAccount.email, Membership.role)
        )
    ).all()
    grouped: dict[str, tuple[UserAccount, list[str]]] = {}
    for user, role in rows:
        grouped.setdefault(user.id, (user, []))[1].append(role)
    return list(grouped.values())


async def revoke_all_sessions(uow: SqlUnitOfWork, user_id: str, *, reason: str) -> None:
    await uow.session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=uow.clock.now(), revoked_reason=reason)
    )


async def disable_user(*, uow: SqlUnitOfWork, actor: Actor, user_id: str) -> UserAccount:
    """Disable the account, or, when the user also works at other organizations, only remove
    them from this one: one clinic's admin must not cut off another clinic's staff."""
    if user_id == actor.user_id:
        # Found by the API fuzzer: an admin could lock themself out (and a clinic's only admin
        # would leave it with none). Another admin disables an admin.
        raise Conflict(
            "you cannot disable your own account; ask another administrator",
            code="cannot_disable_self",
        )
    user = await require_member(uow, organization_id=actor.organization_id, user_id=user_id)
    elsewhere = await uow.session.scalar(
        select(Membership.id)
        .where(Membership.user_id == user.id, Membership.organization_id != actor.organization_id)
        .limit(1)
    )
    if elsewhere is None:
        user.status = USER_DISABLED
        await revoke_all_sessions(uow, user.id, reason="user_disabled")
        action = "user.disable"
    else:
        await uow.session.execute(
            delete(Membership).where(
                Membership.user_id == user.id, Membership.organization_id == actor.organization_id
            )
        )
        await uow.session.execute(
            update(AuthSession)
            .where(
                AuthSession.user_id == user.id,
                AuthSession.organization_id == actor.organization_id,
                AuthSession.revoked_at.is_(None),
            )
            .values(revoked_at=uow.clock.now(), revoked_reason="membership_removed")
        )
        action = "user.remove_from_organization"
    await audit_by_actor(uow, actor, action=action, target_type="user", target_id=user.id)
    uow.record(UserDisabled(organization_id=actor.organization_id, user_id=user.id))
    return user


async def unlock_user(*, uow: SqlUnitOfWork, actor: Actor | SystemActor, user: UserAccount) -> None:
    user.failed_login_count = 0
    user.locked_until = None
    await audit_by_actor(uow, actor, action="user.unlock", target_type="user", target_id=user.id)


async def change_password(
    *,
    uow: SqlUnitOfWork,
    runtime: IdentityRuntime,
    actor: Actor,
    current_password: str,
    new_password: str,
) -> None:
    user = await require_member(uow, organization_id=actor.organization_id, user_id=actor.user_id)
    if not runtime.passwords.verify(user.password_hash, current_password).ok:
        raise ValidationFailed(
            "current password is wrong",
            errors=[FieldError(("current_password",), "does not match")],
        )
    check_new_password(new_password, email=user.email, field="new_password")
    set_password(uow, runtime, user, new_password)
    await revoke_all_sessions(uow, user.id, reason="password_changed")
    await audit_by_actor(
        uow,
        actor,
        action="user.change_password",
        target_type="user",
        target_id=user.id,
        purpose="security",
    )


def set_password(
    uow: SqlUnitOfWork, runtime: IdentityRuntime, user: UserAccount, password: str
) -> None:
    user.password_hash = runtime.passwords.hash(password)
    user.password_changed_at = uow.clock.now()
    user.failed_login_count = 0
    user.locked_until = None

"""MFA enrolment: start (secret + provisioning URI), confirm with a code (recovery codes shown
once), disable with a code, and an administrator's reset for a user who lost their device.
Every change revokes the user's other sessions (a reset: all of them)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update

from clinicos.identity.errors import InvalidMfaCode
from clinicos.identity.mfa import (
    accepted_timestep,
    new_recovery_codes,
    new_totp_secret,
    provisioning_uri,
    recovery_code_hash,
)
from clinicos.identity.models import AuthSession, Membership, RecoveryCode, UserAccount
from clinicos.identity.permissions import Role
from clinicos.identity.runtime import IdentityRuntime
from clinicos.identity.services.audit import audit_by_actor
from clinicos.identity.services.sessions import verify_second_factor
from clinicos.identity.services.users import require_member, revoke_all_sessions
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import Conflict
from clinicos.kernel.ids import new_id
from clinicos.platform.crypto import SealBroken
from clinicos.platform.db.uow import SqlUnitOfWork


@dataclass(frozen=True)
class Enrollment:
    secret: str
    provisioning_uri: str


async def begin_enrollment(
    *, uow: SqlUnitOfWork, runtime: IdentityRuntime, actor: Actor
) -> Enrollment:
    user = await require_member(uow, organization_id=actor.organization_id, user_id=actor.user_id)
    if user.mfa_enabled:
        raise Conflict(
            "MFA is already enabled; disable it first to enrol a new device",
            code="mfa_already_enabled",
        )
    secret = new_totp_secret()
    user.mfa_pending_secret_sealed = runtime.totp_box.seal(secret.encode(), aad=user.id)
    await audit_by_actor(
        uow,
        actor,
        action="mfa.enroll_start",
        target_type="user",
        target_id=user.id,
        purpose="security",
    )
    return Enrollment(
        secret=secret,
        provisioning_uri=provisioning_uri(
            secret, account=user.email, issuer=runtime.settings.jwt_issuer
        ),
    )


async def confirm_enrollment(
    *, uow: SqlUnitOfWork, runtime: IdentityRuntime, actor: Actor, code: str
) -> list[str]:
    """Turn MFA on; returns the recovery codes, which are never shown again."""
    user = await require_member(uow, organization_id=actor.organization_id, user_id=actor.user_id)
    if user.mfa_pending_secret_sealed is None:
        raise Conflict("start MFA enrolment first", code="mfa_not_started")
    try:
        secret = runtime.totp_box.open(user.mfa_pending_secret_sealed, aad=user.id).decode()
    except SealBroken as exc:  # sealed under a previous CLINICOS_SECRET_KEY
        raise Conflict(
            "this enrolment can no longer be read; start MFA enrolment again",
            code="mfa_enrollment_stale",
        ) from exc
    now = uow.clock.now()
    step = accepted_timestep(secret, code.strip(), now=now, last_used=None)
    if step is None:
        raise InvalidMfaCode()
    user.mfa_secret_sealed = user.mfa_pending_secret_sealed
    user.mfa_pending_secret_sealed = None
    user.mfa_enabled_at = now
    user.mfa_last_timestep = step
    codes = new_recovery_codes()
    await uow.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    for code_text in codes:
        uow.session.add(
            RecoveryCode(
                id=new_id(),
                user_id=user.id,
                code_hash=recovery_code_hash(code_text),
                created_at=now,
            )
        )
    await _revoke_other_sessions(uow, actor, reason="mfa_changed")
    await audit_by_actor(
        uow, actor, action="mfa.enable", target_type="user", target_id=user.id, purpose="security"
    )
    return codes


async def disable_mfa(
    *, uow: SqlUnitOfWork, runtime: IdentityRuntime, actor: Actor, code: str
) -> None:
    user = await require_member(uow, organization_id=actor.organization_id, user_id=actor.user_id)
    if not user.mfa_enabled or not await verify_second_factor(
        uow, runtime, user, code, uow.clock.now()
    ):
        raise InvalidMfaCode()
    user.mfa_secret_sealed = None
    user.mfa_enabled_at = None
    user.mfa_last_timestep = None
    await uow.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    await _revoke_other_sessions(uow, actor, reason="mfa_changed")
    await audit_by_actor(
        uow, actor, action="mfa.disable", target_type="user", target_id=user.id, purpose="security"
    )


async def reset_mfa(*, uow: SqlUnitOfWork, actor: Actor, user_id: str) -> UserAccount:
    """An administrator turns off the MFA of a user who lost their device: the secret (and any
    pending enrolment) and the recovery codes are cleared and every session of the user ends,
    so the next sign-in is by password alone (or, where the clinic requires MFA for the role,
    enrolment of the new device before anything else).

    Refused for oneself (a stolen admin session must not strip its own second factor), and for
    a user who also works at a clinic the actor does not administer: MFA belongs to the account,
    so one clinic's admin must not weaken another clinic's staff's sign-in."""
    if user_id == actor.user_id:
        raise Conflict(
            "you cannot reset your own MFA; another administrator must do it",
            code="mfa_reset_self",
        )
    user = await require_member(uow, organization_id=actor.organization_id, user_id=user_id)
    if not user.mfa_enabled and user.mfa_pending_secret_sealed is None:
        raise Conflict("this user has no MFA to reset", code="mfa_not_enabled")
    user_orgs = set(
        (
            await uow.session.scalars(
                select(Membership.organization_id).where(Membership.user_id == user.id)
            )
        ).all()
    )
    administered = set(
        (
            await uow.session.scalars(
                select(Membership.organization_id).where(
                    Membership.user_id == actor.user_id, Membership.role == Role.admin.value
                )
            )
        ).all()
    )
    if not user_orgs <= administered:
        raise Conflict(
            "this user also works at a clinic you do not administer; an administrator of every "
            "clinic the user belongs to must reset it",
            code="mfa_reset_other_organization",
        )
    user.mfa_secret_sealed = None
    user.mfa_pending_secret_sealed = None
    user.mfa_enabled_at = None
    user.mfa_last_timestep = None
    await uow.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    await revoke_all_sessions(uow, user.id, reason="mfa_reset")
    await audit_by_actor(
        uow,
        actor,
        action="mfa.reset_by_admin",
        target_type="user",
        target_id=user.id,
        purpose="security",
    )
    return user


async def _revoke_other_sessions(uow: SqlUnitOfWork, actor: Actor, *, reason: str) -> None:
    await uow.session.execute(
        update(AuthSession)
        .where(
            AuthSession.user_id == actor.user_id,
            AuthSession.id != actor.session_id,
            AuthSession.revoked_at.is_(None),
        )
        .values(revoked_at=uow.clock.now(), revoked_reason=reason)
    )

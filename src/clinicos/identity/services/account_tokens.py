"""Password reset and email verification: single-use, hashed, expiring tokens sent by mail."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from clinicos.identity.errors import InvalidToken
from clinicos.identity.models import USER_ACTIVE, AccountToken, UserAccount
from clinicos.identity.runtime import IdentityRuntime
from clinicos.identity.services.audit import audit_security
from clinicos.identity.services.users import (
    check_new_password,
    normalize_email,
    revoke_all_sessions,
    set_password,
)
from clinicos.identity.tokens import new_opaque_token, token_hash
from clinicos.kernel.errors import ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork, UnitOfWorkFactory
from clinicos.platform.mail import MailDeliveryFailed, OutgoingMail
from clinicos.platform.observability.logging import get_logger

PASSWORD_RESET = "password_reset"  # noqa: S105 (a purpose tag)
EMAIL_VERIFICATION = "email_verification"
log = get_logger("clinicos.identity")


async def _issue(uow: SqlUnitOfWork, user: UserAccount, purpose: str, ttl: timedelta) -> str:
    now = uow.clock.now()
    # A new link supersedes any earlier unused one of the same purpose.
    await uow.session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user.id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
    token = new_opaque_token()
    uow.session.add(
        AccountToken(
            id=new_id(),
            user_id=user.id,
            purpose=purpose,
            token_hash=token_hash(token),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return token


async def _send(runtime: IdentityRuntime, mail: OutgoingMail) -> None:
    # Sent after commit; a failed send is logged and the user may simply ask again. The token
    # is not put in the outbox, because that would store the live token in clear.
    try:
        await runtime.mailer.send(mail)
    except MailDeliveryFailed as exc:
        log.warning("account_mail_failed", template=mail.kind, exc_info=exc)


async def request_password_reset(
    *, uows: UnitOfWorkFactory, runtime: IdentityRuntime, email: str, request_id: str | None
) -> None:
    """Always succeeds for the caller, so the answer never tells whether the email exists."""
    try:
        address = normalize_email(email)
    except ValidationFailed:
        return
    async with uows() as uow:
        user = await uow.session.scalar(select(UserAccount).where(UserAccount.email == address))
        if user is None or user.status != USER_ACTIVE:
            await audit_security(
                uow,
                action="auth.password_reset_request",
                outcome="failure",
                organization_id=None,
                user_id=None,
                request_id=request_id,
            )
            await uow.commit()
            return
        ttl = timedelta(minutes=runtime.settings.password_reset_ttl_minutes)
        token = await _issue(uow, user, PASSWORD_RESET, ttl)
        await audit_security(
            uow,
            action="auth.password_reset_request",
            outcome="success",
            organization_id=None,
            user_id=user.id,
            request_id=request_id,
        )
        await uow.commit()
    link = f"{runtime.settings.public_base_url}/reset-password#token={token}"
    await _send(
        runtime,
        OutgoingMail(
            to=address,
            kind=PASSWORD_RESET,
            subject="Reset your clinicos password",
            text=(
                f"To choose a new password, open this link within "
                f"{runtime.settings.password_reset_ttl_minutes} minutes:\n\n{link}\n\n"
                "If you did not ask for this, ignore this message."
            ),
        ),
    )


async def _consume(uow: SqlUnitOfWork, token: str, purpose: str) -> UserAccount:
    now = uow.clock.now()
    row = await uow.session.scalar(
        select(AccountToken)
        .where(AccountToken.token_hash == token_hash(token), AccountToken.purpose == purpose)
        .with_for_update()  # single use: a concurrent second use waits, then sees used_at
    )
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise InvalidToken("the link is invalid, expired or already used")
    row.used_at = now
    user = await uow.session.get(UserAccount, row.user_id)
    if user is None or user.status != USER_ACTIVE:
        raise InvalidToken("the link is invalid, expired or already used")
    return user


async def reset_password(
    *,
    uows: UnitOfWorkFactory,
    runtime: IdentityRuntime,
    token: str,
    new_password: str,
    request_id: str | None,
) -> None:
    async with uows() as uow:
        user = await _consume(uow, token, PASSWORD_RESET)
        check_new_password(new_password, email=user.email, field="new_password")
        set_password(uow, runtime, user, new_password)
        await revoke_all_sessions(uow, user.id, reason="password_reset")
        await audit_security(
            uow,
            action="auth.password_reset",
            outcome="success",
            organization_id=None,
            user_id=user.id,
            request_id=request_id,
        )
        await uow.commit()


async def request_email_verification(
    *, uows: UnitOfWorkFactory, runtime: IdentityRuntime, user_id: str, request_id: str | None
) -> None:
    async with uows() as uow:
        user = await uow.session.get(UserAccount, user_id)
        if user is None or user.email_verified_at is not None:
            return
        ttl = timedelta(hours=runtime.settings.email_verification_ttl_hours)
        token = await _issue(uow, user, EMAIL_VERIFICATION, ttl)
        await audit_security(
            uow,
            action="auth.email_verification_request",
            outcome="success",
            organization_id=None,
            user_id=user.id,
            request_id=request_id,
        )
        await uow.commit()
        address = user.email
    link = f"{runtime.settings.public_base_url}/verify-email#token={token}"
    await _send(
        runtime,
        OutgoingMail(
            to=address,
            kind=EMAIL_VERIFICATION,
            subject="Confirm your email for clinicos",
            text=f"Confirm this address by opening:\n\n{link}\n",
        ),
    )


async def verify_email(*, uows: UnitOfWorkFactory, token: str, request_id: str | None) -> None:
    async with uows() as uow:
        user = await _consume(uow, token, EMAIL_VERIFICATION)
        user.email_verified_at = uow.clock.now()
        await audit_security(
            uow,
            action="auth.email_verified",
            outcome="success",
            organization_id=None,
            user_id=user.id,
            request_id=request_id,
        )
        await uow.commit()

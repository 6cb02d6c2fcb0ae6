"""Sign-in use cases: password, MFA step, refresh rotation with reuse detection, logout, and
turning an access token back into an Actor."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar, cast

from sqlalchemy import Table, and_, bindparam, select, update

from clinicos.identity.errors import (
    InvalidCredentials,
    InvalidMfaCode,
    InvalidToken,
    OrganizationRequired,
)
from clinicos.identity.events import AccountLocked
from clinicos.identity.mfa import accepted_timestep, recovery_code_hash
from clinicos.identity.models import (
    USER_ACTIVE,
    AuthSession,
    Membership,
    Organization,
    RecoveryCode,
    RefreshToken,
    UserAccount,
)
from clinicos.identity.permissions import Role, permissions_for
from clinicos.identity.runtime import IdentityRuntime
from clinicos.identity.services.audit import audit_security
from clinicos.identity.services.users import normalize_email, roles_in
from clinicos.identity.tokens import (
    AccessClaims,
    TokenCodec,
    TokenInvalid,
    new_opaque_token,
    token_hash,
)
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError, ServiceUnavailable, ValidationFailed
from clinicos.kernel.ids import new_id
from clinicos.platform.crypto import SealBroken
from clinicos.platform.db.uow import SqlUnitOfWork, UnitOfWorkFactory

MFA_AUDIENCE_SUFFIX = ":mfa"
KEY_RELOAD_MIN_SECONDS = 5.0
ENROLL_SCOPE = "mfa_enroll"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    organization: str  # slug
    scope: str | None = None  # "mfa_enroll": may only enrol MFA before anything else


@dataclass(frozen=True)
class MfaChallenge:
    mfa_token: str


# -- sign-in ----------


async def login(
    *,
    uows: UnitOfWorkFactory,
    runtime: IdentityRuntime,
    email: str,
    password: str,
    organization_slug: str | None,
    request_id: str | None,
) -> TokenPair | MfaChallenge:
    try:
        address: str | None = normalize_email(email)
    except ValidationFailed:
        address = None
    # Loaded before the unit of work opens: on SQLite a second connection inside it would
    # wait for the write lock the unit of work holds.
    codec = await runtime.codec()
    async with uows() as uow:
        user = None
        if address is not None:
            user = await uow.session.scalar(select(UserAccount).where(UserAccount.email == address))
        now = uow.clock.now()
        check = runtime.passwords.verify(user.password_hash if user else None, password)
        if user is None or not _may_sign_in(user, now) or not check.ok:
            await _record_failure(uow, runtime, user, now, request_id)
            await uow.commit()
            raise InvalidCredentials()
        if check.new_hash:
            user.password_hash = check.new_hash
        if not user.mfa_enabled:
            # With MFA the sign-in is not complete yet: failures only reset once the second
            # factor passes, or alternating right passwords and wrong codes would never lock.
            user.failed_login_count = 0
        org, roles = await _choose_organization(uow, user, organization_slug)
        if user.mfa_enabled:
            token = _mfa_token(codec, runtime, user, org, roles, now)
            await audit_security(
                uow,
                action="auth.login_password",
                outcome="success",
                organization_id=org.id,
                user_id=user.id,
                request_id=request_id,
            )
            await uow.commit()
            return MfaChallenge(mfa_token=token)
        scope = ENROLL_SCOPE if _mfa_mandatory(org, roles) else None
        return await _signed_in(uow, runtime, codec, user, org, roles, request_id, scope=scope)


def _may_sign_in(user: UserAccount, now: datetime) -> bool:
    if user.status != USER_ACTIVE:
        return False
    return user.locked_until is None or user.locked_until <= now


async def _record_failure(
    uow: SqlUnitOfWork,
    runtime: IdentityRuntime,
    user: UserAccount | None,
    now: datetime,
    request_id: str | None,
) -> None:
    if user is not None and user.status == USER_ACTIVE and not _locked(user, now):
        user.failed_login_count += 1
        if user.failed_login_count >= runtime.settings.lockout_threshold:
            user.locked_until = now + timedelta(minutes=runtime.settings.lockout_minutes)
            user.failed_login_count = 0
            uow.record(AccountLocked(user_id=user.id))
            await audit_security(
                uow,
                action="auth.account_locked",
                outcome="success",
                organization_id=None,
                user_id=user.id,
                request_id=request_id,
            )
    await audit_security(
        uow,
        action="auth.login",
        outcome="failure",
        organization_id=None,
        user_id=user.id if user else None,
        request_id=request_id,
    )


def _locked(user: UserAccount, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


async def _choose_organization(
    uow: SqlUnitOfWork, user: UserAccount, slug: str | None
) -> tuple[Organization, frozenset[str]]:
    rows = (
        await uow.session.execute(
            select(Organization, Membership.role)
            .join(Membership, Membership.organization_id == Organization.id)
            .where(Membership.user_id == user.id)
        )
    ).all()
    by_slug: dict[str, tuple[Organization, set[str]]] = {}
    for org, role in rows:
        by_slug.setdefault(org.slug, (org, set()))[1].add(role)
    if slug is None and len(by_slug) == 1:
        slug = next(iter(by_slug))
    if slug is None or slug not in by_slug:
        # Only reached after a correct password, so naming the user's own clinics leaks nothing.
        required = OrganizationRequired(
            "choose the organization to sign in to",
            errors=[FieldError(("organization",), "one of " + ", ".join(sorted(by_slug)))],
        )
        required.data["organizations"] = sorted(by_slug)  # the console offers them as choices
        raise required
    org, roles = by_slug[slug]
    return org, frozenset(roles)


def _mfa_mandatory(org: Organization, roles: frozenset[str]) -> bool:
    return Role.admin.value in roles and org.mfa_required_for_admin


def _mfa_token(
    codec: TokenCodec,
    runtime: IdentityRuntime,
    user: UserAccount,
    org: Organization,
    roles: frozenset[str],
    now: datetime,
) -> str:
    token, _ = codec.issue(
        user_id=user.id,
        organization_id=org.id,
        roles=tuple(sorted(roles)),
        session_id="",
        now=now,
        ttl=timedelta(seconds=runtime.settings.mfa_token_ttl_seconds),
        audience=codec.audience + MFA_AUDIENCE_SUFFIX,
    )
    return token


async def _signed_in(
    uow: SqlUnitOfWork,
    runtime: IdentityRuntime,
    codec: TokenCodec,
    user: UserAccount,
    org: Organization,
    roles: frozenset[str],
    request_id: str | None,
    *,
    scope: str | None = None,
) -> TokenPair:
    """The last step of every successful sign-in: session, tokens, audit row, one commit."""
    pair = await _open_session(uow, runtime, codec, user, org, roles, scope=scope)
    await audit_security(
        uow,
        action="auth.login",
        outcome="success",
        organization_id=org.id,
        user_id=user.id,
        request_id=request_id,
    )
    await uow.commit()
    return pair


async def _open_session(
    uow: SqlUnitOfWork,
    runtime: IdentityRuntime,
    codec: TokenCodec,
    user: UserAccount,
    org: Organization,
    roles: frozenset[str],
    *,
    scope: str | None = None,
) -> TokenPair:
    now = uow.clock.now()
    session = AuthSession(
        id=new_id(),
        user_id=user.id,
        organization_id=org.id,
        created_at=now,
        expires_at=now + timedelta(seconds=runtime.settings.session_max_age_seconds),
    )
    uow.session.add(session)
    await uow.session.flush()
    return _issue_pair(uow, runtime, codec, session, user.id, org.slug, roles, scope=scope)


def _issue_pair(
    uow: SqlUnitOfWork,
    runtime: IdentityRuntime,
    codec: TokenCodec,
    session: AuthSession,
    user_id: str,
    org_slug: str,
    roles: frozenset[str],
    *,
    scope: str | None = None,
) -> TokenPair:
    now = uow.clock.now()
    refresh = new_opaque_token()
    uow.session.add(
        RefreshToken(
            id=new_id(),
            session_id=session.id,
            token_hash=token_hash(refresh),
            issued_at=now,
            expires_at=min(
                session.expires_at,
                now + timedelta(seconds=runtime.settings.refresh_token_ttl_seconds),
            ),
        )
    )
    ttl = runtime.settings.access_token_ttl_seconds
    access, _ = codec.issue(
        user_id=user_id,
        organization_id=session.organization_id,
        roles=tuple(sorted(roles)),
        session_id=session.id,
        now=now,
        ttl=timedelta(seconds=ttl),
        extra={"scope": scope} if scope else None,
    )
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=ttl,
        organization=org_slug,
        scope=scope,
    )


T = TypeVar("T")


async def _with_current_keys(runtime: IdentityRuntime, check: Callable[[TokenCodec], T]) -> T:
    """Run a token check; if the token names a key this process hasn't loaded (another process
    rotated), reload the keys and check again. Reloads happen at most every few seconds, so a
    stream of made-up key ids cannot turn every request into a keyring query."""
    codec = await runtime.codec()
    try:
        return check(codec)
    except TokenInvalid as exc:
        if str(exc) != "unknown key id":
            raise
    return check(await runtime.codec(refresh_if_older_than=KEY_RELOAD_MIN_SECONDS))


# -- MFA step ----------


async def complete_mfa(
    *,
    uows: UnitOfWorkFactory,
    runtime: IdentityRuntime,
    mfa_token: str,
    code: str,
    request_id: str | None,
) -> TokenPair:
    now = runtime.clock.now()
    try:
        # Decoded before the unit of work opens (see login) and with the keys reloaded when the
        # token names one this process hasn't seen yet.
        claims = await _with_current_keys(
            runtime,
            lambda c: c.decode(mfa_token, now=now, audience=c.audience + MFA_AUDIENCE_SUFFIX),
        )
    except TokenInvalid as exc:
        raise InvalidToken("the sign-in step has expired; sign in again") from exc
    codec = await runtime.codec()
    async with uows() as uow:
        user = await uow.session.get(UserAccount, str(claims["sub"]))
        org = await uow.session.get(Organization, str(claims["org"]))
        if user is None or org is None or not _may_sign_in(user, now) or not user.mfa_enabled:
            raise InvalidToken("the sign-in step has expired; sign in again")
        if not await verify_second_factor(uow, runtime, user, code, now):
            await _record_failure(uow, runtime, user, now, request_id)
            await uow.commit()
            raise InvalidMfaCode()
        user.failed_login_count = 0
        roles = await roles_in(uow, user.id, org.id)
        return await _signed_in(uow, runtime, codec, user, org, roles, request_id)


async def verify_second_factor(
    uow: SqlUnitOfWork, runtime: IdentityRuntime, user: UserAccount, code: str, now: datetime
) -> bool:
    """A TOTP code (each usable once) or an unused recovery code (spent on use)."""
    # Lock the user's row and re-read it, so two requests carrying the same code at the same
    # moment are checked one after the other and only the first can pass.
    await uow.session.refresh(
        user, attribute_names=["mfa_secret_sealed", "mfa_last_timestep"], with_for_update=True
    )
    code = code.strip()
    sealed_secret_unreadable = False
    if user.mfa_secret_sealed:
        try:
            secret = runtime.totp_box.open(user.mfa_secret_sealed, aad=user.id).decode()
        except SealBroken:
            # Sealed under another CLINICOS_SECRET_KEY. Recovery codes are plain hashes and
            # still work, so they are tried before giving up.
            sealed_secret_unreadable = True
        else:
            step = accepted_timestep(secret, code, now=now, last_used=user.mfa_last_timestep)
            if step is not None:
                user.mfa_last_timestep = step
                return True
    spent = await uow.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == recovery_code_hash(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
    )
    if spent.rowcount:  # type: ignore[attr-defined]
        return True
    if sealed_secret_unreadable:
        raise ServiceUnavailable(
            "authenticator secrets cannot be opened with the configured CLINICOS_SECRET_KEY; "
            "restore the previous secret, or use a recovery code and enrol MFA again",
            code="mfa_secrets_unavailable",
        )
    return False


# -- refresh and logout ----------


async def refresh(
    *, uows: UnitOfWorkFactory, runtime: IdentityRuntime, refresh_token: str, request_id: str | None
) -> TokenPair:
    codec = await runtime.codec()
    async with uows() as uow:
        now = uow.clock.now()
        row = await uow.session.scalar(
            # Row lock: a concurrent second use waits, then sees used_at and counts as reuse.
            select(RefreshToken)
            .where(RefreshToken.token_hash == token_hash(refresh_token))
            .with_for_update()
        )
        if row is None:
            raise InvalidToken()
        session = await uow.session.get(AuthSession, row.session_id)
        assert session is not None
        if row.used_at is not None:
            # RFC 9700 §4.14.2: a refresh token presented twice means it leaked; end the family.
            if session.revoked_at is None:
                session.revoked_at = now
                session.revoked_reason = "refresh_token_reuse"
            await audit_security(
                uow,
                action="auth.refresh_reuse",
                outcome="denied",
                organization_id=session.organization_id,
                user_id=session.user_id,
                request_id=request_id,
                target_type="session",
                target_id=session.id,
            )
            await uow.commit()
            raise InvalidToken()
        user = await uow.session.get(UserAccount, session.user_id)
        org = await uow.session.get(Organization, session.organization_id)
        if (
            session.revoked_at is not None
            or session.expires_at <= now
            or row.expires_at <= now
            or user is None
            or org is None
            or user.status != USER_ACTIVE
        ):
            raise InvalidToken()
        row.used_at = now
        roles = await roles_in(uow, user.id, org.id)
        if not roles:
            raise InvalidToken()
        scope = ENROLL_SCOPE if _mfa_mandatory(org, roles) and not user.mfa_enabled else None
        pair = _issue_pair(uow, runtime, codec, session, user.id, org.slug, roles, scope=scope)
        await uow.commit()
        return pair


async def logout(*, uows: UnitOfWorkFactory, actor: Actor) -> None:
    async with uows() as uow:
        await uow.session.execute(
            update(AuthSession)
            .where(AuthSession.id == actor.session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=uow.clock.now(), revoked_reason="logout")
        )
        await audit_security(
            uow,
            action="auth.logout",
            outcome="success",
            organization_id=actor.organization_id,
            user_id=actor.user_id,
            request_id=actor.request_id,
            target_type="session",
            target_id=actor.session_id,
        )
        await uow.commit()


# -- access tokens -> actors ----------


async def authenticate(
    *,
    uows: UnitOfWorkFactory,
    runtime: IdentityRuntime,
    access_token: str,
    request_id: str | None,
) -> tuple[Actor, str | None]:
    """The Actor behind a bearer token, and the token's restricted scope if it has one.

    Beyond the signature, the session must still be open and the user active, so logout,
    disabling and password changes take effect at once, not when the token expires."""
    claims = await verified_access_claims(runtime, access_token)
    async with uows() as uow:
        actor = await session_actor(uow, runtime, claims, request_id=request_id)
    return actor, claims.scope


async def verified_access_claims(runtime: IdentityRuntime, access_token: str) -> AccessClaims:
    """The claims of a validly signed, unexpired access token (no database read: the session
    behind it is checked by :func:`session_actor`); ``InvalidToken`` otherwise."""
    now = runtime.clock.now()
    cache = runtime.verified_tokens
    try:
        # The signature check is cached per token (VerifiedTokenCache: expiry still applies,
        # key reloads start afresh); the session, user and roles are read every time.
        return await _with_current_keys(
            runtime,
            lambda codec: cache.verify(
                codec,
                access_token,
                now=now,
                check=lambda: codec.verify_access(access_token, now=now),
            ),
        )
    except TokenInvalid as exc:
        raise InvalidToken() from exc


async def session_actor(
    uow: SqlUnitOfWork,
    runtime: IdentityRuntime,
    claims: AccessClaims,
    *,
    request_id: str | None,
) -> Actor:
    """The Actor of verified ``claims``, read in the caller's unit of work: the session must
    still be open, the user active and still a member with a role (``InvalidToken`` otherwise).

    Read on every request (one statement), so logout, disabling and role changes act on the
    next request. The caller may be a unit of work that goes on to do the request's work (see
    ``identity.dependencies.require_unit_of_work``): the check and the work then share one
    transaction."""
    now = runtime.clock.now()
    # One statement: the session, its user's status and the user's roles in the session's
    # organization (one row per role; a member with no role left gives one row, role NULL).
    rows = (await uow.session.execute(_SESSION_ACTOR, {"session_id": claims.session_id})).all()
    if not rows:
        raise InvalidToken()
    user_id, organization_id, expires_at, revoked_at, status, _ = rows[0]
    if (
        revoked_at is not None
        or expires_at <= now
        or status != USER_ACTIVE
        or user_id != claims.user_id
        or organization_id != claims.organization_id
    ):
        raise InvalidToken()
    # Roles are read fresh, so a revoked role stops working before the token expires.
    roles = frozenset(row[5] for row in rows if row[5] is not None)
    if not roles:
        raise InvalidToken()
    return Actor(
        user_id=user_id,
        organization_id=organization_id,
        roles=roles,
        permissions=_permissions(roles),
        session_id=claims.session_id,
        request_id=request_id,
    )


# Built once: the statement every authenticated request runs (its compiled form is cached by
# SQLAlchemy; building it per request cost a noticeable share of the request's CPU).
_sessions_t = cast(Table, AuthSession.__table__)
_users_t = cast(Table, UserAccount.__table__)
_members_t = cast(Table, Membership.__table__)
# Table columns, not ORM attributes: a plain Core select skips the ORM's statement and result
# machinery (the rows are tuples either way).
_SESSION_ACTOR = (
    select(
        _sessions_t.c.user_id,
        _sessions_t.c.organization_id,
        _sessions_t.c.expires_at,
        _sessions_t.c.revoked_at,
        _users_t.c.status,
        _members_t.c.role,
    )
    .join(_users_t, _users_t.c.id == _sessions_t.c.user_id)
    .outerjoin(
        _members_t,
        and_(
            _members_t.c.user_id == _sessions_t.c.user_id,
            _members_t.c.organization_id == _sessions_t.c.organization_id,
        ),
    )
    .where(_sessions_t.c.id == bindparam("session_id"))
)


@functools.lru_cache(maxsize=256)
def _permissions(roles: frozenset[str]) -> frozenset[str]:
    """The permission names a set of roles grants (the matrix is code: fixed per process)."""
    return frozenset(p.value for p in permissions_for(roles))


# -- organizations of a signed-in user (the console's organization switcher) ----------


@dataclass(frozen=True)
class OrganizationChoice:
    slug: str
    name: str


async def organizations_of(*, uows: UnitOfWorkFactory, actor: Actor) -> list[OrganizationChoice]:
    """The organizations the actor's user belongs to (their own memberships only)."""
    async with uows() as uow:
        rows = (
            await uow.session.execute(
                select(Organization.slug, Organization.name)
                .join(Membership, Membership.organization_id == Organization.id)
                .where(Membership.user_id == actor.user_id)
                .distinct()
                .order_by(Organization.name)
            )
        ).all()
    return [OrganizationChoice(slug=slug, name=name) for slug, name in rows]


async def switch_organization(
    *,
    uows: UnitOfWorkFactory,
    runtime: IdentityRuntime,
    actor: Actor,
    organization_slug: str,
    request_id: str | None,
) -> TokenPair:
    """End the actor's session and open one in another organization they belong to.

    The second factor was already passed for this sign-in; a clinic that makes MFA mandatory for
    admins still gets an enrol-only token when the user has none."""
    codec = await runtime.codec()
    async with uows() as uow:
        now = uow.clock.now()
        user = await uow.session.get(UserAccount, actor.user_id)
        if user is None or not _may_sign_in(user, now):
            raise InvalidToken()
        org, roles = await _choose_organization(uow, user, organization_slug)
        await uow.session.execute(
            update(AuthSession)
            .where(AuthSession.id == actor.session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason="switch_organization")
        )
        scope = ENROLL_SCOPE if _mfa_mandatory(org, roles) and not user.mfa_enabled else None
        pair = await _open_session(uow, runtime, codec, user, org, roles, scope=scope)
        await audit_security(
            uow,
            action="auth.switch_organization",
            outcome="success",
            organization_id=org.id,
            user_id=user.id,
            request_id=request_id,
        )
        await uow.commit()
        return pair

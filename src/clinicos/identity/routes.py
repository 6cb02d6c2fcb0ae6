"""Identity's HTTP API: sign-in, MFA, sessions, the current user, users of the organization."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from clinicos.identity.dependencies import authenticated, enrolling, public, require
from clinicos.identity.models import Organization, UserAccount
from clinicos.identity.permissions import Permission
from clinicos.identity.schemas import (
    AcceptedResponse,
    LoginRequest,
    MeRead,
    MfaCodeRequest,
    MfaEnrollmentResponse,
    MfaRequest,
    MfaRequiredResponse,
    OrganizationRead,
    PasswordChangeRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    RecoveryCodesResponse,
    RefreshRequest,
    TokenConfirm,
    TokenResponse,
    UserCreate,
    UserList,
    UserRead,
)
from clinicos.identity.services import (
    account_tokens,
    mfa_enrollment,
    organizations,
    sessions,
    users,
)
from clinicos.kernel.actor import Actor
from clinicos.platform.http.problems import request_id_of
from clinicos.platform.http.ratelimit import enforce

router = APIRouter(prefix="/api/v1", tags=["identity"])

ActorDep = Annotated[Actor, Depends(authenticated)]


def _container(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.container


def _request_id(request: Request) -> str | None:
    return request_id_of(request.scope)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _token_response(pair: sessions.TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        organization=pair.organization,
        scope=pair.scope,
    )


@router.post(
    "/auth/login",
    response_model=TokenResponse | MfaRequiredResponse,
    dependencies=[Depends(public)],
    summary="Sign in with email and password",
)
async def login(
    body: LoginRequest, request: Request, response: Response
) -> TokenResponse | MfaRequiredResponse:
    c = _container(request)
    # Per account and IP: one attacker can't lock everyone out from one address, nor guess fast.
    await enforce(request, response, "auth", f"{body.email.strip().lower()}|{_client_ip(request)}")
    result = await sessions.login(
        uows=c.uow,
        runtime=c.identity,
        email=body.email,
        password=body.password,
        organization_slug=body.organization,
        request_id=_request_id(request),
    )
    if isinstance(result, sessions.MfaChallenge):
        return MfaRequiredResponse(mfa_token=result.mfa_token)
    return _token_response(result)


@router.post(
    "/auth/mfa",
    response_model=TokenResponse,
    dependencies=[Depends(public)],
    summary="Complete sign-in with a TOTP or recovery code",
)
async def complete_mfa(body: MfaRequest, request: Request, response: Response) -> TokenResponse:
    c = _container(request)
    await enforce(request, response, "auth", f"mfa|{body.mfa_token[-24:]}|{_client_ip(request)}")
    pair = await sessions.complete_mfa(
        uows=c.uow,
        runtime=c.identity,
        mfa_token=body.mfa_token,
        code=body.code,
        request_id=_request_id(request),
    )
    return _token_response(pair)


@router.post(
    "/auth/refresh",
    response_model=TokenResponse,
    dependencies=[Depends(public)],
    summary="Rotate the refresh token; a reused one revokes its whole session",
)
async def refresh(body: RefreshRequest, request: Request, response: Response) -> TokenResponse:
    c = _container(request)
    # "write", not "auth": a refresh token can't be guessed (256 bits) and costs no hashing, and
    # auth fails closed without Redis, which would end every session at its next refresh.
    await enforce(request, response, "write", f"refresh|{_client_ip(request)}")
    pair = await sessions.refresh(
        uows=c.uow,
        runtime=c.identity,
        refresh_token=body.refresh_token,
        request_id=_request_id(request),
    )
    return _token_response(pair)


@router.post(
    "/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End this session (its access and refresh tokens stop working)",
)
async def logout(request: Request, actor: Annotated[Actor, Depends(enrolling)]) -> Response:
    await sessions.logout(uows=_container(request).uow, actor=actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/mfa/enroll",
    response_model=MfaEnrollmentResponse,
    summary="Start TOTP enrolment: a secret and its provisioning URI",
)
async def mfa_enroll(
    request: Request, actor: Annotated[Actor, Depends(enrolling)]
) -> MfaEnrollmentResponse:
    c = _container(request)
    async with c.uow(actor.organization_id) as uow:
        enrollment = await mfa_enrollment.begin_enrollment(uow=uow, runtime=c.identity, actor=actor)
        await uow.commit()
    return MfaEnrollmentResponse(
        secret=enrollment.secret, provisioning_uri=enrollment.provisioning_uri
    )


@router.post(
    "/auth/mfa/confirm",
    response_model=RecoveryCodesResponse,
    summary="Confirm enrolment with a code; returns one-time recovery codes",
)
async def mfa_confirm(
    body: MfaCodeRequest, request: Request, actor: Annotated[Actor, Depends(enrolling)]
) -> RecoveryCodesResponse:
    c = _container(request)
    async with c.uow(actor.organization_id) as uow:
        codes = await mfa_enrollment.confirm_enrollment(
            uow=uow, runtime=c.identity, actor=actor, code=body.code
        )
        await uow.commit()
    return RecoveryCodesResponse(recovery_codes=codes)


@router.post(
    "/auth/mfa/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Turn MFA off (needs a current code)",
)
async def mfa_disable(body: MfaCodeRequest, request: Request, actor: ActorDep) -> Response:
    c = _container(request)
    async with c.uow(actor.organization_id) as uow:
        await mfa_enrollment.disable_mfa(uow=uow, runtime=c.identity, actor=actor, code=body.code)
        await uow.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change your password (ends every session)",
)
async def change_password(
    body: PasswordChangeRequest, request: Request, actor: ActorDep
) -> Response:
    c = _container(request)
    async with c.uow(actor.organization_id) as uow:
        await users.change_password(
            uow=uow,
            runtime=c.identity,
            actor=actor,
            current_password=body.current_password,
            new_password=body.new_password,
        )
        await uow.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/password-reset/request",
    response_model=AcceptedResponse,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(public)],
    summary="Email a password-reset link (the answer is the same for unknown emails)",
)
async def password_reset_request(
    body: PasswordResetRequest, request: Request, response: Response
) -> AcceptedResponse:
    c = _container(request)
    await enforce(
        request, response, "auth", f"reset|{body.email.strip().lower()}|{_client_ip(request)}"
    )
    await account_tokens.request_password_reset(
        uows=c.uow, runtime=c.identity, email=body.email, request_id=_request_id(request)
    )
    return AcceptedResponse()


@router.post(
    "/auth/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(public)],
    summary="Set a new password with a reset token",
)
async def password_reset_confirm(
    body: PasswordResetConfirm, request: Request, response: Response
) -> Response:
    c = _container(request)
    await enforce(request, response, "auth", f"reset-confirm|{_client_ip(request)}")
    await account_tokens.reset_password(
        uows=c.uow,
        runtime=c.identity,
        token=body.token,
        new_password=body.new_password,
        request_id=_request_id(request),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/email-verification/request",
    response_model=AcceptedResponse,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Email a verification link to yourself",
)
async def email_verification_request(request: Request, actor: ActorDep) -> AcceptedResponse:
    c = _container(request)
    await account_tokens.request_email_verification(
        uows=c.uow, runtime=c.identity, user_id=actor.user_id, request_id=_request_id(request)
    )
    return AcceptedResponse()


@router.post(
    "/auth/email-verification/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(public)],
    summary="Confirm an email address with its token",
)
async def email_verification_confirm(body: TokenConfirm, request: Request) -> Response:
    await account_tokens.verify_email(
        uows=_container(request).uow, token=body.token, request_id=_request_id(request)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _user_read(user: UserAccount, roles: list[str] | frozenset[str], now_locked: bool) -> UserRead:
    return UserRead(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        status=user.status,
        roles=sorted(roles),
        mfa_enabled=user.mfa_enabled,
        email_verified=user.email_verified_at is not None,
        locked=now_locked,
        created_at=user.created_at,
    )


def _is_locked(c, user: UserAccount) -> bool:  # type: ignore[no-untyped-def]
    return user.locked_until is not None and user.locked_until > c.clock.now()


@router.get("/me", response_model=MeRead, summary="You, your organization and permissions")
async def me(request: Request, actor: ActorDep) -> MeRead:
    c = _container(request)
    async with c.uow(actor.organization_id) as uow:
        user = await users.require_member(
            uow, organization_id=actor.organization_id, user_id=actor.user_id
        )
        org: Organization = await organizations.require_organization(uow, actor.organization_id)
    return MeRead(
        user=_user_read(user, actor.roles, _is_locked(c, user)),
        organization=OrganizationRead.model_validate(org),
        permissions=sorted(actor.permissions),
    )


@router.get("/organizations/current", response_model=OrganizationRead)
async def current_organization(
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.organization_read))],
) -> OrganizationRead:
    async with _container(request).uow(actor.organization_id) as uow:
        org = await organizations.require_organization(uow, actor.organization_id)
    return OrganizationRead.model_validate(org)


@router.get("/users", response_model=UserList)
async def list_users(
    request: Request, actor: Annotated[Actor, Depends(require(Permission.user_read))]
) -> UserList:
    c = _container(request)
    async with c.uow(actor.organization_id) as uow:
        members = await users.list_members(uow, organization_id=actor.organization_id)
    return UserList(items=[_user_read(u, r, _is_locked(c, u)) for u, r in members])


@router.get("/users/{user_id}", response_model=UserRead)
async def get_user(
    user_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.user_read))],
) -> UserRead:
    c = _container(request)
    async with c.uow(actor.organization_id) as uow:
        user = await users.require_member(
            uow, organization_id=actor.organization_id, user_id=user_id
        )
        roles = await users.roles_in(uow, user.id, actor.organization_id)
    return _user_read(user, roles, _is_locked(c, user))


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED)
async def create_user(
    body: UserCreate,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.user_manage))],
) -> UserRead:
    c = _container(request)
    async with c.uow(actor.organization_id) as uow:
        user = await users.create_user(
            uow=uow,
            runtime=c.identity,
            actor=actor,
            organization_id=actor.organization_id,
            email=body.email,
            display_name=body.display_name,
            roles=[r.value for r in body.roles],
            password=body.password,
        )
        await uow.commit()
    return _user_read(user, [r.value for r in body.roles], False)


@router.post("/users/{user_id}/disable", response_model=UserRead)
async def disable_user(
    user_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.user_manage))],
) -> UserRead:
    c = _container(request)
    async with c.uow(actor.organization_id) as uow:
        user = await users.disable_user(uow=uow, actor=actor, user_id=user_id)
        roles = await users.roles_in(uow, user.id, actor.organization_id)
        await uow.commit()
    return _user_read(user, roles, _is_locked(c, user))


@router.post("/users/{user_id}/unlock", response_model=UserRead)
async def unlock_user(
    user_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.user_manage))],
) -> UserRead:
    c = _container(request)
    async with c.uow(actor.organization_id) as uow:
        user = await users.require_member(
            uow, organization_id=actor.organization_id, user_id=user_id
        )
        await users.unlock_user(uow=uow, actor=actor, user=user)
        roles = await users.roles_in(uow, user.id, actor.organization_id)
        await uow.commit()
    return _user_read(user, roles, False)


@router.post(
    "/users/{user_id}/mfa/reset",
    response_model=UserRead,
    summary="Turn off a user's MFA (lost device): clears the secret and recovery codes and ends "
    "every session of the user",
)
async def reset_user_mfa(
    user_id: str,
    request: Request,
    actor: Annotated[Actor, Depends(require(Permission.user_manage))],
) -> UserRead:
    c = _container(request)
    async with c.uow(actor.organization_id) as uow:
        user = await mfa_enrollment.reset_mfa(uow=uow, actor=actor, user_id=user_id)
        roles = await users.roles_in(uow, user.id, actor.organization_id)
        await uow.commit()
    return _user_read(user, roles, _is_locked(c, user))

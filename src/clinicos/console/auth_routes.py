"""Console sign-in: password, MFA step, MFA enrolment when the clinic requires it, sign-out,
organization switch and language choice. Uses identity's sign-in services, the same ones the
API's /auth routes call, so lockout, audit and rate limits are the API's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from clinicos.console import i18n
from clinicos.console.session import (
    COOKIE,
    COOKIE_PATH,
    LANG_COOKIE,
    PRE_COOKIE,
    ConsoleSession,
    PreSession,
    safe_next,
)
from clinicos.console.web import (
    PAGE_HEADERS,
    SIGN_IN_PATH,
    Page,
    anonymous,
    check_csrf,
    clear_cookies,
    form_of,
    page,
    render_anonymous,
    sealer_of,
    set_pre_cookie,
    set_session_cookie,
)
from clinicos.identity import (
    ENROLL_SCOPE,
    InvalidCredentials,
    InvalidMfaCode,
    InvalidToken,
    MfaChallenge,
    OrganizationRequired,
    TokenPair,
    begin_enrollment,
    complete_mfa,
    confirm_enrollment,
    login,
    logout,
    organizations_of,
    refresh,
    switch_organization,
)
from clinicos.kernel.errors import Conflict, RateLimited, ValidationFailed
from clinicos.platform.http.problems import request_id_of
from clinicos.platform.http.ratelimit import enforce

router = APIRouter(prefix=COOKIE_PATH, include_in_schema=False)
HOME = COOKIE_PATH + "/home"
CSS = (Path(__file__).parent / "assets" / "console.css").read_text(encoding="utf-8")


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _pre(request: Request) -> PreSession | None:
    now = request.app.state.container.clock.now()
    pre = sealer_of(request).open_pre(request.cookies.get(PRE_COOKIE))
    return None if pre is None or pre.expired(now) else pre


def _signed_in_response(request: Request, pair: TokenPair, next_path: str | None) -> Response:
    now = request.app.state.container.clock.now()
    session = ConsoleSession.start(pair.access_token, pair.refresh_token, now, pair.scope)
    target = COOKIE_PATH + "/mfa/enrol" if pair.scope == ENROLL_SCOPE else (next_path or HOME)
    response = RedirectResponse(target, status_code=303, headers=PAGE_HEADERS)
    set_session_cookie(request, response, session)
    clear_cookies(response, PRE_COOKIE)
    return response


@router.get("", dependencies=[Depends(anonymous)])
async def console_root() -> Response:
    return RedirectResponse(HOME, status_code=303)


@router.get("/assets/console.css", dependencies=[Depends(anonymous)])
async def stylesheet() -> Response:
    return Response(CSS, media_type="text/css", headers={"cache-control": "max-age=3600"})


@router.get("/sign-in", dependencies=[Depends(anonymous)])
async def sign_in_form(request: Request, expired: int = 0) -> Response:
    now = request.app.state.container.clock.now()
    pre = _pre(request) or PreSession.fresh(now)
    response = render_anonymous(
        request, "sign_in.html", csrf_token=pre.csrf, form={}, errors={}, expired=bool(expired)
    )
    set_pre_cookie(request, response, pre)
    return response


@router.post("/sign-in", dependencies=[Depends(anonymous)])
async def sign_in(request: Request) -> Response:
    c = request.app.state.container
    form = await form_of(request)
    pre = _pre(request)
    if pre is None:
        # The form outlived its pre-session cookie (15 min) or cookies are off: start over.
        return RedirectResponse(SIGN_IN_PATH + "?expired=1", status_code=303, headers=PAGE_HEADERS)
    check_csrf(pre.csrf, form)
    email = form.get("email", "").strip()[:320]
    organization = form.get("organization", "").strip()[:63] or None
    kept = {"email": email, "organization": organization or ""}
    errors: dict[str, str] = {}
    choices: list[str] = []
    status = 200
    if not email:
        errors["email"] = i18n.gettext("Enter your email address.")
    if not form.get("password"):
        errors["password"] = i18n.gettext("Enter your password.")
    if not errors:
        try:
            await enforce(request, Response(), "auth", f"{email.lower()}|{_client_ip(request)}")
            result = await login(
                uows=c.uow,
                runtime=c.identity,
                email=email,
                password=form.get("password", ""),
                organization_slug=organization,
                request_id=request_id_of(request.scope),
            )
        except InvalidCredentials:
            status = 401
            errors["form"] = i18n.gettext(
                "The email or password is not right, or the account is locked after too many "
                "failed attempts (it unlocks after 15 minutes, or an administrator can unlock "
                "it)."
            )
        except OrganizationRequired as exc:
            status = 422
            choices = list(exc.data.get("organizations", []))
            errors["organization"] = i18n.gettext("Choose the clinic to sign in to.")
        except RateLimited as exc:
            status = 429
            errors["form"] = i18n.gettext(
                "Too many sign-in attempts. Wait %(seconds)s seconds and try again.",
                seconds=exc.retry_after,
            )
        else:
            if isinstance(result, MfaChallenge):
                response = RedirectResponse(
                    COOKIE_PATH + "/mfa", status_code=303, headers=PAGE_HEADERS
                )
                pre = PreSession(pre.csrf, pre.created, result.mfa_token, pre.next)
                set_pre_cookie(request, response, pre)
                return response
            return _signed_in_response(request, result, pre.next)
    return render_anonymous(
        request,
        "sign_in.html",
        status=status,
        csrf_token=pre.csrf,
        form=kept,
        errors=errors,
        organizations=choices,
        expired=False,
    )


@router.get("/mfa", dependencies=[Depends(anonymous)])
async def mfa_form(request: Request) -> Response:
    pre = _pre(request)
    if pre is None or pre.mfa_token is None:
        return RedirectResponse(SIGN_IN_PATH, status_code=303, headers=PAGE_HEADERS)
    return render_anonymous(request, "mfa.html", csrf_token=pre.csrf, errors={})


@router.post("/mfa", dependencies=[Depends(anonymous)])
async def mfa_submit(request: Request) -> Response:
    c = request.app.state.container
    form = await form_of(request)
    pre = _pre(request)
    if pre is None or pre.mfa_token is None:
        return RedirectResponse(SIGN_IN_PATH + "?expired=1", status_code=303, headers=PAGE_HEADERS)
    check_csrf(pre.csrf, form)
    code = form.get("code", "").strip()[:64]
    errors: dict[str, str] = {}
    status = 200
    if not code:
        errors["code"] = i18n.gettext("Enter the 6-digit code from your authenticator app.")
    else:
        try:
            await enforce(
                request, Response(), "auth", f"mfa|{pre.mfa_token[-24:]}|{_client_ip(request)}"
            )
            pair = await complete_mfa(
                uows=c.uow,
                runtime=c.identity,
                mfa_token=pre.mfa_token,
                code=code,
                request_id=request_id_of(request.scope),
            )
        except InvalidMfaCode:
            status = 401
            errors["code"] = i18n.gettext("That code is not valid. Codes change every 30 seconds.")
        except InvalidToken:
            return RedirectResponse(
                SIGN_IN_PATH + "?expired=1", status_code=303, headers=PAGE_HEADERS
            )
        except RateLimited as exc:
            status = 429
            errors["code"] = i18n.gettext(
                "Too many sign-in attempts. Wait %(seconds)s seconds and try again.",
                seconds=exc.retry_after,
            )
        else:
            return _signed_in_response(request, pair, pre.next)
    return render_anonymous(request, "mfa.html", status=status, csrf_token=pre.csrf, errors=errors)


@router.get("/mfa/enrol")
async def mfa_enrol_form(p: Annotated[Page, Depends(page(allow_enrol=True))]) -> Response:
    c = p.container
    async with c.uow(p.actor.organization_id) as uow:
        try:
            enrollment = await begin_enrollment(uow=uow, runtime=c.identity, actor=p.actor)
        except Conflict:
            return p.redirect(HOME)
        await uow.commit()
    return p.render("mfa_enrol.html", enrollment=enrollment, errors={}, recovery_codes=None)


@router.post("/mfa/enrol")
async def mfa_enrol(p: Annotated[Page, Depends(page(allow_enrol=True))]) -> Response:
    c = p.container
    code = p.form.get("code", "").strip()[:16]
    try:
        async with c.uow(p.actor.organization_id) as uow:
            codes = await confirm_enrollment(uow=uow, runtime=c.identity, actor=p.actor, code=code)
            await uow.commit()
    except (ValidationFailed, InvalidMfaCode, Conflict):
        return p.render(
            "mfa_enrol.html",
            status=422,
            enrollment=None,
            errors={"code": i18n.gettext("That code is not valid. Start again.")},
            recovery_codes=None,
        )
    # With MFA on, a refresh issues tokens without the enrol-only restriction.
    pair = await refresh(
        uows=c.uow,
        runtime=c.identity,
        refresh_token=p.session.refresh,
        request_id=p.request_id,
    )
    p.session = p.session.with_tokens(pair.access_token, pair.refresh_token, pair.scope)
    return p.render("mfa_enrol.html", enrollment=None, errors={}, recovery_codes=codes)


@router.post("/sign-out")
async def sign_out(p: Annotated[Page, Depends(page(allow_enrol=True))]) -> Response:
    await logout(uows=p.container.uow, actor=p.actor)
    response = RedirectResponse(SIGN_IN_PATH, status_code=303, headers=PAGE_HEADERS)
    clear_cookies(response, COOKIE)
    return response


@router.post("/organization")
async def choose_organization(p: Annotated[Page, Depends(page())]) -> Response:
    slug = p.form.get("organization", "").strip()[:63]
    choices = await organizations_of(uows=p.container.uow, actor=p.actor)
    if slug not in {choice.slug for choice in choices}:
        return p.redirect(HOME)
    pair = await switch_organization(
        uows=p.container.uow,
        runtime=p.container.identity,
        actor=p.actor,
        organization_slug=slug,
        request_id=p.request_id,
    )
    if pair.scope == ENROLL_SCOPE:
        return _signed_in_response(p.request, pair, None)
    p.session = p.session.with_tokens(pair.access_token, pair.refresh_token, pair.scope)
    return p.redirect(HOME)


@router.get("/organization")
async def organization_form(p: Annotated[Page, Depends(page())]) -> Response:
    choices = await organizations_of(uows=p.container.uow, actor=p.actor)
    return p.render("organization.html", organizations=choices)


@router.post("/language", dependencies=[Depends(anonymous)])
async def choose_language(request: Request) -> Response:
    form = await form_of(request)
    session = sealer_of(request).open(request.cookies.get(COOKIE))
    pre = _pre(request)
    expected = session.csrf if session is not None else (pre.csrf if pre else None)
    if expected is None:
        return RedirectResponse(SIGN_IN_PATH, status_code=303, headers=PAGE_HEADERS)
    check_csrf(expected, form)
    lang = form.get("lang", "")
    target = safe_next(form.get("next")) or HOME
    response = RedirectResponse(target, status_code=303, headers=PAGE_HEADERS)
    if lang in i18n.LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=bool(request.app.state.container.settings.http.behind_tls),
            path=COOKIE_PATH,
        )
    return response


@router.get("/home")
async def home(p: Annotated[Page, Depends(page())]) -> Response:
    return p.render("home.html")

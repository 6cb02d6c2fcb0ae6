"""The console's request plumbing: templates, the signed-in page dependency (cookie session,
timeouts, token refresh, permission, CSRF), redirects and the HTML error page.

Every console route depends on exactly one of ``page(permission)``, ``page()`` (any signed-in
user) or ``anonymous`` — the same default-deny marker the API routes carry, so
tests/architecture/test_route_permissions.py checks the console too."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from clinicos.console import i18n
from clinicos.console.formatting import Formatter
from clinicos.console.session import (
    COOKIE,
    COOKIE_PATH,
    LANG_COOKIE,
    PRE_COOKIE,
    PRE_MAX_AGE_SECONDS,
    ConsoleSession,
    CookieSealer,
    PreSession,
    safe_next,
)
from clinicos.governance import record_audit
from clinicos.identity import (
    ENROLL_SCOPE,
    PERMISSION_ATTR,
    InvalidToken,
    Permission,
    authenticate,
    logout,
    organization_profile,
    refresh,
)
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import DomainError, PermissionDenied
from clinicos.platform.http.problems import register_problem_renderer, request_id_of
from clinicos.platform.http.ratelimit import enforce

TEMPLATES = Path(__file__).parent / "templates"
# Pages may show PHI: never cached, never framed; no script runs but our own files.
CONSOLE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {"cache-control": "no-store", "content-security-policy": CONSOLE_CSP}
SIGN_IN_PATH = COOKIE_PATH + "/sign-in"
_SAFE_METHODS = frozenset({"GET", "HEAD"})
ANONYMOUS = "public"
AUTHENTICATED = "authenticated"

templates = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.install_gettext_callables(  # type: ignore[attr-defined]
    i18n.gettext, i18n.ngettext, newstyle=True
)
templates.globals["LANGUAGES"] = i18n.LANGUAGES


class SignInRequired(Exception):
    """No usable console session: go to the sign-in page, then come back to ``next_path``."""

    def __init__(self, next_path: str | None, *, reason: str | None = None) -> None:
        super().__init__(reason or "sign-in required")
        self.next_path = next_path
        self.reason = reason


class EnrolmentRequired(Exception):
    """The clinic requires MFA for this account and it has none yet."""


class CsrfRejected(DomainError):
    status = 403
    code = "csrf_rejected"
    title = "Form expired"


def sealer_of(request: Request) -> CookieSealer:
    sealer: CookieSealer | None = getattr(request.app.state, "console_sealer", None)
    if sealer is None:
        secret = request.app.state.container.settings.secret_key.get_secret_value()
        sealer = request.app.state.console_sealer = CookieSealer(secret)
    return sealer


def secure_cookies(request: Request) -> bool:
    return bool(request.app.state.container.settings.http.behind_tls)


def language_of(request: Request) -> str:
    return i18n.negotiate(request.headers.get("accept-language"), request.cookies.get(LANG_COOKIE))


@dataclass
class Page:
    """A signed-in console request: who, where, in which language, and the cookie to send."""

    request: Request
    actor: Actor
    session: ConsoleSession
    formatter: Formatter
    organization_name: str
    lang: str
    form: Mapping[str, Any] = field(default_factory=dict)

    @property
    def container(self) -> Any:
        return self.request.app.state.container

    @property
    def request_id(self) -> str | None:
        return request_id_of(self.request.scope)

    def can(self, permission: Permission) -> bool:
        return self.actor.can(permission.value)

    def context(self, **values: Any) -> dict[str, Any]:
        return {
            "page": self,
            "actor": self.actor,
            "csrf_token": self.session.csrf,
            "fmt": self.formatter,
            "lang": self.lang,
            "Permission": Permission,
            "request_path": self.request.url.path,
            **values,
        }

    def render(self, template: str, *, status: int = 200, **values: Any) -> Response:
        html = templates.get_template(template).render(self.context(**values))
        return self._with_cookie(HTMLResponse(html, status_code=status, headers=PAGE_HEADERS))

    def redirect(self, path: str, **query: str) -> Response:
        target = path + ("?" + urlencode(query) if query else "")
        return self._with_cookie(RedirectResponse(target, status_code=303, headers=PAGE_HEADERS))

    def _with_cookie(self, response: Response) -> Response:
        set_session_cookie(self.request, response, self.session)
        return response


def set_session_cookie(request: Request, response: Response, session: ConsoleSession) -> None:
    response.set_cookie(
        COOKIE,
        sealer_of(request).seal(session),
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path=COOKIE_PATH,
    )


def set_pre_cookie(request: Request, response: Response, pre: PreSession) -> None:
    response.set_cookie(
        PRE_COOKIE,
        sealer_of(request).seal_pre(pre),
        max_age=PRE_MAX_AGE_SECONDS,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path=COOKIE_PATH,
    )


def clear_cookies(response: Response, *names: str) -> None:
    for name in names:
        response.delete_cookie(name, path=COOKIE_PATH)


async def form_of(request: Request) -> dict[str, str]:
    """The posted form as plain strings (files are not accepted by console forms)."""
    data = await request.form()
    return {key: value for key, value in data.items() if isinstance(value, str)}


def check_csrf(expected: str, form: Mapping[str, Any]) -> None:
    given = form.get("csrf_token")
    if not isinstance(given, str) or not hmac.compare_digest(given, expected):
        raise CsrfRejected(
            "this form has expired or did not come from this site (csrf_token); reload the page "
            "and try again"
        )


def _mark(func: Callable[..., Awaitable[Any]], marker: str) -> Callable[..., Awaitable[Any]]:
    setattr(func, PERMISSION_ATTR, marker)
    return func


async def anonymous(request: Request) -> None:
    """Marks a console route anyone may open (sign-in, MFA step, stylesheet)."""
    i18n.use_language(language_of(request))


_mark(anonymous, ANONYMOUS)


async def _end_quietly(request: Request, session: ConsoleSession) -> None:
    """An expired console sign-in also ends the server-side session (best effort: the tokens
    may already be unusable, which ends it just as well)."""
    c = request.app.state.container
    try:
        actor, _ = await authenticate(
            uows=c.uow, runtime=c.identity, access_token=session.access, request_id=None
        )
    except DomainError:
        try:
            pair = await refresh(
                uows=c.uow, runtime=c.identity, refresh_token=session.refresh, request_id=None
            )
            actor, _ = await authenticate(
                uows=c.uow, runtime=c.identity, access_token=pair.access_token, request_id=None
            )
        except DomainError:
            return
    await logout(uows=c.uow, actor=actor)


async def _signed_in(request: Request, *, allow_enrol: bool) -> tuple[Actor, ConsoleSession]:
    c = request.app.state.container
    now = c.clock.now()
    path = request.url.path if request.method in _SAFE_METHODS else None
    session = sealer_of(request).open(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired(path)
    if session.idle_expired(now) or session.absolute_expired(now):
        await _end_quietly(request, session)
        raise SignInRequired(path, reason="expired")
    rid = request_id_of(request.scope)
    try:
        actor, scope = await authenticate(
            uows=c.uow, runtime=c.identity, access_token=session.access, request_id=rid
        )
    except InvalidToken:
        # The access token lapsed (15 min) or the keys rotated: the refresh token renews it,
        # unless the session was ended (logout elsewhere, disabled user, reuse detected).
        try:
            pair = await refresh(
                uows=c.uow, runtime=c.identity, refresh_token=session.refresh, request_id=rid
            )
        except InvalidToken:
            raise SignInRequired(path, reason="expired") from None
        session = session.with_tokens(pair.access_token, pair.refresh_token, pair.scope)
        actor, scope = await authenticate(
            uows=c.uow, runtime=c.identity, access_token=pair.access_token, request_id=rid
        )
    if scope == ENROLL_SCOPE and not allow_enrol:
        raise EnrolmentRequired()
    return actor, session.touched(now)


def page(
    permission: Permission | None = None, *, allow_enrol: bool = False
) -> Callable[[Request], Awaitable[Page]]:
    """Dependency: the signed-in console request; with ``permission``, only if the user's roles
    in this organization grant it (a refusal is audited, as on the API). POSTs must carry the
    session's CSRF token."""

    async def dependency(request: Request) -> Page:
        lang = language_of(request)
        i18n.use_language(lang)
        actor, session = await _signed_in(request, allow_enrol=allow_enrol)
        request.state.actor = actor
        budget = "read" if request.method in _SAFE_METHODS else "write"
        await enforce(request, Response(), budget, f"user:{actor.user_id}")
        form: dict[str, str] = {}
        if request.method not in _SAFE_METHODS:
            form = await form_of(request)
            check_csrf(session.csrf, form)
        if permission is not None and not actor.can(permission.value):
            await _audit_denied(request, actor, permission)
            raise PermissionDenied(
                "your role in this organization does not allow this page",
                code="permission_denied",
            )
        c = request.app.state.container
        async with c.uow(actor.organization_id) as uow:
            profile = await organization_profile(uow, actor.organization_id)
        return Page(
            request=request,
            actor=actor,
            session=session,
            formatter=Formatter.for_organization(
                profile.locale, profile.timezone, profile.currency
            ),
            organization_name=profile.name,
            lang=lang,
            form=form,
        )

    dependency.__name__ = f"console_page_{permission.name if permission else 'signed_in'}"
    return _mark(dependency, permission.value if permission else AUTHENTICATED)


async def _audit_denied(request: Request, actor: Actor, permission: Permission) -> None:
    async with request.app.state.container.uow(actor.organization_id) as uow:
        await record_audit(
            uow,
            organization_id=actor.organization_id,
            actor_type=actor.actor_type,
            actor_id=actor.user_id,
            request_id=actor.request_id,
            action="access.denied",
            target_type="permission",
            target_id=permission.value,
            outcome="denied",
            purpose="security",
        )
        await uow.commit()


def render_anonymous(
    request: Request, template: str, *, status: int = 200, **values: Any
) -> HTMLResponse:
    html = templates.get_template(template).render(
        {"page": None, "lang": i18n.current_language(), "request_path": request.url.path, **values}
    )
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def sign_in_redirect(request: Request, exc: SignInRequired) -> Response:
    now = request.app.state.container.clock.now()
    response = RedirectResponse(
        SIGN_IN_PATH + ("?expired=1" if exc.reason == "expired" else ""),
        status_code=303,
        headers=PAGE_HEADERS,
    )
    clear_cookies(response, COOKIE)
    set_pre_cookie(request, response, PreSession.fresh(now, safe_next(exc.next_path)))
    return response


def _error_page(body: dict[str, Any], headers: dict[str, str] | None) -> Response:
    """Every console error as a page: the status, a plain explanation and the request id to quote;
    never a stack trace (500s arrive here from the last-resort middleware)."""
    html = templates.get_template("error.html").render(
        {
            "page": None,
            "lang": i18n.current_language(),
            "status": body.get("status", 500),
            "code": body.get("code"),
            "detail": body.get("detail", ""),
            "request_id": body.get("request_id"),
        }
    )
    return HTMLResponse(
        html,
        status_code=int(body.get("status", 500)),
        headers={**(headers or {}), **PAGE_HEADERS},
    )


def install_handlers(app: FastAPI) -> None:
    async def on_sign_in_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return sign_in_redirect(request, exc)

    async def on_enrolment_required(request: Request, exc: Exception) -> Response:
        return RedirectResponse(COOKIE_PATH + "/mfa/enrol", status_code=303, headers=PAGE_HEADERS)

    app.add_exception_handler(SignInRequired, on_sign_in_required)
    app.add_exception_handler(EnrolmentRequired, on_enrolment_required)
    register_problem_renderer(app, COOKIE_PATH, _error_page)

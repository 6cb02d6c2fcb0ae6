"""The console's sign-in state, in-process with a fixed clock (SQLite and PostgreSQL): idle and
absolute timeouts, refresh of a lapsed access token, CSRF on every form, tampered cookies,
the organization switch, the return to the page asked for, no open redirect, and the error page
that names the request id but never a stack trace."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from httpx import AsyncClient, Response

from clinicos.console.session import COOKIE, PRE_COOKIE
from clinicos.governance import list_audit_events
from tests.support import identity_fixtures
from tests.support.identity_fixtures import (
    PASSWORD,
    Harness,
    create_org,
    create_user,
    grant_roles,
    seed_clinic,
)

start_app = identity_fixtures.start_app
relaxed = identity_fixtures.relaxed

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(response: Response) -> str:
    found = CSRF.search(response.text)
    assert found, response.text[:500]
    return found.group(1)


async def console_sign_in(
    client: AsyncClient, email: str, password: str = PASSWORD, organization: str | None = None
) -> Response:
    form = await client.get("/console/sign-in")
    assert form.status_code == 200
    data = {"csrf_token": csrf_of(form), "email": email, "password": password}
    if organization:
        data["organization"] = organization
    return await client.post("/console/sign-in", data=data)


async def signed_in(harness: Harness, email: str) -> None:
    response = await console_sign_in(harness.client, email)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/home"


async def test_sign_in_sets_a_sealed_httponly_lax_cookie(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container)
    response = await console_sign_in(relaxed.client, users["clinician"].email)
    assert response.status_code == 303
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here; behind_tls adds it (test below)
    assert users["clinician"].email not in cookie and "eyJ" not in cookie  # sealed, not readable
    home = await relaxed.client.get("/console/home")
    assert home.status_code == 200 and "Start" in home.text
    assert home.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]


async def test_cookies_are_secure_behind_tls(start_app: identity_fixtures.StartApp) -> None:
    harness = await start_app(http={"behind_tls": True})
    response = await harness.client.get("/console/sign-in")
    cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(PRE_COOKIE + "=")
    )
    assert "Secure" in cookie and "HttpOnly" in cookie
    # Over plain HTTP the browser withholds a Secure cookie, so the form cannot be replayed.
    refused = await harness.client.post(
        "/console/sign-in", data={"csrf_token": csrf_of(response), "email": "a@b.example"}
    )
    assert refused.headers["location"] == "/console/sign-in?expired=1"


async def test_idle_for_thirty_minutes_signs_out_and_ends_the_session(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container)
    await signed_in(relaxed, users["clinician"].email)
    relaxed.clock.advance(timedelta(minutes=29))
    assert (await relaxed.client.get("/console/home")).status_code == 200  # activity resets it
    relaxed.clock.advance(timedelta(minutes=29))
    assert (await relaxed.client.get("/console/home")).status_code == 200
    relaxed.clock.advance(timedelta(minutes=31))
    response = await relaxed.client.get("/console/organization")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?expired=1"
    expired = await relaxed.client.get("/console/sign-in?expired=1")
    assert "Your session ended" in expired.text
    # The server-side session was ended too: the audit trail has the logout.
    org_id = users["clinician"].organization_id
    async with relaxed.container.uow(org_id) as uow:
        events = await list_audit_events(uow.session, organization_id=org_id, limit=50)
    actions = [e.action for e in events]
    assert "auth.logout" in actions
    # Signing in again returns to the page that was asked for.
    response = await console_sign_in(relaxed.client, users["clinician"].email)
    assert response.headers["location"] == "/console/organization"


async def test_twelve_hours_after_sign_in_it_ends_despite_activity(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container)
    await signed_in(relaxed, users["clinician"].email)
    for _ in range(24):  # a request every 29 minutes: never idle, 11.6 hours
        relaxed.clock.advance(timedelta(minutes=29))
        assert (await relaxed.client.get("/console/home")).status_code == 200
    relaxed.clock.advance(timedelta(minutes=29))  # 12.08 hours
    response = await relaxed.client.get("/console/home")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/sign-in")


async def test_a_lapsed_access_token_is_renewed_and_logout_elsewhere_ends_it(
    relaxed: Harness,
) -> None:
    users = await seed_clinic(relaxed.container)
    await signed_in(relaxed, users["clinician"].email)
    relaxed.clock.advance(timedelta(minutes=20))  # past the 15-minute access token
    assert (await relaxed.client.get("/console/home")).status_code == 200
    # Signing out ends the session: the old cookie replayed is refused.
    cookie = relaxed.client.cookies.get(COOKIE, path="/console")
    home = await relaxed.client.get("/console/home")
    out = await relaxed.client.post("/console/sign-out", data={"csrf_token": csrf_of(home)})
    assert out.status_code == 303 and out.headers["location"] == "/console/sign-in"
    relaxed.client.cookies.set(COOKIE, cookie or "", path="/console")
    replay = await relaxed.client.get("/console/home")
    assert replay.status_code == 303


async def test_forms_without_the_session_csrf_token_are_refused(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container)
    await signed_in(relaxed, users["clinician"].email)
    for data in ({}, {"csrf_token": "forged"}):
        response = await relaxed.client.post("/console/sign-out", data=data)
        assert response.status_code == 403
        assert "text/html" in response.headers["content-type"]
        assert "request id" in response.text.lower()
    assert (await relaxed.client.get("/console/home")).status_code == 200  # still signed in
    # The sign-in form is protected too (login CSRF).
    refused = await relaxed.client.post(
        "/console/sign-in",
        data={"csrf_token": "forged", "email": users["clinician"].email, "password": PASSWORD},
    )
    assert refused.status_code in (303, 403)
    assert COOKIE + "=" not in ";".join(refused.headers.get_list("set-cookie"))


async def test_a_tampered_or_foreign_cookie_is_no_session(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container)
    await signed_in(relaxed, users["clinician"].email)
    sealed = relaxed.client.cookies.get(COOKIE, path="/console") or ""
    flipped = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    for value in (flipped, "v1:garbage", "x" * 9000, ""):
        relaxed.client.cookies.set(COOKIE, value, path="/console")
        response = await relaxed.client.get("/console/home")
        assert response.status_code == 303, value[:20]
        assert response.headers["location"].startswith("/console/sign-in")


async def test_wrong_password_re_renders_with_the_email_kept(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container)
    response = await console_sign_in(relaxed.client, users["clinician"].email, "wrong-password")
    assert response.status_code == 401
    assert f'value="{users["clinician"].email}"' in response.text
    assert "locked" in response.text
    blank = await relaxed.client.post(
        "/console/sign-in", data={"csrf_token": csrf_of(response), "email": "", "password": ""}
    )
    assert blank.status_code == 200
    assert 'id="f-email-error"' in blank.text and 'id="f-password-error"' in blank.text


async def test_sign_in_rate_limit_is_the_apis(start_app: identity_fixtures.StartApp) -> None:
    harness = await start_app(rate_limit={"auth": "2/minute"})
    users = await seed_clinic(harness.container)
    statuses = [
        (await console_sign_in(harness.client, users["clinician"].email, "nope")).status_code
        for _ in range(3)
    ]
    assert statuses == [401, 401, 429]


async def test_organization_switch_for_a_member_of_two_clinics(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container)
    other = await create_org(relaxed.container, "santa-cruz", name="Santa Cruz")
    await grant_roles(relaxed.container, other, users["clinician"].email, ["nurse"])
    # With two clinics the sign-in asks which one, offering exactly the user's own.
    response = await console_sign_in(relaxed.client, users["clinician"].email)
    assert response.status_code == 422
    assert 'value="el-alto"' in response.text and 'value="santa-cruz"' in response.text
    response = await console_sign_in(
        relaxed.client, users["clinician"].email, organization="el-alto"
    )
    assert response.status_code == 303
    page = await relaxed.client.get("/console/organization")
    assert "Santa Cruz" in page.text and "El Alto" in page.text
    switched = await relaxed.client.post(
        "/console/organization", data={"csrf_token": csrf_of(page), "organization": "santa-cruz"}
    )
    assert switched.status_code == 303
    home = await relaxed.client.get("/console/home")
    assert "Santa Cruz" in home.text
    async with relaxed.container.uow(other) as uow:
        events = await list_audit_events(uow.session, organization_id=other, limit=20)
    actions = [e.action for e in events]
    assert "auth.switch_organization" in actions
    # A clinic the user does not belong to is not offered and not reachable.
    await create_org(relaxed.container, "cochabamba")
    page = await relaxed.client.get("/console/organization")
    assert "cochabamba" not in page.text.lower()
    stay = await relaxed.client.post(
        "/console/organization", data={"csrf_token": csrf_of(page), "organization": "cochabamba"}
    )
    assert stay.status_code == 303
    assert "Santa Cruz" in (await relaxed.client.get("/console/home")).text


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/api/v1/patients", "/console\\x"]
)
async def test_no_open_redirect_after_language_change(relaxed: Harness, target: str) -> None:
    form = await relaxed.client.get("/console/sign-in")
    response = await relaxed.client.post(
        "/console/language", data={"csrf_token": csrf_of(form), "lang": "es", "next": target}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/home"


async def test_error_page_has_the_request_id_and_no_trace(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container)
    await signed_in(relaxed, users["clinician"].email)
    response = await relaxed.client.get("/console/no-such-page")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert response.headers["x-request-id"] in response.text
    assert "Traceback" not in response.text


async def test_admin_without_mfa_must_enrol_first(start_app: identity_fixtures.StartApp) -> None:
    harness = await start_app(rate_limit={"auth": "100/minute"})
    org = await create_org(harness.container, "el-alto", mfa_required_for_admin=True)
    admin = await create_user(harness.container, org, "boss@elalto.example", roles=["admin"])
    response = await console_sign_in(harness.client, admin.email)
    assert response.headers["location"] == "/console/mfa/enrol"
    blocked = await harness.client.get("/console/home")
    assert blocked.status_code == 303 and blocked.headers["location"] == "/console/mfa/enrol"
    enrol = await harness.client.get("/console/mfa/enrol")
    secret = re.search(r'class="secret">([A-Z2-7]+)<', enrol.text)
    assert secret
    done = await harness.client.post(
        "/console/mfa/enrol",
        data={"csrf_token": csrf_of(enrol), "code": harness.totp(secret.group(1))},
    )
    assert done.status_code == 200 and done.text.count("<code>") == 10
    assert (await harness.client.get("/console/home")).status_code == 200


async def test_an_unexpected_error_is_a_friendly_page_with_the_request_id(
    relaxed: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = await seed_clinic(relaxed.container)
    await signed_in(relaxed, users["clinician"].email)

    async def broken(**_: object) -> None:
        raise RuntimeError("secret internal detail: Jorge Apaza")

    monkeypatch.setattr("clinicos.console.auth_routes.organizations_of", broken)
    response = await relaxed.client.get("/console/organization")
    assert response.status_code == 500
    assert "text/html" in response.headers["content-type"]
    assert response.headers["x-request-id"] in response.text
    assert "Something went wrong" in response.text
    assert "Traceback" not in response.text and "Jorge" not in response.text
    assert "RuntimeError" not in response.text

"""The console's admin pages in-process (SQLite and PostgreSQL): users and roles (list, create
with errors kept beside the fields, grant, revoke, unlock, MFA reset, disable), feature flags and
the rule pack page — each change through identity's, governance's and cds's services, audited as
the API's are, refused to roles without the permission, and 404 for another clinic's user."""

from __future__ import annotations

import re
from typing import Any

from httpx import Response

from clinicos.cds import activate_pack, approve_pack
from tests.support import identity_fixtures
from tests.support.identity_fixtures import (
    API,
    PASSWORD,
    Harness,
    SeededUser,
    audit_events,
    bearer,
    create_org,
    create_user,
    enroll_mfa,
    login,
    seed_clinic,
    sign_in,
)

start_app = identity_fixtures.start_app
relaxed = identity_fixtures.relaxed

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
STRONG = "Amber-Quarry-Lantern-58"
USERS = "/console/admin/users"

WEAK_PASSWORD = "password"  # pragma: allowlist secret (the weak one the form refuses)


def csrf_of(response: Response) -> str:
    found = CSRF.search(response.text)
    assert found, response.text[:500]
    return found.group(1)


async def console_as(harness: Harness, user: SeededUser) -> str:
    """Sign in to the console; returns the session's CSRF token."""
    form = await harness.client.get("/console/sign-in")
    response = await harness.client.post(
        "/console/sign-in",
        data={"csrf_token": csrf_of(form), "email": user.email, "password": user.password},
    )
    assert response.status_code == 303, response.text
    return csrf_of(await harness.client.get("/console/home"))


async def post(harness: Harness, path: str, csrf: str, data: Any = None) -> Response:
    """Post a form; ``data`` as a dict, or pairs when a name repeats (ticked boxes)."""
    pairs = list(data.items()) if isinstance(data, dict) else list(data or [])
    body: dict[str, list[str]] = {"csrf_token": [csrf]}
    for name, value in pairs:
        body.setdefault(name, []).append(value)
    return await harness.client.post(path, data=body)


def org_of(users: dict[str, SeededUser]) -> str:
    return next(iter(users.values())).organization_id


def error_of(response: Response, field: str) -> str:
    found = re.search(rf'<p class="error" id="{field}">([^<]*)</p>', response.text)
    assert found, response.text
    return found.group(1)


async def test_users_page_lists_members_with_roles_status_and_mfa(relaxed: Harness) -> None:
    # Arrange
    users = await seed_clinic(relaxed.container)
    other = await create_org(relaxed.container, "santa-cruz")
    await create_user(relaxed.container, other, "x@santacruz.example", slug="santa-cruz")
    await console_as(relaxed, users["admin"])
    # Act
    response = await relaxed.client.get(USERS)
    # Assert
    assert response.status_code == 200
    assert "clinician@elalto.example" in response.text and "admin@elalto.example" in response.text
    assert "x@santacruz.example" not in response.text  # another clinic's staff
    assert "2 users in this clinic" in response.text
    assert "MFA off" in response.text and "Active" in response.text


async def test_create_user_then_the_user_signs_in_and_it_is_audited(relaxed: Harness) -> None:
    # Arrange
    users = await seed_clinic(relaxed.container)
    csrf = await console_as(relaxed, users["admin"])
    # Act
    response = await post(
        relaxed,
        USERS,
        csrf,
        [
            ("email", "New.Nurse@ElAlto.example"),
            ("display_name", "Nueva Enfermera"),
            ("roles", "nurse"),
            ("roles", "agent"),
            ("password", STRONG),
        ],
    )
    # Assert
    assert response.status_code == 303, response.text
    detail = await relaxed.client.get(response.headers["location"])
    assert "User created" in detail.text and "Nueva Enfermera" in detail.text
    assert "Nurse" in detail.text and "Contact-centre agent" in detail.text
    signed = await login(relaxed.client, "new.nurse@elalto.example", STRONG)
    assert signed.status_code == 200 and "access_token" in signed.json()
    created = await audit_events(
        relaxed.container, organization_id=users["admin"].organization_id, action="user.create"
    )
    assert [e.actor_id for e in created].count(users["admin"].id) == 1


async def test_create_user_errors_are_shown_next_to_the_fields_with_input_kept(
    relaxed: Harness,
) -> None:
    # Arrange
    users = await seed_clinic(relaxed.container)
    csrf = await console_as(relaxed, users["admin"])
    base = {"email": "someone@elalto.example", "display_name": "Some One", "roles": "nurse"}
    # Act
    duplicate = await post(
        relaxed, USERS, csrf, base | {"email": users["clinician"].email, "password": STRONG}
    )
    weak = await post(relaxed, USERS, csrf, base | {"password": WEAK_PASSWORD})
    bad_role = await post(relaxed, USERS, csrf, base | {"roles": "root", "password": STRONG})
    no_role = await post(
        relaxed, USERS, csrf, {k: v for k, v in base.items() if k != "roles"} | {"password": STRONG}
    )
    bad_email = await post(relaxed, USERS, csrf, base | {"email": "nope", "password": STRONG})
    # Assert
    assert duplicate.status_code == 409
    assert "already exists" in error_of(duplicate, "f-email-error")
    assert weak.status_code == 422
    assert "commonly used" in error_of(weak, "f-password-error")
    assert "at least 12" in error_of(weak, "f-password-error")
    assert 'value="Some One"' in weak.text and 'value="nurse" checked' in weak.text
    assert 'value="password"' not in weak.text  # a password is never echoed back
    assert bad_role.status_code == 422
    assert "from the list" in error_of(bad_role, "f-roles-error")
    assert no_role.status_code == 422
    assert "at least one role" in error_of(no_role, "f-roles-error")
    assert bad_email.status_code == 422 and 'value="nope"' in bad_email.text
    assert "valid email" in error_of(bad_email, "f-email-error")
    created = await audit_events(
        relaxed.container, organization_id=org_of(users), action="user.create"
    )
    assert users["admin"].id not in {e.actor_id for e in created}  # nothing was created


async def test_grant_and_revoke_roles_with_the_last_and_own_admin_role_kept(
    relaxed: Harness,
) -> None:
    # Arrange
    users = await seed_clinic(relaxed.container)
    admin, clinician = users["admin"], users["clinician"]
    csrf = await console_as(relaxed, admin)
    page = f"{USERS}/{clinician.id}"
    # Act
    granted = await post(relaxed, page + "/roles", csrf, [("roles", "nurse")])
    revoked = await post(relaxed, page + "/roles/revoke", csrf, {"role": "clinician"})
    last = await post(relaxed, page + "/roles/revoke", csrf, {"role": "nurse"})
    own = await post(relaxed, f"{USERS}/{admin.id}/roles/revoke", csrf, {"role": "admin"})
    # Assert
    assert granted.status_code == 303 and revoked.status_code == 303
    assert last.status_code == 409
    assert "only role" in error_of(last, "err-revoke")
    assert own.status_code == 409
    me = await sign_in(relaxed.client, clinician)
    whoami = await relaxed.client.get(f"{API}/me", headers=bearer(me["access_token"]))
    assert whoami.json()["user"]["roles"] == ["nurse"]
    org = admin.organization_id
    assert len(
        await audit_events(relaxed.container, organization_id=org, action="user.grant_roles")
    )
    assert len(
        await audit_events(relaxed.container, organization_id=org, action="user.revoke_role")
    )


async def test_locked_account_is_shown_and_unlocked(relaxed: Harness) -> None:
    # Arrange
    users = await seed_clinic(relaxed.container)
    clinician = users["clinician"]
    for _ in range(5):
        assert (await login(relaxed.client, clinician.email, "Wrong-Password-000")).status_code
    assert (await login(relaxed.client, clinician.email, PASSWORD)).status_code == 401
    csrf = await console_as(relaxed, users["admin"])
    listing = await relaxed.client.get(USERS)
    assert "Locked until" in listing.text
    # Act
    response = await post(relaxed, f"{USERS}/{clinician.id}/unlock", csrf)
    # Assert
    assert response.status_code == 303
    detail = await relaxed.client.get(response.headers["location"])
    assert "Account unlocked" in detail.text and "Locked until" not in detail.text
    assert (await login(relaxed.client, clinician.email, PASSWORD)).status_code == 200
    assert await audit_events(
        relaxed.container, organization_id=org_of(users), action="user.unlock"
    )


async def test_mfa_reset_from_the_console_is_the_services(relaxed: Harness) -> None:
    # Arrange
    users = await seed_clinic(relaxed.container)
    admin, clinician = users["admin"], users["clinician"]
    tokens = await sign_in(relaxed.client, clinician)
    await enroll_mfa(relaxed, tokens["access_token"])
    csrf = await console_as(relaxed, admin)
    own_page = await relaxed.client.get(f"{USERS}/{admin.id}")
    assert "Reset two-step verification" not in own_page.text
    # Act
    response = await post(relaxed, f"{USERS}/{clinician.id}/mfa-reset", csrf)
    again = await post(relaxed, f"{USERS}/{clinician.id}/mfa-reset", csrf)
    self_reset = await post(relaxed, f"{USERS}/{admin.id}/mfa-reset", csrf)
    # Assert
    assert response.status_code == 303
    assert "MFA off" in (await relaxed.client.get(response.headers["location"])).text
    assert again.status_code == 409 and "no two-step" in error_of(again, "err-mfa")
    assert self_reset.status_code == 409 and "your own" in error_of(self_reset, "err-mfa")
    signed = await login(relaxed.client, clinician.email, PASSWORD)
    assert "access_token" in signed.json()  # no MFA step any more
    events = await audit_events(
        relaxed.container, organization_id=org_of(users), action="mfa.reset_by_admin"
    )
    assert [(e.actor_id, e.target_id) for e in events] == [(admin.id, clinician.id)]


async def test_disable_needs_confirmation_and_ends_sign_in(relaxed: Harness) -> None:
    # Arrange
    users = await seed_clinic(relaxed.container)
    admin, clinician = users["admin"], users["clinician"]
    csrf = await console_as(relaxed, admin)
    # Act
    unconfirmed = await post(relaxed, f"{USERS}/{clinician.id}/disable", csrf)
    confirmed = await post(relaxed, f"{USERS}/{clinician.id}/disable", csrf, {"confirm": "yes"})
    own = await post(relaxed, f"{USERS}/{admin.id}/disable", csrf, {"confirm": "yes"})
    # Assert
    assert unconfirmed.status_code == 422 and "confirm" in error_of(unconfirmed, "err-disable")
    assert confirmed.status_code == 303
    assert "Disabled" in (await relaxed.client.get(confirmed.headers["location"])).text
    assert (await login(relaxed.client, clinician.email, PASSWORD)).status_code == 401
    assert own.status_code == 409
    assert await audit_events(
        relaxed.container, organization_id=org_of(users), action="user.disable"
    )


async def test_another_clinics_user_is_a_404_page(relaxed: Harness) -> None:
    # Arrange
    users = await seed_clinic(relaxed.container)
    other = await create_org(relaxed.container, "santa-cruz")
    stranger = await create_user(relaxed.container, other, "x@santacruz.example", slug="santa-cruz")
    csrf = await console_as(relaxed, users["admin"])
    # Act
    shown = await relaxed.client.get(f"{USERS}/{stranger.id}")
    changed = await post(relaxed, f"{USERS}/{stranger.id}/unlock", csrf)
    # Assert
    assert shown.status_code == 404 and "Not found" in shown.text
    assert changed.status_code == 404
    assert "x@santacruz.example" not in shown.text


async def test_roles_without_the_permission_are_refused(relaxed: Harness) -> None:
    # Arrange
    users = await seed_clinic(
        relaxed.container,
        emails=(
            ("clinician@elalto.example", ("clinician",)),
            ("supervisor@elalto.example", ("supervisor",)),
        ),
    )
    # Act / Assert: a clinician may not see users; a supervisor may, but not change them.
    await console_as(relaxed, users["clinician"])
    assert (await relaxed.client.get(USERS)).status_code == 403
    relaxed.client.cookies.clear()
    csrf = await console_as(relaxed, users["supervisor"])
    listing = await relaxed.client.get(USERS)
    assert listing.status_code == 200 and "New user" not in listing.text
    flags = await relaxed.client.get("/console/admin/flags")
    assert flags.status_code == 200 and "Turn on" not in flags.text
    refused = await post(
        relaxed,
        USERS,
        csrf,
        {"email": "a@elalto.example", "display_name": "A", "roles": "admin", "password": STRONG},
    )
    assert refused.status_code == 403
    assert await audit_events(
        relaxed.container, organization_id=org_of(users), action="access.denied"
    )


async def test_feature_flag_toggle_is_the_governance_service(relaxed: Harness) -> None:
    # Arrange
    users = await seed_clinic(relaxed.container)
    csrf = await console_as(relaxed, users["admin"])
    key = "governance.consent.whatsapp.enabled"
    # Act
    response = await post(relaxed, "/console/admin/flags", csrf, {"key": key, "enabled": "on"})
    bad = await post(relaxed, "/console/admin/flags", csrf, {"key": "no.such", "enabled": "on"})
    # Assert
    assert response.status_code == 303
    page = await relaxed.client.get(response.headers["location"])
    assert f"{key} is now on." in page.text
    assert ", admin</td>" in page.text  # who changed it, by name (the seed names them so)
    tokens = await sign_in(relaxed.client, users["admin"])
    flags = await relaxed.client.get(f"{API}/flags", headers=bearer(tokens["access_token"]))
    assert {f["key"]: f["enabled"] for f in flags.json()}[key] is True
    assert bad.status_code == 422 and "from the list" in bad.text
    events = await audit_events(
        relaxed.container, organization_id=org_of(users), action="flag.enable"
    )
    assert [e.target_id for e in events] == [key]


async def test_rule_pack_page_shows_the_default_then_the_activated_overlay(
    relaxed: Harness,
) -> None:
    # Arrange
    users = await seed_clinic(relaxed.container)
    await console_as(relaxed, users["clinician"])  # every role may see which pack is in use
    before = await relaxed.client.get("/console/admin/rule-packs")
    c = relaxed.container
    await approve_pack(c.uow, pack_id="doac", version="1.0.0", reviewer="Dr R", approved_by="t")
    overlay = {
        "base_id": "doac",
        "base_version": "1.0.0",
        "version": "1.0.0+elalto.1",
        "reviewer": "Dr Local Committee",
        "approved_at": "2026-11-01T00:00:00Z",
        "rules": {
            "rivaroxaban_crcl_15_29_limited_data": {
                "policy": "local",
                "severity": "BLOCK",
                "source": "x",
            }
        },
    }
    await activate_pack(
        c.uow,
        organization_id=users["clinician"].organization_id,
        pack_id="doac",
        version="1.0.0",
        overlay=overlay,
        production=False,
        activated_by="test",
    )
    # Act
    after = await relaxed.client.get("/console/admin/rule-packs")
    detail = await relaxed.client.get("/console/admin/rule-packs/doac/1.0.0")
    missing = await relaxed.client.get("/console/admin/rule-packs/doac/9.9.9")
    # Assert
    assert before.status_code == 200
    assert "<code>1.0.0</code>" in before.text and "Not activated for this clinic" in before.text
    assert "Not approved" in before.text
    assert after.status_code == 200
    assert "1.0.0+local." in after.text and "Dr Local Committee" in after.text
    assert "Activated for this clinic." in after.text and "Dr R" in after.text
    assert detail.status_code == 200 and "active_bleeding" in detail.text
    assert missing.status_code == 404

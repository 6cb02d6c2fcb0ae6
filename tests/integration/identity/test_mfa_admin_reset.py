"""An administrator's MFA reset for a user who lost their device, over the real API: MFA off,
secret and recovery codes gone, every session of the user ended, audited as
``mfa.reset_by_admin``; refused for oneself, for a user with no MFA, for a user who also works
at a clinic the admin does not administer, for non-admins, and 404 for another clinic's user."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from clinicos.identity.models import RecoveryCode, UserAccount
from tests.support import identity_fixtures
from tests.support.identity_fixtures import (
    API,
    PASSWORD,
    Harness,
    StartApp,
    audit_events,
    bearer,
    create_org,
    create_user,
    enroll_mfa,
    grant_roles,
    login,
    seed_clinic,
    sign_in,
)

# Fixtures shared by identity's tests (tests/support/identity_fixtures.py).
start_app = identity_fixtures.start_app


@pytest.fixture
async def app(start_app: StartApp) -> Harness:
    return await start_app(rate_limit={"auth": "100/minute"})


async def reset(app: Harness, admin_token: str, user_id: str) -> dict[str, object]:
    response = await app.client.post(
        f"{API}/users/{user_id}/mfa/reset", headers=bearer(admin_token)
    )
    return {"status": response.status_code, "body": response.json()}


async def test_mfa_reset_turns_mfa_off_ends_sessions_and_is_audited(app: Harness) -> None:
    # Arrange
    users = await seed_clinic(app.container)
    clinician, admin = users["clinician"], users["admin"]
    tokens = await sign_in(app.client, clinician)
    await enroll_mfa(app, tokens["access_token"])
    admin_tokens = await sign_in(app.client, admin)
    # Act
    response = await app.client.post(
        f"{API}/users/{clinician.id}/mfa/reset", headers=bearer(admin_tokens["access_token"])
    )
    # Assert
    assert response.status_code == 200, response.text
    assert response.json()["mfa_enabled"] is False
    async with app.container.uow() as uow:
        row = await uow.session.get(UserAccount, clinician.id)
        assert row is not None
        assert row.mfa_secret_sealed is None and row.mfa_enabled_at is None
        assert row.mfa_last_timestep is None
        codes = await uow.session.scalar(
            select(func.count()).select_from(RecoveryCode).where(RecoveryCode.user_id == row.id)
        )
        assert codes == 0
    # The session that held the lost device's MFA is over, access and refresh alike.
    me = await app.client.get(f"{API}/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401
    refreshed = await app.client.post(
        f"{API}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    # The next sign-in is by password alone: tokens straight away, no MFA challenge.
    again = await login(app.client, clinician.email, PASSWORD)
    assert again.status_code == 200 and "access_token" in again.json(), again.text
    events = await audit_events(
        app.container, organization_id=clinician.organization_id, action="mfa.reset_by_admin"
    )
    assert len(events) == 1
    assert events[0].actor_id == admin.id and events[0].target_id == clinician.id
    assert events[0].purpose == "security"


async def test_mfa_reset_of_a_mandatory_mfa_admin_requires_enrolment_again(
    app: Harness,
) -> None:
    # Arrange: a clinic where MFA is mandatory for admins; two admins, one lost their device.
    org_id = await create_org(app.container, "la-paz", mfa_required_for_admin=True)
    first = await create_user(
        app.container, org_id, "first@lapaz.example", roles=["admin"], slug="la-paz"
    )
    second = await create_user(
        app.container, org_id, "second@lapaz.example", roles=["admin"], slug="la-paz"
    )
    first_tokens = (await login(app.client, first.email, PASSWORD)).json()
    await enroll_mfa(app, first_tokens["access_token"])
    second_tokens = (await login(app.client, second.email, PASSWORD)).json()
    await enroll_mfa(app, second_tokens["access_token"])
    # With MFA on, a refresh issues tokens without the enrol-only restriction.
    refreshed = await app.client.post(
        f"{API}/auth/refresh", json={"refresh_token": second_tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    # Act
    outcome = await reset(app, refreshed.json()["access_token"], first.id)
    # Assert
    assert outcome["status"] == 200, outcome
    again = (await login(app.client, first.email, PASSWORD)).json()
    assert again["scope"] == "mfa_enroll"  # the new device is enrolled before anything else


async def test_mfa_reset_of_oneself_is_refused(app: Harness) -> None:
    # Arrange
    admin = (await seed_clinic(app.container))["admin"]
    tokens = await sign_in(app.client, admin)
    await enroll_mfa(app, tokens["access_token"])
    # Act
    outcome = await reset(app, tokens["access_token"], admin.id)
    # Assert
    assert outcome["status"] == 409
    assert outcome["body"]["code"] == "mfa_reset_self"  # type: ignore[index]
    assert not await audit_events(app.container, action="mfa.reset_by_admin")


async def test_mfa_reset_of_a_user_without_mfa_is_refused(app: Harness) -> None:
    # Arrange
    users = await seed_clinic(app.container)
    tokens = await sign_in(app.client, users["admin"])
    # Act
    outcome = await reset(app, tokens["access_token"], users["clinician"].id)
    # Assert
    assert outcome["status"] == 409
    assert outcome["body"]["code"] == "mfa_not_enabled"  # type: ignore[index]


async def test_mfa_reset_of_another_clinics_user_is_not_found(app: Harness) -> None:
    # Arrange
    users = await seed_clinic(app.container)
    other_org = await create_org(app.container, "santa-cruz")
    stranger = await create_user(
        app.container, other_org, "doc@santacruz.example", slug="santa-cruz"
    )
    stranger_tokens = await sign_in(app.client, stranger)
    await enroll_mfa(app, stranger_tokens["access_token"])
    tokens = await sign_in(app.client, users["admin"])
    # Act
    outcome = await reset(app, tokens["access_token"], stranger.id)
    # Assert
    assert outcome["status"] == 404


async def test_mfa_reset_needs_an_admin_of_every_clinic_the_user_works_at(
    app: Harness,
) -> None:
    # Arrange: the clinician also works at Santa Cruz, which this admin does not administer.
    users = await seed_clinic(app.container)
    clinician, admin = users["clinician"], users["admin"]
    other_org = await create_org(app.container, "santa-cruz")
    await grant_roles(app.container, other_org, clinician.email, ["nurse"])
    tokens = await login(app.client, clinician.email, PASSWORD, "el-alto")
    await enroll_mfa(app, tokens.json()["access_token"])
    admin_tokens = await sign_in(app.client, admin)
    # Act
    refused = await reset(app, admin_tokens["access_token"], clinician.id)
    await grant_roles(app.container, other_org, admin.email, ["admin"])
    allowed = await reset(app, admin_tokens["access_token"], clinician.id)
    # Assert
    assert refused["status"] == 409
    assert refused["body"]["code"] == "mfa_reset_other_organization"  # type: ignore[index]
    assert allowed["status"] == 200, allowed


async def test_mfa_reset_is_refused_to_a_non_admin(app: Harness) -> None:
    # Arrange
    users = await seed_clinic(app.container)
    admin_tokens = await sign_in(app.client, users["admin"])
    await enroll_mfa(app, admin_tokens["access_token"])
    tokens = await sign_in(app.client, users["clinician"])
    # Act
    outcome = await reset(app, tokens["access_token"], users["admin"].id)
    # Assert
    assert outcome["status"] == 403

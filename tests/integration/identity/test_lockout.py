"""Lockout after repeated failures: refused even with the right password, audited, lifted by
time, by an admin through the API, or through the CLI."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from clinicos.cli import app as cli_app
from tests.support import identity_fixtures
from tests.support.identity_fixtures import (
    API,
    PASSWORD,
    Harness,
    SeededUser,
    StartApp,
    audit_events,
    bearer,
    login,
    seed_clinic,
    sign_in,
    without_request_ids,
)

# Fixtures shared by identity's tests (tests/support/identity_fixtures.py).
start_app = identity_fixtures.start_app

WRONG = "Wrong-Password-000"


@pytest.fixture
async def app(start_app: StartApp) -> Harness:
    # The sign-in rate limit (5/minute) would answer 429 before the lockout is reached.
    return await start_app(rate_limit={"auth": "100/minute"})


async def fail_times(app: Harness, user: SeededUser, times: int) -> None:
    for _ in range(times):
        response = await login(app.client, user.email, WRONG)
        assert response.status_code == 401


async def test_login_after_five_failures_refuses_the_right_password_with_the_same_body(
    app: Harness,
) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    await fail_times(app, user, 4)
    fourth_wrong = await login(app.client, user.email, WRONG)  # the fifth failure locks
    # Act
    response = await login(app.client, user.email, PASSWORD)
    # Assert
    assert response.status_code == 401
    assert without_request_ids(response.json()) == without_request_ids(fourth_wrong.json())
    assert "access_token" not in response.text


async def test_login_four_failures_then_right_password_signs_in_and_resets_the_count(
    app: Harness,
) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    await fail_times(app, user, 4)
    # Act
    response = await login(app.client, user.email, PASSWORD)
    # Assert
    assert response.status_code == 200
    await fail_times(app, user, 4)  # the count started again from zero
    assert (await login(app.client, user.email, PASSWORD)).status_code == 200


async def test_lockout_is_recorded_in_the_audit_trail(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    # Act
    await fail_times(app, user, 5)
    # Assert
    [locked] = await audit_events(app.container, action="auth.account_locked")
    assert locked.actor_id == user.id
    assert locked.target_id == user.id
    assert locked.purpose == "security"
    failures = await audit_events(app.container, action="auth.login")
    assert [e.outcome for e in failures].count("failure") == 5


async def test_lockout_expires_after_lockout_minutes(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    await fail_times(app, user, 5)
    app.clock.advance(timedelta(minutes=15) - timedelta(seconds=1))
    still_locked = await login(app.client, user.email, PASSWORD)
    # Act
    app.clock.advance(timedelta(seconds=1))
    response = await login(app.client, user.email, PASSWORD)
    # Assert
    assert still_locked.status_code == 401
    assert response.status_code == 200, response.text


async def test_lockout_minutes_setting_is_honoured(start_app: StartApp) -> None:
    # Arrange
    app = await start_app(
        rate_limit={"auth": "100/minute"}, identity={"lockout_threshold": 3, "lockout_minutes": 2}
    )
    user = (await seed_clinic(app.container))["clinician"]
    await fail_times(app, user, 3)
    locked = await login(app.client, user.email, PASSWORD)
    # Act
    app.clock.advance(timedelta(minutes=2))
    response = await login(app.client, user.email, PASSWORD)
    # Assert
    assert locked.status_code == 401
    assert response.status_code == 200


async def test_unlock_by_admin_of_the_organization_lets_the_user_sign_in(app: Harness) -> None:
    # Arrange
    users = await seed_clinic(app.container)
    admin = await sign_in(app.client, users["admin"])
    await fail_times(app, users["clinician"], 5)
    listed = await app.client.get(
        f"{API}/users/{users['clinician'].id}", headers=bearer(admin["access_token"])
    )
    assert listed.json()["locked"] is True
    # Act
    response = await app.client.post(
        f"{API}/users/{users['clinician'].id}/unlock", headers=bearer(admin["access_token"])
    )
    # Assert
    assert response.status_code == 200, response.text
    assert response.json()["locked"] is False
    assert (await login(app.client, users["clinician"].email, PASSWORD)).status_code == 200
    [event] = await audit_events(
        app.container, organization_id=users["admin"].organization_id, action="user.unlock"
    )
    assert event.actor_id == users["admin"].id
    assert event.target_id == users["clinician"].id


async def test_unlock_by_a_clinician_is_403(app: Harness) -> None:
    # Arrange
    users = await seed_clinic(
        app.container,
        emails=[("clinician@elalto.example", ("clinician",)), ("nurse@elalto.example", ("nurse",))],
    )
    clinician = await sign_in(app.client, users["clinician"])
    await fail_times(app, users["nurse"], 5)
    # Act
    response = await app.client.post(
        f"{API}/users/{users['nurse'].id}/unlock", headers=bearer(clinician["access_token"])
    )
    # Assert
    assert response.status_code == 403
    assert (await login(app.client, users["nurse"].email, PASSWORD)).status_code == 401


async def test_unlock_by_admin_of_another_organization_is_404(app: Harness) -> None:
    # Arrange
    el_alto = await seed_clinic(app.container)
    santa_cruz = await seed_clinic(
        app.container,
        slug="santa-cruz",
        emails=[("admin@santacruz.example", ("admin",))],
    )
    foreign_admin = await sign_in(app.client, santa_cruz["admin"])
    await fail_times(app, el_alto["clinician"], 5)
    # Act
    response = await app.client.post(
        f"{API}/users/{el_alto['clinician'].id}/unlock",
        headers=bearer(foreign_admin["access_token"]),
    )
    # Assert
    assert response.status_code == 404
    assert (await login(app.client, el_alto["clinician"].email, PASSWORD)).status_code == 401


def run_cli(app: Harness, *args: str) -> tuple[int, str]:
    settings = app.settings
    env = {
        "CLINICOS_DATABASE_URL": str(settings.database_url),
        "CLINICOS_ENV": "test",
        "CLINICOS_VAR_DIR": str(settings.var_dir),
    }
    if settings.database.app_role:
        env["CLINICOS_DATABASE__APP_ROLE"] = settings.database.app_role
    result = CliRunner().invoke(cli_app, list(args), env=env)
    return result.exit_code, result.output


async def test_cli_user_unlock_lets_the_locked_user_sign_in(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    await fail_times(app, user, 5)
    assert (await login(app.client, user.email, PASSWORD)).status_code == 401
    # Act: in a thread, because the CLI runs its own event loop
    code, output = await asyncio.to_thread(run_cli, app, "user", "unlock", "--email", user.email)
    # Assert
    assert code == 0, output
    assert f"unlocked {user.email}" in output
    assert (await login(app.client, user.email, PASSWORD)).status_code == 200
    [event] = await audit_events(app.container, action="user.unlock")
    assert event.actor_type == "system"
    assert event.target_id == user.id


async def test_cli_user_unlock_unknown_email_exits_1(app: Harness) -> None:
    # Arrange
    await seed_clinic(app.container)
    # Act
    code, output = await asyncio.to_thread(
        run_cli, app, "user", "unlock", "--email", "nobody@elalto.example"
    )
    # Assert
    assert code == 1
    assert "no such user" in output

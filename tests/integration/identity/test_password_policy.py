"""The password policy through every API that sets a password: 422 naming the field, never
echoing the password, nothing changed."""

from __future__ import annotations

import httpx
import pytest

from tests.support import identity_fixtures
from tests.support.identity_fixtures import (
    API,
    PASSWORD,
    Harness,
    bearer,
    login,
    seed_clinic,
    sign_in,
)

# Fixtures shared by identity's tests (tests/support/identity_fixtures.py).
start_app = identity_fixtures.start_app
harness = identity_fixtures.harness

CLINICIAN_EMAIL = "clinician@elalto.example"
NEW_USER_EMAIL = "new.nurse.user@elalto.example"

# (password, what the refusal says); "@email" stands for the account's own email address
REFUSED = [
    pytest.param("Sh0rt-pass!", "must be at least 12 characters", id="eleven-characters"),
    pytest.param("password1234", "is on the list of commonly used passwords", id="common-en"),
    pytest.param("Contraseña123", "is on the list of commonly used passwords", id="common-es"),
    pytest.param("@email", "must not be the email address", id="the-email"),
]


def resolve(password: str, email: str) -> str:
    return email if password == "@email" else password


def assert_refused(response: httpx.Response, field: str, password: str, why: str) -> None:
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_failed"
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {field}
    assert why in [e["message"] for e in problem["errors"]]
    assert password not in response.text


@pytest.mark.parametrize(("password", "why"), REFUSED)
async def test_password_change_refused_password_is_422_on_new_password(
    harness: Harness, password: str, why: str
) -> None:
    # Arrange
    user = (await seed_clinic(harness.container))["clinician"]
    tokens = await sign_in(harness.client, user)
    new_password = resolve(password, user.email)
    # Act
    response = await harness.client.post(
        f"{API}/auth/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=bearer(tokens["access_token"]),
    )
    # Assert
    assert_refused(response, "new_password", new_password, why)
    me = await harness.client.get(f"{API}/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200  # nothing changed, no session revoked
    assert (await login(harness.client, user.email, PASSWORD)).status_code == 200


@pytest.mark.parametrize(("password", "why"), REFUSED)
async def test_user_create_refused_password_is_422_on_password(
    harness: Harness, password: str, why: str
) -> None:
    # Arrange
    admin = (await seed_clinic(harness.container))["admin"]
    tokens = await sign_in(harness.client, admin)
    new_password = resolve(password, NEW_USER_EMAIL)
    # Act
    response = await harness.client.post(
        f"{API}/users",
        json={
            "email": NEW_USER_EMAIL,
            "display_name": "New Nurse",
            "roles": ["nurse"],
            "password": new_password,
        },
        headers=bearer(tokens["access_token"]),
    )
    # Assert
    assert_refused(response, "password", new_password, why)
    listed = await harness.client.get(f"{API}/users", headers=bearer(tokens["access_token"]))
    assert NEW_USER_EMAIL not in {u["email"] for u in listed.json()["items"]}


async def test_user_create_password_meeting_the_policy_is_201_and_signs_in(
    harness: Harness,
) -> None:
    # Arrange
    admin = (await seed_clinic(harness.container))["admin"]
    tokens = await sign_in(harness.client, admin)
    # Act
    response = await harness.client.post(
        f"{API}/users",
        json={
            "email": NEW_USER_EMAIL,
            "display_name": "New Nurse",
            "roles": ["nurse"],
            "password": "Violet-Mountain-Ledger-5",
        },
        headers=bearer(tokens["access_token"]),
    )
    # Assert
    assert response.status_code == 201, response.text
    assert "Violet-Mountain-Ledger-5" not in response.text
    signed_in = await login(harness.client, NEW_USER_EMAIL, "Violet-Mountain-Ledger-5")
    assert signed_in.status_code == 200

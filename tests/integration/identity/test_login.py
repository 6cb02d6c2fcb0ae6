"""Sign-in over the real API: tokens, choosing the organization, one answer for every refusal,
rehash on changed argon2 parameters, and the sign-in rate limit."""

from __future__ import annotations

from sqlalchemy import select

from clinicos.identity.models import UserAccount
from tests.support import identity_fixtures
from tests.support.identity_fixtures import (
    API,
    PASSWORD,
    Harness,
    StartApp,
    bearer,
    create_org,
    create_user,
    grant_roles,
    login,
    seed_clinic,
    sign_in,
    without_request_ids,
)

# Fixtures shared by identity's tests (tests/support/identity_fixtures.py).
start_app = identity_fixtures.start_app
harness = identity_fixtures.harness
relaxed = identity_fixtures.relaxed


async def stored_hash(harness: Harness, user_id: str) -> str:
    async with harness.container.uow() as uow:
        value = await uow.session.scalar(
            select(UserAccount.password_hash).where(UserAccount.id == user_id)
        )
    assert value is not None
    return value


async def test_login_right_password_returns_bearer_tokens_for_the_organization(
    harness: Harness,
) -> None:
    # Arrange
    users = await seed_clinic(harness.container)
    # Act
    response = await login(harness.client, users["clinician"].email, PASSWORD)
    # Assert
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["organization"] == "el-alto"
    assert body["access_token"].count(".") == 2  # a JWT
    assert len(body["refresh_token"]) >= 32
    assert body["access_token"] != body["refresh_token"]
    me = await harness.client.get(f"{API}/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "clinician@elalto.example"


async def test_login_email_in_other_case_and_spaces_signs_in(harness: Harness) -> None:
    # Arrange
    await seed_clinic(harness.container)
    # Act
    response = await login(harness.client, "  Clinician@ElAlto.EXAMPLE ", PASSWORD)
    # Assert
    assert response.status_code == 200, response.text


async def test_login_user_in_two_organizations_without_choice_is_422_listing_them(
    harness: Harness,
) -> None:
    # Arrange
    users = await seed_clinic(harness.container)
    santa_cruz = await create_org(harness.container, "santa-cruz")
    await grant_roles(harness.container, santa_cruz, users["clinician"].email, ["nurse"])
    # Act
    response = await login(harness.client, users["clinician"].email, PASSWORD)
    # Assert
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "organization_required"
    [error] = problem["errors"]
    assert error["field"] == "organization"
    assert "el-alto" in error["message"]
    assert "santa-cruz" in error["message"]
    assert "access_token" not in response.text


async def test_login_user_in_two_organizations_gets_a_token_for_the_one_chosen(
    harness: Harness,
) -> None:
    # Arrange
    users = await seed_clinic(harness.container)
    santa_cruz = await create_org(harness.container, "santa-cruz")
    await grant_roles(harness.container, santa_cruz, users["clinician"].email, ["nurse"])
    # Act
    body = await sign_in(harness.client, users["clinician"], organization="santa-cruz")
    # Assert
    assert body["organization"] == "santa-cruz"
    me = (await harness.client.get(f"{API}/me", headers=bearer(body["access_token"]))).json()
    assert me["organization"]["slug"] == "santa-cruz"
    assert me["organization"]["id"] == santa_cruz
    assert me["user"]["roles"] == ["nurse"]


async def test_login_organization_the_user_is_not_in_is_422(harness: Harness) -> None:
    # Arrange
    users = await seed_clinic(harness.container)
    await create_org(harness.container, "santa-cruz")
    # Act
    response = await login(harness.client, users["clinician"].email, PASSWORD, "santa-cruz")
    # Assert
    assert response.status_code == 422
    assert response.json()["code"] == "organization_required"


async def test_login_every_refusal_has_the_same_401_body(relaxed: Harness) -> None:
    # Arrange: an active user, a disabled one and a locked one
    users = await seed_clinic(
        relaxed.container,
        emails=[
            ("active@elalto.example", ("clinician",)),
            ("disabled@elalto.example", ("nurse",)),
            ("locked@elalto.example", ("billing",)),
            ("admin@elalto.example", ("admin",)),
        ],
    )
    admin = await sign_in(relaxed.client, users["admin"])
    disabled = await relaxed.client.post(
        f"{API}/users/{users['nurse'].id}/disable", headers=bearer(admin["access_token"])
    )
    assert disabled.status_code == 200, disabled.text
    for _ in range(5):
        await login(relaxed.client, "locked@elalto.example", "Wrong-Password-000")
    # Act
    answers = {
        "wrong password": await login(relaxed.client, "active@elalto.example", "Wrong-Password-1"),
        "unknown email": await login(relaxed.client, "nobody@elalto.example", PASSWORD),
        "disabled user": await login(relaxed.client, "disabled@elalto.example", PASSWORD),
        "locked user": await login(relaxed.client, "locked@elalto.example", PASSWORD),
        "malformed email": await login(relaxed.client, "not-an-email", PASSWORD),
    }
    # Assert
    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 401)
    bodies = {name: without_request_ids(r.json()) for name, r in answers.items()}
    reference = bodies["wrong password"]
    assert reference["code"] == "invalid_credentials"
    for name, body in bodies.items():
        assert body == reference, name
    headers = {name: r.headers.get("content-type") for name, r in answers.items()}
    assert set(headers.values()) == {"application/problem+json"}


async def test_login_after_argon2_parameters_change_rehashes_the_password(
    start_app: StartApp,
) -> None:
    # Arrange: the user's hash is made with the fast test parameters (m=64, t=1, p=1)
    old = await start_app()
    users = await seed_clinic(old.container)
    user = users["clinician"]
    before = await stored_hash(old, user.id)
    assert before.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    stronger = await start_app(
        identity={"argon2_time_cost": 2, "argon2_memory_kib": 128, "argon2_parallelism": 1}
    )
    # Act
    response = await login(stronger.client, user.email, PASSWORD)
    # Assert
    assert response.status_code == 200, response.text
    after = await stored_hash(stronger, user.id)
    assert after != before
    assert after.startswith("$argon2id$v=19$m=128,t=2,p=1$")
    again = await login(stronger.client, user.email, PASSWORD)  # the new hash verifies
    assert again.status_code == 200
    assert await stored_hash(stronger, user.id) == after  # and is not re-made every time


async def test_login_with_current_parameters_keeps_the_stored_hash(harness: Harness) -> None:
    # Arrange
    users = await seed_clinic(harness.container)
    before = await stored_hash(harness, users["clinician"].id)
    # Act
    await sign_in(harness.client, users["clinician"])
    # Assert
    assert await stored_hash(harness, users["clinician"].id) == before


async def test_login_sixth_attempt_within_a_minute_is_429_with_rate_limit_headers(
    harness: Harness,
) -> None:
    # Arrange: the default budget, 5 sign-ins per minute per account and IP
    users = await seed_clinic(harness.container)
    first = await login(harness.client, users["clinician"].email, PASSWORD)
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "5"
    assert first.headers["X-RateLimit-Remaining"] == "4"
    for _ in range(4):
        assert (await login(harness.client, users["clinician"].email, PASSWORD)).status_code == 200
    # Act
    response = await login(harness.client, users["clinician"].email, PASSWORD)
    # Assert
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) > 0
    assert "access_token" not in response.text


async def test_login_rate_limit_is_per_account_so_another_user_still_signs_in(
    harness: Harness,
) -> None:
    # Arrange
    users = await seed_clinic(harness.container)
    for _ in range(6):
        await login(harness.client, users["clinician"].email, PASSWORD)
    # Act
    response = await login(harness.client, users["admin"].email, PASSWORD)
    # Assert
    assert response.status_code == 200, response.text


async def test_login_member_of_a_single_other_organization_signs_in_there(
    harness: Harness,
) -> None:
    # Arrange
    await seed_clinic(harness.container)
    santa_cruz = await create_org(harness.container, "santa-cruz")
    user = await create_user(
        harness.container,
        santa_cruz,
        "pharmacist@santacruz.example",
        roles=["pharmacist"],
        slug="santa-cruz",
    )
    # Act
    body = await sign_in(harness.client, user)
    # Assert
    assert body["organization"] == "santa-cruz"

"""The token-signing keyring recovers by itself where it used to fail, on SQLite and PostgreSQL:

- a database without any signing key (fresh install, or a server that started before its
  schema existed) gets its first key at the first sign-in instead of a 500;
- a token signed with a key another process rotated in is accepted after one reload of the
  keyring, instead of a 401 until the cache expires;
- a changed CLINICOS_SECRET_KEY that can't unseal the keys is a 503 saying what to do
  (`clinicos keys rotate`), never a 500, and rotating does recover;
- a token that may only enrol MFA can still log out;
- `clinicos keys rotate` leaves a `keys.rotate` row on the installation's audit chain.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import jwt
import pyotp
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner, Result

from clinicos.bootstrap import Container, build_container
from clinicos.cli import app as cli_app
from clinicos.governance import AuditEvent
from clinicos.identity import keyring
from clinicos.identity.models import SigningKeyRecord
from clinicos.identity.services import sessions
from clinicos.main import create_app, ensure_signing_key
from tests.conftest import make_settings
from tests.support.tenancy_fixtures import (
    Member,
    assert_invalid_token,
    assert_problem,
    bearer,
    login,
    new_member,
    new_organization,
    sign_in,
)

API = "/api/v1"
OTHER_SECRET = "another-installation-secret-0123456789abcdef"


@asynccontextmanager
async def serving(c: Container) -> AsyncIterator[AsyncClient]:
    """A second running app (lifespan run, no worker) on ``c``; disposes ``c`` on exit."""
    app = create_app(c.settings, container=c, run_worker=False)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
    ):
        yield http


async def member_of(container: Container, slug: str, *, mfa_required: bool = False) -> Member:
    org_id = await new_organization(container, slug, mfa_required_for_admin=mfa_required)
    return await new_member(
        container,
        organization_id=org_id,
        organization_slug=slug,
        email=f"admin@{slug}.example.com",
        roles=("admin",),
    )


async def signing_keys(owner_engine: AsyncEngine) -> dict[str, str]:
    """kid -> status, read as the owner."""
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(select(SigningKeyRecord.kid, SigningKeyRecord.status))).all()
    return {kid: status for kid, status in rows}


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


# -- (a) the first key is made lazily --------------------------------------------------------------


async def test_sign_in_when_no_signing_key_exists_creates_one_and_succeeds(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    # Arrange: the app started (and made its key); then the keyring is emptied under it.
    member = await member_of(container, "fresh-install")
    async with owner_engine.begin() as conn:
        await conn.execute(delete(SigningKeyRecord))
    container.identity.codecs.invalidate()
    assert await signing_keys(owner_engine) == {}

    # Act
    signed = await sign_in(client, member)
    me = await client.get(f"{API}/me", headers=signed.headers)

    # Assert
    keys = await signing_keys(owner_engine)
    assert keys == {kid_of(signed.access_token): keyring.KEY_ACTIVE}
    assert me.status_code == 200, me.text


# -- (b) a rotation elsewhere is picked up on an unknown kid ---------------------------------------


async def test_me_when_token_signed_by_key_rotated_in_by_another_process_answers_200(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: the first app signs in, so its cached keyring holds only the first key.
    member = await member_of(container, "two-servers")
    before = await sign_in(client, member)
    first_kid = kid_of(before.access_token)
    # Another process on the same database rotates and signs with the new key.
    other = build_container(container.settings)
    async with other.uow() as uow:
        new_kid = await keyring.rotate(uow.session, other.identity.signing_box, uow.clock.now())
        await uow.commit()
    async with serving(other) as other_client:
        after = await sign_in(other_client, member)
    assert kid_of(after.access_token) == new_kid != first_kid
    assert (await container.identity.codec()).active_kid == first_kid  # cache predates rotation
    # The cache is younger than the 5 s between reloads; make it count as old enough.
    monkeypatch.setattr(sessions, "KEY_RELOAD_MIN_SECONDS", 0.0, raising=False)

    # Act
    me = await client.get(f"{API}/me", headers=after.headers)
    still = await client.get(f"{API}/me", headers=before.headers)

    # Assert
    assert me.status_code == 200, me.text
    assert me.json()["user"]["id"] == member.user_id
    assert (await container.identity.codec()).active_kid == new_kid  # reloaded once
    assert still.status_code == 200, still.text  # the retired key keeps verifying
    assert await signing_keys(owner_engine) == {
        first_kid: keyring.KEY_RETIRED,
        new_kid: keyring.KEY_ACTIVE,
    }


async def test_mfa_step_when_token_signed_by_key_rotated_in_by_another_process_answers_200(
    container: Container, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a user with MFA, enrolled through the first app (whose keyring gets cached).
    member = await member_of(container, "two-servers-mfa")
    enrolling = await sign_in(client, member)
    enrolled = await client.post(f"{API}/auth/mfa/enroll", headers=enrolling.headers)
    assert enrolled.status_code == 200, enrolled.text
    confirmed = await client.post(
        f"{API}/auth/mfa/confirm",
        json={"code": pyotp.TOTP(enrolled.json()["secret"]).now()},
        headers=enrolling.headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    recovery_code = confirmed.json()["recovery_codes"][0]  # a TOTP code is single-use per step
    # Another process rotates; its password step signs the MFA token with the new key.
    other = build_container(container.settings)
    async with other.uow() as uow:
        new_kid = await keyring.rotate(uow.session, other.identity.signing_box, uow.clock.now())
        await uow.commit()
    async with serving(other) as other_client:
        step = await login(other_client, member.email, member.password)
    assert step.status_code == 200, step.text
    mfa_token = step.json()["mfa_token"]
    assert kid_of(mfa_token) == new_kid
    monkeypatch.setattr(sessions, "KEY_RELOAD_MIN_SECONDS", 0.0, raising=False)

    # Act: the second factor is sent to the first app.
    completed = await client.post(
        f"{API}/auth/mfa", json={"mfa_token": mfa_token, "code": recovery_code}
    )

    # Assert
    assert completed.status_code == 200, completed.text
    assert kid_of(completed.json()["access_token"]) == new_kid


# -- (c) a secret that can't unseal the keys -------------------------------------------------------


@pytest.fixture
def other_secret_container(container: Container, tmp_path: Path) -> Container:
    """A container on the same database whose CLINICOS_SECRET_KEY differs from the one that
    sealed the keys (its app disposes it)."""
    assert container.settings.database_url is not None
    return build_container(
        make_settings(container.settings.database_url, tmp_path / "other", secret_key=OTHER_SECRET)
    )


async def test_sign_in_when_secret_key_changed_answers_503_signing_keys_unavailable(
    container: Container, other_secret_container: Container
) -> None:
    # Arrange: the key is sealed under the original secret; a token from the original app.
    await ensure_signing_key(container)
    member = await member_of(container, "new-secret")
    async with serving(build_container(container.settings)) as original:
        token = (await sign_in(original, member)).access_token

    # Act
    async with serving(other_secret_container) as changed:
        signed = await login(changed, member.email, member.password)
        me = await changed.get(f"{API}/me", headers=bearer(token))

    # Assert
    for response in (signed, me):
        body = assert_problem(response, 503, "signing_keys_unavailable")
        assert "clinicos keys rotate" in body["detail"]
        assert "CLINICOS_SECRET_KEY" in body["detail"]
        assert OTHER_SECRET not in response.text
        assert response.headers["retry-after"] == "5"


async def test_sign_in_when_secret_key_changed_and_keys_rotated_succeeds(
    container: Container, other_secret_container: Container, owner_engine: AsyncEngine
) -> None:
    # Arrange: the advice of the 503, followed: rotate under the new secret.
    await ensure_signing_key(container)
    member = await member_of(container, "rotated-secret")
    async with serving(other_secret_container) as changed:
        refused = await login(changed, member.email, member.password)
        assert_problem(refused, 503, "signing_keys_unavailable")
        async with other_secret_container.uow() as uow:
            new_kid = await keyring.rotate(
                uow.session, other_secret_container.identity.signing_box, uow.clock.now()
            )
            await uow.commit()

        # Act
        signed = await sign_in(changed, member)

    # Assert
    assert kid_of(signed.access_token) == new_kid
    assert (await signing_keys(owner_engine))[new_kid] == keyring.KEY_ACTIVE


async def enrolled_in_mfa(client: AsyncClient, member: Member) -> tuple[str, list[str]]:
    """Enrol and confirm TOTP through ``client``; returns (secret, recovery codes)."""
    signed = await sign_in(client, member)
    enrolled = await client.post(f"{API}/auth/mfa/enroll", headers=signed.headers)
    assert enrolled.status_code == 200, enrolled.text
    secret = str(enrolled.json()["secret"])
    confirmed = await client.post(
        f"{API}/auth/mfa/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=signed.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, list(confirmed.json()["recovery_codes"])


async def mfa_step_after_secret_change(
    container: Container, client: AsyncClient, other: Container, code_of: str
) -> int:
    """An MFA user enrolled under the original secret; the secret changes and, as the 503
    advises, keys are rotated; the user signs in on the new-secret app. Returns the status of
    the second step sent with a recovery code (``code_of="recovery"``) or a TOTP code."""
    member = await member_of(container, f"mfa-secret-{code_of}")
    secret, recovery_codes = await enrolled_in_mfa(client, member)
    async with other.uow() as uow:
        await keyring.rotate(uow.session, other.identity.signing_box, uow.clock.now())
        await uow.commit()
    async with serving(other) as changed:
        step = await login(changed, member.email, member.password)
        assert step.status_code == 200 and step.json().get("mfa_required"), step.text
        code = recovery_codes[0] if code_of == "recovery" else pyotp.TOTP(secret).now()
        completed = await changed.post(
            f"{API}/auth/mfa", json={"mfa_token": step.json()["mfa_token"], "code": code}
        )
    return completed.status_code


# After a CLINICOS_SECRET_KEY change the TOTP secrets can't be opened: recovery codes (plain
# hashes) still work, and a TOTP code gets a clear 503 (mfa_secrets_unavailable), never a 500.


async def test_mfa_step_when_secret_key_changed_accepts_recovery_code(
    container: Container, client: AsyncClient, other_secret_container: Container
) -> None:
    status = await mfa_step_after_secret_change(
        container, client, other_secret_container, "recovery"
    )

    assert status == 200


async def test_mfa_step_when_secret_key_changed_and_totp_code_sent_answers_503_not_500(
    container: Container, client: AsyncClient, other_secret_container: Container
) -> None:
    status = await mfa_step_after_secret_change(container, client, other_secret_container, "totp")

    assert status == 503


# -- (d) logout with an MFA-enrolment token --------------------------------------------------------


async def test_logout_when_token_scoped_to_mfa_enrolment_answers_204_and_ends_session(
    container: Container, client: AsyncClient
) -> None:
    # Arrange: an admin of a clinic that requires MFA of admins, not enrolled yet.
    member = await member_of(container, "mfa-clinic", mfa_required=True)
    signed_in = await login(client, member.email, member.password)
    assert signed_in.status_code == 200, signed_in.text
    body = signed_in.json()
    assert body["scope"] == sessions.ENROLL_SCOPE
    token, refresh_token = body["access_token"], body["refresh_token"]

    # Act
    logout = await client.post(f"{API}/auth/logout", headers=bearer(token))

    # Assert
    assert logout.status_code == 204, logout.text
    assert_invalid_token(await client.post(f"{API}/auth/mfa/enroll", headers=bearer(token)))
    assert_invalid_token(await client.post(f"{API}/auth/logout", headers=bearer(token)))
    refreshed = await client.post(f"{API}/auth/refresh", json={"refresh_token": refresh_token})
    assert refreshed.status_code == 401, refreshed.text


# -- (e) `clinicos keys rotate` is audited ---------------------------------------------------------


runner = CliRunner()


async def cli(container: Container, tmp_path: Path, *args: str) -> Result:
    """`clinicos <args>` against the test's database, in a thread (it runs its own loop)."""
    assert container.settings.database_url is not None
    env: dict[str, str | None] = {
        "CLINICOS_DATABASE_URL": container.settings.database_url,
        "CLINICOS_ENV": "test",
        "CLINICOS_VAR_DIR": str(tmp_path / "cli-var"),
    }
    if container.engine.dialect.name == "postgresql":
        env["CLINICOS_DATABASE__APP_ROLE"] = "clinicos_app"
    return await asyncio.to_thread(lambda: runner.invoke(cli_app, list(args), env=env))


async def test_keys_rotate_cli_when_run_writes_keys_rotate_row_on_installation_chain(
    container: Container, owner_engine: AsyncEngine, tmp_path: Path
) -> None:
    # Arrange
    await ensure_signing_key(container)
    (first_kid,) = await signing_keys(owner_engine)

    # Act
    rotated = await cli(container, tmp_path, "keys", "rotate")
    verified = await cli(container, tmp_path, "audit", "verify")

    # Assert
    assert rotated.exit_code == 0, (rotated.output, rotated.exception)
    new_kid = rotated.output.split("new signing key ", 1)[1].split()[0]
    assert await signing_keys(owner_engine) == {
        first_kid: keyring.KEY_RETIRED,
        new_kid: keyring.KEY_ACTIVE,
    }
    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(
                select(AuditEvent.__table__).where(AuditEvent.action == "keys.rotate")
            )
        ).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.organization_id, row.chain_key) == (None, "installation")
    assert (row.target_type, row.target_id) == ("signing_key", new_kid)
    assert (row.actor_type, row.actor_id, row.outcome) == ("system", "cli", "success")
    assert verified.exit_code == 0, verified.output
    assert "ok   (installation): 1 rows" in verified.output

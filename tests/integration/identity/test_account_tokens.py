"""Password reset and email verification through the mail adapter: the file sink, a real local
SMTP server (aiosmtpd), and an SMTP server that is down. Tokens are single-use, expiring and
stored only as hashes."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import stat
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from tests.support import identity_fixtures
from tests.support.identity_fixtures import (
    API,
    NEW_PASSWORD,
    PASSWORD,
    Harness,
    StartApp,
    bearer,
    body_text,
    login,
    read_mails,
    seed_clinic,
    sign_in,
    token_in,
)

# Fixtures shared by identity's tests (tests/support/identity_fixtures.py).
start_app = identity_fixtures.start_app

RESET_REQUEST = f"{API}/auth/password-reset/request"
RESET_CONFIRM = f"{API}/auth/password-reset/confirm"


@pytest.fixture
async def app(start_app: StartApp) -> Harness:
    return await start_app(rate_limit={"auth": "100/minute"})


async def request_reset(app: Harness, email: str) -> httpx.Response:
    return await app.client.post(RESET_REQUEST, json={"email": email})


async def confirm_reset(app: Harness, token: str, password: str = NEW_PASSWORD) -> httpx.Response:
    return await app.client.post(RESET_CONFIRM, json={"token": token, "new_password": password})


async def reset_token_for(app: Harness, email: str) -> str:
    """Ask for a reset and return the token from the newest message."""
    response = await request_reset(app, email)
    assert response.status_code == 202
    return token_in(body_text(read_mails(app.mail_dir)[-1]))


async def test_password_reset_request_answers_202_alike_for_known_and_unknown_emails(
    app: Harness,
) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    # Act
    known = await request_reset(app, user.email)
    unknown = await request_reset(app, "nobody@elalto.example")
    malformed = await request_reset(app, "not-an-email")
    # Assert
    assert (known.status_code, unknown.status_code, malformed.status_code) == (202, 202, 202)
    assert known.json() == unknown.json() == malformed.json() == {"status": "accepted"}
    [mail] = read_mails(app.mail_dir)  # only the known address gets a message
    assert mail["To"] == user.email
    assert "password" in mail["Subject"].lower()
    link = body_text(mail)
    assert f"{app.settings.identity.public_base_url}/reset-password#token=" in link
    [path] = list(app.mail_dir.glob("*.eml"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_password_reset_request_for_a_disabled_user_sends_nothing(app: Harness) -> None:
    # Arrange
    users = await seed_clinic(app.container)
    admin = await sign_in(app.client, users["admin"])
    await app.client.post(
        f"{API}/users/{users['clinician'].id}/disable", headers=bearer(admin["access_token"])
    )
    # Act
    response = await request_reset(app, users["clinician"].email)
    # Assert
    assert response.status_code == 202
    assert read_mails(app.mail_dir) == []


async def test_password_reset_confirm_sets_the_new_password_and_revokes_sessions(
    app: Harness,
) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    session = await sign_in(app.client, user)
    token = await reset_token_for(app, user.email)
    # Act
    response = await confirm_reset(app, token)
    # Assert
    assert response.status_code == 204, response.text
    assert (await login(app.client, user.email, PASSWORD)).status_code == 401
    assert (await login(app.client, user.email, NEW_PASSWORD)).status_code == 200
    me = await app.client.get(f"{API}/me", headers=bearer(session["access_token"]))
    assert me.status_code == 401
    refreshed = await app.client.post(
        f"{API}/auth/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status_code == 401


async def test_password_reset_token_used_twice_is_401(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    token = await reset_token_for(app, user.email)
    assert (await confirm_reset(app, token)).status_code == 204
    # Act
    response = await confirm_reset(app, token, "Another-Fresh-Secret-31")
    # Assert
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert (await login(app.client, user.email, NEW_PASSWORD)).status_code == 200


async def test_password_reset_token_after_its_lifetime_is_401(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    token = await reset_token_for(app, user.email)
    # Act: default password_reset_ttl_minutes is 30
    app.clock.advance(timedelta(minutes=30))
    response = await confirm_reset(app, token)
    # Assert
    assert response.status_code == 401
    assert (await login(app.client, user.email, PASSWORD)).status_code == 200


async def test_password_reset_token_just_before_expiry_works(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    token = await reset_token_for(app, user.email)
    # Act
    app.clock.advance(timedelta(minutes=30) - timedelta(seconds=1))
    response = await confirm_reset(app, token)
    # Assert
    assert response.status_code == 204


async def test_password_reset_new_request_supersedes_the_earlier_link(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    earlier = await reset_token_for(app, user.email)
    later = await reset_token_for(app, user.email)
    # Act
    stale = await confirm_reset(app, earlier)
    # Assert
    assert later != earlier
    assert stale.status_code == 401
    assert (await confirm_reset(app, later)).status_code == 204


async def test_password_reset_with_a_weak_password_is_422_and_keeps_the_token(
    app: Harness,
) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    token = await reset_token_for(app, user.email)
    # Act
    refused = await confirm_reset(app, token, "password1234")
    # Assert
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["new_password"]
    assert "password1234" not in refused.text
    assert (await confirm_reset(app, token)).status_code == 204


async def test_password_reset_token_is_stored_only_as_a_hash(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    # Act
    token = await reset_token_for(app, user.email)
    # Assert
    async with app.container.uow() as uow:
        rows = (await uow.session.execute(text("SELECT * FROM account_token"))).mappings().all()
    dump = json.dumps([dict(r) for r in rows], default=str)
    assert len(rows) == 1
    assert token not in dump
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()


async def test_email_verification_confirm_marks_the_email_verified(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    me_before = await app.client.get(f"{API}/me", headers=bearer(tokens["access_token"]))
    assert me_before.json()["user"]["email_verified"] is False
    requested = await app.client.post(
        f"{API}/auth/email-verification/request", headers=bearer(tokens["access_token"])
    )
    assert requested.status_code == 202, requested.text
    [mail] = read_mails(app.mail_dir)
    assert mail["To"] == user.email
    assert "/verify-email#token=" in body_text(mail)
    # Act
    response = await app.client.post(
        f"{API}/auth/email-verification/confirm", json={"token": token_in(body_text(mail))}
    )
    # Assert
    assert response.status_code == 204, response.text
    me = await app.client.get(f"{API}/me", headers=bearer(tokens["access_token"]))
    assert me.json()["user"]["email_verified"] is True


async def test_email_verification_token_used_twice_is_401(app: Harness) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    tokens = await sign_in(app.client, user)
    await app.client.post(
        f"{API}/auth/email-verification/request", headers=bearer(tokens["access_token"])
    )
    token = token_in(body_text(read_mails(app.mail_dir)[-1]))
    confirm = f"{API}/auth/email-verification/confirm"
    assert (await app.client.post(confirm, json={"token": token})).status_code == 204
    # Act
    response = await app.client.post(confirm, json={"token": token})
    # Assert
    assert response.status_code == 401


async def test_email_verification_request_without_a_token_is_401_and_sends_nothing(
    app: Harness,
) -> None:
    # Arrange
    await seed_clinic(app.container)
    # Act
    response = await app.client.post(f"{API}/auth/email-verification/request")
    # Assert
    assert response.status_code == 401
    assert read_mails(app.mail_dir) == []


async def test_email_verification_confirm_with_a_password_reset_token_is_401(
    app: Harness,
) -> None:
    # Arrange
    user = (await seed_clinic(app.container))["clinician"]
    reset_token = await reset_token_for(app, user.email)
    # Act
    response = await app.client.post(
        f"{API}/auth/email-verification/confirm", json={"token": reset_token}
    )
    # Assert
    assert response.status_code == 401
    assert (await confirm_reset(app, reset_token)).status_code == 204  # still a reset token


# -- SMTP ----------


class Collector:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Collector, int]]:
    """A real SMTP server on a free local port (its thread's chatter kept out of the output)."""
    collector = Collector()
    port = free_port()
    server_log = logging.getLogger("mail.log")
    level = server_log.level
    server_log.setLevel(logging.WARNING)
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield collector, port
    finally:
        controller.stop()
        server_log.setLevel(level)


async def test_password_reset_over_smtp_reaches_the_recipient_with_a_working_link(
    start_app: StartApp, smtp_server: tuple[Collector, int]
) -> None:
    # Arrange
    collector, port = smtp_server
    app = await start_app(
        mail={
            "backend": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "from_address": "no-reply@clinicos.example",
        }
    )
    user = (await seed_clinic(app.container))["clinician"]
    # Act
    response = await request_reset(app, user.email)
    # Assert
    assert response.status_code == 202
    [envelope] = collector.envelopes
    assert envelope.rcpt_tos == [user.email]
    assert envelope.mail_from == "no-reply@clinicos.example"
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"] == user.email
    token = token_in(body_text(message))
    assert (await confirm_reset(app, token)).status_code == 204
    assert (await login(app.client, user.email, NEW_PASSWORD)).status_code == 200
    assert not app.mail_dir.exists()  # nothing went to the file sink


async def test_password_reset_with_smtp_down_still_answers_202_and_logs_the_failure(
    start_app: StartApp, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange: a port nothing listens on
    app = await start_app(
        mail={
            "backend": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": free_port(),
            "smtp_timeout_seconds": 2,
        }
    )
    user = (await seed_clinic(app.container))["clinician"]
    capsys.readouterr()
    # Act
    response = await request_reset(app, user.email)
    # Assert
    assert response.status_code == 202
    assert response.json() == {"status": "accepted"}
    output = capsys.readouterr().out
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert "account_mail_failed" in {e.get("event") for e in events}
    assert user.email not in output  # the log names no recipient
    assert (await login(app.client, user.email, PASSWORD)).status_code == 200

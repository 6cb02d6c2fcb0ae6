"""The mail adapters: the file sink turns a filesystem failure into MailDeliveryFailed (never a
bare OSError), writes private .eml files with complete headers; the console backend logs that
nothing was sent without the recipient or the content; build_mailer follows the settings."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from clinicos.config import Environment, Settings
from clinicos.platform.mail import (
    ConsoleMailer,
    FileMailer,
    MailDeliveryFailed,
    OutgoingMail,
    SmtpMailer,
    build_mailer,
)
from clinicos.platform.observability.logging import configure_logging

SENDER = "clinicos@mail.example.org"
RECIPIENT = "ana.quispe@example.org"
SUBJECT = "Restablecer su contraseña"
BODY = "Abra https://clinic.example.org/reset#token=abc123secret para continuar."
MAIL = OutgoingMail(to=RECIPIENT, subject=SUBJECT, text=BODY, kind="password_reset")


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Everything logged during the test, as JSON lines; the session's logging restored after."""
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    try:
        yield stream
    finally:
        configure_logging("INFO", json=True)


def blocked_directory(tmp_path: Path, case: str) -> Path:
    """A mail directory that can't be created, even by root: a regular file is in the way."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file")
    return blocker if case == "is_a_file" else blocker / "mail"


# -- FileMailer ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["under_a_file", "is_a_file"])
async def test_file_mailer_when_directory_cannot_be_created_raises_mail_delivery_failed(
    tmp_path: Path, case: str
) -> None:
    mailer = FileMailer(blocked_directory(tmp_path, case), SENDER)

    with pytest.raises(MailDeliveryFailed) as raised:
        await mailer.send(MAIL)

    # The callers handle MailDeliveryFailed; a bare OSError would escape them as a 500.
    assert isinstance(raised.value.__cause__, OSError)
    message = str(raised.value)
    assert RECIPIENT not in message and BODY not in message and str(tmp_path) not in message


async def test_file_mailer_when_sent_writes_private_eml_with_complete_headers(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "var" / "mail"  # created on first send
    mailer = FileMailer(directory, SENDER)

    await mailer.send(MAIL)

    (path,) = directory.glob("*.eml")
    assert path.name.endswith("-password_reset.eml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # reset links grant account access
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["From"] == SENDER
    assert message["To"] == RECIPIENT
    assert message["Subject"] == SUBJECT
    assert message["Message-ID"].startswith("<") and message["Message-ID"].endswith(
        "@mail.example.org>"
    )
    assert parsedate_to_datetime(message["Date"]).utcoffset() is not None
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().strip() == BODY


# -- ConsoleMailer ---------------------------------------------------------------------------------


async def test_console_mailer_when_sent_logs_kind_without_recipient_or_content(
    log_stream: io.StringIO,
) -> None:
    await ConsoleMailer().send(MAIL)

    output = log_stream.getvalue()
    events = [json.loads(line) for line in output.splitlines() if line.strip()]
    (logged,) = [e for e in events if e.get("event") == "mail_not_sent_console_backend"]
    assert logged["template"] == "password_reset"
    for secret in (RECIPIENT, "ana.quispe", SUBJECT, BODY, "abc123secret"):
        assert secret not in output


# -- build_mailer ----------------------------------------------------------------------------------


def settings_with(tmp_path: Path, **mail: object) -> Settings:
    return Settings(
        env=Environment.test,
        var_dir=tmp_path,
        _env_file=None,
        mail=mail,
    )


def test_build_mailer_when_backend_file_writes_under_var_dir_mail(tmp_path: Path) -> None:
    mailer = build_mailer(settings_with(tmp_path, backend="file", from_address=SENDER))

    assert isinstance(mailer, FileMailer)
    assert mailer.directory == tmp_path / "mail"
    assert mailer.sender == SENDER


def test_build_mailer_when_backend_console_returns_console_mailer(tmp_path: Path) -> None:
    assert isinstance(build_mailer(settings_with(tmp_path, backend="console")), ConsoleMailer)


def test_build_mailer_when_backend_smtp_returns_smtp_mailer_with_its_settings(
    tmp_path: Path,
) -> None:
    mailer = build_mailer(
        settings_with(tmp_path, backend="smtp", smtp_host="smtp.example.org", smtp_port=2525)
    )

    assert isinstance(mailer, SmtpMailer)
    assert (mailer.settings.smtp_host, mailer.settings.smtp_port) == ("smtp.example.org", 2525)

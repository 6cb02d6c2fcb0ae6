"""Outgoing email behind one adapter: SMTP for real, a file sink or console log for development."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Protocol

from clinicos.config import MailSettings, Settings
from clinicos.kernel.clock import utc_now
from clinicos.platform.observability.logging import get_logger

log = get_logger("clinicos.mail")


@dataclass(frozen=True)
class OutgoingMail:
    to: str
    subject: str
    text: str
    # A technical tag for logs and metrics ("password_reset"), never content.
    kind: str


class MailDeliveryFailed(Exception):
    """The message could not be handed over; the reason names no recipient or content."""


class Mailer(Protocol):
    async def send(self, mail: OutgoingMail) -> None: ...


def _to_message(mail: OutgoingMail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "clinicos.local")
    message["Date"] = utc_now().strftime("%a, %d %b %Y %H:%M:%S +0000")
    message.set_content(mail.text)
    return message


class FileMailer:
    """Development sink: each message becomes an .eml file (mode 0600) in a directory."""

    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    async def send(self, mail: OutgoingMail) -> None:
        message = _to_message(mail, self.sender)
        stamp = utc_now().strftime("%Y%m%dT%H%M%S%f")
        path = self.directory / f"{stamp}-{mail.kind}.eml"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(path.write_bytes, message.as_bytes())
            path.chmod(0o600)  # links in these messages grant account access
        except OSError as exc:
            raise MailDeliveryFailed(f"could not write the message ({type(exc).__name__})") from exc
        log.info("mail_written", template=mail.kind, file=path.name)


class ConsoleMailer:
    """Logs that a message would be sent; the recipient and content are never logged."""

    async def send(self, mail: OutgoingMail) -> None:
        log.info("mail_not_sent_console_backend", template=mail.kind)


class SmtpMailer:
    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    async def send(self, mail: OutgoingMail) -> None:
        message = _to_message(mail, self.settings.from_address)
        try:
            await asyncio.to_thread(self._send_blocking, message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("mail_delivery_failed", template=mail.kind, exc_info=exc)
            raise MailDeliveryFailed(f"SMTP delivery failed ({type(exc).__name__})") from exc
        log.info("mail_sent", template=mail.kind)

    def _send_blocking(self, message: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds) as smtp:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_username and s.smtp_password is not None:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
            smtp.send_message(message)


def build_mailer(settings: Settings) -> Mailer:
    backend = settings.mail.backend
    if backend == "smtp":
        return SmtpMailer(settings.mail)
    if backend == "console":
        return ConsoleMailer()
    return FileMailer(settings.var_dir / "mail", settings.mail.from_address)

"""The console's sign-in state, kept in the browser as one sealed cookie.

The cookie holds the identity tokens the API would hand a client (access + refresh), the time
the sign-in started and the time of the last request, and the CSRF token of the session —
sealed with AES-GCM under a key derived from the installation secret, so it can be neither
read nor altered by the browser. ``HttpOnly``, ``SameSite=Lax``, ``Secure`` behind TLS,
scoped to ``/console``. See docs/adr/0018-console-sessions.md.

Timeouts (our policy, following HIPAA §164.312(a)(2)(iii) "automatic logoff"): 30 minutes
without a request ends the sign-in; 12 hours after sign-in it ends whatever the activity."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from clinicos.platform.crypto import SealBroken, SecretBox

COOKIE = "clinicos_console"
PRE_COOKIE = "clinicos_console_pre"  # before sign-in: CSRF of the sign-in form, MFA step
LANG_COOKIE = "clinicos_lang"
COOKIE_PATH = "/console"
IDLE_TIMEOUT_SECONDS = 30 * 60
ABSOLUTE_TIMEOUT_SECONDS = 12 * 3600
PRE_MAX_AGE_SECONDS = 15 * 60
_AAD = "console-session"
_PRE_AAD = "console-pre"


@dataclass(frozen=True)
class ConsoleSession:
    access: str
    refresh: str
    started: float  # epoch seconds
    seen: float
    csrf: str
    scope: str | None = None  # "mfa_enroll": the account must enrol MFA before anything else

    @classmethod
    def start(cls, access: str, refresh: str, now: datetime, scope: str | None) -> ConsoleSession:
        at = now.timestamp()
        return cls(access, refresh, at, at, secrets.token_urlsafe(24), scope)

    def idle_expired(self, now: datetime) -> bool:
        return now.timestamp() - self.seen > IDLE_TIMEOUT_SECONDS

    def absolute_expired(self, now: datetime) -> bool:
        return now.timestamp() - self.started > ABSOLUTE_TIMEOUT_SECONDS

    def touched(self, now: datetime) -> ConsoleSession:
        return replace(self, seen=now.timestamp())

    def with_tokens(self, access: str, refresh: str, scope: str | None) -> ConsoleSession:
        return replace(self, access=access, refresh=refresh, scope=scope)


@dataclass(frozen=True)
class PreSession:
    csrf: str
    created: float
    mfa_token: str | None = None
    next: str | None = None

    @classmethod
    def fresh(cls, now: datetime, next_path: str | None = None) -> PreSession:
        return cls(secrets.token_urlsafe(24), now.timestamp(), None, next_path)

    def expired(self, now: datetime) -> bool:
        return now.timestamp() - self.created > PRE_MAX_AGE_SECONDS


class CookieSealer:
    def __init__(self, installation_secret: str) -> None:
        self._box = SecretBox(installation_secret, "console-cookie")

    def seal(self, value: ConsoleSession) -> str:
        return self._box.seal(json.dumps(asdict(value)).encode(), aad=_AAD)

    def open(self, raw: str | None) -> ConsoleSession | None:
        data = self._open(raw, _AAD)
        try:
            return ConsoleSession(**data) if data is not None else None
        except TypeError:
            return None

    def seal_pre(self, value: PreSession) -> str:
        return self._box.seal(json.dumps(asdict(value)).encode(), aad=_PRE_AAD)

    def open_pre(self, raw: str | None) -> PreSession | None:
        data = self._open(raw, _PRE_AAD)
        try:
            return PreSession(**data) if data is not None else None
        except TypeError:
            return None

    def _open(self, raw: str | None, aad: str) -> dict[str, Any] | None:
        if not raw or len(raw) > 8000:
            return None
        try:
            data = json.loads(self._box.open(raw, aad=aad))
        except (SealBroken, ValueError):  # altered, from another secret, or not ours at all
            return None
        return data if isinstance(data, dict) else None


def safe_next(path: str | None) -> str | None:
    """Only a path inside the console may be a place to return to (no open redirect)."""
    if not path or len(path) > 500:
        return None
    if not path.startswith(COOKIE_PATH + "/") and path != COOKIE_PATH:
        return None
    if "//" in path or "\\" in path or any(ord(ch) < 0x20 for ch in path):
        return None
    return path

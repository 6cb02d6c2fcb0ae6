"""TOTP (RFC 6238) checks with one-time use of each code, and recovery codes."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime

import pyotp

from clinicos.identity.tokens import token_hash

STEP_SECONDS = 30  # RFC 6238 §5.2 recommended time step
# Accept the previous and next step for clock drift (RFC 6238 §5.2 allows a small window).
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def accepted_timestep(
    secret: str, code: str, *, now: datetime, last_used: int | None
) -> int | None:
    """The time step ``code`` belongs to, if valid and newer than the last one used."""
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_used is not None and step <= last_used:
            continue  # each code (and any older one) is usable once
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    # 10 codes of 10 base32 characters (50 bits each), shown once, stored hashed.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return [
        "".join(secrets.choice(alphabet) for _ in range(5))
        + "-"
        + "".join(secrets.choice(alphabet) for _ in range(5))
        for _ in range(RECOVERY_CODE_COUNT)
    ]


def recovery_code_hash(code: str) -> str:
    return token_hash(code.strip().upper().replace(" ", ""))

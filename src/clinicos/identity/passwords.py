"""Password hashing (argon2id, rehash when parameters change) and the password policy."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION
from zxcvbn.frequency_lists import FREQUENCY_LISTS

# NIST SP 800-63B §5.1.1.2: at least 8 characters and check against commonly used passwords;
# 12 is our policy (the requirement), stricter than NIST's floor.
MIN_LENGTH = 12
MAX_LENGTH = 256  # argon2 handles any length; the cap keeps a request from hashing megabytes


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    new_hash: str | None = None  # set when the stored hash used outdated parameters


class Passwords:
    """argon2id hashing. Defaults (t=3, m=64 MiB, p=4) are argon2-cffi's RFC 9106 low-memory
    profile, above OWASP's 2023 minimum (m=19 MiB, t=2, p=1). A stored hash made with other
    parameters is re-hashed at the next successful sign-in."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        self._dummy_hash = _unmatchable_hash(self._hasher)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> VerifyResult:
        """Check a password; with no stored hash (unknown user) spend the same hashing time."""
        try:
            self._hasher.verify(stored_hash or self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return VerifyResult(ok=False)
        if stored_hash is None:
            return VerifyResult(ok=False)
        if self._hasher.check_needs_rehash(stored_hash):
            return VerifyResult(ok=True, new_hash=self._hasher.hash(password))
        return VerifyResult(ok=True)


def _unmatchable_hash(hasher: PasswordHasher) -> str:
    """An argon2id hash in ``hasher``'s parameters of no password at all: a random salt and a
    random digest. Verifying anything against it costs exactly what a real verify costs (the
    same parameters are run) and never matches. Hashing a dummy password instead took ~0.35 s
    of every start-up (cold start is a benchmark target, issue 8)."""
    salt = base64.b64encode(os.urandom(hasher.salt_len)).decode().rstrip("=")
    digest = base64.b64encode(os.urandom(hasher.hash_len)).decode().rstrip("=")
    return (
        f"$argon2id$v={ARGON2_VERSION}$m={hasher.memory_cost},t={hasher.time_cost},"
        f"p={hasher.parallelism}${salt}${digest}"
    )


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """zxcvbn's 30,000 most common passwords plus our list of Spanish/Portuguese/clinic ones."""
    local = resources.files("clinicos.identity.data").joinpath("common_passwords.txt")
    extra = [
        line.strip().lower()
        for line in local.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"]) | frozenset(extra)


def password_problems(password: str, *, email: str | None = None) -> list[str]:
    """Why a new password is refused (empty list: acceptable). Never echoes the password."""
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"must be at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in common_passwords() or _is_repetition_of_common(lowered):
        problems.append("is on the list of commonly used passwords")
    if email and lowered in {email.lower(), email.split("@", 1)[0].lower()}:
        problems.append("must not be the email address")
    if len(set(password)) < 4:
        problems.append("has too few distinct characters")
    return problems


def _is_repetition_of_common(lowered: str) -> bool:
    # "passwordpassword", "123456123456": a common password repeated is still common.
    for size in range(1, len(lowered) // 2 + 1):
        if len(lowered) % size == 0 and lowered[:size] * (len(lowered) // size) == lowered:
            return lowered[:size] in common_passwords() or size <= 3
    return False

"""Token-signing keys: stored sealed in the database, cached per process, rotated by CLI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clinicos.config import IdentitySettings
from clinicos.identity.models import SigningKeyRecord
from clinicos.identity.tokens import (
    ALGORITHM,
    SigningKey,
    TokenCodec,
    new_signing_key,
    private_key_bytes,
    private_key_from_bytes,
    public_key_from_text,
    public_key_text,
)
from clinicos.platform.crypto import SecretBox


class NoActiveKey(LookupError):
    """The keyring has no active key yet (first start of an installation)."""


KEY_ACTIVE = "active"
KEY_RETIRED = "retired"
# Another process may have rotated: look at the table again after this long.
_RELOAD_SECONDS = 30.0


async def ensure_active_key(session: AsyncSession, box: SecretBox, now: datetime) -> str:
    """Create the first signing key if there is none; return the active kid (caller commits)."""
    kid = (
        await session.execute(
            select(SigningKeyRecord.kid)
            .where(SigningKeyRecord.status == KEY_ACTIVE)
            .order_by(SigningKeyRecord.created_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if kid is not None:
        return kid
    return await _add_key(session, box, now)


async def rotate(session: AsyncSession, box: SecretBox, now: datetime) -> str:
    """New active key; the previous ones retire but keep verifying until their tokens expire."""
    await session.execute(
        update(SigningKeyRecord)
        .where(SigningKeyRecord.status == KEY_ACTIVE)
        .values(status=KEY_RETIRED, retired_at=now)
    )
    return await _add_key(session, box, now)


async def _add_key(session: AsyncSession, box: SecretBox, now: datetime) -> str:
    key = new_signing_key()
    assert key.private_key is not None
    session.add(
        SigningKeyRecord(
            kid=key.kid,
            algorithm=ALGORITHM,
            public_key=public_key_text(key.public_key),
            private_key_sealed=box.seal(private_key_bytes(key.private_key), aad=key.kid),
            status=KEY_ACTIVE,
            created_at=now,
        )
    )
    await session.flush()
    return key.kid


async def load_codec(
    session: AsyncSession, box: SecretBox, settings: IdentitySettings, now: datetime
) -> TokenCodec:
    # Retired keys verify only as long as a token signed just before retirement can live.
    grace = timedelta(seconds=settings.access_token_ttl_seconds + 60)
    rows = (
        (
            await session.execute(
                select(SigningKeyRecord)
                .where(
                    or_(
                        SigningKeyRecord.status == KEY_ACTIVE,
                        SigningKeyRecord.retired_at > now - grace,
                    )
                )
                .order_by(SigningKeyRecord.created_at)
            )
        )
        .scalars()
        .all()
    )
    keys: dict[str, SigningKey] = {}
    active_kid = None
    for row in rows:
        private = None
        if row.status == KEY_ACTIVE and row.private_key_sealed:
            private = private_key_from_bytes(box.open(row.private_key_sealed, aad=row.kid))
            active_kid = row.kid
        keys[row.kid] = SigningKey(
            kid=row.kid, private_key=private, public_key=public_key_from_text(row.public_key)
        )
    if active_kid is None:
        raise NoActiveKey("no active signing key")
    return TokenCodec(
        issuer=settings.jwt_issuer, audience=settings.jwt_audience, keys=keys, active_kid=active_kid
    )


class CodecCache:
    """One TokenCodec per process, reloaded periodically so rotations elsewhere are picked up."""

    def __init__(self) -> None:
        self._codec: TokenCodec | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._codec = None

    def age(self) -> float:
        return time.monotonic() - self._loaded_at if self._codec is not None else float("inf")

    async def get(self, loader: Callable[[], Awaitable[TokenCodec]]) -> TokenCodec:
        if self._codec is not None and time.monotonic() - self._loaded_at < _RELOAD_SECONDS:
            return self._codec
        async with self._lock:
            if self._codec is None or time.monotonic() - self._loaded_at >= _RELOAD_SECONDS:
                self._codec = await loader()
                self._loaded_at = time.monotonic()
        return self._codec

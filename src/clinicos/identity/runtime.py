"""What identity's use cases need besides a unit of work: settings, hashing, keys, mail, clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clinicos.config import IdentitySettings, Settings
from clinicos.identity.keyring import CodecCache, NoActiveKey, ensure_active_key, load_codec
from clinicos.identity.passwords import Passwords
from clinicos.identity.tokens import TokenCodec, VerifiedTokenCache
from clinicos.kernel.clock import Clock
from clinicos.kernel.errors import ServiceUnavailable
from clinicos.platform.crypto import SealBroken, SecretBox
from clinicos.platform.mail import Mailer


@dataclass
class IdentityRuntime:
    settings: IdentitySettings
    passwords: Passwords
    mailer: Mailer
    clock: Clock
    sessions: async_sessionmaker[AsyncSession]
    signing_box: SecretBox
    totp_box: SecretBox
    codecs: CodecCache = field(default_factory=CodecCache)
    verified_tokens: VerifiedTokenCache = field(default_factory=VerifiedTokenCache)

    async def codec(self, *, refresh_if_older_than: float | None = None) -> TokenCodec:
        """The process's token codec. ``refresh_if_older_than``: reload when the cached keys
        are older than that many seconds (a token names a key this process hasn't seen)."""
        if refresh_if_older_than is not None and self.codecs.age() > refresh_if_older_than:
            self.codecs.invalidate()
        return await self.codecs.get(self._load_codec)

    async def _load_codec(self) -> TokenCodec:
        try:
            async with self.sessions() as session:
                return await load_codec(session, self.signing_box, self.settings, self.clock.now())
        except NoActiveKey:
            # A fresh installation, or a server that started before its schema existed.
            async with self.sessions() as session, session.begin():
                await ensure_active_key(session, self.signing_box, self.clock.now())
            async with self.sessions() as session:
                return await load_codec(session, self.signing_box, self.settings, self.clock.now())
        except SealBroken as exc:
            raise ServiceUnavailable(
                "token signing keys cannot be opened with the configured CLINICOS_SECRET_KEY; "
                "restore the previous secret or run `clinicos keys rotate`",
                code="signing_keys_unavailable",
            ) from exc


def build_identity_runtime(
    settings: Settings,
    *,
    mailer: Mailer,
    clock: Clock,
    sessions: async_sessionmaker[AsyncSession],
) -> IdentityRuntime:
    secret = settings.secret_key.get_secret_value()
    ident = settings.identity
    return IdentityRuntime(
        settings=ident,
        passwords=Passwords(
            time_cost=ident.argon2_time_cost,
            memory_kib=ident.argon2_memory_kib,
            parallelism=ident.argon2_parallelism,
        ),
        mailer=mailer,
        clock=clock,
        sessions=sessions,
        signing_box=SecretBox(secret, "signing-keys"),
        totp_box=SecretBox(secret, "totp-secrets"),
    )

"""What identity's use cases need besides a unit of work: settings, hashing, keys, mail, clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clinicos.config import IdentitySettings, Settings
from clinicos.identity.keyring import CodecCache, load_codec
from clinicos.identity.passwords import Passwords
from clinicos.identity.tokens import TokenCodec
from clinicos.kernel.clock import Clock
from clinicos.platform.crypto import SecretBox
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

    async def codec(self) -> TokenCodec:
        async def _load() -> TokenCodec:
            async with self.sessions() as session:
                return await load_codec(session, self.signing_box, self.settings, self.clock.now())

        return await self.codecs.get(_load)


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

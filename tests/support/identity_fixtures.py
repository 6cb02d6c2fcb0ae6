"""Identity test helpers: seed organizations and users through the real services, sign in over
the real HTTP API, compute TOTP codes, read the mail the file backend wrote.

`start_app` starts the real app (lifespan run, no worker) on the test's migrated database with a
FixedClock, so expiry (lockout, MFA step, reset links) is tested by moving the clock, not by
sleeping. Every test using it runs on SQLite and PostgreSQL (through the `settings` fixture).

A test module makes the fixtures visible by binding them at module level (no shared conftest):

    from tests.support import identity_fixtures
    start_app = identity_fixtures.start_app
    harness = identity_fixtures.harness  # needs start_app bound too
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from httpx import ASGITransport, AsyncClient

from clinicos.bootstrap import Container
from clinicos.config import Settings
from clinicos.governance import AuditEvent, list_audit_events
from clinicos.identity.services import organizations, users
from clinicos.kernel.actor import SystemActor
from clinicos.kernel.clock import FixedClock
from clinicos.main import create_app
from tests.conftest import make_settings, truncate_all
from tests.support import engines

START = datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)
PASSWORD = "Correct-Horse-Battery-42"
NEW_PASSWORD = "Quiet-Lantern-Orbit-77"
FAST_ARGON2: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 64,
    "argon2_parallelism": 1,
}
TOKEN_IN_LINK = re.compile(r"#token=([A-Za-z0-9_\-]+)")
API = "/api/v1"


def identity_settings(
    base: Settings, *, identity: dict[str, Any] | None = None, **overrides: Any
) -> Settings:
    """Test settings on ``base``'s database and var_dir; identity overrides keep fast argon2
    unless they set argon2 parameters themselves."""
    assert base.database_url is not None
    return make_settings(
        base.database_url,
        base.var_dir,
        identity={**FAST_ARGON2, **(identity or {})},
        **overrides,
    )


@dataclass
class Harness:
    """One running app: its container, an HTTP client on it, and the clock it runs on."""

    container: Container
    client: AsyncClient
    clock: FixedClock
    settings: Settings

    @property
    def mail_dir(self) -> Path:
        return self.settings.var_dir / "mail"

    def totp(self, secret: str) -> str:
        """The TOTP code of the current (fixed) time."""
        return totp_code(secret, self.clock.now())


@asynccontextmanager
async def running_app(
    settings: Settings, *, clock: FixedClock | None = None
) -> AsyncIterator[Harness]:
    clock = clock or FixedClock(START)
    container = engines.build_container_reusing_engine(settings, clock=clock)
    try:
        app = create_app(settings, container=container, run_worker=False)
        async with (
            app.router.lifespan_context(app),  # disposes the container on exit
            AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as http,
        ):
            yield Harness(container=container, client=http, clock=clock, settings=settings)
    finally:
        engines.give_back(container.engine)  # only taken back if the lifespan disposed it


StartApp = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start_app(settings: Settings) -> AsyncIterator[StartApp]:
    """``await start_app(identity={...}, rate_limit={...}, mail={...}, clock=...)``: a running
    app on this test's database; several may run at once (same database). Tables are emptied
    after the test."""
    stack = AsyncExitStack()
    started: list[Harness] = []

    async def start(*, clock: FixedClock | None = None, **overrides: Any) -> Harness:
        harness = await stack.enter_async_context(
            running_app(identity_settings(settings, **overrides), clock=clock)
        )
        started.append(harness)
        return harness

    try:
        yield start
    finally:
        await stack.aclose()
        if started:
            await truncate_all(started[0].container)


@pytest.fixture
async def harness(start_app: StartApp) -> Harness:
    """The app with default identity settings (fast argon2, auth limited to 5/minute)."""
    return await start_app()


@pytest.fixture
async def relaxed(start_app: StartApp) -> Harness:
    """The app with the sign-in rate limit raised, for tests that sign in many times."""
    return await start_app(rate_limit={"auth": "100/minute"})


# -- seeding through the real services ----------


@dataclass(frozen=True)
class SeededUser:
    id: str
    email: str
    password: str
    organization_id: str
    organization: str  # slug


async def create_org(
    container: Container,
    slug: str = "el-alto",
    *,
    name: str | None = None,
    mfa_required_for_admin: bool = False,
) -> str:
    """A clinic; MFA for admins is off unless the test is about it. Returns its id."""
    async with container.uow() as uow:
        org = await organizations.create_organization(
            uow=uow,
            actor=SystemActor("test"),
            slug=slug,
            name=name or slug.replace("-", " ").title(),
            country="BO",
            locale="es",
            currency="BOB",
            timezone="America/La_Paz",
            mfa_required_for_admin=mfa_required_for_admin,
        )
        await uow.commit()
        return org.id


async def create_user(
    container: Container,
    organization_id: str,
    email: str,
    *,
    roles: Sequence[str] = ("clinician",),
    password: str = PASSWORD,
    slug: str = "el-alto",
) -> SeededUser:
    async with container.uow() as uow:
        user = await users.create_user(
            uow=uow,
            runtime=container.identity,
            actor=SystemActor("test"),
            organization_id=organization_id,
            email=email,
            display_name=email.split("@")[0],
            roles=list(roles),
            password=password,
        )
        await uow.commit()
        return SeededUser(
            id=user.id,
            email=user.email,
            password=password,
            organization_id=organization_id,
            organization=slug,
        )


async def grant_roles(
    container: Container, organization_id: str, email: str, roles: Sequence[str]
) -> None:
    async with container.uow() as uow:
        await users.grant_roles(
            uow=uow,
            actor=SystemActor("test"),
            organization_id=organization_id,
            email=email,
            roles=list(roles),
        )
        await uow.commit()


async def seed_clinic(
    container: Container,
    *,
    slug: str = "el-alto",
    mfa_required_for_admin: bool = False,
    emails: Sequence[tuple[str, Sequence[str]]] = (
        ("clinician@elalto.example", ("clinician",)),
        ("admin@elalto.example", ("admin",)),
    ),
) -> dict[str, SeededUser]:
    """An organization and its users, keyed by their first role."""
    org_id = await create_org(container, slug, mfa_required_for_admin=mfa_required_for_admin)
    seeded: dict[str, SeededUser] = {}
    for email, roles in emails:
        seeded[roles[0]] = await create_user(container, org_id, email, roles=roles, slug=slug)
    return seeded


# -- the HTTP API ----------


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def login(
    client: AsyncClient, email: str, password: str, organization: str | None = None
) -> httpx.Response:
    body: dict[str, str] = {"email": email, "password": password}
    if organization is not None:
        body["organization"] = organization
    return await client.post(f"{API}/auth/login", json=body)


async def sign_in(
    client: AsyncClient, user: SeededUser, organization: str | None = None
) -> dict[str, Any]:
    """Sign in (no MFA) and return the token body; fails the test on anything but tokens."""
    response = await login(client, user.email, user.password, organization)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "access_token" in body, body
    return body


def without_request_ids(problem: dict[str, Any]) -> dict[str, Any]:
    """A problem body minus what legitimately differs between two requests."""
    return {k: v for k, v in problem.items() if k not in {"request_id", "instance"}}


# -- TOTP ----------


def totp_code(secret: str, at: datetime) -> str:
    return str(pyotp.TOTP(secret).at(at))


async def enroll_mfa(harness: Harness, access_token: str) -> tuple[str, list[str]]:
    """Enrol and confirm TOTP with the current code; returns (secret, recovery codes)."""
    enrolled = await harness.client.post(f"{API}/auth/mfa/enroll", headers=bearer(access_token))
    assert enrolled.status_code == 200, enrolled.text
    secret = enrolled.json()["secret"]
    confirmed = await harness.client.post(
        f"{API}/auth/mfa/confirm",
        json={"code": harness.totp(secret)},
        headers=bearer(access_token),
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


# -- mail written by the file backend ----------


def read_mails(directory: Path) -> list[EmailMessage]:
    if not directory.exists():
        return []
    messages = []
    for path in sorted(directory.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def token_in(text: str) -> str:
    match = TOKEN_IN_LINK.search(text)
    assert match is not None, "no link with a token in the message"
    return match.group(1)


# -- audit ----------


async def audit_events(
    container: Container, *, organization_id: str | None = None, action: str | None = None
) -> list[AuditEvent]:
    async with container.uow(organization_id) as uow:
        return await list_audit_events(
            uow.session, organization_id=organization_id, action=action, limit=100
        )

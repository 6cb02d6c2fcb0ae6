"""The real service, twice: two `clinicos serve` processes on one PostgreSQL database and one
Redis share the sign-in budget of an account, so switching servers buys an attacker nothing."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from clinicos.bootstrap import build_container
from clinicos.config import Settings
from clinicos.identity.services.organizations import create_organization
from clinicos.identity.services.users import create_user
from clinicos.kernel.actor import SystemActor
from tests.conftest import MigratedDatabases, drop_pg_database, make_settings, services_unavailable
from tests.support.clinicos_processes import Process, api_servers, clean_env

pytestmark = [pytest.mark.slow, pytest.mark.redis]

REDIS_URL = os.environ.get("CLINICOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BUDGET = 4
# Unique per run: the real app keeps its default key prefix, and budgets outlive a test by
# up to a minute in Redis.
EMAIL = f"nurse-{uuid.uuid4().hex[:12]}@two-servers.example.com"
PASSWORD = "a long enough passphrase 42"


@pytest.fixture
def redis_available() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        services_unavailable("Redis")
    finally:
        client.close()


@pytest.fixture
def database(migrated_databases: MigratedDatabases, tmp_path: Path) -> Iterator[str]:
    url = migrated_databases.postgres("clinicos_rl")
    try:
        asyncio.run(_seed(make_settings(url, tmp_path)))
        yield url
    finally:
        drop_pg_database(url)


async def _seed(settings: Settings) -> None:
    container = build_container(settings)
    try:
        async with container.uow() as uow:
            org = await create_organization(
                uow=uow,
                actor=SystemActor("test"),
                slug="two-servers",
                name="Two Servers",
                country="BO",
                locale="es",
                currency="BOB",
                timezone="America/La_Paz",
                mfa_required_for_admin=False,
            )
            await create_user(
                uow=uow,
                runtime=container.identity,
                actor=SystemActor("test"),
                organization_id=org.id,
                email=EMAIL,
                display_name="Nurse",
                roles=["nurse"],
                password=PASSWORD,
            )
            await uow.commit()
    finally:
        await container.dispose()


def sign_in(server: Process, password: str) -> httpx.Response:
    with httpx.Client(base_url=server.base_url, timeout=10.0, trust_env=False) as http:
        return http.post("/api/v1/auth/login", json={"email": EMAIL, "password": password})


def test_sign_in_budget_is_shared_by_two_real_servers(
    database: str, redis_available: None, tmp_path: Path
) -> None:
    env = clean_env(
        {
            "CLINICOS_ENV": "test",
            "CLINICOS_DATABASE_URL": database,
            "CLINICOS_DATABASE__APP_ROLE": "clinicos_app",
            "CLINICOS_REDIS_URL": REDIS_URL,
            "CLINICOS_RATE_LIMIT__AUTH": f"{BUDGET}/minute",
            "CLINICOS_VAR_DIR": str(tmp_path / "var"),
            "CLINICOS_IDENTITY__ARGON2_TIME_COST": "1",
            "CLINICOS_IDENTITY__ARGON2_MEMORY_KIB": "64",
            "CLINICOS_IDENTITY__ARGON2_PARALLELISM": "1",
        }
    )
    with api_servers(2, env, tmp_path) as servers:
        wrong = [sign_in(servers[i % 2], "not the password at all") for i in range(BUDGET)]
        # Even the right password is refused now, on either server: the budget is spent.
        refused = [sign_in(server, PASSWORD) for server in servers]

    assert [r.status_code for r in wrong] == [401] * BUDGET
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in wrong] == [3, 2, 1, 0]
    assert [r.status_code for r in refused] == [429, 429]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert all(r.json()["code"] == "rate_limited" for r in refused)

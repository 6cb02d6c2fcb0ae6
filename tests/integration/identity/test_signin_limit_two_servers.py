"""The real service, twice: two `clinicos serve` processes on one PostgreSQL database and one
Redis share the sign-in budget of an account, so switching servers buys an attacker nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clinicos.bootstrap import build_container
from clinicos.identity.services.organizations import create_organization
from clinicos.identity.services.users import create_user
from clinicos.kernel.actor import SystemActor
from clinicos.platform.db.lifecycle import upgrade_and_mark
from tests.conftest import create_pg_database, drop_pg_database, make_settings
from tests.integration.platform.test_ratelimit_shared import (
    REDIS_URL,
    Server,
    SharedStore,
    free_port,
    shared_store,
    stop,
    wait_until_healthy,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis]
_ = shared_store  # the fixture, imported for this module

REPO_ROOT = Path(__file__).resolve().parents[3]
BUDGET = 4
# Unique per run: the real app keeps its default key prefix, and budgets outlive a test by
# up to a minute in Redis.
EMAIL = f"nurse-{uuid.uuid4().hex[:12]}@two-servers.example.com"
PASSWORD = "a long enough passphrase 42"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    url = create_pg_database("clinicos_rl")
    try:
        settings = make_settings(url, tmp_path)
        upgrade_and_mark(settings)
        asyncio.run(_seed(settings))
        yield url
    finally:
        drop_pg_database(url)


async def _seed(settings) -> None:  # type: ignore[no-untyped-def]
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


def serve(name: str, database_url: str, tmp_path: Path) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICOS_")}
    env.update(
        {
            "CLINICOS_ENV": "test",
            "CLINICOS_DATABASE_URL": database_url,
            "CLINICOS_DATABASE__APP_ROLE": "clinicos_app",
            "CLINICOS_REDIS_URL": REDIS_URL,
            "CLINICOS_RATE_LIMIT__AUTH": f"{BUDGET}/minute",
            "CLINICOS_VAR_DIR": str(tmp_path / name),
            "CLINICOS_IDENTITY__ARGON2_TIME_COST": "1",
            "CLINICOS_IDENTITY__ARGON2_MEMORY_KIB": "64",
            "CLINICOS_IDENTITY__ARGON2_PARALLELISM": "1",
        }
    )
    log_path = tmp_path / f"{name}.log"
    command = [sys.executable, "-m", "clinicos.cli", "serve", "--port", str(port), "--no-worker"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
    return Server(proc, f"http://127.0.0.1:{port}", log_path)


def sign_in(server: Server, password: str) -> httpx.Response:
    with httpx.Client(base_url=server.base_url, timeout=10.0, trust_env=False) as http:
        return http.post("/api/v1/auth/login", json={"email": EMAIL, "password": password})


def test_sign_in_budget_is_shared_by_two_real_servers(
    database: str, shared_store: SharedStore, tmp_path: Path
) -> None:
    servers = [serve(name, database, tmp_path) for name in ("one", "two")]
    try:
        for server in servers:
            wait_until_healthy(server)
        wrong = [sign_in(servers[i % 2], "not the password at all") for i in range(BUDGET)]
        # Even the right password is refused now, on either server: the budget is spent.
        refused = [sign_in(server, PASSWORD) for server in servers]
    finally:
        for server in servers:
            stop(server.proc)

    assert [r.status_code for r in wrong] == [401] * BUDGET
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in wrong] == [3, 2, 1, 0]
    assert [r.status_code for r in refused] == [429, 429]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert all(r.json()["code"] == "rate_limited" for r in refused)

"""Browser tests of the console: one real server (uvicorn on loopback, in a thread) per test
session and xdist worker, on a migrated SQLite database seeded like `make run` seeds the demo
(two clinics, one user per role, P-001/P-002/P-007 and synthetic patients), driven by headless
Debian Chromium through Playwright.

Tests share the server, so each one works on its own patients or users, or measures before and
after (KPI counts). Chromium comes from the system (`apt-get install chromium`; `.ci/run` installs
it); without it these tests fail rather than skip when CLINICOS_TEST_REQUIRE_SERVICES is set."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from clinicos.bootstrap import build_container
from clinicos.cli_fhir import seed_demo_patients
from clinicos.config import Settings
from clinicos.identity.services.demo import seed_demo
from clinicos.platform.db.lifecycle import upgrade_and_mark
from tests.conftest import make_settings
from tests.support.live_server import live_server

CHROMIUM = os.environ.get("CLINICOS_TEST_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "Console-Demo-Password-42"
CLINICS = ("el-alto", "santa-cruz")
# The console is judged by people, so tests use generous budgets: the rate limits themselves are
# tested in tests/integration (and the sign-in lockout message here uses a wrong password once).
E2E_RATE_LIMITS = {"auth": "200/minute", "write": "2000/minute", "read": "5000/minute"}


@dataclass(frozen=True)
class Console:
    base_url: str
    settings: Settings
    password: str = PASSWORD

    def url(self, path: str) -> str:
        return self.base_url + path

    def email(self, role: str, clinic: str = CLINICS[0]) -> str:
        return f"{role}@{clinic}.example.com"


def _seed(settings: Settings) -> None:
    async def run() -> None:
        c = build_container(settings)
        try:
            await seed_demo(uows=c.uow, runtime=c.identity, password=PASSWORD)
            for number, slug in enumerate(CLINICS):
                await seed_demo_patients(
                    c,
                    organization=slug,
                    email=f"clinician@{slug}.example.com",
                    count=8,
                    seed=number + 1,
                    as_of=datetime.now(UTC).date(),
                )
        finally:
            await c.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    var_dir = tmp_path_factory.mktemp("console")
    url = f"sqlite+aiosqlite:///{var_dir / 'console.db'}"
    settings = make_settings(url, var_dir, rate_limit=E2E_RATE_LIMITS)
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: (upgrade_and_mark(settings), _seed(settings))).result()
    with live_server(settings) as base:
        yield Console(base_url=base, settings=settings)


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        message = f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CLINICOS_TEST_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    browser = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
    )
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile per test (own cookies), English unless the test says otherwise."""
    ctx = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def deliver_outbox(console: Console) -> None:
    """Run the worker's drain once against the server's database, in a thread of its own
    (Playwright's sync API keeps an event loop running in this one)."""

    async def drain() -> None:
        container = build_container(console.settings)
        try:
            result = await container.worker().drain_until_empty()
            assert result.dead == 0, result
        finally:
            await container.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(drain())).result()


def sign_in(page: Page, console: Console, role: str, clinic: str = CLINICS[0]) -> None:
    """Sign in through the form as the demo user of ``role`` (roles without mandatory MFA)."""
    page.goto(console.url("/console/sign-in"))
    page.get_by_label("Email").fill(console.email(role, clinic))
    page.get_by_label("Password").fill(console.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/home")

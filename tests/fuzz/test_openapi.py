"""API fuzzing: schemathesis generates requests for every operation of the OpenAPI document
(JSON API, FHIR facade, CDS Hooks) and sends them to a real server on loopback, signed in as a
user of one of two organizations. Every response must be non-5xx and match its documented
status codes, headers, content type and schema (all schemathesis checks on).

`make test` runs a short deterministic pass (a few examples per operation); `make fuzz` runs the
long randomised pass (CLINICOS_FUZZ_EXAMPLES per operation, ≥ 10,000 cases in all) and prints
the case count for docs/reliability.md. A failing input, once fixed, is kept as a regression test
in the context's own tests."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from clinicos.bootstrap import build_container
from clinicos.config import Settings
from clinicos.identity.services import organizations, users
from clinicos.kernel.actor import SystemActor
from clinicos.platform.db.lifecycle import upgrade_and_mark
from tests.conftest import make_settings
from tests.support.live_server import live_server

EXAMPLES = int(os.environ.get("CLINICOS_FUZZ_EXAMPLES", "3"))
LONG_RUN = "CLINICOS_FUZZ_EXAMPLES" in os.environ
PASSWORD = "Fuzz-Password-Orbit-73"  # pragma: allowlist secret (a test user's)
ROLES = ["admin", "clinician", "pharmacist", "auditor", "supervisor", "researcher"]
CASES: dict[str, int] = {"count": 0, "5xx": 0}
# schemathesis failure codes for server errors (ST1xx are contract failures of other kinds).
SERVER_ERROR_CODES = {"ST101"}


@dataclass(frozen=True)
class Target:
    base_url: str
    tokens: dict[str, str]  # organization slug -> bearer token


def _seed(settings: Settings) -> None:
    async def run() -> None:
        c = build_container(settings)
        try:
            for slug in ("fuzz-a", "fuzz-b"):
                async with c.uow() as uow:
                    org = await organizations.create_organization(
                        uow=uow,
                        actor=SystemActor("fuzz"),
                        slug=slug,
                        name=slug,
                        country="BO",
                        locale="es",
                        currency="BOB",
                        timezone="America/La_Paz",
                        mfa_required_for_admin=False,
                    )
                    await users.create_user(
                        uow=uow,
                        runtime=c.identity,
                        actor=SystemActor("fuzz"),
                        organization_id=org.id,
                        email=f"all@{slug}.example.com",
                        display_name="Fuzz",
                        roles=ROLES,
                        password=PASSWORD,
                    )
                    await uow.commit()
        finally:
            await c.dispose()

    asyncio.run(run())


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    var_dir: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite+aiosqlite:///{var_dir / 'fuzz.db'}"
    settings = make_settings(url, var_dir, rate_limit={"enabled": False})
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: (upgrade_and_mark(settings), _seed(settings))).result()
    with live_server(settings) as base:
        tokens = {}
        for slug in ("fuzz-a", "fuzz-b"):
            response = httpx.post(
                f"{base}/api/v1/auth/login",
                json={"email": f"all@{slug}.example.com", "password": PASSWORD},
            )
            assert response.status_code == 200, response.text
            tokens[slug] = response.json()["access_token"]
        yield Target(base_url=base, tokens=tokens)
    if LONG_RUN:
        print(f"\nfuzz: {CASES['count']} cases, {CASES['5xx']} responses 5xx")


def run_schemathesis(target: Target, organization: str, report: Path) -> dict[str, Any]:
    """One schemathesis CLI run (all phases, all checks) as ``organization``'s user."""
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{target.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {target.tokens[organization]}",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--continue-on-failure",
        # Signing out would end the token every other case uses (logout is tested elsewhere).
        "--exclude-path",
        "/api/v1/auth/logout",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--workers",
        "1",
    ]
    if not LONG_RUN:
        # The short pass of `make test`: generated cases only, the same ones every run. The
        # coverage (boundary values) and stateful (chained calls) phases run in `make fuzz`.
        command += ["--generation-deterministic", "--phases", "fuzzing"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3000, check=False)
    assert report.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(report.read_text())
    result["stdout"] = done.stdout
    return result


@pytest.mark.slow
@pytest.mark.timeout(3600 if LONG_RUN else 300)
@pytest.mark.parametrize("organization", ["fuzz-a", "fuzz-b"])
def test_every_operation_answers_within_its_contract(
    target: Target, organization: str, tmp_path: Path
) -> None:
    result = run_schemathesis(target, organization, tmp_path / "report.json")
    cases = result["test_cases"]["generated"]
    CASES["count"] += cases
    server_errors = [f for f in result["failures"] if f["code"] in SERVER_ERROR_CODES]
    CASES["5xx"] += sum(f["count"] for f in server_errors)
    assert result["operations"]["tested"] >= 100, result["operations"]
    assert result["auth"]["reauth_broke"] is False
    # Stayed signed in: operations answering only 401/403 mean the token stopped working.
    assert len(result["warnings"].get("missing_auth", [])) < 10, result["warnings"]
    summary = result["stdout"][result["stdout"].find("FAILURES") :][:6000]
    assert result["failures"] == [], summary
    assert result["errors"] == [], result["errors"]

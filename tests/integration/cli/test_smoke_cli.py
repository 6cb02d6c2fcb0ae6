"""`clinicos smoke` against a real `clinicos serve` process on loopback: a PostgreSQL installation
(row-level security on, the app as its non-owner role) migrated and seeded by `clinicos db
upgrade` and `clinicos demo seed`, the smoke command run as its own process. Read-only passes
every check and changes no record; --write with an MFA account passes every check and leaves its
labelled patient and override; a wrong password fails the sign-in check and exits 1. Then the
response rules the SQL-injection and XSS probes apply, on answers built here, each shown to fail."""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pyotp
import pytest

from clinicos.cli_smoke import (
    CheckFailed,
    expect_no_rows,
    expect_refused,
    reflection_problem,
)
from tests.conftest import create_pg_database, drop_pg_database
from tests.support.clinicos_processes import api_servers, clean_env, clinicos_command

CHECKS = (
    "health",
    "ready",
    "sign-in",
    "sign-in (oversight)",
    "rate-limit headers",
    "security headers",
    "patient read",
    "cds evaluate",
    "cds override",
    "kpi read",
    "audit verify",
    "sql injection",
    "xss",
)
COMMAND_SECONDS = 120


@dataclass(frozen=True)
class Demo:
    base_url: str
    db_url: str  # the owner's URL, for counting rows behind the API's back
    password: str  # every demo user's (CLINICOS_DEMO_PASSWORD)
    work_dir: Path


def run_cli(
    args: list[str], env: dict[str, str], work_dir: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*clinicos_command(), *args],
        cwd=work_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    work_dir = tmp_path_factory.mktemp("smoke")
    db_url = create_pg_database("clinicos_smoke")
    password = secrets.token_urlsafe(18)
    env = clean_env(
        {
            "CLINICOS_ENV": "test",
            "CLINICOS_DATABASE_URL": db_url,
            "CLINICOS_DATABASE__APP_ROLE": "clinicos_app",
            "CLINICOS_VAR_DIR": str(work_dir / "var"),
            "CLINICOS_DEMO_PASSWORD": password,
            "CLINICOS_MAIL__BACKEND": "file",
            # The seeded hashes' parameters: sign-ins stay quick and never re-hash.
            "CLINICOS_IDENTITY__ARGON2_TIME_COST": "1",
            "CLINICOS_IDENTITY__ARGON2_MEMORY_KIB": "64",
            "CLINICOS_IDENTITY__ARGON2_PARALLELISM": "1",
        }
    )
    try:
        for step in (["db", "upgrade"], ["demo", "seed", "--patients", "2"]):
            done = run_cli(step, env, work_dir)
            assert done.returncode == 0, done.stdout + done.stderr
        with api_servers(1, env, work_dir) as [server]:
            yield Demo(server.base_url, db_url, password, work_dir)
    finally:
        drop_pg_database(db_url)


def smoke(demo: Demo, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """`clinicos smoke --url <demo> <args>`, secrets only in ``CLINICOS_SMOKE_*`` variables."""
    env = clean_env({f"CLINICOS_SMOKE_{k.upper()}": v for k, v in variables.items()})
    return run_cli(["smoke", "--url", demo.base_url, *args], env, demo.work_dir)


def lines_by_check(output: str) -> dict[str, str]:
    """``{check name: PASS|FAIL|SKIP}`` from the command's one line per check."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("PASS", "FAIL", "SKIP"):
            names = [c for c in CHECKS if rest == c or rest.startswith(c + " ")]
            assert names, line
            found[max(names, key=len)] = status
    return found


def count_rows(demo: Demo, table: str) -> int:
    with psycopg.connect(demo.db_url, connect_timeout=5) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # table: a literal here
    assert row is not None
    return int(row[0])


def enrol_mfa(demo: Demo, email: str) -> str:
    """Turn MFA on for ``email`` through the API; its TOTP secret. Confirmed with the previous
    time step's code (accepted for drift), so the smoke run's current-step code is still new."""
    with httpx.Client(base_url=demo.base_url, timeout=10, trust_env=False) as http:
        signed_in = http.post(
            "/api/v1/auth/login", json={"email": email, "password": demo.password}
        )
        assert signed_in.status_code == 200, signed_in.text
        auth = {"authorization": f"Bearer {signed_in.json()['access_token']}"}
        enrolment = http.post("/api/v1/auth/mfa/enroll", headers=auth)
        assert enrolment.status_code == 200, enrolment.text
        secret = str(enrolment.json()["secret"])
        code = pyotp.TOTP(secret).at(time.time() - 30)
        confirmed = http.post("/api/v1/auth/mfa/confirm", json={"code": code}, headers=auth)
        assert confirmed.status_code == 200, confirmed.text
    return secret


@pytest.mark.slow
@pytest.mark.postgres
def test_smoke_read_only_on_seeded_demo_passes_every_check_and_writes_no_record(
    demo: Demo,
) -> None:
    patients, overrides = count_rows(demo, "patient"), count_rows(demo, "cds_override")

    done = smoke(
        demo,
        "--email",
        "clinician@el-alto.example.com",
        "--auditor-email",
        "auditor@el-alto.example.com",
        password=demo.password,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    results = lines_by_check(done.stdout)
    assert set(results) == set(CHECKS), output
    assert {k: v for k, v in results.items() if v != "PASS"} == {"cds override": "SKIP"}, output
    assert done.stdout.splitlines()[-1] == "12 passed, 0 failed, 1 skipped"
    assert "signed in to el-alto as clinician" in done.stdout
    assert demo.password not in output
    # Read-only: no patient registered, no override recorded.
    assert (count_rows(demo, "patient"), count_rows(demo, "cds_override")) == (patients, overrides)


@pytest.mark.slow
@pytest.mark.postgres
def test_smoke_write_with_an_mfa_auditor_passes_every_check(demo: Demo) -> None:
    totp_secret = enrol_mfa(demo, "auditor@santa-cruz.example.com")
    patients, overrides = count_rows(demo, "patient"), count_rows(demo, "cds_override")

    done = smoke(
        demo,
        "--email",
        "clinician@santa-cruz.example.com",
        "--auditor-email",
        "auditor@santa-cruz.example.com",
        "--write",
        password=demo.password,
        auditor_totp_secret=totp_secret,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    results = lines_by_check(done.stdout)
    assert results == dict.fromkeys(CHECKS, "PASS"), output
    assert done.stdout.splitlines()[-1] == f"{len(CHECKS)} passed, 0 failed"
    assert "signed in with MFA to santa-cruz as auditor" in done.stdout
    assert demo.password not in output and totp_secret not in output
    # --write: one labelled smoke patient registered, one override of the smoke evaluation.
    assert count_rows(demo, "patient") == patients + 1
    assert count_rows(demo, "cds_override") == overrides + 1


@pytest.mark.slow
@pytest.mark.postgres
def test_smoke_with_a_wrong_password_fails_sign_in_and_exits_1(demo: Demo) -> None:
    wrong = secrets.token_urlsafe(18)

    done = smoke(demo, "--email", "clinician@el-alto.example.com", password=wrong)

    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    results = lines_by_check(done.stdout)
    assert results["sign-in"] == "FAIL", output
    assert "HTTP 401" in done.stdout
    # What needs a session did not run; what needs none still did, and passed.
    assert results["patient read"] == results["audit verify"] == "SKIP"
    assert results["health"] == results["sql injection"] == results["xss"] == "PASS"
    assert re.fullmatch(r"\d+ passed, 1 failed, \d+ skipped", done.stdout.splitlines()[-1])
    assert wrong not in output


@pytest.mark.slow
def test_smoke_refuses_plain_http_to_a_remote_host_with_exit_2(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(18)
    env = clean_env({"CLINICOS_SMOKE_PASSWORD": password})
    args = ["smoke", "--url", "http://clinic.example.org", "--email", "clinician@x.example.com"]

    done = run_cli(args, env, tmp_path)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing to send a password over plain http" in done.stderr
    assert password not in done.stdout + done.stderr


# -- the response rules the probes apply, on responses built here: each can fail -----------------

PAYLOAD = "<script>alert('x')</script>"
NOSNIFF = {"x-content-type-options": "nosniff"}


def answer(status: int, content_type: str, text: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": content_type, **headers}, text=text)


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        (answer(401, "text/html; charset=utf-8", f"<input value={PAYLOAD}>", **NOSNIFF), "HTML"),
        (answer(200, "text/plain", PAYLOAD, **NOSNIFF), "neither JSON nor HTML"),
        (answer(404, "application/problem+json", "{}"), "nosniff"),
        (answer(401, "text/html", "<input value='&lt;script&gt;'>", **NOSNIFF), None),
        (answer(200, "application/json", f'{{"family_name": "{PAYLOAD}"}}', **NOSNIFF), None),
    ],
    ids=["html-raw", "text-plain", "no-nosniff", "html-escaped", "json-string"],
)
def test_reflection_problem_names_unsafe_answers_only(
    response: httpx.Response, problem: str | None
) -> None:
    found = reflection_problem(response, PAYLOAD)

    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("response", "fails"),
    [
        (answer(200, "application/json", '{"items": [{"id": "p1"}], "next_cursor": null}'), True),
        (answer(500, "application/problem+json", '{"code": "internal_error"}'), True),
        (answer(422, "text/html", "<p>bad</p>"), True),
        (answer(200, "application/json", '{"items": [], "next_cursor": null}'), False),
        (answer(422, "application/problem+json", '{"code": "validation_failed"}'), False),
    ],
    ids=["rows", "5xx", "4xx-html", "no-rows", "4xx-problem"],
)
def test_expect_no_rows_fails_on_rows_errors_and_non_problem_refusals(
    response: httpx.Response, fails: bool
) -> None:
    if fails:
        with pytest.raises(CheckFailed):
            expect_no_rows(response, "probe")
    else:
        expect_no_rows(response, "probe")


def test_expect_refused_fails_on_a_success() -> None:
    with pytest.raises(CheckFailed, match="expected a 4xx"):
        expect_refused(answer(200, "application/json", "{}"), "patient id")

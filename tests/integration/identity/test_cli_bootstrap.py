"""The bootstrap CLI end to end, on SQLite and PostgreSQL: org and user creation, bad input,
the demo seed, key rotation and audit verification; what it creates is used through the API.

The CLI runs its own event loop (``asyncio.run``), so each invocation runs in a worker thread
while the test's loop keeps the app (``client``) and the test's ``container`` alive. On
PostgreSQL the CLI runs as the non-owner app role, as in production.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import jwt
import pytest
from httpx import AsyncClient
from sqlalchemy import distinct, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner, Result

from clinicos.bootstrap import Container
from clinicos.cli import app
from clinicos.identity.keyring import KEY_ACTIVE, KEY_RETIRED
from clinicos.identity.models import Membership, Organization, SigningKeyRecord, UserAccount
from clinicos.identity.permissions import Role
from tests.support.tenancy_fixtures import PASSWORD, login, new_organization

runner = CliRunner()
DEMO_PASSWORD = "Demo-Harbor-Sunset-4410"


@pytest.fixture
def cli_env(container: Container, tmp_path: Path) -> dict[str, str | None]:
    assert container.settings.database_url is not None
    env: dict[str, str | None] = {
        "CLINICOS_DATABASE_URL": container.settings.database_url,
        "CLINICOS_ENV": "test",
        "CLINICOS_VAR_DIR": str(tmp_path / "cli-var"),
        "CLINICOS_IDENTITY__ARGON2_TIME_COST": "1",
        "CLINICOS_IDENTITY__ARGON2_MEMORY_KIB": "64",
        "CLINICOS_IDENTITY__ARGON2_PARALLELISM": "1",
        "CLINICOS_DEMO_PASSWORD": None,  # unset, whatever the outer environment says
    }
    if container.engine.dialect.name == "postgresql":
        env["CLINICOS_DATABASE__APP_ROLE"] = "clinicos_app"
    return env


async def cli(env: dict[str, str | None], *args: str, stdin: str | None = None) -> Result:
    """Run `clinicos <args>` in a thread (it starts its own event loop)."""
    return await asyncio.to_thread(lambda: runner.invoke(app, list(args), input=stdin, env=env))


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


async def create_el_alto(env: dict[str, str | None]) -> None:
    ok(
        await cli(
            env,
            *("org", "create", "--slug", "el-alto", "--name", "El Alto"),
            *("--country", "BO", "--currency", "BOB", "--locale", "es"),
        )
    )


async def count(container: Container, what: object) -> int:
    async with container.uow() as uow:
        return int(await uow.session.scalar(select(func.count()).select_from(what)) or 0)  # type: ignore[arg-type]


# -- org create / user create --------------------------------------------------------------------


async def test_org_and_user_create_when_valid_user_signs_in_with_both_roles(
    container: Container, client: AsyncClient, cli_env: dict[str, str | None]
) -> None:
    # Act
    org_out = await cli(
        cli_env,
        *("org", "create", "--slug", "el-alto", "--name", "El Alto"),
        *("--country", "BO", "--currency", "BOB", "--locale", "es"),
    )
    user_out = await cli(
        cli_env,
        *("user", "create", "--org", "el-alto", "--email", "x@example.com"),
        *("--role", "clinician", "--role", "nurse", "--password-stdin"),
        stdin=PASSWORD + "\n",
    )
    signed = await login(client, "x@example.com", PASSWORD)

    # Assert
    assert "created organization el-alto" in ok(org_out)
    assert "created user x@example.com in el-alto with roles clinician, nurse" in ok(user_out)
    assert PASSWORD not in user_out.output
    assert signed.status_code == 200, signed.text
    assert signed.json()["organization"] == "el-alto"
    me = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {signed.json()['access_token']}"}
    )
    assert me.status_code == 200, me.text
    assert me.json()["user"]["roles"] == ["clinician", "nurse"]
    organization = me.json()["organization"]
    assert (organization["name"], organization["country"]) == ("El Alto", "BO")
    assert (organization["currency"], organization["locale"]) == ("BOB", "es")


ORG_BAD_INPUT = {
    "bad_slug": (["--slug", "El Alto!", "--name", "El Alto"], "slug"),
    "unknown_currency": (
        ["--slug", "el-alto", "--name", "El Alto", "--currency", "EUR"],
        "currency",
    ),
    "unknown_locale": (["--slug", "el-alto", "--name", "El Alto", "--locale", "fr"], "locale"),
    "bad_country": (["--slug", "el-alto", "--name", "El Alto", "--country", "bolivia"], "country"),
}


def assert_clean_failure(result: Result, field: str) -> str:
    """Exit 1 through typer.Exit (not an escaped exception), one error line naming ``field``."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert field in lines[0]
    return lines[0]


@pytest.mark.parametrize("case", sorted(ORG_BAD_INPUT))
async def test_org_create_when_input_bad_exits_1_naming_field_and_creates_nothing(
    container: Container, cli_env: dict[str, str | None], case: str
) -> None:
    args, field = ORG_BAD_INPUT[case]

    result = await cli(cli_env, "org", "create", *args)

    assert_clean_failure(result, field)
    assert await count(container, Organization) == 0


async def test_org_create_when_slug_taken_exits_1_naming_slug(
    container: Container, cli_env: dict[str, str | None]
) -> None:
    await create_el_alto(cli_env)

    result = await cli(cli_env, "org", "create", "--slug", "el-alto", "--name", "Other")

    assert_clean_failure(result, "slug")
    assert await count(container, Organization) == 1


@pytest.mark.parametrize(
    ("roles", "password", "field"),
    [
        (["--role", "clinician", "--role", "surgeon"], PASSWORD, "roles"),
        (["--role", "clinician"], "short-1", "password"),
        (["--role", "clinician"], "password1234", "password"),
    ],
    ids=["unknown_role", "password_too_short", "password_common"],
)
async def test_user_create_when_input_bad_exits_1_naming_field_and_creates_nothing(
    container: Container,
    cli_env: dict[str, str | None],
    roles: list[str],
    password: str,
    field: str,
) -> None:
    # Arrange
    await new_organization(container, "el-alto")

    # Act
    result = await cli(
        cli_env,
        *("user", "create", "--org", "el-alto", "--email", "x@example.com", *roles),
        "--password-stdin",
        stdin=password + "\n",
    )

    # Assert
    line = assert_clean_failure(result, field)
    assert password not in line
    assert await count(container, UserAccount) == 0


async def test_user_create_when_organization_unknown_exits_1_without_traceback(
    container: Container, cli_env: dict[str, str | None]
) -> None:
    result = await cli(
        cli_env,
        *("user", "create", "--org", "nowhere", "--email", "x@example.com"),
        *("--role", "nurse", "--password-stdin"),
        stdin=PASSWORD + "\n",
    )

    assert_clean_failure(result, "organization")
    assert await count(container, UserAccount) == 0


# -- demo seed -----------------------------------------------------------------------------------


async def demo_population(container: Container) -> dict[str, set[str]]:
    """Slug -> the roles held there, asserting one distinct user per role."""
    async with container.uow() as uow:
        rows = (
            await uow.session.execute(
                select(
                    Organization.slug,
                    func.count(distinct(Membership.user_id)),
                    func.count(Membership.id),
                )
                .join(Membership, Membership.organization_id == Organization.id)
                .group_by(Organization.slug)
            )
        ).all()
        roles = (
            await uow.session.execute(
                select(Organization.slug, Membership.role).join(
                    Membership, Membership.organization_id == Organization.id
                )
            )
        ).all()
    for slug, users, memberships in rows:
        assert users == memberships == len(Role), (slug, users, memberships)
    population: dict[str, set[str]] = {}
    for slug, role in roles:
        population.setdefault(slug, set()).add(role)
    return population


async def test_demo_seed_when_password_given_seeds_two_clinics_one_user_per_role(
    container: Container, client: AsyncClient, cli_env: dict[str, str | None]
) -> None:
    # Act
    result = await cli(
        {**cli_env, "CLINICOS_DEMO_PASSWORD": DEMO_PASSWORD}, "demo", "seed", "--patients", "2"
    )

    # Assert
    output = ok(result)
    assert DEMO_PASSWORD in output
    every_role = {r.value for r in Role}
    assert await demo_population(container) == {"el-alto": every_role, "santa-cruz": every_role}
    assert await count(container, UserAccount) == 2 * len(Role)
    for email, slug in (
        ("clinician@el-alto.example.com", "el-alto"),
        ("auditor@santa-cruz.example.com", "santa-cruz"),
    ):
        signed = await login(client, email, DEMO_PASSWORD)
        assert signed.status_code == 200, signed.text
        assert signed.json()["organization"] == slug


async def test_demo_seed_when_password_not_given_prints_a_generated_one_that_signs_in(
    client: AsyncClient, cli_env: dict[str, str | None]
) -> None:
    # Act
    output = ok(await cli(cli_env, "demo", "seed", "--patients", "2"))

    # Assert
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if "generated; shown only now" in line)
    password = lines[header + 1].strip()
    assert len(password) >= 12
    signed = await login(client, "nurse@el-alto.example.com", password)
    assert signed.status_code == 200, signed.text


async def test_demo_seed_when_run_twice_changes_nothing_and_says_so(
    container: Container, cli_env: dict[str, str | None], owner_engine: AsyncEngine
) -> None:
    # Arrange
    ok(
        await cli(
            {**cli_env, "CLINICOS_DEMO_PASSWORD": DEMO_PASSWORD}, "demo", "seed", "--patients", "2"
        )
    )
    counts_before = [await count(container, m) for m in (Organization, UserAccount, Membership)]
    async with owner_engine.connect() as conn:
        audit_before = (await conn.execute(text("SELECT count(*) FROM audit_event"))).scalar()

    # Act
    second = await cli(
        {**cli_env, "CLINICOS_DEMO_PASSWORD": "Other-Password-9931"},
        "demo",
        "seed",
        "--patients",
        "2",
    )

    # Assert
    output = ok(second)
    assert "already present" in output
    assert "Other-Password-9931" not in output
    assert [await count(container, m) for m in (Organization, UserAccount, Membership)] == (
        counts_before
    )
    async with owner_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM audit_event"))).scalar() == (
            audit_before
        )


# -- keys rotate ---------------------------------------------------------------------------------


async def key_statuses(container: Container) -> dict[str, str]:
    async with container.uow() as uow:
        rows = (
            await uow.session.execute(select(SigningKeyRecord.kid, SigningKeyRecord.status))
        ).all()
    return {kid: status for kid, status in rows}


async def test_keys_rotate_when_run_prints_new_kid_that_signs_new_tokens(
    container: Container, client: AsyncClient, cli_env: dict[str, str | None]
) -> None:
    # Arrange: the app's start-up created the first key; a user to sign in with.
    (first_kid,) = [k for k, s in (await key_statuses(container)).items() if s == KEY_ACTIVE]
    await create_el_alto(cli_env)
    ok(
        await cli(
            cli_env,
            *("user", "create", "--org", "el-alto", "--email", "x@example.com"),
            *("--role", "nurse", "--password-stdin"),
            stdin=PASSWORD + "\n",
        )
    )

    # Act
    output = ok(await cli(cli_env, "keys", "rotate"))
    container.identity.codecs.invalidate()  # the app would notice within its reload interval
    signed = await login(client, "x@example.com", PASSWORD)

    # Assert
    new_kid = output.split("new signing key ", 1)[1].split()[0]
    assert new_kid != first_kid
    assert await key_statuses(container) == {first_kid: KEY_RETIRED, new_kid: KEY_ACTIVE}
    assert signed.status_code == 200, signed.text
    assert jwt.get_unverified_header(signed.json()["access_token"])["kid"] == new_kid


# -- audit verify --------------------------------------------------------------------------------


async def seed_trail(env: dict[str, str | None]) -> None:
    """El Alto's chain: organization.create (seq 1), user.create (seq 2)."""
    await create_el_alto(env)
    ok(
        await cli(
            env,
            *("user", "create", "--org", "el-alto", "--email", "x@example.com"),
            *("--role", "clinician", "--password-stdin"),
            stdin=PASSWORD + "\n",
        )
    )


async def test_audit_verify_when_trail_intact_exits_0(
    container: Container, cli_env: dict[str, str | None]
) -> None:
    await seed_trail(cli_env)

    every = await cli(cli_env, "audit", "verify")
    one = await cli(cli_env, "audit", "verify", "--org", "el-alto")

    assert "ok   el-alto: 2 rows" in ok(every)
    assert "FAIL" not in every.output
    assert ok(one).strip() == "ok   el-alto: 2 rows"


async def test_audit_verify_when_one_row_tampered_exits_1_naming_its_seq(
    container: Container, cli_env: dict[str, str | None], owner_engine: AsyncEngine
) -> None:
    # Arrange
    await seed_trail(cli_env)
    async with container.uow() as uow:
        org_id = await uow.session.scalar(
            select(Organization.id).where(Organization.slug == "el-alto")
        )
    async with owner_engine.begin() as conn:
        changed = await conn.execute(
            text("UPDATE audit_event SET action = 'x.y' WHERE chain_key = :k AND seq = 2"),
            {"k": org_id},
        )
    assert changed.rowcount == 1

    # Act
    every = await cli(cli_env, "audit", "verify")
    one = await cli(cli_env, "audit", "verify", "--org", "el-alto")

    # Assert
    for result in (every, one):
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        fail_lines = [line for line in result.output.splitlines() if line.startswith("FAIL")]
        assert len(fail_lines) == 1, result.output
        assert fail_lines[0].startswith("FAIL el-alto: first bad row seq=2 ")
        assert "changed" in fail_lines[0]
    assert "ok   (installation)" in every.output

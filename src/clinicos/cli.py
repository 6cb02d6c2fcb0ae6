"""The `clinicos` command line (typer). Thin: parses options and calls services."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from clinicos.config import (
    ConfigurationError,
    Environment,
    Settings,
    load_settings,
    masked_view,
    production_problems,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from clinicos.bootstrap import Container
    from clinicos.platform.phi import PhiKeyring

T = TypeVar("T")

app = typer.Typer(help="clinicos operations", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="database schema and lifecycle", no_args_is_help=True)
config_app = typer.Typer(help="configuration", no_args_is_help=True)
backup_app = typer.Typer(help="backups with checksummed manifests", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(backup_app, name="backup")
org_app = typer.Typer(help="organizations (clinics)", no_args_is_help=True)
user_app = typer.Typer(help="users and their roles", no_args_is_help=True)
keys_app = typer.Typer(
    help="token-signing keys (rotate) and PHI encryption keys (add, promote, reencrypt, "
    "retire, status)",
    no_args_is_help=True,
)
audit_app = typer.Typer(help="the audit trail", no_args_is_help=True)
app.add_typer(org_app, name="org")
app.add_typer(user_app, name="user")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")


def _settings(*, phi_key_file_may_be_missing: bool = False) -> Settings:
    """The settings, or exit 2 naming what is wrong. ``phi_key_file_may_be_missing``: a
    configured PHI key file that does not exist yet is no reason to refuse (`keys add`
    creates it)."""
    try:
        if not phi_key_file_may_be_missing:
            return load_settings()
        settings = Settings()
        key_file = settings.phi.key_file
        problems = [
            (var, why)
            for var, why in production_problems(settings)
            if not (var == "CLINICOS_PHI__KEY_FILE" and key_file and not key_file.exists())
        ]
        if problems:
            raise ConfigurationError(problems)
        return settings
    except ConfigurationError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    except ValidationError as exc:
        typer.echo(_invalid_settings_message(exc), err=True)
        raise typer.Exit(2) from exc
    except SettingsError as exc:
        typer.echo(_unparsable_settings_message(exc), err=True)
        raise typer.Exit(2) from exc


def _unparsable_settings_message(exc: SettingsError) -> str:
    # pydantic-settings says 'error parsing value for field "rate_limit" from source ...'.
    match = re.search(r'field "([A-Za-z0-9_]+)"', str(exc))
    var = f"CLINICOS_{match.group(1).upper()}" if match else "a CLINICOS_ variable"
    return f"invalid configuration:\n  {var}: not valid JSON"


def _invalid_settings_message(exc: ValidationError) -> str:
    """Name each bad variable as it is spelled in the environment, without echoing its value."""
    lines = ["invalid configuration:"]
    for error in exc.errors():
        var = "CLINICOS_" + "__".join(str(p) for p in error["loc"]).upper()
        lines.append(f"  {var}: {error['msg']}")
    return "\n".join(lines)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


# -- serve / worker ---------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="bind port")] = None,
    worker: Annotated[
        bool | None, typer.Option("--worker/--no-worker", help="run the outbox worker in-process")
    ] = None,
) -> None:
    """Serve the API (and, by default, the outbox worker in the same process)."""
    import uvicorn

    from clinicos.main import create_app

    settings = _settings()
    application = create_app(settings, run_worker=worker)
    uvicorn.run(
        application,
        host=host or settings.http.host,
        port=port or settings.http.port,
        log_config=None,
        access_log=False,
        proxy_headers=settings.http.behind_tls,
    )


@app.command("worker")
def run_worker(
    once: Annotated[bool, typer.Option(help="drain what is due and due jobs, then exit")] = False,
    metrics_port: Annotated[
        int | None, typer.Option(help="serve this worker's Prometheus metrics on this port")
    ] = None,
) -> None:
    """Drain the outbox and run scheduled jobs (run several side by side on PostgreSQL)."""
    from prometheus_client import start_http_server

    from clinicos.bootstrap import build_container
    from clinicos.platform.db.schema import SchemaStatus
    from clinicos.platform.observability.logging import configure_logging
    from clinicos.platform.observability.metrics import REGISTRY

    settings = _settings()
    configure_logging(settings.observability.log_level, json=settings.observability.log_json)
    if metrics_port is not None:
        start_http_server(metrics_port, addr=settings.http.host, registry=REGISTRY)

    async def _main() -> None:
        container = build_container(settings)
        worker = container.worker()
        try:
            # Handlers may need this release's tables: never drain against an older schema.
            if await container.schema.refresh() is SchemaStatus.behind:
                raise _fail("the database schema is behind this release; run `clinicos db upgrade`")
            if once:
                result = await worker.drain_until_empty()
                jobs = await worker.run_due_jobs()
                typer.echo(
                    json.dumps(
                        {
                            "claimed": result.claimed,
                            "delivered": result.delivered,
                            "retried": result.retried,
                            "dead": result.dead,
                            "jobs": jobs,
                        }
                    )
                )
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await worker.run_forever(stop)
        finally:
            await container.dispose()

    asyncio.run(_main())


# -- db -----------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: head) and mark the database's environment."""
    from clinicos.platform.db import lifecycle

    settings = _settings()
    marker = lifecycle.upgrade_and_mark(settings, revision)
    typer.echo(f"database upgraded to {revision}; environment marker: {marker}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the code's head; exit 1 when behind."""
    from clinicos.platform.db import lifecycle
    from clinicos.platform.db.schema import SchemaStatus

    state = lifecycle.current_state(_settings())
    typer.echo(f"current: {', '.join(state.current) or '(empty database)'}")
    typer.echo(f"head:    {', '.join(state.head)}")
    if state.status is SchemaStatus.ahead:
        typer.echo("status:  ahead — a newer release has migrated this database")
        return
    if not state.is_current:
        typer.echo("status:  behind — run `clinicos db upgrade`")
        raise typer.Exit(1)
    typer.echo("status:  current")


@db_app.command("reset")
def db_reset(
    yes: Annotated[bool, typer.Option("--yes", help="skip the typed confirmation")] = False,
) -> None:
    """Drop every table and migrate again. Refuses unless the database is marked non-production."""
    from clinicos.platform.db import lifecycle

    settings = _settings()
    try:
        target = lifecycle.check_reset_allowed(settings)
    except lifecycle.ResetRefused as exc:
        raise _fail(str(exc)) from exc
    if not yes:
        typer.echo(f"This deletes ALL data in {target}.")
        answer = typer.prompt("Type 'reset' to continue", default="", show_default=False)
        if answer.strip() != "reset":
            raise _fail("not confirmed; nothing was changed")
    lifecycle.reset(settings)
    typer.echo("database reset and migrated to head")


# -- config -------------------------------------------------------------------------------------


@config_app.command("check")
def config_check() -> None:
    """Print the effective configuration (secrets masked); exit 1 if it may not run."""
    try:
        settings = Settings()
    except ValidationError as exc:
        typer.echo(_invalid_settings_message(exc), err=True)
        raise typer.Exit(2) from exc
    except SettingsError as exc:
        typer.echo(_unparsable_settings_message(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(masked_view(settings), indent=2, sort_keys=True))
    problems = production_problems(settings)
    if problems:
        typer.echo("\nrefusing to start with this configuration:", err=True)
        for var, why in problems:
            typer.echo(f"  {var}: {why}", err=True)
        raise typer.Exit(1)
    typer.echo("\nconfiguration OK", err=True)


# -- backup -------------------------------------------------------------------------------------


@backup_app.command("create")
def backup_create(
    dest: Annotated[Path, typer.Option(help="directory that receives the backup")] = Path(
        "var/backups"
    ),
) -> None:
    """Take an online backup with a manifest of checksums and row counts."""
    from clinicos.platform import backup

    try:
        result = backup.create_backup(_settings(), dest)
    except backup.BackupError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(str(result.path))


@backup_app.command("verify")
def backup_verify(path: Annotated[Path, typer.Argument(help="backup directory")]) -> None:
    """Check checksums, restore into a scratch database and compare row counts per table."""
    from clinicos.platform import backup

    try:
        report = backup.verify_backup(_settings(), path)
    except backup.BackupError as exc:
        raise _fail(str(exc)) from exc
    for check in report.checks:
        typer.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    if not report.ok:
        raise typer.Exit(1)


@backup_app.command("restore")
def backup_restore(
    path: Annotated[Path, typer.Argument(help="backup directory")],
    force: Annotated[bool, typer.Option(help="overwrite a database that holds data")] = False,
) -> None:
    """Restore a verified backup into the configured database."""
    from clinicos.platform import backup

    try:
        backup.restore_backup(_settings(), path, force=force)
    except backup.BackupError as exc:
        raise _fail(str(exc)) from exc
    typer.echo("restored")


# -- identity bootstrap ---------------------------------------------------------------------------


def _run_use_case(use_case: Callable[[Container], Awaitable[T]]) -> T:
    """Run one async use case against a container, turning domain errors into clean exits."""
    from clinicos.bootstrap import build_container
    from clinicos.kernel.errors import DomainError

    settings = _settings()

    async def _main() -> T:
        container = build_container(settings)
        try:
            return await use_case(container)
        finally:
            await container.dispose()

    try:
        return asyncio.run(_main())
    except DomainError as exc:
        fields = "; ".join(f"{e.field}: {e.message}" for e in getattr(exc, "errors", ()))
        raise _fail(f"{exc.detail}{' (' + fields + ')' if fields else ''}") from exc


def _read_password(password_stdin: bool) -> str | None:
    if not password_stdin:
        return None
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise _fail("--password-stdin given but standard input was empty")
    return line


@org_app.command("create")
def org_create(
    slug: Annotated[str, typer.Option(help="short name used at sign-in, e.g. el-alto")],
    name: Annotated[str, typer.Option(help="display name")],
    country: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2")] = "BO",
    currency: Annotated[str, typer.Option(help="BOB, BRL or USD")] = "BOB",
    locale: Annotated[str, typer.Option(help="es, pt or en")] = "es",
    timezone: Annotated[str, typer.Option(help="IANA time zone")] = "America/La_Paz",
    mfa_for_admins: Annotated[bool, typer.Option(help="require MFA of admins")] = True,
) -> None:
    """Create an organization (a clinic, a tenant)."""
    from clinicos.identity.services.organizations import create_organization
    from clinicos.kernel.actor import SystemActor

    async def _create(c: Container) -> str:
        async with c.uow() as uow:
            org = await create_organization(
                uow=uow,
                actor=SystemActor("cli"),
                slug=slug,
                name=name,
                country=country,
                locale=locale,
                currency=currency,
                timezone=timezone,
                mfa_required_for_admin=mfa_for_admins,
            )
            await uow.commit()
            return org.id

    typer.echo(f"created organization {slug} ({_run_use_case(_create)})")


@user_app.command("create")
def user_create(
    org: Annotated[str, typer.Option(help="organization slug")],
    email: Annotated[str, typer.Option(help="sign-in email")],
    role: Annotated[list[str], typer.Option(help="role; repeat for several")],
    name: Annotated[str | None, typer.Option(help="display name (default: the email)")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Create a user with roles in an organization (an existing user gets the roles added)."""
    from sqlalchemy import select

    from clinicos.identity.models import UserAccount
    from clinicos.identity.services.organizations import require_organization_by_slug
    from clinicos.identity.services.users import create_user, grant_roles, normalize_email
    from clinicos.kernel.actor import SystemActor

    password = _read_password(password_stdin)

    async def _create(c: Container) -> str:
        async with c.uow() as uow:
            organization = await require_organization_by_slug(uow, org)
            exists = await uow.session.scalar(
                select(UserAccount.id).where(UserAccount.email == normalize_email(email))
            )
            if exists and password is None:
                await grant_roles(
                    uow=uow,
                    actor=SystemActor("cli"),
                    organization_id=organization.id,
                    email=email,
                    roles=role,
                )
                verb = "granted roles to"
            else:
                await create_user(
                    uow=uow,
                    runtime=c.identity,
                    actor=SystemActor("cli"),
                    organization_id=organization.id,
                    email=email,
                    display_name=name or email,
                    roles=role,
                    password=password,
                )
                verb = "created"
            await uow.commit()
            return verb

    verb = _run_use_case(_create)
    typer.echo(f"{verb} user {email} in {org} with roles {', '.join(sorted(role))}")


@user_app.command("unlock")
def user_unlock(email: Annotated[str, typer.Option(help="sign-in email")]) -> None:
    """Clear a sign-in lockout."""
    from sqlalchemy import select

    from clinicos.identity.models import UserAccount
    from clinicos.identity.services.users import normalize_email, unlock_user
    from clinicos.kernel.actor import SystemActor
    from clinicos.kernel.errors import NotFound

    async def _unlock(c: Container) -> None:
        async with c.uow() as uow:
            user = await uow.session.scalar(
                select(UserAccount).where(UserAccount.email == normalize_email(email))
            )
            if user is None:
                raise NotFound("no such user")
            await unlock_user(uow=uow, actor=SystemActor("cli"), user=user)
            await uow.commit()

    _run_use_case(_unlock)
    typer.echo(f"unlocked {email}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Start signing with a new key; the old one keeps verifying until its tokens expire."""
    from clinicos.governance import record_audit
    from clinicos.identity.keyring import rotate

    async def _rotate(c: Container) -> str:
        async with c.uow() as uow:
            kid = await rotate(uow.session, c.identity.signing_box, uow.clock.now())
            await record_audit(
                uow,
                organization_id=None,
                actor_type="system",
                actor_id="cli",
                action="keys.rotate",
                target_type="signing_key",
                target_id=kid,
                purpose="security",
                outcome="success",
            )
            await uow.commit()
            return kid

    typer.echo(f"new signing key {_run_use_case(_rotate)} is active")


# -- PHI keys (ADR 0013; docs/operations.md "PHI key rotation") --------------------------------


def _phi_columns() -> dict[str, tuple[str, ...]]:
    from clinicos.bootstrap import all_models_metadata
    from clinicos.platform.phi import encrypted_columns

    return encrypted_columns(all_models_metadata())


def _phi_key_file(settings: Settings) -> Path:
    path = settings.phi.key_file
    if path is None:
        raise _fail(
            "no PHI key file is configured: set CLINICOS_PHI__KEY_FILE (the same in every "
            "process) to manage the PHI keys with `clinicos keys`; keys given in "
            "CLINICOS_PHI__KEYS are rotated by editing the variables (docs/operations.md)"
        )
    return path


def _phi_keyring(settings: Settings) -> PhiKeyring:
    from clinicos.platform.phi import PhiKeyring, PhiKeyringError

    try:
        return PhiKeyring.from_settings(settings)
    except PhiKeyringError as exc:
        raise _fail(str(exc), 2) from exc


def _audit_phi_key(settings: Settings, action: str, version: int, outcome: str = "success") -> None:
    """Audit a PHI key step on the installation chain, after the fact (the key file is not in
    the database, so the two cannot commit together); a failure is a warning, not an error."""
    from clinicos.bootstrap import build_container
    from clinicos.governance import record_audit

    async def _record() -> None:
        container = build_container(settings)
        try:
            async with container.uow() as uow:
                await record_audit(
                    uow,
                    organization_id=None,
                    actor_type="system",
                    actor_id="cli",
                    action=action,
                    target_type="phi_key",
                    target_id=str(version),
                    purpose="security",
                    outcome=outcome,
                )
                await uow.commit()
        finally:
            await container.dispose()

    try:
        asyncio.run(_record())
    except Exception as exc:
        typer.echo(
            f"warning: done, but {action} could not be written to the audit trail "
            f"({type(exc).__name__}); note it in the change record",
            err=True,
        )


def _rotation_engine_run(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``work`` on the owner engine (every tenant's rows), failing cleanly on a refusal."""
    from clinicos.platform.db.engine import create_owner_engine
    from clinicos.platform.phi_rotation import RotationError

    async def _main() -> T:
        engine = create_owner_engine(settings)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(_main())
    except RotationError as exc:
        raise _fail(str(exc)) from exc


@keys_app.command("add")
def keys_add() -> None:
    """Add a new random PHI data-key version to the key file; it does not encrypt yet."""
    from clinicos.platform import phi_rotation as rotation
    from clinicos.platform.phi import keys_from_settings

    settings = _settings(phi_key_file_may_be_missing=True)
    path = _phi_key_file(settings)
    if settings.env is Environment.production and not path.exists():
        # Nothing to start from: fresh keys, but never beside values sealed under lost ones.
        columns = _phi_columns()
        stored = _rotation_engine_run(
            settings, lambda engine: rotation.stored_token_count(engine, columns)
        )
        if stored:
            raise _fail(
                f"{path} does not exist but the database holds {stored} encrypted value(s); "
                "new keys could not read them — restore the key file (or write it from the "
                "keys that sealed them) instead"
            )
        try:
            rotation.update_key_file(
                path, lambda content: content, create_from=rotation.new_key_file
            )
        except (OSError, rotation.RotationError) as exc:
            raise _fail(f"cannot write {path}: {exc}") from exc
        typer.echo(f"created PHI key file {path} with key version 1 (active)")
        _audit_phi_key(settings, "keys.phi.add", 1)
        return
    created = not path.exists()
    try:
        content = rotation.update_key_file(
            path,
            lambda current: rotation.add_key_version(current)[0],
            create_from=lambda: keys_from_settings(settings)[0],
        )
    except (OSError, rotation.RotationError) as exc:
        raise _fail(f"cannot update {path}: {exc}") from exc
    version = max(content.keys)
    if created:
        typer.echo(f"created PHI key file {path} from the current (development) keys")
    typer.echo(f"added PHI key version {version} to {path}; it is not active yet")
    typer.echo(
        "Running processes load it within a second (copy the file to every host that does not "
        f"share it first); then: clinicos keys promote {version}"
    )
    _audit_phi_key(settings, "keys.phi.add", version)


@keys_app.command("promote")
def keys_promote(
    version: Annotated[int, typer.Argument(help="the key version that encrypts from now on")],
) -> None:
    """Make a PHI key version the active one: new values are sealed under it."""
    from clinicos.config import read_phi_key_file
    from clinicos.platform import phi_rotation as rotation

    settings = _settings()
    path = _phi_key_file(settings)
    try:
        if read_phi_key_file(path).active_version == version:
            typer.echo(f"PHI key version {version} is already the active one")
            return
        rotation.update_key_file(path, lambda c: rotation.promote_key_version(c, version))
    except (OSError, ValueError, rotation.RotationError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"PHI key version {version} is now active in {path}")
    typer.echo("Then re-encrypt what is stored: clinicos keys reencrypt")
    _audit_phi_key(settings, "keys.phi.promote", version)


@keys_app.command("reencrypt")
def keys_reencrypt(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="rows per transaction")] = 200,
) -> None:
    """Re-seal every stored PHI value under the active key (resumable, batched).

    Safe while the API serves traffic: each changed value is written only if unchanged since it
    was read. Run it again after an interruption, or until nothing is skipped."""
    from clinicos.platform import phi_rotation as rotation

    settings = _settings()
    keyring = _phi_keyring(settings)
    columns = _phi_columns()
    active = keyring.active_version

    async def _run(engine: AsyncEngine) -> tuple[rotation.ReencryptReport, int]:
        await rotation.require_full_visibility(engine)
        total = await rotation.count_pending(engine, columns, active)
        with typer.progressbar(
            length=total, label=f"re-encrypting under key version {active}", file=sys.stderr
        ) as bar:
            report = await rotation.reencrypt_all(
                engine,
                keyring,
                columns,
                batch_size=batch_size,
                on_batch=lambda _table, rows: bar.update(rows),
            )
        return report, await rotation.count_pending(engine, columns, keyring.active_version)

    report, remaining = _rotation_engine_run(settings, _run)
    typer.echo(f"rows examined:                      {report.rows_examined}")
    typer.echo(f"values re-encrypted:                {report.cells_reencrypted}")
    typer.echo(f"skipped (changed meanwhile):        {report.cells_skipped}")
    typer.echo(f"failed to decrypt:                  {report.cells_failed}")
    typer.echo(f"rows still under another version:   {remaining}")
    for f in report.failures:
        typer.echo(
            f"  {f.table}.{f.column} id={f.row_id} key version={f.key_version}: {f.reason}",
            err=True,
        )
    failed = report.cells_failed > 0
    _audit_phi_key(
        settings, "keys.phi.reencrypt", keyring.active_version, "failure" if failed else "success"
    )
    if failed:
        raise _fail(
            f"{report.cells_failed} stored value(s) could not be decrypted (listed above); "
            "their key versions cannot be retired"
        )
    if remaining:
        typer.echo("Run `clinicos keys reencrypt` again to pick up what is left.")


@keys_app.command("retire")
def keys_retire(
    version: Annotated[int, typer.Argument(help="the key version to remove")],
) -> None:
    """Remove a PHI key version from the key file (refused while active or still in use)."""
    from clinicos.platform import phi_rotation as rotation

    settings = _settings()
    columns = _phi_columns()
    path = settings.phi.key_file
    if path is None:  # keys in the variables: check, and say what to remove
        keyring = _phi_keyring(settings)
        if version not in keyring.versions:
            raise _fail(f"version {version} is not in the keyring")
        if version == keyring.active_version:
            raise _fail(f"version {version} is the active version; promote another one first")

        async def _check(engine: AsyncEngine) -> int:
            await rotation.require_full_visibility(engine)
            return await rotation.cells_using_version(engine, columns, version)

        in_use = _rotation_engine_run(settings, _check)
        if in_use:
            raise _fail(
                f"{in_use} stored value(s) still use key version {version}; run "
                "`clinicos keys reencrypt` (again) until none is left"
            )
        typer.echo(
            f"no stored value uses key version {version}: remove it from CLINICOS_PHI__KEYS "
            "in every process"
        )
        return
    try:
        _rotation_engine_run(
            settings, lambda engine: rotation.retire_version(path, version, engine, columns)
        )
    except OSError as exc:
        raise _fail(f"cannot update {path}: {exc}") from exc
    typer.echo(f"retired PHI key version {version}: removed from {path}")
    typer.echo(
        "Backups taken before now may hold values sealed under it: keep a copy of the previous "
        "key file (or that key) with them."
    )
    _audit_phi_key(settings, "keys.phi.retire", version)


@keys_app.command("status")
def keys_status() -> None:
    """Show the PHI key versions, the active one, and how many stored values use each."""
    from clinicos.config import read_phi_key_file
    from clinicos.platform import phi_rotation as rotation

    settings = _settings()
    keyring = _phi_keyring(settings)
    columns = _phi_columns()
    path = settings.phi.key_file
    retired: tuple[int, ...] = ()
    if path is None:
        source = "CLINICOS_PHI__KEYS" if settings.phi.keys else "development keys"
    elif path.exists():
        source = f"key file {path}"
        try:
            retired = read_phi_key_file(path).retired_versions
        except ValueError as exc:
            raise _fail(str(exc), 2) from exc
    else:
        source = f"development keys (key file {path} does not exist yet)"
    if keyring.development:
        source += ", derived from CLINICOS_SECRET_KEY — development only"
    versions = [*keyring.versions, *retired]

    async def _count(engine: AsyncEngine) -> rotation.VersionCounts:
        await rotation.require_full_visibility(engine)
        return await rotation.count_by_version(engine, columns, versions)

    counts = _rotation_engine_run(settings, _count)
    typer.echo(f"source: {source}")
    for version in keyring.versions:
        label = f"version {version}" + (" (active)" if version == keyring.active_version else "")
        typer.echo(f"  {label:<22} {counts.by_version[version]:>10} stored values")
    for version in retired:
        typer.echo(
            f"  {f'version {version} (retired)':<22} {counts.by_version[version]:>10} stored values"
        )
    if counts.other:
        typer.echo(f"  {'other (no such key)':<22} {counts.other:>10} stored values")


@audit_app.command("verify")
def audit_verify(
    org: Annotated[
        str | None, typer.Option(help="organization slug (default: every chain)")
    ] = None,
) -> None:
    """Re-hash audit chains and report the first broken row of each; exit 1 if one is broken."""
    from sqlalchemy import select

    from clinicos.governance import ChainReport, verify_audit_chain
    from clinicos.identity.models import Organization
    from clinicos.identity.services.organizations import require_organization_by_slug

    async def _verify(c: Container) -> list[tuple[str, ChainReport]]:
        async with c.uow() as uow:
            if org is not None:
                targets: list[tuple[str, str | None]] = [
                    (org, (await require_organization_by_slug(uow, org)).id)
                ]
            else:
                rows = (await uow.session.execute(select(Organization.slug, Organization.id))).all()
                targets = [("(installation)", None), *[(s, i) for s, i in rows]]
        results = []
        for label, org_id in targets:
            async with c.uow(org_id) as uow:
                results.append((label, await verify_audit_chain(uow, organization_id=org_id)))
        return results

    broken = False
    for label, r in _run_use_case(_verify):
        if r.ok:
            purged = (
                f" (rows 1-{r.purged_through_seq} purged by retention)"
                if r.purged_through_seq
                else ""
            )
            typer.echo(f"ok   {label}: {r.rows_checked} rows{purged}")
        else:
            broken = True
            typer.echo(
                f"FAIL {label}: first bad row seq={r.first_bad_seq} id={r.first_bad_id} "
                f"({r.reason})"
            )
    if broken:
        raise typer.Exit(1)


retention_app = typer.Typer(help="data retention", no_args_is_help=True)
app.add_typer(retention_app, name="retention")


@retention_app.command("run")
def retention_run() -> None:
    """Purge what is past retention now (the worker also does it daily); one line per clinic;
    exit 1 when a clinic's run failed (what it did is kept and reported)."""
    from clinicos.governance.retention import RetentionRunView, run_retention

    async def _run(c: Container) -> list[RetentionRunView]:
        return await run_retention(uows=c.uow, policy=c.settings.retention)

    views = _run_use_case(_run)
    for view in views:
        counts = ", ".join(f"{k} {n}" for k, n in view.purged.items())
        problem = f" ({view.error})" if view.error else ""
        typer.echo(f"{view.status:9} {view.organization_id}: purged {counts}{problem}")
    if any(v.status == "failed" for v in views):
        raise typer.Exit(1)


demo_app = typer.Typer(help="the demo installation", no_args_is_help=True)
app.add_typer(demo_app, name="demo")


@demo_app.command("seed")
def demo_seed(
    patients: Annotated[
        int, typer.Option(min=0, max=10_000, help="synthetic patients per demo clinic")
    ] = 40,
) -> None:
    """Seed two demo clinics with one user per role and their patients (once), and print how
    to sign in."""
    import secrets
    from datetime import UTC, datetime

    from clinicos.cli_fhir import seed_demo_patients
    from clinicos.identity.services.demo import demo_logins, seed_demo

    settings = _settings()
    if settings.env.value == "production":
        raise _fail("the demo seed never runs with CLINICOS_ENV=production")
    given = settings.demo_password.get_secret_value() if settings.demo_password else None
    password = given or secrets.token_urlsafe(12)

    async def _seed(c: Container) -> object:
        return await seed_demo(uows=c.uow, runtime=c.identity, password=password)

    seeded = _run_use_case(_seed)
    logins = demo_logins()
    if seeded is not None:
        today = datetime.now(UTC).date()
        for number, slug in enumerate(dict.fromkeys(login.organization for login in logins)):

            async def _patients(c: Container, slug: str = slug, number: int = number) -> object:
                return await seed_demo_patients(
                    c,
                    organization=slug,
                    email=f"clinician@{slug}.example.com",
                    count=patients,
                    seed=number + 1,
                    as_of=today,
                )

            report: Any = _run_use_case(_patients)
            typer.echo(
                f"{slug}: {report.patients} demo patients (P-001, P-002, P-007 and synthetic)"
            )
            for source, code, detail in report.failures:
                typer.echo(f"  demo patient {source} not stored: {code}: {detail}", err=True)
    typer.echo("")
    if seeded is None:
        typer.echo(
            "Demo data already present. Sign in with one of these (password as first printed,"
        )
        typer.echo("or CLINICOS_DEMO_PASSWORD if it was set; if it is lost,")
        typer.echo("`clinicos db reset --yes` deletes everything and `make run` seeds afresh):")
    else:
        source = "from CLINICOS_DEMO_PASSWORD" if given else "generated; shown only now"
        typer.echo(f"Demo clinics seeded. Password for every demo user ({source}):")
        typer.echo(f"    {password}")
    typer.echo("")
    for login in logins:
        if login.organization == logins[0].organization:
            typer.echo(f"    {login.email:<34} {login.role}")
    typer.echo(f"    ... and the same roles at @{logins[-1].organization}.example.com")
    typer.echo("")
    typer.echo("Sign in:  curl -s -X POST http://127.0.0.1:8000/api/v1/auth/login \\")
    typer.echo("            -H 'content-type: application/json' \\")
    typer.echo(f'            -d \'{{"email": "{logins[1].email}", "password": "<password>"}}\'')
    typer.echo("Admins must enrol MFA at first sign-in (POST /api/v1/auth/mfa/enroll).")


# -- cds rule packs -------------------------------------------------------------------------------

cds_app = typer.Typer(help="decision support", no_args_is_help=True)
packs_app = typer.Typer(
    help="rule packs: catalogue, clinical approval, per-organization activation",
    no_args_is_help=True,
)
app.add_typer(cds_app, name="cds")
cds_app.add_typer(packs_app, name="packs")


async def _organization_slugs(c: Container) -> dict[str, str]:
    """Organization id -> slug, for showing which organizations use which pack."""
    from sqlalchemy import select

    from clinicos.identity.models import Organization

    async with c.uow() as uow:
        rows = (await uow.session.execute(select(Organization.id, Organization.slug))).all()
    return {org_id: slug for org_id, slug in rows}


def _approval_text(status: str, reviewer: str | None, approved_at: object) -> str:
    from datetime import datetime

    if status == "approved" and isinstance(approved_at, datetime):
        return f"approved by {reviewer} on {approved_at:%Y-%m-%d}"
    return status


@packs_app.command("list")
def packs_list() -> None:
    """List packaged rule packs, their approval, and the organizations using each."""
    from clinicos.cds.packs import PackListing, list_packs

    async def _list(c: Container) -> list[PackListing]:
        return await list_packs(c.uow, await _organization_slugs(c))

    for p in _run_use_case(_list):
        used = ", ".join(p.used_by) or "(no organization)"
        approval = _approval_text(p.status, p.reviewer, p.approved_at)
        typer.echo(
            f"{p.id} {p.version}  {approval}  sha256 {p.content_sha256[:12]}  used by: {used}"
        )


@packs_app.command("show")
def packs_show(
    pack_id: Annotated[str, typer.Argument(metavar="ID", help="pack id, e.g. doac")],
    version: Annotated[str, typer.Argument(help="pack version, e.g. 1.0.0")],
) -> None:
    """Show a pack's metadata and a summary of its rules (key, severity, policy, source)."""
    from clinicos.cds.packs import PackDetail, show_pack

    async def _show(c: Container) -> PackDetail:
        return await show_pack(c.uow, pack_id, version, await _organization_slugs(c))

    detail = _run_use_case(_show)
    p = detail.listing
    typer.echo(f"pack:      {p.id} {p.version} — {p.title}")
    typer.echo(f"approval:  {_approval_text(p.status, p.reviewer, p.approved_at)}")
    typer.echo(f"sha256:    {p.content_sha256}")
    typer.echo(f"policy:    {detail.policy_document}")
    typer.echo(f"used by:   {', '.join(p.used_by) or '(no organization)'}")
    typer.echo(f"rules ({len(detail.rules)}):")
    for rule in detail.rules:
        typer.echo(f"  {rule.key:<50} {rule.severity:<6} {rule.policy:<5} {rule.source}")


@packs_app.command("approve")
def packs_approve(
    pack_id: Annotated[str, typer.Argument(metavar="ID", help="pack id, e.g. doac")],
    version: Annotated[str, typer.Argument(help="pack version, e.g. 1.0.0")],
    reviewer: Annotated[str, typer.Option(help="the clinician who reviewed the pack")],
) -> None:
    """Record a clinician's approval of the pack file as shipped (audited, installation)."""
    from clinicos.cds.packs import PackListing, approve_pack

    async def _approve(c: Container) -> PackListing:
        return await approve_pack(
            c.uow, pack_id=pack_id, version=version, reviewer=reviewer, approved_by="cli"
        )

    p = _run_use_case(_approve)
    typer.echo(f"{p.id} {p.version} {_approval_text(p.status, p.reviewer, p.approved_at)}")


@packs_app.command("activate")
def packs_activate(
    pack_id: Annotated[str, typer.Argument(metavar="ID", help="pack id, e.g. doac")],
    version: Annotated[str, typer.Argument(help="pack version, e.g. 1.0.0")],
    org: Annotated[str, typer.Option(help="organization slug")],
    overlay: Annotated[
        Path | None, typer.Option(help="JSON file with a stricter local overlay")
    ] = None,
) -> None:
    """Make a pack (and optional local overlay) the one an organization evaluates with."""
    from clinicos.cds.packs import Activation, activate_pack
    from clinicos.identity.services.organizations import require_organization_by_slug

    overlay_text = None
    if overlay is not None:
        try:
            overlay_text = overlay.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read overlay file {overlay}: {exc}") from exc

    async def _activate(c: Container) -> Activation:
        async with c.uow() as uow:
            organization = await require_organization_by_slug(uow, org)
        return await activate_pack(
            c.uow,
            organization_id=organization.id,
            pack_id=pack_id,
            version=version,
            overlay=overlay_text,
            production=c.settings.env.value == "production",
            activated_by="cli",
        )

    done = _run_use_case(_activate)
    typer.echo(f"activated {done.pack_id} {done.effective_version} for {org}")
    if not done.approved:
        typer.echo(
            f"warning: {done.pack_id} {done.pack_version} is not approved; "
            "production refuses to activate or evaluate with it",
            err=True,
        )


from clinicos.cli_fhir import fhir_app  # noqa: E402  (after `app`, which it extends)

app.add_typer(fhir_app, name="fhir")

from clinicos.cli_cds_hooks import clients_app  # noqa: E402  (extends `cds_app` above)

cds_app.add_typer(clients_app, name="clients")

from clinicos.cli_smoke import smoke  # noqa: E402  (a client of a running installation's API)

app.command("smoke")(smoke)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

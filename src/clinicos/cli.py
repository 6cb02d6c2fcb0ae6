"""The `clinicos` command line (typer). Thin: parses options and calls services."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from clinicos.config import (
    ConfigurationError,
    Settings,
    load_settings,
    masked_view,
    production_problems,
)

app = typer.Typer(help="clinicos operations", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="database schema and lifecycle", no_args_is_help=True)
config_app = typer.Typer(help="configuration", no_args_is_help=True)
backup_app = typer.Typer(help="backups with checksummed manifests", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(backup_app, name="backup")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


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

    state = lifecycle.current_state(_settings())
    typer.echo(f"current: {', '.join(state.current) or '(empty database)'}")
    typer.echo(f"head:    {', '.join(state.head)}")
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
    except Exception as exc:  # pydantic validation error: name the variable, not a traceback
        raise _fail(f"invalid configuration: {exc}", 2) from exc
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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

"""Backups with checksummed manifests: create, verify by scratch restore, restore; both engines."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clinicos.config import Environment, Settings
from clinicos.kernel.clock import utc_now
from clinicos.platform.backup import postgres, sqlite
from clinicos.platform.backup.manifest import (
    DUMP_NAMES,
    BackupError,
    BackupResult,
    Check,
    VerifyReport,
    build_manifest,
    count_differences,
    dump_path_of,
    file_checks,
    fsync_file,
    make_backup_dir,
    read_manifest,
    write_manifest,
)
from clinicos.platform.db.lifecycle import mark_production, read_marker

__all__ = [
    "BackupError",
    "BackupResult",
    "Check",
    "VerifyReport",
    "create_backup",
    "restore_backup",
    "verify_backup",
]

# Migrating an empty database fills these; a target holding only them counts as empty.
BOOKKEEPING_TABLES = frozenset({"alembic_version", "_environment_marker"})


def _engine(settings: Settings) -> str:
    return "sqlite" if settings.is_sqlite else "postgresql"


def create_backup(settings: Settings, dest_dir: Path) -> BackupResult:
    """Dump the configured database into a new directory under dest_dir, manifest written last."""
    engine = _engine(settings)
    url = settings.effective_database_url
    created_at = utc_now()
    try:
        backup_dir = make_backup_dir(dest_dir, created_at)
    except OSError as exc:
        raise BackupError(
            f"cannot create a backup directory in {dest_dir}: {exc.strerror}"
        ) from exc
    dump_path = backup_dir / DUMP_NAMES[engine]
    try:
        if engine == "sqlite":
            revisions, counts = sqlite.dump(url, dump_path)
            counts_source = sqlite.ROW_COUNTS_SOURCE
        else:
            timeout = settings.database.connect_timeout_seconds
            revisions, counts = postgres.dump(url, timeout, dump_path)
            counts_source = postgres.ROW_COUNTS_SOURCE
        dump_path.chmod(0o600)
        fsync_file(dump_path)
        manifest = build_manifest(
            engine=engine,
            created_at=created_at,
            dump_path=dump_path,
            revisions=revisions,
            row_counts=counts,
            row_counts_source=counts_source,
        )
        write_manifest(backup_dir, manifest)
    except OSError as exc:
        shutil.rmtree(backup_dir, ignore_errors=True)
        raise BackupError(f"cannot write the backup in {backup_dir}: {exc.strerror}") from exc
    except BaseException:
        # A directory without a finished dump must not look like a backup to anyone later.
        shutil.rmtree(backup_dir, ignore_errors=True)
        raise
    return BackupResult(path=backup_dir, manifest=manifest)


@contextmanager
def _file_errors(path: Path) -> Iterator[None]:
    """Unreadable or unwritable backup files end in a one-line BackupError, not a traceback."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or path
        raise BackupError(f"cannot access {where}: {exc.strerror or type(exc).__name__}") from exc


def _report(checks: list[Check], *, complete: bool) -> VerifyReport:
    if not complete and checks and not checks[-1].ok:
        last = checks[-1]
        checks[-1] = Check(last.name, False, f"{last.detail}; later checks not run")
    return VerifyReport(ok=complete and all(c.ok for c in checks), checks=checks)


def _scratch_restore(
    settings: Settings, manifest: dict[str, Any], dump: Path
) -> tuple[str, dict[str, int] | None]:
    if manifest["engine"] == "sqlite":
        return sqlite.scratch_restore(dump)  # needs no server: verifiable anywhere
    if settings.is_sqlite:
        return "a PostgreSQL backup is verified on a PostgreSQL server; configure one", None
    timeout = settings.database.connect_timeout_seconds
    return postgres.scratch_restore(dump, settings.effective_database_url, timeout)


def verify_backup(settings: Settings, path: Path) -> VerifyReport:
    """Run every check in order; a failing check ends the run but is reported, never raised."""
    if not path.is_dir():
        raise BackupError(f"no backup directory at {path}")
    with _file_errors(path):
        return _verify(settings, path)


def _verify(settings: Settings, path: Path) -> VerifyReport:
    try:
        manifest = read_manifest(path)
    except BackupError as exc:
        return _report([Check("manifest", False, str(exc))], complete=False)
    checks = [
        Check("manifest", True, f"{manifest['engine']} backup created {manifest.get('created_at')}")
    ]
    checks.extend(file_checks(path, manifest))
    if not all(c.ok for c in checks):
        return _report(checks, complete=False)
    detail, counts = _scratch_restore(settings, manifest, dump_path_of(path, manifest))
    checks.append(Check("restore", counts is not None, detail))
    if counts is None:
        return _report(checks, complete=False)
    diffs = count_differences(manifest["row_counts"], counts)
    total = sum(counts.values())
    summary = f"{len(counts)} tables, {total} rows, as in the manifest"
    checks.append(Check("row counts", not diffs, "; ".join(diffs) or summary))
    return _report(checks, complete=True)


def _refuse_unless_empty(settings: Settings, *, force: bool) -> None:
    if settings.is_sqlite:
        existing = sqlite.target_data(settings.effective_database_url)
    else:
        timeout = settings.database.connect_timeout_seconds
        existing = postgres.target_data(settings.effective_database_url, timeout)
    holding = sorted(t for t, n in existing.items() if n and t not in BOOKKEEPING_TABLES)
    if holding and not force:
        rows = sum(existing[t] for t in holding)
        raise BackupError(
            f"the target database holds data ({rows} rows in {', '.join(holding)}); "
            "restore with force (--force) to overwrite it"
        )


def restore_backup(settings: Settings, path: Path, *, force: bool) -> None:
    """Replace the configured database with the backup; refuses corrupt or mismatched backups."""
    if not path.is_dir():
        raise BackupError(f"no backup directory at {path}")
    with _file_errors(path):
        _restore(settings, path, force=force)


def _restore(settings: Settings, path: Path, *, force: bool) -> None:
    manifest = read_manifest(path)
    failed = next((c for c in file_checks(path, manifest) if not c.ok), None)
    if failed is not None:
        raise BackupError(f"refusing a backup that fails its {failed.name} check: {failed.detail}")
    engine = _engine(settings)
    if manifest["engine"] != engine:
        raise BackupError(
            f"the backup is of a {manifest['engine']} database but the configured one is {engine}"
        )
    _refuse_unless_empty(settings, force=force)
    # The restored rows bring the *backup's* environment marker; a production target must not
    # come out of a restore marked development (that would let `db reset` through).
    was_production = read_marker(settings) == Environment.production.value
    dump = dump_path_of(path, manifest)
    url = settings.effective_database_url
    if engine == "sqlite":
        counts = sqlite.restore(dump, url)
    else:
        counts = postgres.restore(dump, url, settings.database.connect_timeout_seconds)
    diffs = count_differences(manifest["row_counts"], counts)
    if diffs:
        raise BackupError(f"restored row counts differ from the manifest: {'; '.join(diffs)}")
    if was_production or settings.env is Environment.production:
        mark_production(settings)

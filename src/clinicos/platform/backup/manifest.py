"""The backup directory's contract: manifest format, checksums, result types shared by engines."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
DUMP_NAMES = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}
DIR_PREFIX = "clinicos-"
_CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup, verify or restore that cannot proceed; one-line message, never row values."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: dict[str, Any]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class VerifyReport:
    ok: bool
    checks: list[Check] = field(default_factory=list)


def clinicos_version() -> str:
    try:
        return metadata.version("clinicos")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def make_backup_dir(dest_dir: Path, created_at: datetime) -> Path:
    """Create ``clinicos-<UTC stamp>[-n]`` under dest_dir; owner-only because dumps hold PHI."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    stem = DIR_PREFIX + created_at.strftime("%Y%m%dT%H%M%SZ")
    for n in range(1000):
        candidate = dest_dir / (stem if n == 0 else f"{stem}-{n}")
        try:
            candidate.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return candidate
    raise BackupError(f"too many backups named {stem} in {dest_dir}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_manifest(
    *,
    engine: str,
    created_at: datetime,
    dump_path: Path,
    revisions: list[str],
    row_counts: dict[str, int],
    row_counts_source: str,
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "engine": engine,
        "created_at": created_at.isoformat(),
        "clinicos_version": clinicos_version(),
        "alembic_revisions": sorted(revisions),
        "dump": {
            "file": dump_path.name,
            "size_bytes": dump_path.stat().st_size,
            "sha256": sha256_of(dump_path),
        },
        "row_counts": dict(sorted(row_counts.items())),
        "row_counts_source": row_counts_source,
    }


def write_manifest(backup_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write the manifest last and atomically: its presence means the backup is complete."""
    final = backup_dir / MANIFEST_NAME
    tmp = backup_dir / (MANIFEST_NAME + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(final)
    dir_fd = os.open(backup_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return final


def read_manifest(backup_dir: Path) -> dict[str, Any]:
    """Parse and validate the manifest; BackupError says what is wrong with it."""
    path = backup_dir / MANIFEST_NAME
    if not path.is_file():
        raise BackupError(f"no {MANIFEST_NAME} in {backup_dir} (incomplete or not a backup)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"{MANIFEST_NAME} is not valid JSON: {type(exc).__name__}") from exc
    problem = _manifest_problem(data)
    if problem:
        raise BackupError(f"{MANIFEST_NAME} is invalid: {problem}")
    return data


def _manifest_problem(data: object) -> str | None:
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("format_version") != FORMAT_VERSION:
        return f"unsupported format_version {data.get('format_version')!r}"
    engine = data.get("engine")
    if engine not in DUMP_NAMES:
        return f"unknown engine {engine!r}"
    dump = data.get("dump")
    if not isinstance(dump, dict):
        return "missing dump section"
    # The file name must be ours: a manifest must never point outside its own directory.
    if dump.get("file") != DUMP_NAMES[engine]:
        return f"dump file must be {DUMP_NAMES[engine]!r}"
    if not isinstance(dump.get("size_bytes"), int) or not isinstance(dump.get("sha256"), str):
        return "dump size_bytes/sha256 missing"
    counts = data.get("row_counts")
    if not isinstance(counts, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in counts.items()
    ):
        return "row_counts must map table names to integers"
    return None


def dump_path_of(backup_dir: Path, manifest: dict[str, Any]) -> Path:
    return backup_dir / str(manifest["dump"]["file"])


def count_differences(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    """Human-readable differences between two per-table row count maps (names and counts only)."""
    problems: list[str] = []
    for table in sorted(expected.keys() | actual.keys()):
        if table not in actual:
            problems.append(f"{table} missing")
        elif table not in expected:
            problems.append(f"{table} unexpected ({actual[table]} rows)")
        elif expected[table] != actual[table]:
            problems.append(f"{table} {actual[table]} rows, expected {expected[table]}")
    return problems


def file_checks(backup_dir: Path, manifest: dict[str, Any]) -> list[Check]:
    """Presence, size and sha256 of the dump, in that order (stops early when it is missing)."""
    dump = dump_path_of(backup_dir, manifest)
    if not dump.is_file():
        return [Check("dump file", False, f"{dump.name} is missing")]
    checks = [Check("dump file", True, dump.name)]
    expected_size = int(manifest["dump"]["size_bytes"])
    size = dump.stat().st_size
    if size == expected_size:
        checks.append(Check("size", True, f"{size} bytes"))
    else:
        checks.append(Check("size", False, f"{size} bytes, manifest says {expected_size}"))
    expected_sha = str(manifest["dump"]["sha256"])
    actual_sha = sha256_of(dump)
    if actual_sha == expected_sha:
        checks.append(Check("sha256", True, actual_sha))
    else:
        checks.append(
            Check("sha256", False, f"{actual_sha} does not match manifest {expected_sha}")
        )
    return checks

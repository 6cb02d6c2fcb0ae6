"""PHI key rotation: the key file's versions, and the stored tokens re-encrypted and counted.

The key file (``CLINICOS_PHI__KEY_FILE``) is edited under an exclusive lock and replaced
atomically (a 0600 temp file in the same directory, fsync, rename), so a reader — a running
:class:`~clinicos.platform.phi.PhiKeyring` — sees the old file or the new one, never half of
one. Versions are never reused: a retired version is remembered in the file.

The database side walks every encrypted column (``{table: (column, …)}``, from
:func:`clinicos.platform.phi.encrypted_columns`; platform code does not know the contexts'
tables) in keyset order by ``id``. Each batch is read in one short transaction and written back in
another (no lock is held while tokens are re-sealed), and each changed cell is written as a
compare-and-set (``UPDATE t SET col = :new WHERE id = :id AND col = :old``), so
a value edited meanwhile is never overwritten: it is counted as skipped and picked up by the
next run. Re-running is always safe and continues where the last run stopped, because only
cells still under another version are selected. The engine must see every tenant's rows: the
owner engine, with a role that bypasses row-level security on PostgreSQL (as for backups).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clinicos.config import PHI_KEY_BYTES, PhiKeyFile, parse_phi_key_file, read_phi_key_file
from clinicos.platform.phi import PhiDecryptionFailed, PhiKeyring

__all__ = [
    "CellFailure",
    "EncryptedColumns",
    "ReencryptReport",
    "RotationError",
    "VersionCounts",
    "add_key_version",
    "cells_using_version",
    "count_by_version",
    "count_pending",
    "new_key_file",
    "promote_key_version",
    "reencrypt_all",
    "require_full_visibility",
    "retire_key_version",
    "retire_version",
    "stored_token_count",
    "update_key_file",
    "write_key_file",
]

EncryptedColumns = Mapping[str, Sequence[str]]
"""``{table: (encrypted column, …)}``; every table also has ``id`` and ``organization_id``."""

DEFAULT_BATCH_SIZE = 200
MAX_FAILURES_KEPT = 20


class RotationError(Exception):
    """A rotation step that must not go ahead; the message says why and what to do."""


# -- the key file ----------------------------------------------------------------------------


def _new_key(avoid: Sequence[bytes]) -> bytes:
    while True:
        key = secrets.token_bytes(PHI_KEY_BYTES)
        if key not in avoid:  # 2^-256: never, but the file's rules forbid a shared key
            return key


def new_key_file() -> PhiKeyFile:
    """A fresh key file: a random version 1 (active) and a random blind-index key."""
    blind = _new_key(())
    return PhiKeyFile(active_version=1, keys={1: _new_key((blind,))}, blind_index_key=blind)


def write_key_file(path: Path, content: PhiKeyFile) -> None:
    """Replace ``path`` atomically with ``content``, mode 0600. Validated before writing."""
    text = content.to_json()
    parse_phi_key_file(text)  # never write a file the readers would refuse
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock``, so two key commands never interleave their edits."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def update_key_file(
    path: Path,
    change: Callable[[PhiKeyFile], PhiKeyFile],
    *,
    create_from: Callable[[], PhiKeyFile] | None = None,
) -> PhiKeyFile:
    """Read-modify-write under the lock: ``change(content)`` is written and returned. A missing
    file starts from ``create_from()`` when given; otherwise it is a :class:`RotationError`, as
    is a file that does not validate (it is then left as it is)."""
    with _locked(path):
        if create_from is not None and not path.exists():
            current = create_from()
        else:
            try:
                current = read_phi_key_file(path)
            except ValueError as exc:
                raise RotationError(f"CLINICOS_PHI__KEY_FILE: {exc}") from None
        changed = change(current)
        write_key_file(path, changed)
        return changed


def add_key_version(content: PhiKeyFile) -> tuple[PhiKeyFile, int]:
    """A new random version, not active, numbered after every version used so far."""
    version = max((*content.keys, *content.retired_versions)) + 1
    key = _new_key((*content.keys.values(), content.blind_index_key))
    return replace(content, keys={**content.keys, version: key}), version


def promote_key_version(content: PhiKeyFile, version: int) -> PhiKeyFile:
    """``version`` becomes the one that encrypts new values."""
    if version not in content.keys:
        raise RotationError(f"version {version} is not in the key file ({_versions(content)})")
    return replace(content, active_version=version)


def retire_key_version(content: PhiKeyFile, version: int) -> PhiKeyFile:
    """The file without ``version`` (remembered as retired, never reused). Refuses the active
    version; checking that no stored value uses it is the caller's job
    (:func:`cells_using_version`)."""
    if version not in content.keys:
        raise RotationError(f"version {version} is not in the key file ({_versions(content)})")
    if version == content.active_version:
        raise RotationError(f"version {version} is the active version; promote another one first")
    keys = {v: k for v, k in content.keys.items() if v != version}
    retired = tuple(sorted({*content.retired_versions, version}))
    return replace(content, keys=keys, retired_versions=retired)


def _versions(content: PhiKeyFile) -> str:
    return "versions " + ", ".join(str(v) for v in sorted(content.keys))


# -- the database ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellFailure:
    """A stored value that did not decrypt: where it is and why (never the value)."""

    table: str
    column: str
    row_id: str
    key_version: int | None
    reason: str


@dataclass
class ReencryptReport:
    rows_examined: int = 0
    cells_reencrypted: int = 0
    cells_skipped: int = 0  # changed by someone else between read and write
    cells_failed: int = 0
    failures: list[CellFailure] = field(default_factory=list)  # the first few

    @property
    def complete(self) -> bool:
        """Nothing was left behind by this run (a re-run would find nothing)."""
        return self.cells_skipped == 0 and self.cells_failed == 0


@dataclass(frozen=True)
class VersionCounts:
    """Stored values per key version; ``other`` holds values under no version asked about or
    that are not tokens at all."""

    by_version: Mapping[int, int]
    other: int

    @property
    def total(self) -> int:
        return sum(self.by_version.values()) + self.other


def _table(name: str, columns: Sequence[str]) -> sa.TableClause:
    return sa.table(name, sa.column("id"), sa.column("organization_id"), *map(sa.column, columns))


def _prefix(version: int) -> str:
    return f"v{version}:%"


async def require_full_visibility(engine: AsyncEngine) -> None:
    """Refuse unless the engine's role sees every tenant's rows: on PostgreSQL a superuser or a
    role with ``BYPASSRLS``, as for backups. (Every rotation transaction also sets
    ``row_security = off``, so a role subject to a policy gets an error, never a filtered,
    silently incomplete walk.)"""
    if engine.dialect.name != "postgresql":
        return
    async with engine.connect() as conn:
        allowed = await conn.scalar(
            sa.text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
        )
    if not allowed:
        raise RotationError(
            "the database role in CLINICOS_DATABASE_URL is subject to row-level security; PHI "
            "key rotation needs one that bypasses it (a superuser or a role with BYPASSRLS), "
            "as backups do"
        )


async def _begin(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SET LOCAL row_security = off"))


async def count_pending(engine: AsyncEngine, columns: EncryptedColumns, active: int) -> int:
    """Rows with at least one encrypted value not under version ``active``."""
    total = 0
    async with engine.begin() as conn:
        await _begin(conn)
        for name, cols in columns.items():
            t = _table(name, cols)
            pending = sa.or_(*(t.c[c].not_like(_prefix(active)) for c in cols))
            total += int(await conn.scalar(sa.select(sa.func.count()).where(pending)) or 0)
    return total


async def reencrypt_all(
    engine: AsyncEngine,
    keyring: PhiKeyring,
    columns: EncryptedColumns,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[str, int], None] | None = None,
) -> ReencryptReport:
    """Re-seal every stored value that is not under the active key, table by table in ``id``
    order, ``batch_size`` rows at a time: one short transaction reads the batch, the tokens are
    re-sealed outside any transaction, and one short transaction writes them back, each cell
    as a compare-and-set. ``on_batch(table, rows)`` is called after each batch has committed (a
    progress bar; an exception there stops the run, and the next run goes on from what is
    left)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = ReencryptReport()
    for name, cols in columns.items():
        t = _table(name, cols)
        last_id: Any = None
        while True:
            pending = sa.or_(*(t.c[c].not_like(_prefix(keyring.active_version)) for c in cols))
            query = sa.select(t.c.id, t.c.organization_id, *(t.c[c] for c in cols)).where(pending)
            if last_id is not None:
                query = query.where(t.c.id > last_id)
            query = query.order_by(t.c.id).limit(batch_size)
            async with engine.begin() as conn:
                await _begin(conn)
                rows = (await conn.execute(query)).all()
            if not rows:
                break
            writes: list[tuple[Any, str, str, str]] = []  # (id, column, old, new)
            for row in rows:
                writes.extend(_resealed(t.name, cols, keyring, row, report))
                await asyncio.sleep(0)  # a job sharing a loop must not starve it
            if writes:
                async with engine.begin() as conn:
                    await _begin(conn)
                    for row_id, column, old, new in writes:
                        written = await conn.execute(
                            sa.update(t)
                            .where(t.c.id == row_id, t.c[column] == old)
                            .values({column: new})
                        )
                        if written.rowcount == 1:
                            report.cells_reencrypted += 1
                        else:  # edited (or re-encrypted) by someone else since it was read
                            report.cells_skipped += 1
            report.rows_examined += len(rows)
            last_id = rows[-1].id
            if on_batch is not None:
                on_batch(name, len(rows))
            if len(rows) < batch_size:
                break
    return report


def _resealed(
    table: str,
    cols: Sequence[str],
    keyring: PhiKeyring,
    row: sa.Row[Any],
    report: ReencryptReport,
) -> Iterator[tuple[Any, str, str, str]]:
    """``(id, column, old token, new token)`` for each of the row's cells not under the active
    key; a cell that does not decrypt is recorded in ``report`` and left as it is."""
    row_id, organization_id = str(row.id), str(row.organization_id)
    for column in cols:
        old = getattr(row, column)
        if old is None or not keyring.needs_reencryption(old):
            continue
        try:
            new = keyring.reencrypt(
                old, organization_id=organization_id, table=table, column=column, row_id=row_id
            )
        except PhiDecryptionFailed as exc:
            report.cells_failed += 1
            if len(report.failures) < MAX_FAILURES_KEPT:
                report.failures.append(
                    CellFailure(table, column, row_id, exc.key_version, exc.reason)
                )
            continue
        yield row.id, column, old, new


async def count_by_version(
    engine: AsyncEngine, columns: EncryptedColumns, versions: Sequence[int]
) -> VersionCounts:
    """Stored (non-null) values per key version across every encrypted column."""
    by_version = dict.fromkeys(versions, 0)
    total = 0
    async with engine.begin() as conn:
        await _begin(conn)
        for name, cols in columns.items():
            t = _table(name, cols)
            exprs: list[Any] = [sa.func.count(t.c[c]) for c in cols]
            for version in versions:
                exprs.extend(
                    sa.func.coalesce(
                        sa.func.sum(sa.case((t.c[c].like(_prefix(version)), 1), else_=0)), 0
                    )
                    for c in cols
                )
            values = [int(v or 0) for v in (await conn.execute(sa.select(*exprs))).one()]
            total += sum(values[: len(cols)])
            for i, version in enumerate(versions):
                start = len(cols) * (i + 1)
                by_version[version] += sum(values[start : start + len(cols)])
    return VersionCounts(by_version=by_version, other=total - sum(by_version.values()))


async def cells_using_version(engine: AsyncEngine, columns: EncryptedColumns, version: int) -> int:
    """Stored values sealed under ``version`` (``LIKE 'v<version>:%'``) in any encrypted column."""
    return (await count_by_version(engine, columns, [version])).by_version[version]


async def stored_token_count(engine: AsyncEngine, columns: EncryptedColumns) -> int:
    """Every stored encrypted value; tables not created yet (a fresh database) count none."""
    async with engine.connect() as conn:
        existing = await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
    present = {name: cols for name, cols in columns.items() if name in existing}
    if not present:
        return 0
    return (await count_by_version(engine, present, [])).total


async def retire_version(
    path: Path, version: int, engine: AsyncEngine, columns: EncryptedColumns
) -> PhiKeyFile:
    """Remove ``version`` from the key file, refusing the active version and a version any
    stored value still uses. Returns the new content."""
    try:
        retire_key_version(read_phi_key_file(path), version)  # the file's own refusals first
    except ValueError as exc:
        raise RotationError(f"CLINICOS_PHI__KEY_FILE: {exc}") from None
    await require_full_visibility(engine)
    in_use = await cells_using_version(engine, columns, version)
    if in_use:
        raise RotationError(
            f"{in_use} stored value(s) still use key version {version}; run "
            "`clinicos keys reencrypt` (again) until none is left"
        )
    return update_key_file(path, lambda content: retire_key_version(content, version))

"""Audit use cases: append to an organization's chain in the caller's transaction; verify it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, RowMapping, Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from clinicos.governance.audit.chain import GENESIS_HASH, ChainChecker, ChainReport, chain_key_for
from clinicos.governance.audit.chain import compute_hash as compute_row_hash
from clinicos.governance.audit.scope import require_session_scope, session_of
from clinicos.governance.audit.validation import (
    ACTOR_TYPES,
    OUTCOMES,
    optional_code,
    optional_identifier,
    organization_identifier,
    require_code,
    require_member,
)
from clinicos.governance.models import AuditChainAnchor, AuditChainHead, AuditEvent
from clinicos.kernel.ids import new_id
from clinicos.platform.db.uow import SqlUnitOfWork

VERIFY_BATCH_SIZE = 1000

_events = cast(Table, AuditEvent.__table__)
_heads = cast(Table, AuditChainHead.__table__)


async def record_audit(
    uow: SqlUnitOfWork,
    *,
    organization_id: str | None,
    actor_type: str,
    actor_id: str | None,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    purpose: str | None = None,
    outcome: str = "success",
    request_id: str | None = None,
) -> None:
    """Append one audit row to the organization's chain (or the installation chain for None).

    Runs in the caller's transaction and does not commit: the row lands with the change it
    records, or neither does. Values must be ids and codes; anything else is refused.
    """
    organization_identifier(organization_id)
    if uow.organization_id != organization_id:
        # Row-level security refuses this on PostgreSQL; refuse it on SQLite too, so a missing
        # `uow(organization_id)` / `uow.scope_to(...)` fails in every test, not in production.
        raise ValueError(
            "record_audit's organization differs from the unit of work's scope; open it with "
            "container.uow(organization_id) or call uow.scope_to(organization_id) first"
        )
    row: dict[str, Any] = {
        "organization_id": organization_id,
        "actor_type": require_member("actor_type", actor_type, ACTOR_TYPES),
        "actor_id": optional_identifier("actor_id", actor_id),
        "action": require_code("action", action),
        "target_type": optional_code("target_type", target_type),
        "target_id": optional_identifier("target_id", target_id),
        "purpose": optional_code("purpose", purpose),
        "outcome": require_member("outcome", outcome, OUTCOMES),
        "request_id": optional_identifier("request_id", request_id),
    }
    session = uow.session
    chain_key = chain_key_for(organization_id)
    known = _known_heads.get(chain_key)
    if known is not None:
        # Fast path: this process appended the chain's last row it knows of. Advance the head
        # only if it is still exactly that (seq and hash), which takes the head's lock as the
        # slow path's SELECT ... FOR UPDATE does; one statement fewer when it holds.
        now = uow.clock.now()  # after the head was known: never before its row's time
        row |= {
            "id": new_id(),
            "chain_key": chain_key,
            "seq": known[0] + 1,
            "occurred_at": now,
            "prev_hash": known[1],
        }
        row["hash"] = compute_row_hash(row)
        advanced = await session.execute(
            _ADVANCE_KNOWN_HEAD,
            {
                "head_key": chain_key,
                "known_seq": known[0],
                "known_hash": known[1],
                "next_seq": row["seq"],
                "next_hash": row["hash"],
                "now": now,
            },
        )
        if cast(CursorResult[Any], advanced).rowcount == 1:
            await session.execute(_INSERT_EVENT, row)
            _remember_head(chain_key, row["seq"], row["hash"])
            return
        # Another writer (process, or a rolled-back transaction of ours) moved the head, or
        # it was changed: read it under its lock as if nothing were known.
        _known_heads.pop(chain_key, None)
    last_seq, last_hash = await _lock_chain_head(session, chain_key, uow)
    # The time is read under the lock, so occurred_at never goes backwards along a chain.
    now = uow.clock.now()
    row |= {
        "id": new_id(),
        "chain_key": chain_key,
        "seq": last_seq + 1,
        "occurred_at": now,
        "prev_hash": last_hash,
    }
    row["hash"] = compute_row_hash(row)
    await session.execute(_INSERT_EVENT, row)
    await session.execute(
        _SET_HEAD,
        {"head_key": chain_key, "next_seq": row["seq"], "next_hash": row["hash"], "now": now},
    )
    _remember_head(chain_key, row["seq"], row["hash"])


# The head of each chain this process last advanced, as (seq, hash): a hint only. The fast
# path of record_audit uses it as the expected value of a compare-and-set on the head row, so a
# stale entry (another process appended, our transaction rolled back, another database in the
# same process) costs one UPDATE that matches nothing, never a wrong link.
_known_heads: dict[str, tuple[int, str]] = {}
_KNOWN_HEADS_MAX = 10_000

# Built once (their compiled forms are cached by SQLAlchemy): every audited request runs them.
_INSERT_EVENT = _events.insert()
_SET_HEAD = (
    update(_heads)
    .where(_heads.c.chain_key == bindparam("head_key"))
    .values(
        last_seq=bindparam("next_seq"),
        last_hash=bindparam("next_hash"),
        updated_at=bindparam("now"),
    )
)
_ADVANCE_KNOWN_HEAD = _SET_HEAD.where(
    _heads.c.last_seq == bindparam("known_seq"), _heads.c.last_hash == bindparam("known_hash")
)


def _remember_head(chain_key: str, seq: int, hash_: str) -> None:
    if len(_known_heads) >= _KNOWN_HEADS_MAX and chain_key not in _known_heads:
        _known_heads.clear()
    _known_heads[chain_key] = (seq, hash_)


async def _lock_chain_head(
    session: AsyncSession, chain_key: str, uow: SqlUnitOfWork
) -> tuple[int, str]:
    """Lock the chain's head row for the rest of the transaction; create it on first use.

    ARCHITECTURE.md (Audit) warns that this per-organization head lock serializes every write
    of a clinic that audits, and must be measured (issue 8 benchmarks it); if it limits
    throughput, the fallback it names is sequenced rows chained later by a sealer job.
    On PostgreSQL the lock is ``SELECT ... FOR UPDATE``, and a missing head is created with
    ``INSERT ... ON CONFLICT DO NOTHING`` so two first writers cannot both start a chain.
    On SQLite every transaction already holds the database write lock (``BEGIN IMMEDIATE``,
    see platform/db/engine.py) and SQLAlchemy renders no FOR UPDATE.
    """
    locked = select(_heads.c.last_seq, _heads.c.last_hash).where(_heads.c.chain_key == chain_key)
    head = (await session.execute(locked.with_for_update())).one_or_none()
    if head is None:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        genesis = {
            "chain_key": chain_key,
            "last_seq": 0,
            "last_hash": GENESIS_HASH,
            "updated_at": uow.clock.now(),
        }
        await session.execute(
            dialect.insert(_heads)
            .values(**genesis)
            .on_conflict_do_nothing(index_elements=[_heads.c.chain_key])
        )
        head = (await session.execute(locked.with_for_update())).one()
    return int(head.last_seq), str(head.last_hash)


async def verify_audit_chain(
    uow_or_session: SqlUnitOfWork | AsyncSession,
    *,
    organization_id: str | None,
    batch_size: int = VERIFY_BATCH_SIZE,
) -> ChainReport:
    """Walk one chain in seq order and report its first broken row (or that it is intact).

    Detects a changed row (hash), a deleted row (seq gap), reordered or replaced rows
    (prev_hash), a cut-off tail (the head records more) and rows written around the head.
    Reads ``batch_size`` rows at a time, so a long chain never sits in memory at once.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    session = session_of(uow_or_session)
    organization_identifier(organization_id)
    await require_session_scope(session, organization_id)
    chain_key = chain_key_for(organization_id)
    anchor = (
        await session.execute(
            select(AuditChainAnchor.purged_through_seq, AuditChainAnchor.anchor_hash).where(
                AuditChainAnchor.chain_key == chain_key
            )
        )
    ).one_or_none()
    checker = (
        ChainChecker(chain_key, anchor_seq=int(anchor[0]), anchor_hash=str(anchor[1]))
        if anchor is not None
        else ChainChecker(chain_key)
    )
    # The head is read first: every row it counts was committed with it, so later reads see
    # them, while rows appended during the walk (beyond this head) are left for next time.
    head = await _read_head(session, chain_key)
    upto = head[0] if head is not None else None
    after = checker.anchor_seq
    while not checker.broken:
        rows = await _read_batch(session, chain_key, after=after, upto=upto, limit=batch_size)
        for row in rows:
            if not checker.feed(row):
                break
        if len(rows) < batch_size:
            break
        after = int(rows[-1]["seq"])
    report = checker.finish(*head) if head is not None else checker.finish(None, None)
    if report.ok and head is not None:
        return await _check_rows_beyond_head(session, checker, head[0])
    return report


async def _read_head(session: AsyncSession, chain_key: str) -> tuple[int, str] | None:
    found = (
        await session.execute(
            select(_heads.c.last_seq, _heads.c.last_hash).where(_heads.c.chain_key == chain_key)
        )
    ).one_or_none()
    return None if found is None else (int(found.last_seq), str(found.last_hash))


async def _read_batch(
    session: AsyncSession, chain_key: str, *, after: int, upto: int | None, limit: int
) -> Sequence[RowMapping]:
    query = (
        select(_events)
        .where(_events.c.chain_key == chain_key, _events.c.seq > after)
        .order_by(_events.c.seq)
        .limit(limit)
    )
    if upto is not None:
        query = query.where(_events.c.seq <= upto)
    return (await session.execute(query)).mappings().all()


async def _check_rows_beyond_head(
    session: AsyncSession, checker: ChainChecker, head_seq: int
) -> ChainReport:
    """Rows past the head are either appended since it was read, or written around it."""
    max_seq_query = select(func.max(_events.c.seq)).where(_events.c.chain_key == checker.chain_key)
    max_seq = (await session.execute(max_seq_query)).scalar_one_or_none()
    if max_seq is None or max_seq <= head_seq:
        return checker.result()
    # Read the head again after the rows: a legitimate append commits row and head together.
    head_now = await _read_head(session, checker.chain_key)
    if head_now is not None and head_now[0] >= max_seq:
        return checker.result()
    return checker.rows_beyond_head(head_now[0] if head_now is not None else 0)

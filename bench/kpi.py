"""Bulk: the KPI query (governance) at 1,000,000 governance events — one organization's year of
decision support plus another organization's events in the same table — answered by
``clinicos.governance.kpi.kpi_report`` as the app role (row-level security on PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from bench.databases import Database, fresh_database
from bench.options import Options
from bench.results import Figure, Section
from clinicos.bootstrap import build_container
from clinicos.governance.kpi import kpi_report, rollup_keys, slot_of
from clinicos.kernel.actor import Actor

EVENTS = 1_000_000
OTHER_ORG_SHARE = 0.1  # a tenth of the rows belong to another clinic: the index must skip them
YEAR_START = datetime(2025, 12, 1, tzinfo=UTC)
# Per event: (kind, outcome) with weights — a plausible mix, BLOCK/WARN a minority.
MIX: list[tuple[tuple[str, str | None], float]] = [
    (("evaluation", "PASS"), 0.55),
    (("evaluation", "WARN"), 0.12),
    (("evaluation", "BLOCK"), 0.08),
    (("evaluation", "ATTEST"), 0.10),
    (("override", "BLOCK"), 0.05),
    (("override", "WARN"), 0.05),
    (("cosign", "BLOCK"), 0.02),
    (("attestation", None), 0.03),
]
DRUGS = ["apixaban", "rivaroxaban", "dabigatran", "edoxaban", "warfarin"]
REASONS = [
    "benefit_outweighs_risk",
    "patient_tolerating",
    "specialist_recommendation",
    "data_out_of_date",
    "other",
]
KEYS = ["crcl_below_15", "dabigatran_crcl_30_or_less", "interacting_drug", "age_80_or_over"]
ZONE = ZoneInfo("America/La_Paz")  # `clinicos org create`'s default timezone
COLUMNS = (
    "event_id",
    "organization_id",
    "occurred_at",
    "slot",
    "kind",
    "evaluation_id",
    "outcome",
    "drug",
    "reason_code",
    "rule_keys",
    "approved",
    "block_at",
    "resolution_seconds",
)
DAILY_COLUMNS = ("organization_id", "timezone", "day", "metric", "key", "n")
QUERIES = [
    ("year.day", "2025-12-01", "2026-11-30", "day"),
    ("year.month", "2025-12-01", "2026-11-30", "month"),
    ("month.day", "2026-11-01", "2026-11-30", "day"),
    # Instants: whole days from the rollup, the two partial days from the events.
    ("instants.week", "2026-11-02T10:30:00-04:00", "2026-11-09T15:45:00-04:00", "day"),
]


def _rows(org: str, other: str, count: int, seed: int = 7) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    seconds = 365 * 86400
    rows: list[tuple[Any, ...]] = []
    for n in range(count):
        kind, outcome = rng.choices(kinds, weights)[0]
        at = YEAR_START + timedelta(seconds=rng.randrange(seconds))
        overriding = kind in ("override", "cosign")
        approved = overriding and (kind == "cosign" or outcome == "WARN")
        waited = float(rng.randrange(60, 6 * 3600)) if approved and outcome == "BLOCK" else None
        rows.append(
            (
                str(uuid.UUID(int=rng.getrandbits(128))),
                other if rng.random() < OTHER_ORG_SHARE else org,
                at,
                slot_of(at),
                kind,
                f"ev-{n // 3}",
                outcome,
                rng.choice(DRUGS),
                rng.choice(REASONS) if overriding else None,
                f'["{rng.choice(KEYS)}"]' if kind != "attestation" else None,
                approved,
                at - timedelta(seconds=waited) if waited is not None else None,
                waited,
            )
        )
    return rows


def _daily(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The daily rollup the outbox handler maintains for these events (same keys, same days)."""
    counters: Counter[tuple[str, date, str, str]] = Counter()
    for r in rows:
        org, at, kind, outcome, drug, reason, keys = r[1], r[2], r[4], r[6], r[7], r[8], r[9]
        day = at.astimezone(ZONE).date()
        for metric, key in rollup_keys(kind, outcome, reason, drug, json.loads(keys or "[]")):
            counters[(org, day, metric, key)] += 1
    return [(org, ZONE.key, day, metric, key, n) for (org, day, metric, key), n in counters.items()]


def _lite_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _load(db: Database, rows: list[tuple[Any, ...]]) -> None:
    """Bulk-load the projection and its rollup as the database owner (COPY / one transaction)."""
    daily = _daily(rows)
    if db.engine == "sqlite":
        lite = sqlite3.connect(db.var_dir / "clinicos.db")
        lite.executemany(
            f"INSERT INTO governance_kpi_event ({', '.join(COLUMNS)}) "  # noqa: S608 - constants
            f"VALUES ({', '.join('?' for _ in COLUMNS)})",
            [(*r[:2], _lite_time(r[2]), *r[3:11], _lite_time(r[11]), r[12]) for r in rows],
        )
        lite.executemany(
            f"INSERT INTO governance_kpi_daily ({', '.join(DAILY_COLUMNS)}) "  # noqa: S608
            f"VALUES ({', '.join('?' for _ in DAILY_COLUMNS)})",
            [(*d[:2], d[2].isoformat(), *d[3:]) for d in daily],
        )
        lite.commit()
        lite.execute("ANALYZE")
        lite.close()
        return
    with psycopg.connect(db.url) as pg:
        for table, columns, data in (
            ("governance_kpi_event", COLUMNS, rows),
            ("governance_kpi_daily", DAILY_COLUMNS, daily),
        ):
            with (
                pg.cursor() as cur,
                cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for r in data:
                    copy.write_row(r)
        pg.commit()
        pg.execute("ANALYZE governance_kpi_event")
        pg.execute("ANALYZE governance_kpi_daily")


def _org_id(db: Database, slug: str) -> str:
    if db.engine == "sqlite":
        lite = sqlite3.connect(db.var_dir / "clinicos.db")
        (found,) = lite.execute("SELECT id FROM organization WHERE slug = ?", (slug,)).fetchone()
        lite.close()
        return str(found)
    with psycopg.connect(db.url) as pg:
        row = pg.execute("SELECT id FROM organization WHERE slug = %s", (slug,)).fetchone()
    assert row is not None
    return str(row[0])


async def _time_queries(db: Database, org: str, runs: int) -> dict[str, list[float]]:
    container = build_container(db.settings())
    actor = Actor(
        user_id="bench", organization_id=org, roles=frozenset({"admin"}), permissions=frozenset()
    )
    timings: dict[str, list[float]] = {name: [] for name, *_ in QUERIES}
    try:
        for name, start, end, granularity in QUERIES:
            await kpi_report(  # warm-up: connection, page cache
                uows=container.uow, actor=actor, raw_from=start, raw_to=end, granularity=granularity
            )
            for _ in range(runs):
                began = time.perf_counter()
                report = await kpi_report(
                    uows=container.uow,
                    actor=actor,
                    raw_from=start,
                    raw_to=end,
                    granularity=granularity,
                )
                timings[name].append(round((time.perf_counter() - began) * 1000, 1))
            if report.totals.evaluations == 0:
                raise RuntimeError("the KPI benchmark counted nothing: the load failed")
    finally:
        await container.dispose()
    return timings


def run(options: Options) -> Section:
    section = Section("kpi", "KPI query at 1,000,000 governance events (governance)")
    events = options.count(EVENTS)
    for engine in options.engines:
        with fresh_database(engine, options, "kpi") as db:
            db.clinicos("org", "create", "--slug", "kpi-bench", "--name", "KPI bench")
            db.clinicos("org", "create", "--slug", "kpi-other", "--name", "Another clinic")
            org, other = _org_id(db, "kpi-bench"), _org_id(db, "kpi-other")
            began = time.perf_counter()
            _load(db, _rows(org, other, events))
            load_seconds = time.perf_counter() - began
            timings = asyncio.run(_time_queries(db, org, options.runs(5)))
        for name, start, end, granularity in QUERIES:
            section.figures.append(
                Figure(
                    f"kpi.{name}.{engine}",
                    f"KPI report {start}..{end} by {granularity}",
                    "ms",
                    timings[name],
                    engine=engine,
                    details={"events": events, "load_seconds": round(load_seconds, 1)},
                )
            )
    section.notes.append(
        f"{events:,} rows in `governance_kpi_event` (the projection the outbox handler fills "
        f"from cds events), {OTHER_ORG_SHARE:.0%} of them another organization's, spread over "
        "a year; the clinic's timezone is UTC-4 (America/La_Paz). Each figure is one "
        "`kpi_report` call in process as the app role: totals, overrides by reason, drug and "
        "rule, the median time from block to approved override and the series. Whole local "
        "days are read from the daily rollup (`governance_kpi_daily`, kept by the same "
        "handler); partial days at the ends of a range given as instants are counted from the "
        "events (one GROUP BY per stretch of constant UTC offset on the (organization_id, "
        "occurred_at) index); the median reads the resolution times stored on the approvals."
    )
    return section

"""Decision-support KPIs of one organization, counted from governance events.

The projection (:func:`project_cds_event`, an outbox handler) stores one ``governance_kpi_event``
row per ``cds.EvaluationRecorded`` / ``OverrideRecorded`` / ``OverrideCosigned`` /
``AttestationRecorded`` event — the events decision support writes in the same transaction as
each decision's audit entry — so every figure is a count of real events, never synthetic.

:func:`kpi_report` counts them for a range of the organization's calendar: ``from``/``to`` as
dates are whole local days (both included); as datetimes with an offset they are exact instants
(``to`` excluded). Buckets (``day``, ISO ``week`` from Monday, calendar ``month``) follow the
organization's timezone, daylight-saving changes included: the query groups rows by local day
in SQL, one pass per stretch of constant UTC offset, and adds days up into weeks and months.

Definitions (ours, written down so the numbers can be checked by hand):
- an evaluation counts once, whatever its outcome; ``blocks``/``warnings``/``attest_required``
  count evaluations whose outcome was BLOCK/WARN/ATTEST;
- ``overrides`` counts overrides recorded in the range (a co-sign is not a second override);
  ``override_rate`` = overrides ÷ (blocks + warnings) of the same range, rounded to 4
  decimals, null when there was nothing to override;
- ``overrides_by_rule`` (``by_rule``) counts each override once under every reason key that
  raised the overridden evaluation's outcome (INFO reasons left out);
- a BLOCK is resolved when an override of it becomes approved (recorded without a co-sign
  requirement, or co-signed); ``median_block_resolution_seconds`` is the median of those
  durations for the blocks evaluated in the range (null when none was resolved). A block
  resolved by changing the order is a new evaluation and is not linked to the block.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from clinicos.governance.models import KpiDaily, KpiEvent
from clinicos.identity import organization_profile
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import FieldError, ValidationFailed
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.outbox.registry import OutboxEnvelope

UnitOfWorkFor = Callable[[str | None], SqlUnitOfWork]

GRANULARITIES = ("day", "week", "month")
# The longest range one request may ask for, per granularity (our policy: a year of days, two
# years of weeks, five years of months — enough for any dashboard, bounded for the database).
MAX_SPAN_DAYS = {"day": 366, "week": 731, "month": 1827}
SLOT_SECONDS = 900  # a slot is a quarter hour: every current UTC offset is a whole number of them
SLOTS_PER_DAY = 86400 // SLOT_SECONDS

EVENT_KINDS = {
    "cds.EvaluationRecorded": "evaluation",
    "cds.OverrideRecorded": "override",
    "cds.OverrideCosigned": "cosign",
    "cds.AttestationRecorded": "attestation",
}
OVERRIDE_APPROVED = "approved"
SERIES_FIELDS = (
    "evaluations",
    "blocks",
    "warnings",
    "attest_required",
    "attestations",
    "overrides",
)


def slot_of(moment: datetime) -> int:
    """Whole quarter hours from the Unix epoch to ``moment`` (an aware datetime)."""
    return int(moment.timestamp()) // SLOT_SECONDS


# -- projection ------------------------------------------------------------------------------


async def project_cds_event(envelope: OutboxEnvelope, uow: SqlUnitOfWork) -> None:
    """Outbox handler: count one decision-support event (idempotent by event id) and add it to
    the organization's daily rollup, in the handler's one transaction."""
    kind = EVENT_KINDS.get(envelope.event_type)
    org = envelope.organization_id
    if kind is None or org is None:
        return
    await uow.scope_to(org)
    if await uow.session.get(KpiEvent, envelope.event_id) is not None:
        return  # counted already (a replay of the projection)
    p = envelope.payload
    occurred_at = _aware(envelope.occurred_at)  # SQLite hands datetimes back naive (UTC)
    row = KpiEvent(
        event_id=envelope.event_id,
        organization_id=org,
        occurred_at=occurred_at,
        slot=slot_of(occurred_at),
        kind=kind,
        evaluation_id=str(p.get("evaluation_id") or ""),
        outcome=p.get("outcome"),
        drug=p.get("drug"),
        reason_code=p.get("reason_code"),
        rule_keys=_rule_keys(kind, p),
        approved=kind in ("override", "cosign") and p.get("status") == OVERRIDE_APPROVED,
    )
    evaluated = None
    if kind in ("override", "cosign"):
        evaluated = await uow.session.scalar(
            select(KpiEvent).where(
                KpiEvent.organization_id == org,
                KpiEvent.evaluation_id == row.evaluation_id,
                KpiEvent.kind == "evaluation",
            )
        )
        if row.drug is None and evaluated is not None:
            row.drug = evaluated.drug  # events stored before overrides named their drug
    if row.approved and row.outcome == "BLOCK" and evaluated is not None:
        _resolve(row, evaluated.occurred_at)
    if kind == "evaluation" and row.outcome == "BLOCK":
        # Approvals projected before this evaluation (several workers): their block time.
        approvals = await uow.session.scalars(
            select(KpiEvent).where(
                KpiEvent.organization_id == org,
                KpiEvent.evaluation_id == row.evaluation_id,
                KpiEvent.approved.is_(True),
                KpiEvent.block_at.is_(None),
            )
        )
        for approval in approvals:
            _resolve(approval, occurred_at)
    uow.session.add(row)
    timezone = (await organization_profile(uow, org)).timezone
    day = occurred_at.astimezone(ZoneInfo(timezone)).date()
    for metric, key in rollup_keys(row.kind, row.outcome, row.reason_code, row.drug, row.rule_keys):
        await _bump(uow, org, timezone, day, metric, key)


def _resolve(approval: KpiEvent, block_at: datetime) -> None:
    block_at = _aware(block_at)
    approval.block_at = block_at
    approval.resolution_seconds = max(
        (_aware(approval.occurred_at) - block_at).total_seconds(), 0.0
    )


def rollup_keys(
    kind: str,
    outcome: str | None,
    reason_code: str | None,
    drug: str | None,
    rule_keys: Iterable[str] | None,
) -> list[tuple[str, str]]:
    """The daily counters (metric, key) one counted event adds one to."""
    keys = [("count", f"{kind}:{outcome or ''}")]
    if kind == "override":
        keys.append(("override_reason", reason_code or "unknown"))
        keys.append(("override_drug", drug or "unknown"))
        keys.extend(("override_rule", key) for key in rule_keys or ())
    return keys


async def _bump(
    uow: SqlUnitOfWork, org: str, timezone: str, day: date, metric: str, key: str
) -> None:
    """Add one to a daily counter (an upsert: concurrent workers never lose a count)."""
    dialect = postgresql if uow.session.get_bind().dialect.name == "postgresql" else sqlite
    table = KpiDaily.__table__
    statement = dialect.insert(table).values(
        organization_id=org, timezone=timezone, day=day, metric=metric, key=key[:100], n=1
    )
    await uow.session.execute(
        statement.on_conflict_do_update(
            index_elements=["organization_id", "timezone", "day", "metric", "key"],
            set_={"n": table.c.n + 1},
        )
    )


def _rule_keys(kind: str, payload: dict[str, Any]) -> list[str] | None:
    keys = payload.get("reason_keys")
    if kind in ("evaluation", "override", "cosign") and isinstance(keys, list):
        return sorted({str(k) for k in keys})
    return None


# -- the range -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KpiRange:
    """A validated request: the instants [start, end) and how to cut them into buckets."""

    start: datetime
    end: datetime
    granularity: str
    zone: ZoneInfo
    label_from: str
    label_to: str


def parse_range(
    raw_from: str | None, raw_to: str | None, granularity: str, timezone: str
) -> KpiRange:
    """Validate ``from``/``to``/``granularity`` (422 naming the parameter on any problem)."""
    errors: list[FieldError] = []
    if granularity not in GRANULARITIES:
        errors.append(
            FieldError(("query", "granularity"), f"must be one of: {', '.join(GRANULARITIES)}")
        )
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):  # pragma: no cover - validated at creation
        zone = ZoneInfo("UTC")
    start = _instant(raw_from, "from", zone, end_of_day=False, errors=errors)
    end = _instant(raw_to, "to", zone, end_of_day=True, errors=errors)
    if start is not None and end is not None:
        if end <= start:
            errors.append(FieldError(("query", "to"), "must be after 'from'"))
        elif granularity in MAX_SPAN_DAYS and end - start > timedelta(
            days=MAX_SPAN_DAYS[granularity]
        ):
            errors.append(
                FieldError(
                    ("query", "to"),
                    f"the range may span at most {MAX_SPAN_DAYS[granularity]} days "
                    f"at granularity '{granularity}'",
                )
            )
    if errors or start is None or end is None:
        raise ValidationFailed("the KPI range is not valid", errors=errors)
    return KpiRange(
        start=start,
        end=end,
        granularity=granularity,
        zone=zone,
        label_from=str(raw_from),
        label_to=str(raw_to),
    )


# KPIs count what this system recorded: a range reaching before 1900 or into the year 9999 is a
# typo, and the day arithmetic at its ends (the day before, a week's Monday, the next midnight)
# would step outside the calendar a datetime can hold.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _instant(
    raw: str | None, name: str, zone: ZoneInfo, *, end_of_day: bool, errors: list[FieldError]
) -> datetime | None:
    loc: tuple[str | int, ...] = ("query", name)
    try:
        moment = _parsed_instant(raw, loc, zone, end_of_day=end_of_day, errors=errors)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before the first UTC instant
        moment = None
        errors.append(FieldError(loc, "is out of range"))
    if moment is not None and not EARLIEST <= moment <= LATEST:
        bounds = f"{EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"
        errors.append(FieldError(loc, f"must lie between {bounds}"))
        return None
    return moment


def _parsed_instant(
    raw: str | None,
    loc: tuple[str | int, ...],
    zone: ZoneInfo,
    *,
    end_of_day: bool,
    errors: list[FieldError],
) -> datetime | None:
    if raw is None or not raw.strip():
        errors.append(FieldError(loc, "is required (a date or a datetime with an offset)"))
        return None
    text = raw.strip()
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            errors.append(FieldError(loc, "is not a date (YYYY-MM-DD)"))
            return None
        if end_of_day:
            if day == date.max:
                errors.append(FieldError(loc, "is out of range"))
                return None
            day += timedelta(days=1)
        return local_midnight(day, zone)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        errors.append(FieldError(loc, "is not a date (YYYY-MM-DD) or an ISO 8601 datetime"))
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        errors.append(FieldError(loc, "needs a UTC offset (e.g. Z or -04:00)"))
        return None
    return moment.astimezone(UTC)


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant the local ``day`` starts in ``zone`` (UTC)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def bucket_start(day: date, granularity: str) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


# -- the report ------------------------------------------------------------------------------


@dataclass
class KpiCounts:
    evaluations: int = 0
    blocks: int = 0
    warnings: int = 0
    attest_required: int = 0
    attestations: int = 0
    overrides: int = 0

    def add(self, kind: str, outcome: str | None, n: int) -> None:
        if kind == "evaluation":
            self.evaluations += n
            if outcome == "BLOCK":
                self.blocks += n
            elif outcome == "WARN":
                self.warnings += n
            elif outcome == "ATTEST":
                self.attest_required += n
        elif kind == "attestation":
            self.attestations += n
        elif kind == "override":
            self.overrides += n

    def merge(self, other: KpiCounts) -> None:
        for name in SERIES_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class KpiBucket:
    start: date
    counts: KpiCounts = field(default_factory=KpiCounts)


@dataclass
class KpiReport:
    range: KpiRange
    timezone: str
    totals: KpiCounts
    override_rate: float | None
    overrides_by_reason: dict[str, int]
    overrides_by_drug: dict[str, int]
    overrides_by_rule: dict[str, int]
    blocks_resolved: int
    median_block_resolution_seconds: float | None
    series: list[KpiBucket]

    def as_json(self) -> dict[str, Any]:
        t = self.totals
        return {
            "from": self.range.label_from,
            "to": self.range.label_to,
            "timezone": self.timezone,
            "granularity": self.range.granularity,
            "evaluations": t.evaluations,
            "blocks": t.blocks,
            "warnings": t.warnings,
            "attest_required": t.attest_required,
            "attestations": t.attestations,
            "overrides": t.overrides,
            "override_rate": self.override_rate,
            "overrides_by_reason": self.overrides_by_reason,
            "overrides_by_drug": self.overrides_by_drug,
            "by_rule": self.overrides_by_rule,
            "blocks_resolved": self.blocks_resolved,
            "median_block_resolution_seconds": self.median_block_resolution_seconds,
            "series": [
                {"start": b.start.isoformat(), **{n: getattr(b.counts, n) for n in SERIES_FIELDS}}
                for b in self.series
            ],
        }

    def as_csv(self) -> str:
        """The same figures as a long table: ``scope,metric,key,value`` (scope ``total`` or a
        bucket's start date), one row per number — pivots straight into a spreadsheet."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["scope", "metric", "key", "value"])
        data = self.as_json()
        for name in (*SERIES_FIELDS, "override_rate", "blocks_resolved"):
            writer.writerow(["total", name, "", _cell(data[name])])
        writer.writerow(
            [
                "total",
                "median_block_resolution_seconds",
                "",
                _cell(data["median_block_resolution_seconds"]),
            ]
        )
        for metric in ("overrides_by_reason", "overrides_by_drug", "by_rule"):
            for key, n in data[metric].items():
                writer.writerow(["total", metric, key, n])
        for bucket in self.series:
            for name in SERIES_FIELDS:
                writer.writerow([bucket.start.isoformat(), name, "", getattr(bucket.counts, name)])
        return out.getvalue()


def _cell(value: object) -> str:
    return "" if value is None else str(value)


async def kpi_report(
    *,
    uows: UnitOfWorkFor,
    actor: Actor,
    raw_from: str | None,
    raw_to: str | None,
    granularity: str,
) -> KpiReport:
    """The organization's KPIs over a range of its calendar (see the module docstring).

    Whole local days come from the daily rollup; the partial days at either end of a range
    given as instants come from the events. When the rollup holds days counted in another
    timezone (the organization moved), the whole range is counted from the events.
    """
    async with uows(actor.organization_id) as uow:
        profile = await organization_profile(uow, actor.organization_id)
        kpi_range = parse_range(raw_from, raw_to, granularity, profile.timezone)
        org = actor.organization_id
        tally = _Tally()
        first, stop = _whole_days(kpi_range)
        if first < stop and not await _rolled_up_elsewhere(uow, org, profile.timezone, first, stop):
            await _from_rollup(uow, org, profile.timezone, first, stop, tally)
            pieces = [
                (kpi_range.start, local_midnight(first, kpi_range.zone)),
                (local_midnight(stop, kpi_range.zone), kpi_range.end),
            ]
        else:
            pieces = [(kpi_range.start, kpi_range.end)]
        for start, end in pieces:
            if start < end:
                await _from_events(uow, org, kpi_range, start, end, tally)
        resolutions = [
            float(seconds or 0.0)
            for seconds in await uow.session.scalars(
                select(KpiEvent.resolution_seconds).where(
                    KpiEvent.organization_id == org,
                    KpiEvent.block_at >= kpi_range.start,
                    KpiEvent.block_at < kpi_range.end,
                    KpiEvent.resolution_seconds.is_not(None),
                )
            )
        ]
    return _assemble(kpi_range, profile.timezone, tally, resolutions)


@dataclass
class _Tally:
    days: dict[date, KpiCounts] = field(default_factory=lambda: defaultdict(KpiCounts))
    by_reason: Counter[str] = field(default_factory=Counter)
    by_drug: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)


def _whole_days(kpi_range: KpiRange) -> tuple[date, date]:
    """The local days entirely inside the range: [first, stop)."""
    first = kpi_range.start.astimezone(kpi_range.zone).date()
    if local_midnight(first, kpi_range.zone) < kpi_range.start:
        first += timedelta(days=1)
    stop = kpi_range.end.astimezone(kpi_range.zone).date()
    return first, stop


async def _rolled_up_elsewhere(
    uow: SqlUnitOfWork, org: str, timezone: str, first: date, stop: date
) -> bool:
    found = await uow.session.scalar(
        select(KpiDaily.day)
        .where(
            KpiDaily.organization_id == org,
            KpiDaily.day >= first - timedelta(days=1),
            KpiDaily.day <= stop,
            KpiDaily.timezone != timezone,
        )
        .limit(1)
    )
    return found is not None


async def _from_rollup(
    uow: SqlUnitOfWork, org: str, timezone: str, first: date, stop: date, tally: _Tally
) -> None:
    rows = await uow.session.execute(
        select(KpiDaily.day, KpiDaily.metric, KpiDaily.key, KpiDaily.n).where(
            KpiDaily.organization_id == org,
            KpiDaily.timezone == timezone,
            KpiDaily.day >= first,
            KpiDaily.day < stop,
        )
    )
    for day, metric, key, n in rows:
        if metric == "count":
            kind, _, outcome = key.partition(":")
            tally.days[day].add(kind, outcome or None, int(n))
        elif metric == "override_reason":
            tally.by_reason[key] += int(n)
        elif metric == "override_drug":
            tally.by_drug[key] += int(n)
        elif metric == "override_rule":
            tally.by_rule[key] += int(n)


async def _from_events(
    uow: SqlUnitOfWork, org: str, kpi_range: KpiRange, start: datetime, end: datetime, tally: _Tally
) -> None:
    """Count the events of [start, end) (a partial day, or everything) by local day."""
    piece = KpiRange(
        start=start,
        end=end,
        granularity=kpi_range.granularity,
        zone=kpi_range.zone,
        label_from=kpi_range.label_from,
        label_to=kpi_range.label_to,
    )
    in_piece = and_(
        KpiEvent.organization_id == org, KpiEvent.occurred_at >= start, KpiEvent.occurred_at < end
    )
    epoch_day = date(1970, 1, 1)
    for seg_start, seg_end, offset_slots in offset_segments(piece):
        local_day = (KpiEvent.slot + literal(offset_slots)) // SLOTS_PER_DAY
        rows = await uow.session.execute(
            select(local_day, KpiEvent.kind, KpiEvent.outcome, func.count())
            .where(in_piece, KpiEvent.occurred_at >= seg_start, KpiEvent.occurred_at < seg_end)
            .group_by(local_day, KpiEvent.kind, KpiEvent.outcome)
        )
        for day_number, kind, outcome, n in rows:
            tally.days[epoch_day + timedelta(days=int(day_number))].add(kind, outcome, int(n))
    overrides = await uow.session.execute(
        select(KpiEvent.reason_code, KpiEvent.drug, KpiEvent.rule_keys).where(
            in_piece, KpiEvent.kind == "override"
        )
    )
    for reason_code, drug, rule_keys in overrides:
        tally.by_reason[reason_code or "unknown"] += 1
        tally.by_drug[drug or "unknown"] += 1
        for key in rule_keys or ():
            tally.by_rule[str(key)] += 1


def offset_segments(kpi_range: KpiRange) -> list[tuple[datetime, datetime, int]]:
    """Split [start, end) where the zone's UTC offset changes: (from, to, offset in slots).

    Walks the range a day at a time (no zone changes its offset twice in a day) and finds each
    change by bisection on the absolute quarter-hour grid, where transitions happen.
    """
    zone = kpi_range.zone
    end = kpi_range.end
    segments: list[tuple[datetime, datetime, int]] = []
    cursor = kpi_range.start
    current = _offset_slots(cursor, zone)
    probe = cursor
    while probe < end:
        nxt = min(probe + timedelta(days=1), end)
        if _offset_slots(nxt, zone) == current:
            probe = nxt
            continue
        change = _first_change(probe, nxt, zone, current)
        if change >= end:
            break
        segments.append((cursor, change, current))
        cursor = probe = change
        current = _offset_slots(change, zone)
    segments.append((cursor, end, current))
    return segments


def _offset_slots(moment: datetime, zone: ZoneInfo) -> int:
    offset = moment.astimezone(zone).utcoffset() or timedelta(0)
    return int(offset.total_seconds()) // SLOT_SECONDS


def _first_change(low: datetime, high: datetime, zone: ZoneInfo, offset: int) -> datetime:
    """The first quarter hour in (low, high] whose UTC offset differs from ``offset``."""
    lo = slot_of(low)  # its offset is still ``offset`` (a change falls on a quarter hour)
    hi = -(-int(high.timestamp()) // SLOT_SECONDS)  # the quarter hour at or after ``high``
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if _offset_slots(datetime.fromtimestamp(mid * SLOT_SECONDS, UTC), zone) == offset:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi * SLOT_SECONDS, UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _assemble(
    kpi_range: KpiRange, timezone: str, tally: _Tally, resolutions: list[float]
) -> KpiReport:
    first_local = kpi_range.start.astimezone(kpi_range.zone).date()
    last_local = (kpi_range.end - timedelta(microseconds=1)).astimezone(kpi_range.zone).date()
    buckets: dict[date, KpiBucket] = {}
    day = first_local
    while day <= last_local:
        key = bucket_start(day, kpi_range.granularity)
        buckets.setdefault(key, KpiBucket(start=key))
        day += timedelta(days=1)
    totals = KpiCounts()
    for local_day, counts in tally.days.items():
        key = bucket_start(local_day, kpi_range.granularity)
        buckets.setdefault(key, KpiBucket(start=key)).counts.merge(counts)
        totals.merge(counts)
    overridable = totals.blocks + totals.warnings
    return KpiReport(
        range=kpi_range,
        timezone=timezone,
        totals=totals,
        override_rate=round(totals.overrides / overridable, 4) if overridable else None,
        overrides_by_reason=dict(sorted(tally.by_reason.items())),
        overrides_by_drug=dict(sorted(tally.by_drug.items())),
        overrides_by_rule=dict(sorted(tally.by_rule.items())),
        blocks_resolved=len(resolutions),
        median_block_resolution_seconds=(
            round(statistics.median(resolutions), 3) if resolutions else None
        ),
        series=[buckets[k] for k in sorted(buckets)],
    )

"""Decision-support KPIs: counted from the governance events decision support writes, bucketed in
the organization's calendar, equal to hand counts across day and timezone boundaries."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.cds.events import AttestationRecorded, EvaluationRecorded, OverrideRecorded
from clinicos.governance.kpi import project_cds_event
from clinicos.governance.models import KpiEvent
from clinicos.identity.services.organizations import create_organization
from clinicos.kernel.actor import SystemActor
from clinicos.kernel.events import DomainEvent
from clinicos.platform.outbox.registry import OutboxEnvelope
from tests.integration.cds.api_cases import signed_in
from tests.integration.cds.override_support import (
    BLOCK_CASE,
    PASS_CASE,
    WARN_CASE,
    cosign,
    evaluated,
    override,
)
from tests.support.tenancy_fixtures import SignedIn, assert_problem, new_member, sign_in

KPI = "/api/v1/kpi"


async def org_in(container: Container, client: AsyncClient, slug: str, zone: str) -> SignedIn:
    """A fresh organization in ``zone`` with a signed-in supervisor."""
    async with container.uow() as uow:
        org = await create_organization(
            uow=uow,
            actor=SystemActor("test"),
            slug=slug,
            name=slug.title(),
            country="BR",
            locale="pt",
            currency="BRL",
            timezone=zone,
            mfa_required_for_admin=False,
        )
        await uow.commit()
    member = await new_member(
        container,
        organization_id=org.id,
        organization_slug=slug,
        email=f"lead@{slug}.example.com",
        roles=["supervisor"],
    )
    return await sign_in(client, member)


def evaluation(
    org: str, at: str, outcome: str, eid: str, drug: str = "apixaban"
) -> EvaluationRecorded:
    return EvaluationRecorded(
        organization_id=org,
        occurred_at=datetime.fromisoformat(at),
        evaluation_id=eid,
        evaluated_by="u-1",
        drug=drug,
        indication="nvaf",
        outcome=outcome,
        reason_keys=["crcl_below_15"] if outcome == "BLOCK" else [],
        rule_pack_id="doac",
        rule_pack_version="1.0.0",
        input_hash="0" * 64,
    )


def overridden(
    org: str, at: str, eid: str, reason: str, status: str = "approved"
) -> OverrideRecorded:
    return OverrideRecorded(
        organization_id=org,
        occurred_at=datetime.fromisoformat(at),
        override_id=f"o-{eid}",
        evaluation_id=eid,
        created_by="u-1",
        reason_code=reason,
        status=status,
        outcome="BLOCK",
        drug="apixaban",
        reason_keys=["crcl_below_15"],
    )


async def publish(container: Container, org: str, events: list[DomainEvent]) -> None:
    """Write events to the outbox as decision support does, then let the worker deliver them."""
    async with container.uow(org) as uow:
        for event in events:
            uow.record(event)
        await uow.commit()
    result = await container.worker().drain_until_empty()
    assert result.dead == 0 and result.retried == 0


async def kpi(client: AsyncClient, who: SignedIn, **params: str) -> dict[str, Any]:
    response = await client.get(KPI, params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def series(body: dict[str, Any], name: str = "evaluations") -> dict[str, int]:
    return {b["start"]: b[name] for b in body["series"]}


async def test_days_when_events_straddle_local_midnight_follow_the_clinic_timezone(
    container: Container, client: AsyncClient
) -> None:
    lead = await org_in(container, client, "kpi-lapaz", "America/La_Paz")  # UTC-4
    org = lead.member.organization_id
    await publish(
        container,
        org,
        [
            # 31 Oct 23:59 in La Paz: outside a range starting 1 Nov, though 1 Nov in UTC.
            evaluation(org, "2026-11-01T03:59:59+00:00", "PASS", "e0"),
            evaluation(org, "2026-11-01T04:00:00+00:00", "BLOCK", "e1"),  # 1 Nov 00:00 local
            evaluation(org, "2026-11-02T03:59:59+00:00", "WARN", "e2"),  # 1 Nov 23:59 local
            evaluation(org, "2026-11-02T04:00:00+00:00", "PASS", "e3"),  # 2 Nov 00:00 local
            evaluation(org, "2026-11-03T03:00:00+00:00", "ATTEST", "e4"),  # 2 Nov 23:00 local
            overridden(org, "2026-11-01T05:30:00+00:00", "e1", "patient_tolerating"),
            AttestationRecorded(
                organization_id=org,
                occurred_at=datetime(2026, 11, 3, 3, 30, tzinfo=UTC),  # 2 Nov local
                attestation_id="a1",
                evaluation_id="e4",
                patient_id="p1",
                attested_by="u-1",
                drug="apixaban",
                indication="nvaf",
                order_fingerprint="f" * 64,
                facts=["weight"],
                expires_at=datetime(2026, 11, 4, tzinfo=UTC),
            ),
            # 3 Nov 00:00 local: after the range's last day.
            evaluation(org, "2026-11-03T04:00:00+00:00", "BLOCK", "e5"),
        ],
    )

    body = await kpi(client, lead, **{"from": "2026-11-01", "to": "2026-11-02"})

    assert body["timezone"] == "America/La_Paz"
    assert (body["evaluations"], body["blocks"], body["warnings"]) == (4, 1, 1)
    assert (body["attest_required"], body["attestations"], body["overrides"]) == (1, 1, 1)
    assert body["override_rate"] == 0.5  # 1 override / (1 block + 1 warning)
    assert body["overrides_by_reason"] == {"patient_tolerating": 1}
    assert body["overrides_by_drug"] == {"apixaban": 1}
    assert body["by_rule"] == {"crcl_below_15": 1}
    assert (body["blocks_resolved"], body["median_block_resolution_seconds"]) == (1, 5400.0)
    assert series(body) == {"2026-11-01": 2, "2026-11-02": 2}
    assert series(body, "blocks") == {"2026-11-01": 1, "2026-11-02": 0}
    assert series(body, "attestations") == {"2026-11-01": 0, "2026-11-02": 1}
    assert all(isinstance(body[k], int) for k in ("evaluations", "blocks", "overrides"))


async def test_days_when_dst_ends_overnight_count_the_25_hour_day_once(
    container: Container, client: AsyncClient
) -> None:
    lead = await org_in(container, client, "kpi-nyc", "America/New_York")
    org = lead.member.organization_id
    # 1 Nov 2026 lasts 25 h in New York: 04:00 UTC (00:00 EDT) to 05:00 UTC next day (00:00 EST).
    await publish(
        container,
        org,
        [
            evaluation(org, "2026-11-01T03:59:00+00:00", "PASS", "n0"),  # 31 Oct 23:59 EDT
            evaluation(org, "2026-11-01T04:00:00+00:00", "PASS", "n1"),  # 1 Nov 00:00 EDT
            evaluation(org, "2026-11-01T05:30:00+00:00", "PASS", "n2"),  # 01:30 EDT
            evaluation(org, "2026-11-01T06:30:00+00:00", "PASS", "n3"),  # 01:30 EST (again)
            evaluation(org, "2026-11-02T04:30:00+00:00", "PASS", "n4"),  # 1 Nov 23:30 EST
            evaluation(org, "2026-11-02T05:00:00+00:00", "PASS", "n5"),  # 2 Nov 00:00 EST
        ],
    )

    body = await kpi(client, lead, **{"from": "2026-10-31", "to": "2026-11-02"})

    assert series(body) == {"2026-10-31": 1, "2026-11-01": 4, "2026-11-02": 1}


async def test_weeks_and_months_when_asked_add_up_local_days(
    container: Container, client: AsyncClient
) -> None:
    lead = await org_in(container, client, "kpi-sp", "America/Sao_Paulo")  # UTC-3
    org = lead.member.organization_id
    await publish(
        container,
        org,
        [
            evaluation(org, "2026-11-30T12:00:00+00:00", "BLOCK", "w0"),  # Monday 30 Nov
            evaluation(org, "2026-12-01T02:59:00+00:00", "BLOCK", "w1"),  # still 30 Nov local
            evaluation(org, "2026-12-01T03:00:00+00:00", "WARN", "w2"),  # Tuesday 1 Dec local
            evaluation(org, "2026-12-07T03:00:00+00:00", "PASS", "w3"),  # Monday 7 Dec local
        ],
    )

    weeks = await kpi(
        client, lead, **{"from": "2026-11-29", "to": "2026-12-07", "granularity": "week"}
    )
    months = await kpi(
        client, lead, **{"from": "2026-11-01", "to": "2026-12-31", "granularity": "month"}
    )

    # 29 Nov is a Sunday: its week starts Monday 23 Nov.
    assert series(weeks) == {"2026-11-23": 0, "2026-11-30": 3, "2026-12-07": 1}
    assert series(months, "blocks") == {"2026-11-01": 2, "2026-12-01": 0}
    assert series(months, "warnings") == {"2026-11-01": 0, "2026-12-01": 1}
    assert months["evaluations"] == 4


async def test_report_when_decisions_are_made_through_the_api_counts_each_one_once(
    container: Container, client: AsyncClient
) -> None:
    staff = await signed_in(
        container, client, "kpi-e2e", "clinician", "pharmacist", "supervisor", "admin"
    )
    clinician, pharmacist = staff["clinician"], staff["pharmacist"]
    block = (await evaluated(client, clinician, BLOCK_CASE))["evaluation_id"]
    warn = await evaluated(client, clinician, WARN_CASE)
    await evaluated(client, clinician, PASS_CASE)
    blocked = await override(client, clinician, block, "specialist_recommendation")
    assert blocked.status_code == 201, blocked.text
    assert (await cosign(client, pharmacist, blocked.json()["override_id"])).status_code == 200
    assert (await override(client, clinician, warn["evaluation_id"])).status_code == 201
    await container.worker().drain_until_empty()
    await container.worker().drain_until_empty()  # a second pass finds nothing new to count
    today = datetime.now(UTC).date()
    # Yesterday to tomorrow: today in the clinic's timezone, whatever the hour in UTC.
    params = {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))}

    body = await kpi(client, staff["supervisor"], **params)
    as_admin = await kpi(client, staff["admin"], **params)

    assert (body["evaluations"], body["blocks"], body["warnings"], body["overrides"]) == (
        3,
        1,
        1,
        2,
    )
    assert body["override_rate"] == 1.0
    assert body["overrides_by_reason"] == {
        "benefit_outweighs_risk": 1,
        "specialist_recommendation": 1,
    }
    assert sum(body["overrides_by_drug"].values()) == 2
    assert body["by_rule"] and all(n >= 1 for n in body["by_rule"].values())
    assert body["blocks_resolved"] == 1 and body["median_block_resolution_seconds"] >= 0
    assert as_admin == body
    assert sum(b["evaluations"] for b in body["series"]) == 3


async def test_projection_when_an_event_is_replayed_counts_it_once(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    lead = await org_in(container, client, "kpi-replay", "UTC")
    org = lead.member.organization_id
    event = evaluation(org, "2026-11-05T10:00:00+00:00", "BLOCK", "r1")
    envelope = OutboxEnvelope(
        seq=1,
        event_id=event.event_id,
        event_type=event.event_type,
        organization_id=org,
        occurred_at=event.occurred_at,
        payload=event.payload(),
        attempts=0,
    )
    for _ in range(2):
        async with container.uow() as uow:
            await project_cds_event(envelope, uow)
            await uow.commit()

    async with owner_engine.connect() as conn:
        counted = await conn.scalar(
            select(func.count()).select_from(KpiEvent).where(KpiEvent.organization_id == org)
        )
    assert counted == 1


async def test_report_when_another_clinic_has_events_counts_only_its_own(
    container: Container, client: AsyncClient
) -> None:
    a = await org_in(container, client, "kpi-iso-a", "UTC")
    b = await org_in(container, client, "kpi-iso-b", "UTC")
    org_a = a.member.organization_id
    await publish(container, org_a, [evaluation(org_a, "2026-11-05T10:00:00+00:00", "BLOCK", "i1")])

    mine = await kpi(client, a, **{"from": "2026-11-05", "to": "2026-11-05"})
    theirs = await kpi(client, b, **{"from": "2026-11-05", "to": "2026-11-05"})

    assert mine["evaluations"] == 1
    assert theirs["evaluations"] == 0 and theirs["series"] == [
        {
            "start": "2026-11-05",
            **dict.fromkeys(
                [
                    "evaluations",
                    "blocks",
                    "warnings",
                    "attest_required",
                    "attestations",
                    "overrides",
                ],
                0,
            ),
        }
    ]
    assert theirs["override_rate"] is None and theirs["median_block_resolution_seconds"] is None


async def test_csv_when_downloaded_carries_the_same_numbers(
    container: Container, client: AsyncClient
) -> None:
    lead = await org_in(container, client, "kpi-csv", "America/La_Paz")
    org = lead.member.organization_id
    await publish(
        container,
        org,
        [
            evaluation(org, "2026-11-05T10:00:00+00:00", "BLOCK", "c1"),
            overridden(org, "2026-11-05T11:00:00+00:00", "c1", "other", status="pending_cosign"),
        ],
    )
    params = {"from": "2026-11-05", "to": "2026-11-06"}

    as_json = await kpi(client, lead, **params)
    by_suffix = await client.get(f"{KPI}.csv", params=params, headers=lead.headers)
    by_accept = await client.get(KPI, params=params, headers={**lead.headers, "Accept": "text/csv"})

    assert by_suffix.status_code == 200, by_suffix.text
    assert by_suffix.headers["content-type"].startswith("text/csv")
    assert "attachment" in by_suffix.headers["content-disposition"]
    assert by_accept.text == by_suffix.text
    rows = list(csv.DictReader(io.StringIO(by_suffix.text)))
    totals = {r["metric"]: r["value"] for r in rows if r["scope"] == "total" and not r["key"]}
    assert totals["evaluations"] == str(as_json["evaluations"]) == "1"
    assert totals["overrides"] == "1" and totals["blocks_resolved"] == "0"  # pending co-sign
    assert {(r["metric"], r["key"], r["value"]) for r in rows if r["key"]} == {
        ("overrides_by_reason", "other", "1"),
        ("overrides_by_drug", "apixaban", "1"),
        ("by_rule", "crcl_below_15", "1"),
    }
    assert ("2026-11-05", "blocks", "1") in {(r["scope"], r["metric"], r["value"]) for r in rows}


async def test_bad_range_and_wrong_role_when_asked_are_refused_with_a_problem(
    container: Container, client: AsyncClient
) -> None:
    staff = await signed_in(container, client, "kpi-bad", "clinician", "supervisor")
    lead = staff["supervisor"]

    missing = await client.get(KPI, params={"to": "2026-11-05"}, headers=lead.headers)
    inverted = await client.get(
        KPI, params={"from": "2026-11-05", "to": "2026-11-01"}, headers=lead.headers
    )
    unbounded = await client.get(
        KPI, params={"from": "2000-01-01", "to": "2026-11-01"}, headers=lead.headers
    )
    granularity = await client.get(
        KPI,
        params={"from": "2026-11-01", "to": "2026-11-05", "granularity": "year"},
        headers=lead.headers,
    )
    clinician = await client.get(
        KPI, params={"from": "2026-11-01", "to": "2026-11-05"}, headers=staff["clinician"].headers
    )

    for response, field in (
        (missing, "query.from"),
        (inverted, "query.to"),
        (unbounded, "query.to"),
        (granularity, "query.granularity"),
    ):
        body = assert_problem(response, 422, "validation_failed")
        assert field in {e["field"] for e in body["errors"]}
    assert clinician.status_code == 403


async def test_ranges_when_cut_anywhere_equal_a_count_by_hand(
    container: Container, client: AsyncClient
) -> None:
    """Random events around a DST change; whole days come from the rollup and partial days from
    the events — every range, by date or by instant, must equal counting the events by hand."""
    lead = await org_in(container, client, "kpi-hand", "America/New_York")
    org = lead.member.organization_id
    zone = ZoneInfo("America/New_York")
    rng = random.Random(20261101)
    base = datetime(2026, 10, 30, tzinfo=UTC)
    events: list[tuple[datetime, str]] = []
    for _n in range(120):
        at = base + timedelta(minutes=rng.randrange(5 * 24 * 60))
        events.append((at, rng.choice(["PASS", "WARN", "BLOCK", "ATTEST"])))
    await publish(
        container,
        org,
        [
            evaluation(org, at.isoformat(), outcome, f"h{n}")
            for n, (at, outcome) in enumerate(events)
        ],
    )
    ranges: list[tuple[str, str, datetime, datetime]] = [
        (
            "2026-10-31",
            "2026-11-02",
            datetime(2026, 10, 31, 4, tzinfo=UTC),
            datetime(2026, 11, 3, 5, tzinfo=UTC),
        ),
    ]
    for _ in range(6):
        start = base + timedelta(minutes=rng.randrange(4 * 24 * 60))
        end = start + timedelta(minutes=rng.randrange(1, 2 * 24 * 60))
        ranges.append((start.isoformat(), end.isoformat(), start, end))

    for raw_from, raw_to, start, end in ranges:
        body = await kpi(client, lead, **{"from": raw_from, "to": raw_to})

        inside = [(at, outcome) for at, outcome in events if start <= at < end]
        by_day: dict[str, int] = {}
        for at, _ in inside:
            day = at.astimezone(zone).date().isoformat()
            by_day[day] = by_day.get(day, 0) + 1
        assert body["evaluations"] == len(inside), (raw_from, raw_to)
        assert body["blocks"] == sum(1 for _, o in inside if o == "BLOCK")
        assert body["warnings"] == sum(1 for _, o in inside if o == "WARN")
        assert {d: n for d, n in series(body).items() if n} == by_day, (raw_from, raw_to)


async def test_resolution_when_the_approval_is_counted_before_its_block_is_still_measured(
    container: Container, client: AsyncClient
) -> None:
    lead = await org_in(container, client, "kpi-order", "UTC")
    org = lead.member.organization_id
    # Two workers may deliver the approval first: the block's projection fills in the time.
    await publish(container, org, [overridden(org, "2026-11-05T12:00:00+00:00", "b1", "other")])
    await publish(container, org, [evaluation(org, "2026-11-05T11:00:00+00:00", "BLOCK", "b1")])

    body = await kpi(client, lead, **{"from": "2026-11-05", "to": "2026-11-05"})

    assert (body["blocks"], body["overrides"], body["blocks_resolved"]) == (1, 1, 1)
    assert body["median_block_resolution_seconds"] == 3600.0

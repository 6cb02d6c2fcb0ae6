"""The console's KPI dashboard and audit viewer, in-process on SQLite and PostgreSQL with a fixed
clock: the cards count the decision-support events the outbox projected (and only this clinic's),
the drill-down lists them, the CSV is the API's byte for byte, a bad range re-renders with the
error beside its field; the audit viewer filters (outcome included), audits its own viewing,
and states the chain's verification — verified through the head's seq, or broken at the
tampered row."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.cds import EvaluationRecorded
from clinicos.governance import AuditEvent
from clinicos.kernel.clock import FixedClock
from clinicos.platform.db.engine import create_owner_engine
from tests.integration.console.test_console_session import console_sign_in, csrf_of
from tests.support import identity_fixtures
from tests.support.clinical_examples import EXAMPLES
from tests.support.identity_fixtures import (
    Harness,
    SeededUser,
    audit_events,
    bearer,
    seed_clinic,
    sign_in,
)

start_app = identity_fixtures.start_app
LA_PAZ = ZoneInfo("America/La_Paz")  # the test clinic's timezone (seed_clinic)


@pytest.fixture
async def relaxed(start_app: identity_fixtures.StartApp) -> Harness:
    """The app on a clock fixed at the real time: decision support stamps its events with the
    system clock, and the dashboard's default range ends today by the app's clock."""
    return await start_app(rate_limit={"auth": "100/minute"}, clock=FixedClock(datetime.now(UTC)))


def local_today(h: Harness) -> date:
    return h.clock.now().astimezone(LA_PAZ).date()


# One worked case per outcome (shared/clinical/doac-examples.json).
BLOCK_CASE, WARN_CASE, PASS_CASE = "G-006", "G-018", "G-017"
STAFF = (
    ("clinician@elalto.example", ("clinician",)),
    ("supervisor@elalto.example", ("supervisor",)),
    ("auditor@elalto.example", ("auditor",)),
)
CARD = re.compile(r'id="kpi-([a-z_]+)"><span class="value">([^<]*)</span>')


def case_body(case_id: str, today: date) -> dict[str, Any]:
    """A worked case as POST /api/v1/cds/evaluate's inline body, measured before ``today``."""
    case = next(c for c in json.loads(EXAMPLES.read_text("utf-8")) if c["id"] == case_id)
    patient = dict(case["patient"])
    for name in ("creatinine", "weight"):
        days = patient.pop(f"{name}_measured_days_ago")
        patient[f"{name}_measured_at"] = (today - timedelta(days=days)).isoformat()
    return {"patient": patient, "order": case["order"]}


async def evaluate(client: AsyncClient, token: str, case_id: str, today: date) -> str:
    response = await client.post(
        "/api/v1/cds/evaluate", json=case_body(case_id, today), headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    evaluation_id: str = response.json()["evaluation_id"]
    return evaluation_id


def cards(html: str) -> dict[str, str]:
    return dict(CARD.findall(html))


async def console_as(h: Harness, user: SeededUser) -> None:
    response = await console_sign_in(h.client, user.email)
    assert response.status_code == 303, response.text


async def made_events(h: Harness, users: dict[str, SeededUser]) -> dict[str, str]:
    """A BLOCK, a WARN and a PASS evaluated by the clinician, the BLOCK overridden, and the
    outbox drained (the app runs no worker): what the dashboard must count."""
    token = (await sign_in(h.client, users["clinician"]))["access_token"]
    today = local_today(h)
    made = {case: await evaluate(h.client, token, case, today) for case in (BLOCK_CASE, WARN_CASE)}
    made[PASS_CASE] = await evaluate(h.client, token, PASS_CASE, today)
    override = await h.client.post(
        "/api/v1/cds/overrides",
        json={"evaluation_id": made[BLOCK_CASE], "reason_code": "patient_tolerating"},
        headers=bearer(token),
    )
    assert override.status_code == 201, override.text
    result = await h.container.worker().drain_until_empty()
    assert result.dead == 0 and result.retried == 0
    return made


async def test_dashboard_counts_the_projected_events_and_drills_down(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container, emails=STAFF)
    made = await made_events(relaxed, users)
    await console_as(relaxed, users["supervisor"])

    page = await relaxed.client.get("/console/kpi")
    assert page.status_code == 200, page.text
    assert cards(page.text) == {
        "evaluations": "3",
        "blocks": "1",
        "warnings": "1",
        "attest_required": "0",
        "attestations": "0",
        "overrides": "1",
        "override_rate": "50,0%",  # es: the clinic's locale
    }
    # Both charts are images with a name, and their numbers are in tables too.
    assert page.text.count('role="img"') == 2
    assert 'aria-labelledby="chart-reasons-title"' in page.text
    assert "Patient already tolerating the medication" in page.text
    assert "<svg" in page.text and "<script" not in page.text

    today = local_today(relaxed).isoformat()
    blocks = await relaxed.client.get(
        "/console/kpi/events", params={"kind": "blocks", "from": today, "to": today}
    )
    assert blocks.status_code == 200
    assert made[BLOCK_CASE] in blocks.text
    assert ">1 event from " in blocks.text
    assert made[WARN_CASE] not in blocks.text and made[PASS_CASE] not in blocks.text
    assert "dabigatran_crcl_30_or_less_vte" in blocks.text
    overrides = await relaxed.client.get(
        "/console/kpi/events",
        params={
            "kind": "overrides",
            "reason": "patient_tolerating",
            "from": today,
            "to": today,
        },
    )
    assert overrides.status_code == 200 and made[BLOCK_CASE] in overrides.text


async def test_csv_is_the_apis_csv(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container, emails=STAFF)
    await made_events(relaxed, users)
    token = (await sign_in(relaxed.client, users["supervisor"]))["access_token"]
    today = local_today(relaxed)
    params = {
        "from": (today - timedelta(days=20)).isoformat(),
        "to": today.isoformat(),
        "granularity": "week",
    }
    api = await relaxed.client.get("/api/v1/kpi.csv", params=params, headers=bearer(token))
    await console_as(relaxed, users["supervisor"])
    console = await relaxed.client.get("/console/kpi.csv", params=params)
    assert console.status_code == 200
    assert console.content == api.content
    assert console.headers["content-type"] == api.headers["content-type"]
    assert console.headers["content-disposition"] == api.headers["content-disposition"]
    assert "total,evaluations,,3" in console.text


async def test_only_this_clinics_events_are_counted(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container, emails=STAFF)
    made = await made_events(relaxed, users)
    other = await seed_clinic(
        relaxed.container,
        slug="santa-cruz",
        emails=(
            ("supervisor@santacruz.example", ("supervisor",)),
            ("auditor@santacruz.example", ("auditor",)),
        ),
    )
    await console_as(relaxed, other["auditor"])
    trail = await relaxed.client.get("/console/audit", params={"action": "cds.evaluate"})
    assert trail.status_code == 200 and "No audit events match these filters." in trail.text
    assert not any(evaluation_id in trail.text for evaluation_id in made.values())
    await console_as(relaxed, other["supervisor"])
    page = await relaxed.client.get("/console/kpi")
    assert cards(page.text)["evaluations"] == "0"
    today = local_today(relaxed).isoformat()
    listed = await relaxed.client.get(
        "/console/kpi/events", params={"kind": "evaluations", "from": today, "to": today}
    )
    assert listed.status_code == 200 and "No events in this range." in listed.text


async def test_drill_down_pages_through_every_event_once(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container, emails=STAFF)
    org = users["supervisor"].organization_id
    at = relaxed.clock.now()
    ids = [f"e-{n:03d}" for n in range(57)]
    async with relaxed.container.uow(org) as uow:
        for n, evaluation_id in enumerate(ids):
            uow.record(
                EvaluationRecorded(
                    organization_id=org,
                    # Several events share an instant: the page cursor breaks ties by event id.
                    occurred_at=at - timedelta(seconds=n // 4),
                    evaluation_id=evaluation_id,
                    evaluated_by=users["clinician"].id,
                    drug="apixaban",
                    indication="nvaf",
                    outcome="BLOCK",
                    reason_keys=["crcl_below_15"],
                    rule_pack_id="doac",
                    rule_pack_version="1.0.0",
                    input_hash="0" * 64,
                )
            )
        await uow.commit()
    await relaxed.container.worker().drain_until_empty()
    await console_as(relaxed, users["supervisor"])
    today = local_today(relaxed).isoformat()
    url: str | None = f"/console/kpi/events?kind=blocks&from={today}&to={today}"
    seen: list[str] = []
    pages = 0
    while url is not None:
        response = await relaxed.client.get(url)
        assert response.status_code == 200
        assert ">57 events from " in response.text
        seen.extend(re.findall(r'<code class="wrap">(e-\d{3})</code>', response.text))
        older = re.search(r'<a href="([^"]+)">Older events</a>', response.text)
        url = older.group(1).replace("&amp;", "&") if older else None
        pages += 1
    assert pages == 2
    assert sorted(seen) == ids and len(seen) == len(set(seen))


async def test_a_bad_range_re_renders_with_the_error_beside_its_field(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container, emails=STAFF)
    await console_as(relaxed, users["supervisor"])
    cases = [
        ({"from": "2026-03-02", "to": "2026-03-01"}, "to", "must not be before"),
        ({"from": "not-a-date", "to": "2026-03-01"}, "from", "YYYY-MM-DD"),
        ({"from": "2024-01-01", "to": "2026-03-01"}, "to", "at most 366 days"),
        ({"from": "2026-03-01", "to": "2026-03-02", "granularity": "hour"}, "granularity", "day"),
        ({"from": "", "to": "2026-03-02"}, "from", "Enter a date"),
    ]
    for params, name, words in cases:
        for path in ("/console/kpi", "/console/kpi.csv"):
            response = await relaxed.client.get(path, params=params)
            assert response.status_code == 422, (path, params)
            error = re.search(rf'id="f-{name}-error">([^<]*)<', response.text)
            assert error is not None and words in error.group(1), (path, params, response.text)
    kept = await relaxed.client.get(
        "/console/kpi", params={"from": "2026-03-02", "to": "2026-03-01"}
    )
    assert 'value="2026-03-02"' in kept.text and 'value="2026-03-01"' in kept.text
    unknown = await relaxed.client.get("/console/kpi/events", params={"kind": "everything"})
    assert unknown.status_code == 422 and 'id="f-kind-error"' in unknown.text
    cursor = await relaxed.client.get(
        "/console/kpi/events", params={"kind": "blocks", "before": "yesterday"}
    )
    assert cursor.status_code == 422 and 'role="alert"' in cursor.text


async def test_kpis_and_audit_are_refused_to_other_roles(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container, emails=STAFF)
    await console_as(relaxed, users["clinician"])
    for path in ("/console/kpi", "/console/kpi/events?kind=blocks", "/console/kpi.csv"):
        assert (await relaxed.client.get(path)).status_code == 403, path
    assert (await relaxed.client.get("/console/audit")).status_code == 403
    await console_as(relaxed, users["supervisor"])  # KPIs yes, audit no
    assert (await relaxed.client.get("/console/audit")).status_code == 403
    home = await relaxed.client.get("/console/home")
    refused = await relaxed.client.post("/console/audit/verify", data={"csrf_token": csrf_of(home)})
    assert refused.status_code == 403
    await console_as(relaxed, users["auditor"])
    again = await relaxed.client.get("/console/audit/verify")  # the result page reopened
    assert again.status_code == 303 and again.headers["location"] == "/console/audit"


async def test_audit_viewer_filters_and_audits_its_viewing(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container, emails=STAFF)
    made = await made_events(relaxed, users)
    await console_as(relaxed, users["clinician"])
    assert (await relaxed.client.get("/console/kpi")).status_code == 403  # one denied row
    await console_as(relaxed, users["auditor"])
    org = users["auditor"].organization_id
    reads_before = len(
        await audit_events(relaxed.container, organization_id=org, action="audit.read")
    )

    listed = await relaxed.client.get("/console/audit", params={"action": "cds.evaluate"})
    assert listed.status_code == 200
    for evaluation_id in made.values():
        assert evaluation_id in listed.text
    assert "access.denied" not in listed.text.split("<tbody>")[1]
    denied = await relaxed.client.get("/console/audit", params={"outcome": "denied"})
    body = denied.text.split("<tbody>")[1]
    assert "access.denied" in body and "cds.evaluate" not in body
    tomorrow = (local_today(relaxed) + timedelta(days=1)).isoformat()
    dated = await relaxed.client.get(
        "/console/audit", params={"action": "cds.evaluate", "from": tomorrow}
    )
    assert "No audit events match these filters." in dated.text

    reads = await audit_events(relaxed.container, organization_id=org, action="audit.read")
    assert len(reads) == reads_before + 3
    assert reads[0].actor_id == users["auditor"].id and reads[0].target_type == "audit_trail"


async def test_audit_viewer_pages_by_sequence(relaxed: Harness) -> None:
    users = await seed_clinic(relaxed.container, emails=STAFF)
    await console_as(relaxed, users["auditor"])
    for _ in range(3):  # each view adds an audit.read row: 50+ rows after the sign-ins
        await relaxed.client.get("/console/audit")
    for _ in range(50):
        await relaxed.client.get("/console/audit", params={"action": "audit.read"})
    first = await relaxed.client.get("/console/audit", params={"action": "audit.read"})
    older = re.search(r'href="(/console/audit\?[^"]*before_seq=(\d+))"', first.text)
    assert older is not None
    seqs = [int(s) for s in re.findall(r"<tr>\s*<td>(\d+)</td>", first.text)]
    assert len(seqs) == 50 and seqs == sorted(seqs, reverse=True)
    second = await relaxed.client.get(older.group(1).replace("&amp;", "&"))
    more = [int(s) for s in re.findall(r"<tr>\s*<td>(\d+)</td>", second.text)]
    assert more and max(more) < min(seqs) and "Newest events" in second.text


async def test_bad_audit_filters_re_render_with_the_error_beside_the_field(
    relaxed: Harness,
) -> None:
    users = await seed_clinic(relaxed.container, emails=STAFF)
    await console_as(relaxed, users["auditor"])
    org = users["auditor"].organization_id
    reads_before = len(
        await audit_events(relaxed.container, organization_id=org, action="audit.read")
    )
    cases = [
        ({"action": "Patient Jane"}, "action"),
        ({"actor_id": "jane@example.com"}, "actor_id"),
        ({"target_type": "a b"}, "target_type"),
        ({"target_id": "x y"}, "target_id"),
        ({"outcome": "maybe"}, "outcome"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "to"),
        ({"from": "soon"}, "from"),
    ]
    for params, name in cases:
        response = await relaxed.client.get("/console/audit", params=params)
        assert response.status_code == 422, params
        assert f'id="f-{name}-error"' in response.text, params
    kept = await relaxed.client.get("/console/audit", params={"action": "Patient Jane"})
    assert 'value="Patient Jane"' in kept.text
    for cursor in ("-1", "0", "²", "99999999999999999999"):
        paged = await relaxed.client.get("/console/audit", params={"before_seq": cursor})
        assert paged.status_code == 422 and 'role="alert"' in paged.text, cursor
    # Nothing was listed, so nothing was read.
    reads = await audit_events(relaxed.container, organization_id=org, action="audit.read")
    assert len(reads) == reads_before


async def head_seq(engine: AsyncEngine, organization_id: str) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(func.max(AuditEvent.seq)).where(AuditEvent.organization_id == organization_id)
        )
    return int(found or 0)


async def verify(h: Harness) -> Response:
    page = await h.client.get("/console/audit")
    return await h.client.post(
        "/console/audit/verify", data={"csrf_token": csrf_of(page), "action": "audit.read"}
    )


async def test_verify_now_states_the_seq_verified_through_and_records_it(
    relaxed: Harness,
) -> None:
    users = await seed_clinic(relaxed.container, emails=STAFF)
    org = users["auditor"].organization_id
    await console_as(relaxed, users["auditor"])
    never = await relaxed.client.get("/console/audit")
    assert "has not been verified yet" in never.text
    owner = create_owner_engine(relaxed.settings)
    try:
        expected = await head_seq(owner, org) + 1  # the page view above appends its audit.read
        response = await verify(relaxed)
        assert response.status_code == 200
        assert f"the chain verifies through seq {expected}." in response.text
        assert 'value="audit.read"' in response.text  # the filters in use are kept
        checks = await audit_events(relaxed.container, organization_id=org, action="audit.verify")
        assert [c.outcome for c in checks] == ["success"]
        later = await relaxed.client.get("/console/audit")
        assert "Last checked at" in later.text and "verified" in later.text

        # Tampering with a row is found, and named by its seq.
        async with owner.begin() as conn:
            await conn.execute(
                update(AuditEvent)
                .where(AuditEvent.organization_id == org, AuditEvent.seq == 2)
                .values(action="auth.logout")
            )
        broken = await verify(relaxed)
        assert "the chain is broken at seq 2." in broken.text
        assert "This row was changed after it was written." in broken.text
        assert 'role="alert"' in broken.text
    finally:
        await owner.dispose()
    checks = await audit_events(relaxed.container, organization_id=org, action="audit.verify")
    assert [c.outcome for c in checks] == ["failure", "success"]

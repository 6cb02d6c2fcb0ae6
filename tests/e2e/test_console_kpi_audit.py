"""The KPI dashboard and the audit viewer in a real browser, on the shared demo server.

The server runs no worker, so each test delivers the outbox itself (as `clinicos worker --once`
does) before reading "before" figures and again after making its own decision-support events
through the API as the demo clinician; the dashboard must then move by exactly those events,
the drill-down list them, the CSV carry the same numbers, and the audit viewer show their
audit rows and a verified chain. Other tests share the server, so nothing assumes an empty
database."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from babel.numbers import format_percent
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Console, deliver_outbox, sign_in
from tests.support.clinical_examples import EXAMPLES

CLINIC_ZONE = ZoneInfo("America/La_Paz")  # the demo clinics' timezone (identity demo seed)
CLINIC_LOCALE = "es"  # ... and locale: numbers are formatted the clinic's way
# One worked case per outcome (shared/clinical/doac-examples.json).
BLOCK_CASE, WARN_CASE, PASS_CASE, ATTEST_CASE = "G-006", "G-018", "G-017", "G-037"
COUNTED = ("evaluations", "blocks", "warnings", "attest_required", "attestations", "overrides")


def clinic_today() -> date:
    return datetime.now(UTC).astimezone(CLINIC_ZONE).date()


def case_body(case_id: str) -> dict[str, Any]:
    """A worked case as the inline body of POST /api/v1/cds/evaluate, measured before today."""
    case = next(c for c in json.loads(EXAMPLES.read_text("utf-8")) if c["id"] == case_id)
    patient = dict(case["patient"])
    for name in ("creatinine", "weight"):
        days = patient.pop(f"{name}_measured_days_ago")
        patient[f"{name}_measured_at"] = (clinic_today() - timedelta(days=days)).isoformat()
    return {"patient": patient, "order": case["order"]}


class Clinician:
    """The demo clinician of El Alto on the JSON API (the order pages are not this test's)."""

    def __init__(self, console: Console) -> None:
        self.http = httpx.Client(base_url=console.base_url, timeout=30)
        login = self.http.post(
            "/api/v1/auth/login",
            json={"email": console.email("clinician"), "password": console.password},
        )
        assert login.status_code == 200, login.text
        self.http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

    def evaluate(self, case_id: str) -> str:
        response = self.http.post("/api/v1/cds/evaluate", json=case_body(case_id))
        assert response.status_code == 200, response.text
        evaluation_id: str = response.json()["evaluation_id"]
        return evaluation_id

    def override(self, evaluation_id: str, reason_code: str) -> str:
        response = self.http.post(
            "/api/v1/cds/overrides",
            json={"evaluation_id": evaluation_id, "reason_code": reason_code},
        )
        assert response.status_code == 201, response.text
        override_id: str = response.json()["override_id"]
        return override_id

    def close(self) -> None:
        self.http.close()


def number(text: str) -> int:
    """A count as the clinic's locale writes it (es: 1.234)."""
    digits = re.sub(r"\D", "", text)
    assert digits, text
    return int(digits)


def read_cards(page: Page) -> dict[str, int]:
    return {name: number(page.locator(f"#kpi-{name} .value").inner_text()) for name in COUNTED}


def test_dashboard_moves_by_the_events_made_and_drills_down_to_them(
    page: Page, console: Console
) -> None:
    deliver_outbox(console)  # whatever earlier tests left in the outbox is counted before
    sign_in(page, console, "supervisor")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="KPIs").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Decision-support KPIs")
    before = read_cards(page)

    clinician = Clinician(console)
    try:
        block = clinician.evaluate(BLOCK_CASE)
        warn = clinician.evaluate(WARN_CASE)
        passed = clinician.evaluate(PASS_CASE)
        attest = clinician.evaluate(ATTEST_CASE)
        clinician.override(block, "specialist_recommendation")
        clinician.override(warn, "benefit_outweighs_risk")
    finally:
        clinician.close()
    deliver_outbox(console)

    page.reload()
    after = read_cards(page)
    moved = {name: after[name] - before[name] for name in COUNTED}
    assert moved == {
        "evaluations": 4,
        "blocks": 1,
        "warnings": 1,
        "attest_required": 1,
        "attestations": 0,
        "overrides": 2,
    }
    rate = after["overrides"] / (after["blocks"] + after["warnings"])
    expect(page.locator("#kpi-override_rate .value")).to_have_text(
        format_percent(round(rate, 4), format="#,##0.0%", locale=CLINIC_LOCALE)
    )
    # The charts are named images; their numbers are also in tables below them.
    expect(page.get_by_role("img", name="Overrides by reason")).to_be_visible()
    expect(
        page.get_by_role("img", name=re.compile("Evaluations, blocks and overrides"))
    ).to_be_visible()
    reasons = page.get_by_role("table", name=re.compile("Overrides by reason"))
    expect(reasons.get_by_role("rowheader", name="Specialist recommendation")).to_be_visible()

    # Drill-down: the blocks card lists the block made, and only blocks.
    page.locator("#kpi-blocks a").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("KPI events: Blocks")
    expect(page.get_by_role("heading", level=2)).to_contain_text(
        re.compile(rf"^{after['blocks']} events? from ")
    )
    table = page.get_by_role("table")
    expect(table.get_by_text(block, exact=True)).to_be_visible()
    expect(table.get_by_text(warn, exact=True)).to_have_count(0)
    expect(table.get_by_text("dabigatran_crcl_30_or_less_vte").first).to_be_visible()
    page.get_by_label("Figure").select_option("overrides")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("KPI events: Overrides")
    for evaluation_id in (block, warn):
        expect(page.get_by_role("table").get_by_text(evaluation_id, exact=True)).to_be_visible()
    expect(page.get_by_role("table").get_by_text(passed, exact=True)).to_have_count(0)
    page.get_by_role("link", name="Back to the KPI dashboard").click()
    page.get_by_role("link", name="Specialist recommendation").click()
    expect(page.get_by_role("status")).to_contain_text("Specialist recommendation")
    expect(page.get_by_role("table").get_by_text(block, exact=True)).to_be_visible()
    page.go_back()
    page.locator("#kpi-attest_required a").click()
    expect(page.get_by_role("table").get_by_text(attest, exact=True)).to_be_visible()
    page.go_back()

    # The CSV download carries the same numbers as the cards.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename.startswith("clinicos-kpi-")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text("utf-8"))))
    totals = {r["metric"]: r["value"] for r in rows if r["scope"] == "total" and not r["key"]}
    assert {name: int(totals[name]) for name in COUNTED} == after
    assert float(totals["override_rate"]) == round(rate, 4)


def test_a_bad_range_shows_the_error_beside_the_field(page: Page, console: Console) -> None:
    sign_in(page, console, "supervisor")
    page.goto(console.url("/console/kpi"))
    page.get_by_label("From").fill("2026-03-10")
    page.get_by_label("To").fill("2026-03-01")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#f-to-error")).to_contain_text("must not be before the start date")
    expect(page.get_by_label("From")).to_have_value("2026-03-10")
    expect(page.get_by_label("To")).to_have_value("2026-03-01")
    expect(page.get_by_label("To")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("From").fill("2024-01-01")
    page.get_by_label("Group by").select_option("day")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#f-to-error")).to_contain_text("at most 366 days")
    page.get_by_label("Group by").select_option("month")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#f-to-error")).to_have_count(0)
    expect(page.locator("#kpi-evaluations .value")).to_be_visible()

    # In Portuguese, the same page and its errors.
    page.get_by_label("Language").select_option("pt")
    page.get_by_role("button", name="Change").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Indicadores do apoio à decisão")
    page.get_by_label("De", exact=False).first.fill("2026-03-10")
    page.get_by_label("Até").fill("2026-03-01")
    page.get_by_role("button", name="Mostrar").click()
    expect(page.locator("#f-to-error")).to_have_text(
        "A data final não pode ser anterior à data inicial."
    )


def test_audit_viewer_shows_the_actions_made_and_a_verified_chain(
    page: Page, console: Console
) -> None:
    clinician = Clinician(console)
    try:
        evaluations = [clinician.evaluate(BLOCK_CASE), clinician.evaluate(PASS_CASE)]
        override = clinician.override(evaluations[0], "patient_tolerating")
    finally:
        clinician.close()
    sign_in(page, console, "auditor")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit trail")

    page.get_by_label("Action").fill("cds.evaluate")
    page.get_by_role("button", name="Filter").click()
    table = page.get_by_role("table", name="Audit events, newest first")
    rows = table.locator("tbody tr")
    # Newest first: the two evaluations just made head the list, each naming its evaluation.
    expect(rows.nth(0)).to_contain_text(evaluations[1])
    expect(rows.nth(1)).to_contain_text(evaluations[0])
    for index in (0, 1):
        expect(rows.nth(index)).to_contain_text("cds.evaluate")
        expect(rows.nth(index)).to_contain_text("Success")
        expect(rows.nth(index)).to_contain_text("treatment")
    expect(table.get_by_text("audit.read")).to_have_count(0)
    page.get_by_label("Action").fill("cds.override")
    page.get_by_role("button", name="Filter").click()
    expect(rows.first).to_contain_text(override)
    expect(rows.first).to_contain_text("cds_override")

    # Viewing the trail was itself audited.
    page.get_by_label("Action").fill("audit.read")
    page.get_by_role("button", name="Filter").click()
    expect(rows.first).to_contain_text("(you)")

    page.get_by_label("Action").fill("Not A Code")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#f-action-error")).to_contain_text("Use a code such as cds.evaluate")
    expect(page.get_by_label("Action")).to_have_value("Not A Code")

    page.get_by_role("link", name="Clear filters").click()
    page.get_by_role("button", name="Verify now").click()
    status = page.locator("#chain-status")
    expect(status).to_contain_text("Verified")
    expect(status).to_contain_text(re.compile(r"the chain verifies through seq \d+\."))
    expect(status).to_contain_text("Checked at")
    page.goto(console.url("/console/audit?action=audit.verify"))
    expect(page.locator("#chain-status")).to_contain_text("Last checked at")
    expect(page.get_by_role("table").locator("tbody tr").first).to_contain_text("audit.verify")


WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


@pytest.fixture
def axe_page(browser: Browser) -> Page:
    # axe is injected as a script, which the console's CSP (script-src 'self') would refuse.
    ctx = browser.new_context(
        locale="en-US", viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    ctx.set_default_timeout(15_000)
    return ctx.new_page()


def serious_violations(page: Page) -> list[str]:
    results = Axe().run(page, options=WCAG_AA)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def test_kpi_and_audit_pages_have_no_serious_accessibility_violations(
    axe_page: Page, console: Console
) -> None:
    sign_in(axe_page, console, "auditor")  # auditors read both KPIs and the audit trail
    today = clinic_today().isoformat()
    for path in (
        "/console/kpi",
        "/console/kpi?from=2026-03-10&to=2026-03-01",  # an error beside the field
        f"/console/kpi/events?kind=evaluations&from={today}&to={today}",
        "/console/audit?action=Not+A+Code",
    ):
        axe_page.goto(console.url(path))
        assert serious_violations(axe_page) == [], path
    axe_page.goto(console.url("/console/audit"))
    axe_page.get_by_role("button", name="Verify now").click()
    expect(axe_page.locator("#chain-status")).to_contain_text("Verified")
    assert serious_violations(axe_page) == []

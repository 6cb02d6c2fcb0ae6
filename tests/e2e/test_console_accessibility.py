"""Accessibility of the console's main pages, checked by axe-core (the npm package's build,
bundled by axe-playwright-python) in headless Chromium: no serious or critical violation of
WCAG 2.1 A/AA rules. Keyboard use is checked directly: a skip link first, and every control
reachable with Tab showing a visible focus indicator.

With CLINICOS_SCREENSHOTS=<dir> the same walk writes a screenshot of each page
(`make screenshots` refreshes docs/screenshots/, shown in the README)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Console, deliver_outbox, sign_in

AXE = Axe()
WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
SCREENSHOTS = os.environ.get("CLINICOS_SCREENSHOTS")


def serious_violations(page: Page) -> list[str]:
    results = AXE.run(page, options=WCAG_AA)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def check(page: Page, name: str) -> None:
    assert serious_violations(page) == [], name
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


@pytest.fixture
def axe_page(browser: Browser) -> Page:
    # axe is injected as a script, which the console's CSP (script-src 'self') would refuse.
    ctx = browser.new_context(
        locale="en-US", viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    ctx.set_default_timeout(15_000)
    return ctx.new_page()


def test_sign_in_page_has_no_serious_violations(axe_page: Page, console: Console) -> None:
    axe_page.goto(console.url("/console/sign-in"))
    check(axe_page, "sign-in")
    # Errors shown beside the fields stay accessible (aria-invalid, described by the error).
    axe_page.get_by_role("button", name="Sign in").click()
    expect(axe_page.locator("#f-email-error")).to_be_visible()
    assert axe_page.get_attribute("#f-email", "aria-describedby") == "f-email-error"
    assert serious_violations(axe_page) == []


def test_the_clinical_path_has_no_serious_violations(axe_page: Page, console: Console) -> None:
    """Search → chart → order → the BLOCK result with its override dialog, as a clinician
    walks it (demo patient P-001: dabigatran for VTE at CrCl 29 is blocked)."""
    sign_in(axe_page, console, "clinician")
    axe_page.goto(console.url("/console/patients"))
    axe_page.get_by_label("MRN").fill("P-001")
    axe_page.get_by_role("button", name="Search").click()
    expect(axe_page.get_by_role("table")).to_contain_text("P-001")
    check(axe_page, "patient-search")
    axe_page.get_by_role("table").get_by_role("link").first.click()
    axe_page.wait_for_url("**/console/patients/*")
    check(axe_page, "chart")
    axe_page.get_by_role("link", name="Order anticoagulant").click()
    axe_page.get_by_label("Anticoagulant").select_option("dabigatran")
    axe_page.get_by_label("Dose (mg)").fill("150")
    axe_page.get_by_label("Frequency").select_option("BID")
    axe_page.get_by_label("Indication").select_option("vte_treatment")
    check(axe_page, "order-entry")
    axe_page.get_by_role("button", name="Check order").click()
    expect(axe_page.locator(".outcome .badge")).to_have_text("BLOCK")
    check(axe_page, "order-block")


PAGES: list[tuple[str, str, str]] = [
    # (screenshot name, role, console path)
    ("home", "clinician", "/console/home"),
    ("organization", "clinician", "/console/organization"),
    ("patients", "clinician", "/console/patients"),
    ("sign-offs", "pharmacist", "/console/sign-offs"),
    ("kpi", "supervisor", "/console/kpi"),
    ("audit", "auditor", "/console/audit"),
]


@pytest.mark.parametrize(("name", "role", "path"), PAGES, ids=[p[0] for p in PAGES])
def test_main_pages_have_no_serious_violations(
    axe_page: Page, console: Console, name: str, role: str, path: str
) -> None:
    if name == "kpi":
        deliver_outbox(console)  # the KPI projection of the evaluations made so far
    sign_in(axe_page, console, role)
    axe_page.goto(console.url(path))
    check(axe_page, name)


def test_keyboard_reaches_the_skip_link_first_and_focus_is_visible(
    axe_page: Page, console: Console
) -> None:
    sign_in(axe_page, console, "clinician")
    axe_page.keyboard.press("Tab")
    focused: Callable[[], str] = lambda: axe_page.evaluate(  # noqa: E731
        "document.activeElement.textContent.trim()"
    )
    assert focused() == "Skip to content"
    checked = 0
    for _ in range(12):
        axe_page.keyboard.press("Tab")
        if axe_page.evaluate("document.activeElement === document.body"):
            continue  # past the last control: focus left the page
        outline = axe_page.evaluate(
            "getComputedStyle(document.activeElement).outlineStyle + ' ' + "
            "getComputedStyle(document.activeElement).outlineWidth"
        )
        assert outline.startswith("solid") and not outline.endswith(" 0px"), outline
        checked += 1
    assert checked >= 8  # the header's links, language control, clinic switch, sign-out, …
    axe_page.reload()
    axe_page.keyboard.press("Tab")
    axe_page.keyboard.press("Enter")
    assert axe_page.evaluate("document.activeElement.id") == "main"

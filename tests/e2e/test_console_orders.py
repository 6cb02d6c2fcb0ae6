"""Anticoagulant order entry in a real browser: decision support's answer shown before signing,
a BLOCK overridden by the clinician and co-signed by a pharmacist in another browser, an ATTEST
resolved by recording the creatinine in the form, a bad dose kept with its error, and the
answer in Spanish on the demo patient P-001.

The patients are this module's own (registered through records' services in a fixture) except
P-001, which is only checked (an evaluation), never prescribed for, so the shared demo record
stays as seeded. What the tests leave in the shared database, for whoever counts (KPIs):

- test_block_override_cosign_then_issue: 3 evaluations (the check, the gate's refusal that the
  override names, the gate's pass on issue), 1 BLOCK override (co-signed), 1 issued
  prescription;
- test_attest_record_creatinine_then_issue: 3 evaluations (ATTEST, PASS after the creatinine,
  the gate's PASS on issue), 1 creatinine observation, 1 issued prescription;
- test_check_in_spanish_on_demo_patient: 1 evaluation (BLOCK) of P-001;
- test_bad_dose_keeps_input_and_explains: none;
- test_order_pages_pass_axe: 3 evaluations (ATTEST, PASS after the attestation, the gate's
  PASS on issue), 1 attestation, 1 issued prescription.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from clinicos.bootstrap import build_container
from clinicos.identity import member_actor
from clinicos.records import (
    ConditionFields,
    ObservationFields,
    PatientFields,
    PatientSearch,
    record_condition,
    record_observation,
    register_patient,
    search_patients,
)
from tests.e2e.conftest import CLINICS, Console, sign_in

CLINIC = CLINICS[0]
WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
# Cockcroft-Gault for a man of 60, 78.3 kg, SCr 3.0 mg/dL: 80 x 78.3 / (72 x 3.0) = 29.0 mL/min,
# the demo's P-001 case (dabigatran for DVT/PE at CrCl <= 30: BLOCK).
BLOCK_NAME = ("Ramiro", "Tarqui Choque")
# A woman of 72, 70 kg, with no creatinine on record: ATTEST; 0.9 mg/dL makes it 62.4 (PASS).
ATTEST_NAME = ("Delia", "Poma Quisbert")


@dataclass(frozen=True)
class Patients:
    block: str
    attest: str
    spare: str
    demo_p001: str


def _born(age: int) -> date:
    return date(datetime.now(UTC).year - age, 1, 1)  # ``age`` on every day of this year


async def _register(console: Console) -> Patients:
    c = build_container(console.settings)
    try:
        actor = await member_actor(
            c.uow, organization_slug=CLINIC, email=console.email("clinician", CLINIC)
        )
        week_ago = datetime.now(UTC) - timedelta(days=7)

        async def patient(given: str, family: str, sex: str, age: int) -> str:
            view = await register_patient(
                uows=c.uow,
                phi=c.phi,
                actor=actor,
                values=PatientFields(
                    mrn=f"E2E-ORD-{uuid.uuid4().hex[:10]}",
                    given_name=given,
                    family_name=family,
                    sex=sex,
                    birth_date=_born(age),
                ),
            )
            return view.id

        async def observe(patient_id: str, code: str, value: str, unit: str) -> None:
            await record_observation(
                uows=c.uow,
                phi=c.phi,
                actor=actor,
                patient_id=patient_id,
                values=ObservationFields(
                    code=code,
                    category="laboratory" if code == "2160-0" else "vital-signs",
                    status="final",
                    effective_at=week_ago,
                    value=Decimal(value),
                    unit=unit,
                ),
            )

        block = await patient(*BLOCK_NAME, "male", 60)
        await observe(block, "29463-7", "78.3", "kg")
        await observe(block, "2160-0", "3.0", "mg/dL")
        await record_condition(
            uows=c.uow,
            phi=c.phi,
            actor=actor,
            patient_id=block,
            values=ConditionFields(
                clinical_status="active", icd10_code="I82.40", display="Deep vein thrombosis"
            ),
        )
        attest = await patient(*ATTEST_NAME, "female", 72)
        await observe(attest, "29463-7", "70", "kg")
        spare = await patient("Eusebio", "Limachi Copa", "male", 55)
        found = await search_patients(
            uows=c.uow, phi=c.phi, actor=actor, criteria=PatientSearch(mrn="P-001")
        )
        return Patients(block=block, attest=attest, spare=spare, demo_p001=found.items[0].id)
    finally:
        await c.dispose()


@pytest.fixture(scope="module")
def patients(console: Console) -> Iterator[Patients]:
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(lambda: asyncio.run(_register(console))).result()


def compose(page: Page, drug: str, dose: str, frequency: str, indication: str) -> None:
    page.get_by_label("Anticoagulant").select_option(label=drug)
    page.get_by_label("Dose (mg)").fill(dose)
    page.get_by_label("Frequency").select_option(label=frequency)
    page.get_by_label("Indication").select_option(label=indication)
    page.get_by_role("button", name="Check order").click()


def test_block_override_cosign_then_issue(
    page: Page, browser: Browser, console: Console, patients: Patients
) -> None:
    sign_in(page, console, "clinician")
    page.goto(console.url(f"/console/patients/{patients.block}/orders/new"))
    expect(page.get_by_role("heading", level=1)).to_have_text("New anticoagulant order")
    compose(page, "Dabigatran", "150", "Twice daily (BID)", "Treatment of DVT/PE")

    # Before anything is signed: the outcome with its word, CrCl with its unit, every reason
    # with its message, source and policy.
    answer = page.locator("section", has=page.get_by_role("heading", name="Decision support"))
    expect(answer.locator(".outcome .badge")).to_have_text("BLOCK")
    # Numbers are written the clinic's way (es-BO: decimal comma), whatever the UI language.
    expect(answer.locator(".crcl")).to_have_text("29,0 mL/min")
    reason = answer.locator('tr[data-reason="dabigatran_crcl_30_or_less_vte"]')
    expect(reason).to_contain_text("BLOCK")
    expect(reason).to_contain_text("CrCl")
    expect(reason.locator(".source")).to_contain_text("PRADAXA")
    expect(reason).to_contain_text("Drug label")
    expect(page.get_by_role("button", name="Sign and issue")).to_have_count(0)

    # The override dialog: `other` needs a comment, and the error stands next to the field.
    page.get_by_label("Reason for the override").select_option("other")
    page.get_by_role("button", name="Override and send for co-signature").click()
    expect(page.locator("#f-comment-error")).to_contain_text("comment is required")
    expect(page.get_by_label("Reason for the override")).to_have_value("other")
    page.get_by_label("Reason for the override").select_option(label="Specialist recommendation")
    page.get_by_label("Comment").fill("Nephrology agrees: short course, reassess in 48 h")
    page.get_by_role("button", name="Override and send for co-signature").click()
    page.wait_for_url(re.compile(r"/orders/[0-9a-f-]{36}\?result=pending$"))
    order_url = page.url.split("?")[0]
    expect(page.get_by_role("status")).to_contain_text("A pharmacist must co-sign it")
    expect(page.locator("dd.status")).to_have_text("Draft (not issued)")
    expect(page.get_by_role("button", name="Sign and issue")).to_have_count(0)
    # The waiting order is found again from the chart's way in, the new-order page.
    page.goto(console.url(f"/console/patients/{patients.block}/orders/new"))
    waiting = page.locator("section", has=page.get_by_role("heading", name="Orders not yet issued"))
    waiting.get_by_role("link", name="Dabigatran 150 mg").click()
    page.wait_for_url(order_url)

    # The pharmacist, in a browser of their own, finds it in the sign-off queue and co-signs.
    other = browser.new_context(locale="en-US")
    try:
        pharmacist = other.new_page()
        sign_in(pharmacist, console, "pharmacist")
        pharmacist.get_by_role("link", name="Sign-off queue").first.click()
        row = pharmacist.get_by_role("row").filter(has_text=" ".join(BLOCK_NAME))
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Dabigatran 150 mg")
        expect(row).to_contain_text("BLOCK")
        expect(row).to_contain_text("PRADAXA")
        expect(row).to_contain_text("Specialist recommendation")
        expect(row).to_contain_text("Nephrology agrees")
        expect(row).to_contain_text("clinician")  # who overrode (the demo user's name)
        row.get_by_role("button", name="Co-sign").click()
        expect(pharmacist.get_by_role("status")).to_contain_text("Co-signed")
        expect(pharmacist.get_by_role("row").filter(has_text=" ".join(BLOCK_NAME))).to_have_count(0)
    finally:
        other.close()

    # Back to the clinician: the override is approved, and the order can now be issued.
    page.goto(order_url)
    expect(page.get_by_role("row").filter(has_text="Approved")).to_have_count(1)
    page.get_by_role("button", name="Sign and issue").click()
    expect(page.get_by_role("status")).to_contain_text("The prescription was issued.")
    expect(page.locator("dd.status")).to_have_text("Issued")
    expect(page.get_by_role("link", name="Back to the chart")).to_have_attribute(
        "href", f"/console/patients/{patients.block}"
    )


def test_attest_record_creatinine_then_issue(
    page: Page, console: Console, patients: Patients
) -> None:
    sign_in(page, console, "clinician")
    page.goto(console.url(f"/console/patients/{patients.attest}/orders/new"))
    compose(page, "Apixaban", "5", "Twice daily (BID)", "Non-valvular atrial fibrillation")
    expect(page.locator(".outcome .badge")).to_have_text("ATTEST")
    expect(page.locator('tr[data-reason="creatinine_missing"]')).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("not recorded")
    expect(page.get_by_role("heading", name="Missing or stale data")).to_be_visible()

    # A bad value is refused next to its field, then the real one is recorded in the chart.
    sampled = datetime.combine(datetime.now(UTC).date() - timedelta(days=1), time(9))
    page.get_by_role("textbox", name="Serum creatinine").fill("-1")
    page.get_by_label("Sample taken at").fill(sampled.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Record creatinine and check again").click()
    expect(page.locator("#f-creatinine_value-error")).to_be_visible()
    expect(page.get_by_role("textbox", name="Serum creatinine")).to_have_value("-1")
    page.get_by_role("textbox", name="Serum creatinine").fill("0.9")
    page.get_by_label("Unit").select_option("mg/dL")
    page.get_by_role("button", name="Record creatinine and check again").click()

    expect(page.get_by_role("status")).to_contain_text("Serum creatinine recorded")
    expect(page.locator(".outcome .badge")).to_have_text("PASS")
    expect(page.locator(".crcl")).to_have_text("62,4 mL/min")
    page.get_by_role("button", name="Sign and issue").click()
    expect(page.get_by_role("status")).to_contain_text("The prescription was issued.")
    expect(page.locator("dd.status")).to_have_text("Issued")
    expect(page.locator("dl.facts")).to_contain_text("Apixaban 5 mg")


def test_bad_dose_keeps_input_and_explains(
    page: Page, console: Console, patients: Patients
) -> None:
    sign_in(page, console, "clinician")
    page.goto(console.url(f"/console/patients/{patients.spare}/orders/new"))
    compose(page, "Rivaroxaban", "-5", "Once daily (QD)", "Non-valvular atrial fibrillation")
    expect(page.locator("#f-dose-error")).to_contain_text("more than 0 mg")
    expect(page.get_by_label("Dose (mg)")).to_have_value("-5")
    expect(page.get_by_label("Dose (mg)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Anticoagulant")).to_have_value("rivaroxaban")
    expect(page.get_by_label("Frequency")).to_have_value("QD")
    page.get_by_label("Dose (mg)").fill("twenty")
    page.get_by_role("button", name="Check order").click()
    expect(page.locator("#f-dose-error")).to_contain_text("as a number")
    expect(page.get_by_label("Dose (mg)")).to_have_value("twenty")
    expect(page.locator(".outcome")).to_have_count(0)  # nothing was checked


def test_check_in_spanish_on_demo_patient(page: Page, console: Console, patients: Patients) -> None:
    sign_in(page, console, "clinician")
    page.get_by_label("Language").select_option("es")
    page.get_by_role("button", name="Change").click()
    page.goto(console.url(f"/console/patients/{patients.demo_p001}/orders/new"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Nueva orden de anticoagulante")
    page.get_by_label("Anticoagulante").select_option("dabigatran")
    page.get_by_label("Dosis (mg)").fill("150")
    page.get_by_label("Frecuencia").select_option("BID")
    page.get_by_label("Indicación").select_option("vte_treatment")
    page.get_by_role("button", name="Verificar la orden").click()
    expect(page.locator(".outcome .badge")).to_have_text("BLOQUEO")
    expect(page.locator(".crcl")).to_have_text("29,0 mL/min")
    reason = page.locator('tr[data-reason="dabigatran_crcl_30_or_less_vte"]')
    expect(reason).to_contain_text("ClCr")
    expect(reason).to_contain_text("Ficha técnica")


def serious_violations(page: Page) -> list[str]:
    results = Axe().run(page, options=WCAG_AA)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def test_order_pages_pass_axe(browser: Browser, console: Console, patients: Patients) -> None:
    # axe is injected as a script, which the console's CSP (script-src 'self') would refuse.
    ctx = browser.new_context(locale="en-US", bypass_csp=True)
    ctx.set_default_timeout(15_000)
    try:
        page = ctx.new_page()
        sign_in(page, console, "clinician")
        page.goto(console.url(f"/console/patients/{patients.spare}/orders/new"))
        assert serious_violations(page) == [], "new order"
        compose(page, "Apixaban", "abc", "Twice daily (BID)", "Non-valvular atrial fibrillation")
        assert serious_violations(page) == [], "new order with an error"
        page.get_by_label("Dose (mg)").fill("5")
        page.get_by_role("button", name="Check order").click()
        expect(page.locator(".outcome .badge")).to_have_text("ATTEST")  # nothing on record
        assert serious_violations(page) == [], "ATTEST answer and its forms"
        for fact in ("serum creatinine", "body weight"):
            page.get_by_label(f"proceed without a current {fact}").check()
        page.get_by_label("Why it is acceptable").fill("Transfer patient; labs due tomorrow")
        page.get_by_role("button", name="Attest and check again").click()
        expect(page.locator(".outcome .badge")).to_have_text("PASS")
        expect(page.get_by_text("attested", exact=True)).to_have_count(2)
        assert serious_violations(page) == [], "attested PASS"
        page.get_by_role("button", name="Sign and issue").click()
        expect(page.locator("dd.status")).to_have_text("Issued")
        assert serious_violations(page) == [], "issued order"
        pharmacist = ctx.new_page()
        ctx.clear_cookies()
        sign_in(pharmacist, console, "pharmacist")
        pharmacist.goto(console.url("/console/sign-offs"))
        expect(pharmacist.get_by_role("heading", level=1)).to_have_text("Sign-off queue")
        assert serious_violations(pharmacist) == [], "sign-off queue"
    finally:
        ctx.close()

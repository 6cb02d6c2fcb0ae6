"""Patients in a real browser: a clinician finds a patient by MRN, opens the chart and sees the
demographics, the dosing results with their dates and whether they are stale, conditions,
medications and the way to order an anticoagulant; a search by name leaves no name in the
address bar; no match says so; another clinic's patient and a garbled id are the 404 page.

The chart patient is made once per server through records' services (the server is shared by
every e2e test, so this file works on its own patient and only reads the demo ones)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from clinicos.bootstrap import build_container
from clinicos.identity import member_actor
from clinicos.records import PatientSearch, search_patients
from tests.e2e.conftest import CLINICS, Console, sign_in
from tests.integration.console.test_console_patients import ChartPatient, make_chart_patient


@dataclass(frozen=True)
class Patients:
    ours: ChartPatient
    other_clinic_id: str  # P-001 of the other demo clinic


@pytest.fixture(scope="session")
def patients(console: Console) -> Iterator[Patients]:
    suffix = uuid.uuid4().hex[:6].upper()

    async def run() -> Patients:
        c = build_container(console.settings)
        try:
            ours = await make_chart_patient(
                c,
                await member_actor(
                    c.uow, organization_slug=CLINICS[0], email=console.email("clinician")
                ),
                mrn=f"E2E-{suffix}",
                given="Rosa Elena",
                family=f"Mamani Quispe {suffix}",
                national_id=f"60{int(suffix, 16) % 100000:05d} LP",
            )
            theirs = await search_patients(
                uows=c.uow,
                phi=c.phi,
                actor=await member_actor(
                    c.uow,
                    organization_slug=CLINICS[1],
                    email=console.email("clinician", CLINICS[1]),
                ),
                criteria=PatientSearch(mrn="P-001"),
            )
            return Patients(ours=ours, other_clinic_id=theirs.items[0].id)
        finally:
            await c.dispose()

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(lambda: asyncio.run(run())).result()


def open_patients(page: Page, console: Console) -> None:
    sign_in(page, console, "clinician")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Patients")


def test_clinician_finds_a_patient_by_mrn_and_reads_the_chart(
    page: Page, console: Console, patients: Patients
) -> None:
    ours = patients.ours
    open_patients(page, console)
    page.get_by_label("MRN").fill(ours.mrn)
    page.get_by_role("button", name="Search").click()

    results = page.get_by_role("table")
    expect(results.get_by_role("row")).to_have_count(2)  # the header and our patient
    expect(results).to_contain_text(ours.mrn)
    results.get_by_role("link", name=ours.name).click()

    page.wait_for_url(f"**/console/patients/{ours.id}")
    expect(page.get_by_role("heading", level=1)).to_have_text(ours.name)
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text(ours.mrn)
    expect(facts).to_contain_text(ours.national_id)
    expect(facts).to_contain_text("Female")
    expect(facts).to_contain_text(re.compile(r"age \d+ years"))

    vitals = page.get_by_role("table", name="Newest released result of each measurement")
    weight = vitals.get_by_role("row").filter(has_text="Body weight")
    expect(weight).to_contain_text("61,5 kg")  # the demo clinic writes es-BO numbers
    expect(weight).to_contain_text("measured 200 days ago")
    expect(weight).to_contain_text("Stale")
    expect(weight).to_contain_text("older than the 180 days an anticoagulant order accepts")
    creatinine = vitals.get_by_role("row").filter(has_text="Serum creatinine")
    expect(creatinine).to_contain_text("1,3 mg/dL")
    expect(creatinine).to_contain_text("measured 40 days ago")
    expect(creatinine).to_contain_text("Current")
    # The measurement date itself is shown, as the clinic writes dates.
    expect(creatinine.get_by_role("cell").nth(1)).to_have_text(re.compile(r"\d{4}"))
    expect(page.get_by_text("clinicos local policy, DOAC rules §0.4")).to_be_visible()

    conditions = page.get_by_role("region", name="Conditions")
    expect(conditions).to_contain_text("Atrial fibrillation")
    expect(conditions).to_contain_text("I48.91")
    medications = page.get_by_role("region", name="Active medications")
    expect(medications).to_contain_text("metformin")
    expect(medications).to_contain_text("amlodipine")
    notes = page.get_by_role("region", name="Notes")
    note = notes.get_by_role("article").filter(has_text="Palpitations for two weeks.")
    expect(note.get_by_role("heading", name="1 addendum")).to_be_visible()
    expect(note.get_by_role("listitem")).to_contain_text("ECG confirms AF, rate 92.")
    expect(note.get_by_role("listitem")).to_contain_text("Addendum")

    order = page.get_by_role("link", name="Order anticoagulant")
    expect(order).to_have_attribute("href", f"/console/patients/{ours.id}/orders/new")


def test_search_by_name_finds_the_patient_and_keeps_the_name_out_of_the_url(
    page: Page, console: Console, patients: Patients
) -> None:
    ours = patients.ours
    open_patients(page, console)
    name = page.get_by_label("Full name")
    name.focus()
    page.keyboard.type(ours.name.upper())
    page.keyboard.press("Enter")  # the form submits from the keyboard
    expect(page.get_by_role("heading", name="Search results")).to_be_visible()
    expect(page.get_by_role("link", name=ours.name)).to_be_visible()
    expect(page.get_by_label("Full name")).to_have_value(ours.name.upper())
    for part in (ours.given, ours.family, *ours.family.split()):
        assert part.lower() not in page.url.lower()
    assert "?" not in page.url


def test_a_search_without_a_match_says_so(page: Page, console: Console, patients: Patients) -> None:
    open_patients(page, console)
    page.get_by_label("National id").fill("0000001 XX")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("status")).to_have_text(
        "No patient of this clinic matches these details."
    )
    expect(page.get_by_role("table")).to_have_count(0)
    expect(page.get_by_label("National id")).to_have_value("0000001 XX")


def test_a_search_without_criteria_explains_what_to_enter(page: Page, console: Console) -> None:
    open_patients(page, console)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter at least one of")


def test_another_clinics_patient_is_the_404_page(
    page: Page, console: Console, patients: Patients
) -> None:
    sign_in(page, console, "clinician")
    response = page.goto(console.url(f"/console/patients/{patients.other_clinic_id}"))
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.get_by_text("This page or record does not exist in this clinic.")).to_be_visible()


@pytest.mark.parametrize(
    "patient_id", ["00000000-0000-4000-8000-000000000000", "no-such-patient", "%E2%98%83'%22<x>"]
)
def test_an_unknown_or_garbled_id_is_the_404_page(
    page: Page, console: Console, patient_id: str
) -> None:
    sign_in(page, console, "clinician")
    response = page.goto(console.url(f"/console/patients/{patient_id}"))
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")


def test_the_patient_pages_pass_axe_accessibility_checks(
    page: Page, console: Console, patients: Patients
) -> None:
    axe = Axe()
    open_patients(page, console)
    page.get_by_label("Family name").fill(patients.ours.family)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name=patients.ours.name)).to_be_visible()
    pages = {"search results": axe.run(page)}
    page.get_by_role("link", name=patients.ours.name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(patients.ours.name)
    pages["chart"] = axe.run(page)
    page.get_by_label("Language").select_option("pt")
    page.get_by_role("button", name="Change").click()
    expect(page.get_by_role("heading", name="Dados de identificação")).to_be_visible()
    pages["chart in Portuguese"] = axe.run(page)
    for name, results in pages.items():
        assert results.violations_count == 0, f"{name}: {results.generate_report()}"

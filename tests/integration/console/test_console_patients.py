"""The console's patient pages in-process (SQLite and PostgreSQL): search by POST (criteria never
in a URL or a log), the newest-first list and both kinds of paging, the chart's sections and
their permissions, the audit entries a chart read writes (the API's, call for call), the 404 page
for another clinic's or a garbled id, and the Spanish and Portuguese catalogs."""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract
from httpx import AsyncClient, Response
from jinja2.ext import babel_extract

from clinicos.bootstrap import Container
from clinicos.console import i18n
from clinicos.governance import list_audit_events
from clinicos.identity import member_actor
from clinicos.kernel.actor import Actor
from clinicos.records import (
    LOINC,
    AllergyFields,
    Component,
    ConditionFields,
    ObservationFields,
    PatientFields,
    PrescriptionFields,
    StatementFields,
    create_prescription,
    issue_prescription,
    record_allergy,
    record_condition,
    record_medication,
    record_observation,
    register_patient,
)
from clinicos.records.services.notes import NoteFields, amend_note, finalize_note, write_note
from tests.integration.console.test_console_session import console_sign_in, csrf_of
from tests.support import identity_fixtures
from tests.support.identity_fixtures import Harness, bearer, seed_clinic

start_app = identity_fixtures.start_app
relaxed = identity_fixtures.relaxed

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
CONSOLE = Path(__file__).resolve().parents[3] / "src" / "clinicos" / "console"
ROLES = ("clinician", "nurse", "pharmacist", "billing", "researcher")


# -- a patient with something in every section of the chart ------------------------------------


@dataclass(frozen=True)
class ChartPatient:
    id: str
    mrn: str
    given: str
    family: str
    national_id: str

    @property
    def name(self) -> str:
        return f"{self.given} {self.family}"


async def make_chart_patient(
    c: Container, actor: Actor, *, mrn: str, given: str, family: str, national_id: str
) -> ChartPatient:
    """Through records' own services: weight 200 days old (stale for DOAC dosing at 180),
    creatinine 40 days old (current at 90), a blood pressure, atrial fibrillation, a penicillin
    allergy, metformin on the medication list, an issued amlodipine order (which enters the list
    itself), a draft apixaban order, a signed note with a signed addendum, and a draft note."""
    now = c.clock.now()
    ctx: dict[str, Any] = {"uows": c.uow, "phi": c.phi, "actor": actor}
    view = await register_patient(
        **ctx,
        values=PatientFields(
            mrn=mrn,
            given_name=given,
            family_name=family,
            birth_date=date(1950, 5, 17),
            sex="female",
            national_id=national_id,
        ),
    )
    patient: dict[str, Any] = {**ctx, "patient_id": view.id}
    for code, value, unit, days in (
        ("29463-7", Decimal("61.5"), "kg", 200),
        ("2160-0", Decimal("1.3"), "mg/dL", 40),
    ):
        await record_observation(
            **patient,
            values=ObservationFields(
                code=code,
                category="vital-signs" if unit == "kg" else "laboratory",
                status="final",
                effective_at=now - timedelta(days=days),
                code_system=LOINC,
                value=value,
                unit=unit,
            ),
        )
    await record_observation(
        **patient,
        values=ObservationFields(
            code="85354-9",
            category="vital-signs",
            status="final",
            effective_at=now - timedelta(days=10),
            components=(
                Component(code="8480-6", value=Decimal(132), unit="mm[Hg]"),
                Component(code="8462-4", value=Decimal(84), unit="mm[Hg]"),
            ),
        ),
    )
    await record_condition(
        **patient,
        values=ConditionFields(
            clinical_status="active",
            icd10_code="I48.91",
            snomed_code="49436004",
            display="Atrial fibrillation",
            onset_date=(now - timedelta(days=400)).date(),
        ),
    )
    await record_allergy(
        **patient,
        values=AllergyFields(
            code_system=RXNORM,
            code="7980",
            display="Penicillin G",
            category="medication",
            criticality="high",
            reaction="Urticaria",
        ),
    )
    await record_medication(
        **patient,
        values=StatementFields(
            code_system=RXNORM,
            code="6809",
            display="metformin",
            dose=Decimal(850),
            dose_unit="mg",
            frequency="BID",
            route="oral",
        ),
    )
    order = await create_prescription(
        **patient,
        values=PrescriptionFields(
            code_system=RXNORM,
            code="17767",
            display="amlodipine",
            dose=Decimal(5),
            dose_unit="mg",
            frequency="QD",
            route="oral",
        ),
    )
    await issue_prescription(**patient, prescription_id=order.id)
    await create_prescription(
        **patient,
        values=PrescriptionFields(
            code_system=RXNORM,
            code="1364430",
            display="apixaban",
            dose=Decimal(5),
            dose_unit="mg",
            frequency="BID",
            route="oral",
            indication="nvaf",
        ),
    )
    note = await write_note(
        **patient, values=NoteFields(kind="progress", text="Palpitations for two weeks.\nIn AF.")
    )
    await finalize_note(**patient, note_id=note.id)
    addendum = await amend_note(**patient, note_id=note.id, text="ECG confirms AF, rate 92.")
    await finalize_note(**patient, note_id=addendum.id)
    await write_note(**patient, values=NoteFields(kind="nursing", text="Draft: weigh next visit."))
    return ChartPatient(view.id, mrn, given, family, national_id)


# -- helpers ------------------------------------------------------------------------------------


@dataclass
class Clinic:
    harness: Harness
    slug: str
    emails: dict[str, str]

    @property
    def client(self) -> AsyncClient:
        return self.harness.client

    async def actor(self, role: str = "clinician") -> Actor:
        return await member_actor(
            self.harness.container.uow, organization_slug=self.slug, email=self.emails[role]
        )

    async def sign_in(self, role: str) -> None:
        self.client.cookies.clear()
        response = await console_sign_in(self.client, self.emails[role])
        assert response.status_code == 303, response.text


async def new_clinic(harness: Harness, slug: str) -> Clinic:
    users = await seed_clinic(
        harness.container,
        slug=slug,
        emails=[(f"{role}@{slug}.example", (role,)) for role in ROLES],
    )
    return Clinic(harness, slug, {role: user.email for role, user in users.items()})


@pytest.fixture
async def clinic(relaxed: Harness) -> Clinic:
    return await new_clinic(relaxed, "el-alto")


@pytest.fixture
async def patient(clinic: Clinic) -> ChartPatient:
    return await make_chart_patient(
        clinic.harness.container,
        await clinic.actor(),
        mrn="EA-2024-0042",
        given="Rosa Elena",
        family="Mamani Quispe",
        national_id="6012345 LP",
    )


async def search(client: AsyncClient, **criteria: str) -> Response:
    listing = await client.get("/console/patients")
    assert listing.status_code == 200, listing.text
    return await client.post(
        "/console/patients/search", data={"csrf_token": csrf_of(listing), **criteria}
    )


def text_of(response: Response) -> str:
    """The page's visible text, tags removed and spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.text).split())


# -- search and list ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "criteria",
    [
        {"mrn": "EA-2024-0042"},
        {"name": "  rosa elena   MAMANI quispe "},
        {"family_name": "Mamani Quispe"},
        {"national_id": "6012345"},
        {"mrn": "EA-2024-0042", "national_id": "6012345 LP"},
    ],
)
async def test_search_finds_the_patient_by_each_criterion(
    clinic: Clinic, patient: ChartPatient, criteria: dict[str, str]
) -> None:
    await clinic.sign_in("clinician")
    response = await search(clinic.client, **criteria)
    assert response.status_code == 200
    assert str(response.url).endswith("/console/patients/search")  # no query string at all
    assert f'href="/console/patients/{patient.id}"' in response.text
    assert "1 patient on this page" in text_of(response)
    # The criteria are kept in the form (the body of the page, never its address).
    for name, value in criteria.items():
        assert f'name="{name}" type="text" value="{value.strip()}"' in response.text


async def test_search_with_no_match_says_so_and_keeps_the_input(
    clinic: Clinic, patient: ChartPatient
) -> None:
    await clinic.sign_in("clinician")
    response = await search(clinic.client, mrn="EA-2024-0042", name="Someone Else")
    assert response.status_code == 200
    assert "No patient of this clinic matches these details." in text_of(response)
    assert 'value="Someone Else"' in response.text


async def test_search_without_criteria_or_too_long_rerenders_with_errors(clinic: Clinic) -> None:
    await clinic.sign_in("clinician")
    empty = await search(clinic.client, mrn="  ")
    assert empty.status_code == 422
    assert 'role="alert"' in empty.text and "Enter at least one of" in empty.text
    long_name = "x" * 202
    too_long = await search(clinic.client, name=long_name, mrn="A-1")
    assert too_long.status_code == 422
    assert 'id="f-name-error"' in too_long.text and "At most 201 characters." in too_long.text
    assert f'value="{long_name}"' in too_long.text and 'value="A-1"' in too_long.text


async def test_search_needs_the_form_token(clinic: Clinic) -> None:
    await clinic.sign_in("clinician")
    response = await clinic.client.post("/console/patients/search", data={"mrn": "EA-2024-0042"})
    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"]


async def test_search_criteria_never_reach_the_logs(
    clinic: Clinic,
    patient: ChartPatient,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    await clinic.sign_in("clinician")
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG):
        assert patient.id in (await search(clinic.client, name=patient.name)).text
        await search(clinic.client, national_id=patient.national_id)
        await clinic.client.get(f"/console/patients/{patient.id}")
    out, err = capfd.readouterr()
    logged = out + err + caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "/console/patients/search" in logged  # the requests were logged, without criteria
    for secret in (patient.given, patient.family, patient.national_id, patient.mrn):
        assert secret not in logged


async def test_list_and_search_page_with_the_records_cursor(clinic: Clinic) -> None:
    c = clinic.harness.container
    actor = await clinic.actor()
    for number in range(23):
        await register_patient(
            uows=c.uow,
            phi=c.phi,
            actor=actor,
            values=PatientFields(mrn=f"PG-{number:03d}", family_name="Paginado", sex="male"),
        )
        clinic.harness.clock.advance(timedelta(seconds=1))
    await clinic.sign_in("clinician")

    first = await clinic.client.get("/console/patients")
    assert "20 patients on this page" in text_of(first) and "PG-022" in first.text
    found = re.search(r'href="/console/patients\?cursor=([A-Za-z0-9_\-]+)"', first.text)
    assert found, "the list offers a next page"
    second = await clinic.client.get(f"/console/patients?cursor={found.group(1)}")
    assert "3 patients on this page" in text_of(second) and "PG-000" in second.text
    assert "PG-022" not in second.text and "Next page" not in second.text

    searched = await search(clinic.client, family_name="paginado")
    assert "20 patients on this page" in text_of(searched)
    cursor = re.search(r'name="cursor" value="([^"]+)"', searched.text)
    assert cursor, "a next-page form carries the cursor in a hidden field"
    following = await clinic.client.post(
        "/console/patients/search",
        data={"csrf_token": csrf_of(searched), "family_name": "paginado", "cursor": cursor[1]},
    )
    assert following.status_code == 200
    assert "3 patients on this page" in text_of(following) and "PG-000" in following.text


@pytest.mark.parametrize("cursor", ["not a cursor!", "Zm9vYmFy", "x" * 300])
async def test_a_garbled_list_cursor_shows_the_first_page_not_an_error(
    clinic: Clinic, patient: ChartPatient, cursor: str
) -> None:
    await clinic.sign_in("clinician")
    response = await clinic.client.get("/console/patients", params={"cursor": cursor})
    assert response.status_code == 400
    assert "That page link is not valid any more." in text_of(response)
    assert patient.mrn in response.text


# -- the chart ----------------------------------------------------------------------------------


async def test_chart_shows_every_section_for_a_clinician(
    clinic: Clinic, patient: ChartPatient
) -> None:
    await clinic.sign_in("clinician")
    response = await clinic.client.get(f"/console/patients/{patient.id}")
    assert response.status_code == 200, response.text
    text = text_of(response)
    assert "<title>Patient chart" in response.text  # no name in the title (browser history)
    for expected in (
        "Rosa Elena Mamani Quispe",
        "EA-2024-0042",
        "6012345 LP",
        "Female",
        "age 75 years",  # born 1950-05-17, seen 2026-03-02
        "Body weight 61,5 kg",
        "measured 200 days ago Stale older than the 180 days an anticoagulant order accepts",
        "Serum creatinine 1,3 mg/dL",
        "measured 40 days ago Current",
        "Blood pressure 132/84 mmHg",
        "measured 10 days ago",
        "Atrial fibrillation ICD-10 I48.91 · SNOMED CT 49436004 Active Confirmed",
        "Penicillin G Medication High Active Urticaria",
        "metformin 850 mg twice daily oral Medication list",
        "apixaban 5 mg, twice daily Draft Non-valvular atrial fibrillation",
        "Palpitations for two weeks. In AF.",
        "ECG confirms AF, rate 92.",
        "Draft: weigh next visit.",
    ):
        assert expected in text, expected
    # amlodipine: issued, so on the medication list once (not again as an active order).
    medications = text.split("Active medications", 1)[1].split("Prescriptions", 1)[0]
    assert medications.count("amlodipine") == 1
    assert f'href="/console/patients/{patient.id}/orders/new"' in response.text
    # The addendum sits inside its note's article, under an "addendum" heading.
    note = response.text.split("Palpitations for two weeks.", 1)[1]
    assert note.index("1 addendum") < note.index("ECG confirms AF") < note.index("</article>")


async def test_chart_reads_are_audited_exactly_as_the_api_chart_reads(
    clinic: Clinic, patient: ChartPatient
) -> None:
    c = clinic.harness.container
    organization_id = (await clinic.actor()).organization_id

    async def actions() -> Counter[str]:
        async with c.uow(organization_id) as uow:
            events = await list_audit_events(
                uow.session, organization_id=organization_id, target_id=patient.id, limit=500
            )
        return Counter(event.action for event in events)

    login = await identity_fixtures.login(
        clinic.client, clinic.emails["clinician"], identity_fixtures.PASSWORD
    )
    token = login.json()["access_token"]
    before = await actions()
    base = f"/api/v1/patients/{patient.id}"
    for path in (
        base,
        f"{base}/observations?limit=100",
        f"{base}/conditions?limit=100",
        f"{base}/allergies?limit=100",
        f"{base}/medications?status=active&limit=100",
        f"{base}/prescriptions?limit=100",
        f"{base}/notes?limit=20",
    ):
        assert (await clinic.client.get(path, headers=bearer(token))).status_code == 200, path
    api = await actions() - before

    await clinic.sign_in("clinician")
    before = await actions()
    assert (await clinic.client.get(f"/console/patients/{patient.id}")).status_code == 200
    console = await actions() - before
    assert console == api
    assert console["records.patient.read"] == 1 and console["records.note.list"] == 1


@pytest.mark.parametrize(
    ("role", "shown", "hidden", "orders"),
    [
        ("nurse", ["Serum creatinine", "Palpitations"], [], False),
        ("pharmacist", ["Serum creatinine", "Atrial fibrillation"], ["Palpitations"], True),
        ("billing", ["EA-2024-0042"], ["Serum creatinine", "Palpitations", "metformin"], False),
    ],
)
async def test_chart_sections_follow_the_role(
    clinic: Clinic,
    patient: ChartPatient,
    role: str,
    shown: list[str],
    hidden: list[str],
    orders: bool,
) -> None:
    await clinic.sign_in(role)
    response = await clinic.client.get(f"/console/patients/{patient.id}")
    assert response.status_code == 200
    for text in shown:
        assert text in response.text, text
    for text in hidden:
        assert text not in response.text, text
    if "Palpitations" in hidden:
        assert "Your role does not allow reading clinical notes" in response.text
    if "metformin" in hidden:
        assert "Your role does not allow reading results" in response.text
    assert ("/orders/new" in response.text) is orders
    # A nurse's own drafts only: the clinician's draft note stays invisible to everyone else.
    assert "Draft: weigh next visit." not in response.text


async def test_a_role_without_patient_read_gets_the_not_allowed_page(
    clinic: Clinic, patient: ChartPatient
) -> None:
    await clinic.sign_in("researcher")
    for path in ("/console/patients", f"/console/patients/{patient.id}"):
        response = await clinic.client.get(path)
        assert response.status_code == 403
        assert "Not allowed" in response.text and patient.mrn not in response.text


@pytest.mark.parametrize(
    "patient_id",
    [
        "00000000-0000-4000-8000-000000000000",
        "not-a-patient",
        "x" * 65,
        "%00",
        "'; drop table patient; --",
        "..%2F..%2Fetc",
    ],
)
async def test_unknown_or_garbled_ids_answer_the_404_page(
    clinic: Clinic, patient: ChartPatient, patient_id: str
) -> None:
    await clinic.sign_in("clinician")
    response = await clinic.client.get(f"/console/patients/{patient_id}")
    assert response.status_code == 404
    assert "Not found" in response.text and "text/html" in response.headers["content-type"]


async def test_another_clinics_patient_is_the_same_404_and_reads_nothing(
    clinic: Clinic, patient: ChartPatient
) -> None:
    other = await new_clinic(clinic.harness, "santa-cruz")
    theirs = await make_chart_patient(
        clinic.harness.container,
        await other.actor(),
        mrn="EA-2024-0042",  # the same MRN is another clinic's own business
        given="Ana",
        family="Flores",
        national_id="7000001 SC",
    )
    await clinic.sign_in("clinician")
    foreign = await clinic.client.get(f"/console/patients/{theirs.id}")
    unknown = await clinic.client.get("/console/patients/00000000-0000-4000-8000-000000000000")
    assert foreign.status_code == unknown.status_code == 404
    assert text_of(foreign).split("Request id")[0] == text_of(unknown).split("Request id")[0]
    assert "Flores" not in foreign.text
    found = await search(clinic.client, mrn="EA-2024-0042")
    assert patient.id in found.text and theirs.id not in found.text


async def test_a_garbled_notes_cursor_shows_the_newest_notes(
    clinic: Clinic, patient: ChartPatient
) -> None:
    await clinic.sign_in("clinician")
    response = await clinic.client.get(f"/console/patients/{patient.id}?notes=bm9wZQ")
    assert response.status_code == 200
    assert "That page link is not valid any more. Showing the newest notes." in response.text
    assert "Palpitations for two weeks." in response.text


async def test_the_chart_speaks_spanish(clinic: Clinic, patient: ChartPatient) -> None:
    await clinic.sign_in("clinician")
    response = await clinic.client.get(
        f"/console/patients/{patient.id}", headers={"accept-language": "es-BO"}
    )
    text = text_of(response)
    for expected in ("Peso corporal", "Creatinina sérica", "hace 200 días", "Diagnósticos"):
        assert expected in text, expected


# -- translations -------------------------------------------------------------------------------


def _messages() -> set[str]:
    found: set[str] = set()
    for path in sorted((CONSOLE / "templates" / "patients").glob("*.html")):
        with path.open("rb") as handle:
            for _, _, message, _ in babel_extract(
                handle, ("_", "gettext", "ngettext"), [], {"trimmed": "false"}
            ):
                found.update([message] if isinstance(message, str) else filter(None, message or ()))
    source = (CONSOLE / "patient_routes.py").read_bytes()
    for _, message, _, _ in extract("python", io.BytesIO(source), keywords={"gettext": None}):
        found.update([message] if isinstance(message, str) else filter(None, message))
    return {m for m in found if m}


@pytest.mark.parametrize("lang", ["es", "pt"])
def test_every_patient_page_string_is_translated(lang: str) -> None:
    messages = _messages()
    assert len(messages) > 100
    missing = sorted(m for m in messages if m not in i18n.CATALOGS[lang])
    assert missing == []

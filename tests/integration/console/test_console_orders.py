"""The console's order pages in-process (SQLite and PostgreSQL, fixed clock): what a check
records, the WARN override that issues at once, ATTEST resolved by an attestation, a
prescriber co-signing their own BLOCK override refused, the input kept on bad values, other
clinics' patients as 404 pages, permissions and CSRF.

Patients are registered through records' services with the facts of the worked cases in
../shared/clinical/doac-examples.json (Cockcroft-Gault worked next to each)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import func, select

from clinicos.bootstrap import Container
from clinicos.cds import Order
from clinicos.cds.models import CdsEvaluation, CdsOverride
from clinicos.console.order_routes import FREQUENCIES, INDICATIONS, drug_codes
from clinicos.console.session import LANG_COOKIE
from clinicos.identity import member_actor
from clinicos.records import (
    ObservationFields,
    PatientFields,
    list_prescriptions,
    record_observation,
    register_patient,
)
from tests.support import identity_fixtures
from tests.support.identity_fixtures import PASSWORD, Harness, create_org, create_user

start_app = identity_fixtures.start_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
WEIGHT, CREATININE = "29463-7", "2160-0"


@pytest.fixture
async def app(start_app: identity_fixtures.StartApp) -> Harness:
    return await start_app(rate_limit={"auth": "100/minute", "write": "500/minute"})


def csrf_of(response: Response) -> str:
    found = CSRF.search(response.text)
    assert found, response.text[:500]
    return found.group(1)


async def sign_in(client: AsyncClient, email: str) -> None:
    form = await client.get("/console/sign-in")
    response = await client.post(
        "/console/sign-in",
        data={"csrf_token": csrf_of(form), "email": email, "password": PASSWORD},
    )
    assert response.status_code == 303, response.text[:300]


async def clinic(container: Container, slug: str = "el-alto") -> dict[str, str]:
    """A clinic with a clinician, a pharmacist and someone holding both roles: their emails,
    and the clinic's id under "organization_id"."""
    org_id = await create_org(container, slug)
    people = {
        "clinician": ("clinician",),
        "pharmacist": ("pharmacist",),
        "both": ("clinician", "pharmacist"),
    }
    emails: dict[str, str] = {}
    for key, roles in people.items():
        email = f"{key}@{slug}.example"
        await create_user(container, org_id, email, roles=roles, slug=slug)
        emails[key] = email
    emails["organization_id"] = org_id
    return emails


async def patient(
    app: Harness,
    *,
    slug: str,
    email: str,
    sex: str,
    age: int,
    weight: str | None,
    creatinine: str | None,
) -> str:
    """A patient of ``age`` on the app's (fixed) date, measured a week before it."""
    c = app.container
    actor = await member_actor(c.uow, organization_slug=slug, email=email)
    today = app.clock.now().date()
    view = await register_patient(
        uows=c.uow,
        phi=c.phi,
        actor=actor,
        values=PatientFields(
            mrn=f"MRN-{age}-{sex}-{weight}-{creatinine}",
            given_name="Test",
            family_name=f"Patient {age}",
            sex=sex,
            birth_date=date(today.year - age, 1, 1),  # ``age`` on the fixed date (2 March)
        ),
    )
    week_ago = app.clock.now() - timedelta(days=7)
    for code, value, unit in ((WEIGHT, weight, "kg"), (CREATININE, creatinine, "mg/dL")):
        if value is None:
            continue
        await record_observation(
            uows=c.uow,
            phi=c.phi,
            actor=actor,
            patient_id=view.id,
            values=ObservationFields(
                code=code,
                category="laboratory" if code == CREATININE else "vital-signs",
                status="final",
                effective_at=week_ago,
                value=Decimal(value),
                unit=unit,
            ),
        )
    return view.id


async def count(container: Container, model: Any, organization_id: str) -> int:
    """Rows of one clinic (row-level security on PostgreSQL scopes the app role's reads)."""
    async with container.uow(organization_id) as uow:
        query = select(func.count()).select_from(model)
        query = query.where(model.organization_id == organization_id)
        return int(await uow.session.scalar(query) or 0)


def order_form(drug: str, dose: str, frequency: str, indication: str) -> dict[str, str]:
    return {"drug": drug, "dose": dose, "frequency": frequency, "indication": indication}


async def check(
    client: AsyncClient, patient_id: str, order: dict[str, str]
) -> tuple[Response, str | None]:
    """Post the order form; the page and the evaluation id it names (None without a check)."""
    page = await client.get(f"/console/patients/{patient_id}/orders/new")
    assert page.status_code == 200, page.text[:300]
    response = await client.post(
        f"/console/patients/{patient_id}/orders/new",
        data={"csrf_token": csrf_of(page), **order},
    )
    found = re.search(r'name="evaluation_id" value="([^"]+)"', response.text)
    return response, found.group(1) if found else None


DABIGATRAN_VTE = order_form("dabigatran", "150", "BID", "vte_treatment")
RIVAROXABAN_NVAF = order_form("rivaroxaban", "20", "QD", "nvaf")
APIXABAN_NVAF = order_form("apixaban", "5", "BID", "nvaf")


def test_choices_are_what_the_engine_accepts() -> None:
    for drug in drug_codes():
        for frequency in FREQUENCIES:
            for indication in INDICATIONS:
                order = Order.model_validate(
                    {"drug": drug, "dose_mg": 1, "frequency": frequency, "indication": indication}
                )
                assert (order.drug, order.frequency, order.indication) == (
                    drug,
                    frequency,
                    indication,
                )


async def test_check_records_one_evaluation_and_shows_it_before_signing(app: Harness) -> None:
    emails = await clinic(app.container)
    # 60-year-old man, 78.3 kg, SCr 3.0: 80 x 78.3 / 216 = 29.0 mL/min (G-006: BLOCK).
    pid = await patient(
        app,
        slug="el-alto",
        email=emails["clinician"],
        sex="male",
        age=60,
        weight="78.3",
        creatinine="3.0",
    )
    await sign_in(app.client, emails["clinician"])
    before = await count(app.container, CdsEvaluation, emails["organization_id"])
    response, evaluation_id = await check(app.client, pid, DABIGATRAN_VTE)
    assert response.status_code == 200
    assert 'class="badge badge-block">BLOCK<' in response.text
    assert "29,0 mL/min" in response.text  # the clinic's locale (es) writes the decimal comma
    assert 'data-reason="dabigatran_crcl_30_or_less_vte"' in response.text
    assert "PRADAXA" in response.text and "Drug label" in response.text
    assert evaluation_id is not None and evaluation_id in response.text
    assert await count(app.container, CdsEvaluation, emails["organization_id"]) == before + 1
    # Nothing is prescribed by a check.
    c = app.container
    actor = await member_actor(c.uow, organization_slug="el-alto", email=emails["clinician"])
    drafts = await list_prescriptions(uows=c.uow, actor=actor, patient_id=pid)
    assert drafts.items == []


async def test_warn_override_issues_at_once(app: Harness) -> None:
    emails = await clinic(app.container)
    # G-018-like: 78-year-old man on rivaroxaban 20 mg QD for NVAF: Beers 2023 → WARN.
    pid = await patient(
        app,
        slug="el-alto",
        email=emails["clinician"],
        sex="male",
        age=78,
        weight="82",
        creatinine="1.0",
    )
    await sign_in(app.client, emails["clinician"])
    response, evaluation_id = await check(app.client, pid, RIVAROXABAN_NVAF)
    assert 'class="badge badge-warn">WARN<' in response.text
    assert "Override and issue" in response.text and "Sign and issue" not in response.text
    override = await app.client.post(
        f"/console/patients/{pid}/orders/new/override",
        data={
            "csrf_token": csrf_of(response),
            **RIVAROXABAN_NVAF,
            "evaluation_id": evaluation_id,
            "reason_code": "patient_tolerating",
            "comment": "",
        },
    )
    assert override.status_code == 303
    assert override.headers["location"].endswith("?result=issued")
    page = await app.client.get(override.headers["location"])
    assert "The prescription was issued." in page.text
    assert '<dd class="status">Issued</dd>' in page.text
    overrides = await count(app.container, CdsOverride, emails["organization_id"])
    assert overrides == 1


async def test_attestation_carries_the_order_past_attest(app: Harness) -> None:
    emails = await clinic(app.container)
    # 72-year-old woman, 70 kg, no creatinine on record: ATTEST (creatinine_missing).
    pid = await patient(
        app,
        slug="el-alto",
        email=emails["clinician"],
        sex="female",
        age=72,
        weight="70",
        creatinine=None,
    )
    await sign_in(app.client, emails["clinician"])
    response, evaluation_id = await check(app.client, pid, APIXABAN_NVAF)
    assert 'class="badge badge-attest">ATTEST<' in response.text
    base = {"csrf_token": csrf_of(response), **APIXABAN_NVAF, "evaluation_id": evaluation_id}
    url = f"/console/patients/{pid}/orders/new/attest"
    # Without a reason or a fact: the errors stand next to the fields, the input kept.
    refused = await app.client.post(
        url, data={**base, "action": "attest", "attest_reason": "", "attest_hours": "100"}
    )
    assert refused.status_code == 422
    assert 'id="f-attest_reason-error"' in refused.text
    assert 'id="f-attest_hours-error"' in refused.text and 'value="100"' in refused.text
    assert 'id="f-attest_facts-error"' in refused.text
    attested = await app.client.post(
        url,
        data={
            **base,
            "action": "attest",
            "attest_serum_creatinine": "on",
            "attest_reason": "Lab closed until Monday; stable renal function last month",
            "attest_hours": "48",
        },
    )
    assert attested.status_code == 200
    assert "Attestation recorded for 48 hours" in attested.text
    assert 'class="badge badge-pass">PASS<' in attested.text
    assert ">attested<" in attested.text
    issued = await app.client.post(
        f"/console/patients/{pid}/orders/new/issue",
        data={
            "csrf_token": csrf_of(attested),
            **APIXABAN_NVAF,
            "evaluation_id": re.findall(r'name="evaluation_id" value="([^"]+)"', attested.text)[0],
        },
    )
    assert issued.status_code == 303 and issued.headers["location"].endswith("?result=issued")


async def test_recorded_value_errors_stay_next_to_the_field(app: Harness) -> None:
    emails = await clinic(app.container)
    pid = await patient(
        app,
        slug="el-alto",
        email=emails["clinician"],
        sex="female",
        age=72,
        weight="70",
        creatinine=None,
    )
    await sign_in(app.client, emails["clinician"])
    response, evaluation_id = await check(app.client, pid, APIXABAN_NVAF)
    future = (app.clock.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    refused = await app.client.post(
        f"/console/patients/{pid}/orders/new/attest",
        data={
            "csrf_token": csrf_of(response),
            **APIXABAN_NVAF,
            "evaluation_id": evaluation_id,
            "action": "creatinine",
            "creatinine_value": "0,9",
            "creatinine_unit": "mg/dL",
            "creatinine_measured_at": future,
        },
    )
    assert refused.status_code == 422
    assert 'id="f-creatinine_measured_at-error"' in refused.text
    assert "may not be in the future" in refused.text
    assert 'value="0,9"' in refused.text and f'value="{future}"' in refused.text
    yesterday = (app.clock.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    implausible = await app.client.post(
        f"/console/patients/{pid}/orders/new/attest",
        data={
            "csrf_token": csrf_of(response),
            **APIXABAN_NVAF,
            "evaluation_id": evaluation_id,
            "action": "creatinine",
            "creatinine_value": "99",
            "creatinine_unit": "mg/dL",
            "creatinine_measured_at": yesterday,
        },
    )
    assert implausible.status_code == 422
    assert 'id="f-creatinine_value-error"' in implausible.text
    assert "at most 40 mg/dL" in implausible.text  # records' plausibility limit


async def test_a_follow_up_form_must_carry_the_order_it_checked(app: Harness) -> None:
    emails = await clinic(app.container)
    pid = await patient(
        app,
        slug="el-alto",
        email=emails["clinician"],
        sex="male",
        age=60,
        weight="78.3",
        creatinine="3.0",
    )
    other = await patient(
        app,
        slug="el-alto",
        email=emails["clinician"],
        sex="male",
        age=61,
        weight="78.3",
        creatinine="3.0",
    )
    await sign_in(app.client, emails["clinician"])
    response, evaluation_id = await check(app.client, pid, DABIGATRAN_VTE)
    override = {
        "csrf_token": csrf_of(response),
        "evaluation_id": evaluation_id,
        "reason_code": "benefit_outweighs_risk",
    }
    # The dose edited by hand after the check: nothing is overridden, the form says why.
    edited = await app.client.post(
        f"/console/patients/{pid}/orders/new/override",
        data={**override, **DABIGATRAN_VTE, "dose": "75"},
    )
    assert edited.status_code == 409 and "changed since it was checked" in edited.text
    # Another patient's page with this evaluation: a 404 page.
    foreign = await app.client.post(
        f"/console/patients/{other}/orders/new/override", data={**override, **DABIGATRAN_VTE}
    )
    assert foreign.status_code == 404
    assert await count(app.container, CdsOverride, emails["organization_id"]) == 0


async def test_bad_dose_is_kept_with_its_error_and_checks_nothing(app: Harness) -> None:
    emails = await clinic(app.container)
    pid = await patient(
        app,
        slug="el-alto",
        email=emails["clinician"],
        sex="male",
        age=60,
        weight="80",
        creatinine="1.0",
    )
    await sign_in(app.client, emails["clinician"])
    before = await count(app.container, CdsEvaluation, emails["organization_id"])
    for dose, message in (("-5", "more than 0 mg"), ("abc", "as a number"), ("", "Enter the dose")):
        response, evaluation_id = await check(
            app.client, pid, order_form("apixaban", dose, "BID", "nvaf")
        )
        assert response.status_code == 422
        assert 'id="f-dose-error"' in response.text and message in response.text
        assert f'name="dose" type="text" value="{dose}"' in response.text
        assert evaluation_id is None
    response, _ = await check(app.client, pid, order_form("heparin", "5", "XD", ""))
    assert response.status_code == 422
    for name in ("drug", "frequency", "indication"):
        assert f'id="f-{name}-error"' in response.text
    assert await count(app.container, CdsEvaluation, emails["organization_id"]) == before


async def test_self_cosign_is_refused_and_another_pharmacist_approves(app: Harness) -> None:
    emails = await clinic(app.container)
    pid = await patient(
        app,
        slug="el-alto",
        email=emails["both"],
        sex="male",
        age=60,
        weight="78.3",
        creatinine="3.0",
    )
    await sign_in(app.client, emails["both"])
    response, evaluation_id = await check(app.client, pid, DABIGATRAN_VTE)
    override = await app.client.post(
        f"/console/patients/{pid}/orders/new/override",
        data={
            "csrf_token": csrf_of(response),
            **DABIGATRAN_VTE,
            "evaluation_id": evaluation_id,
            "reason_code": "other",
            "comment": "Hematology consulted; no alternative tolerated",
        },
    )
    assert override.status_code == 303
    assert override.headers["location"].endswith("?result=pending")
    order_url = override.headers["location"].split("?")[0]
    queue = await app.client.get("/console/sign-offs")
    assert queue.status_code == 200
    assert "Patient 60" in queue.text and "Hematology consulted" in queue.text
    override_id = re.findall(r"/console/sign-offs/([0-9a-f-]{36})/cosign", queue.text)[0]
    refused = await app.client.post(
        f"/console/sign-offs/{override_id}/cosign", data={"csrf_token": csrf_of(queue)}
    )
    assert refused.status_code == 409
    assert "the second sign-off must come from another pharmacist" in refused.text
    # Still waiting: the prescriber cannot issue it.
    page = await app.client.get(order_url)
    assert "Sign and issue" not in page.text and "co-signature" in page.text

    await sign_in(app.client, emails["pharmacist"])
    queue = await app.client.get("/console/sign-offs")
    cosigned = await app.client.post(
        f"/console/sign-offs/{override_id}/cosign", data={"csrf_token": csrf_of(queue)}
    )
    assert cosigned.headers["location"] == "/console/sign-offs?result=cosigned"
    again = await app.client.post(
        f"/console/sign-offs/{override_id}/cosign", data={"csrf_token": csrf_of(queue)}
    )
    assert again.headers["location"] == "/console/sign-offs?result=not_pending"
    after = await app.client.get("/console/sign-offs")
    assert "No override is waiting for a co-signature." in after.text

    await sign_in(app.client, emails["both"])
    page = await app.client.get(order_url)
    assert "Approved" in page.text and "pharmacist" in page.text
    issued = await app.client.post(order_url + "/issue", data={"csrf_token": csrf_of(page)})
    assert issued.headers["location"].endswith("?result=issued")


async def test_permissions_other_clinics_and_csrf(app: Harness) -> None:
    emails = await clinic(app.container)
    other = await clinic(app.container, "santa-cruz")
    foreign = await patient(
        app,
        slug="santa-cruz",
        email=other["clinician"],
        sex="male",
        age=60,
        weight="80",
        creatinine="1.0",
    )
    await sign_in(app.client, emails["clinician"])
    # Another clinic's patient is a 404 page, never the form.
    page = await app.client.get(f"/console/patients/{foreign}/orders/new")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    # Prescribers have no sign-off queue.
    assert (await app.client.get("/console/sign-offs")).status_code == 403
    # A form without the session's token is refused, and nothing is checked.
    own = await patient(
        app,
        slug="el-alto",
        email=emails["clinician"],
        sex="male",
        age=61,
        weight="80",
        creatinine="1.0",
    )
    before = await count(app.container, CdsEvaluation, emails["organization_id"])
    forged = await app.client.post(
        f"/console/patients/{own}/orders/new", data={"csrf_token": "forged", **APIXABAN_NVAF}
    )
    assert forged.status_code == 403
    assert await count(app.container, CdsEvaluation, emails["organization_id"]) == before
    # Pharmacists may not prescribe.
    await sign_in(app.client, emails["pharmacist"])
    assert (await app.client.get(f"/console/patients/{own}/orders/new")).status_code == 403


async def test_the_suggested_dose_is_shown_in_the_users_language(app: Harness) -> None:
    emails = await clinic(app.container)
    # 60-year-old man, 80 kg, SCr 1.0: 80 x 80 / 72 = 88.9 mL/min; rivaroxaban for NVAF above
    # CrCl 50 is 20 mg QD, so 15 mg QD gets a dose-mismatch WARN with a suggestion.
    pid = await patient(
        app,
        slug="el-alto",
        email=emails["clinician"],
        sex="male",
        age=60,
        weight="80",
        creatinine="1.0",
    )
    await sign_in(app.client, emails["clinician"])
    app.client.cookies.set(LANG_COOKIE, "pt", path="/console")
    response, _ = await check(app.client, pid, order_form("rivaroxaban", "15", "QD", "nvaf"))
    assert 'data-reason="rivaroxaban_nvaf_dose_mismatch"' in response.text
    assert "Alteração sugerida" in response.text
    assert "Altere a prescrição para rivaroxaban 20 mg QD." in response.text
    assert "88,9 mL/min" in response.text

"""De-identified research exports: only patients whose research consent is granted now, no
identifier or free text in the output, coarse dates and ages, per-export pseudonyms, one audit
entry per export (and per patient included) and an event with the counts; the per-patient
extract refuses without consent."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clinicos.bootstrap import Container
from clinicos.governance import ConsentRequired, require_consent
from clinicos.governance.models import AuditEvent
from clinicos.interop.research import ResearchRequest, extract_patient
from clinicos.interop.research_deid import age_band, new_pseudonymizer
from clinicos.platform.db.models import OutboxMessage
from clinicos.records import PatientNotFound
from tests.integration.interop.test_fhir_clinical import (
    fhir_condition,
    fhir_observation,
    fhir_prescription,
)
from tests.integration.interop.test_fhir_patient import FHIR, fhir_patient
from tests.support.records_fixtures import clinic
from tests.support.tenancy_fixtures import SignedIn, actor_of

EXPORTS = "/api/v1/research/exports"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
EVERYTHING = {
    "datasets": ["observations", "conditions", "medications", "anticoagulant_prescriptions"],
    "loinc_codes": ["2160-0"],
    "date_precision": "month",
}
# Identifying values of the patients below: none may appear anywhere in an export.
IDENTIFYING = (
    "Rosa",
    "Elena",
    "Quispe",
    "+591 2 244 1234",
    "Calle Murillo",
    "La Paz",
    "rosa@example.bo",
    "4821337",
    "1956-03-14",
    "2024-03-15",
    "2019-06-01",
    "Fibrilación",
    "apixaban",
)


def _entry(resource: dict[str, Any], patient_url: str) -> dict[str, Any]:
    return {
        "resource": {**resource, "subject": {"reference": patient_url}},
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


async def record_patient(
    client: AsyncClient, clinician: SignedIn, mrn: str, birth_date: str = "1956-03-14"
) -> str:
    """A patient with a creatinine and a weight (2024-03-15), atrial fibrillation (onset
    2019-06-01), metformin on the medication list and two active orders — apixaban (an
    anticoagulant) and metformin (not) — plus a draft apixaban order, in one transaction."""
    patient_url = "urn:uuid:cccccccc-0000-4000-8000-000000000001"
    metformin = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "6809"}]},
        "effectivePeriod": {"start": "2021-02-10"},
    }
    active = {**fhir_prescription("x", status="active"), "authoredOn": "2024-03-16T10:00:00Z"}
    other = {
        **active,
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "6809"}]},
        "reasonCode": [{"text": "type 2 diabetes"}],
    }
    condition = {**fhir_condition("x"), "onsetDateTime": "2019-06-01"}
    resources = [
        fhir_observation("x", when="2024-03-15T08:30:00Z"),
        fhir_observation("x", "29463-7", 70, "kg", "2024-03-15T08:30:00Z", category="vital-signs"),
        condition,
        metformin,
        active,
        other,
        fhir_prescription("x"),
    ]
    patient = fhir_patient(
        mrn=mrn,
        family="Quispe",
        birthDate=birth_date,
        identifier=[
            {"system": "https://clinicos.dev/fhir/sid/mrn", "value": mrn},
            {"system": "https://clinicos.dev/fhir/sid/national-id", "value": "4821337"},
        ],
        telecom=[
            {"system": "phone", "value": "+591 2 244 1234"},
            {"system": "email", "value": "rosa@example.bo"},
        ],
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            *(_entry(r, patient_url) for r in resources),
            {
                "fullUrl": patient_url,
                "resource": patient,
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    stored = await client.post("/fhir", json=bundle, headers={**clinician.headers, **FHIR})
    assert stored.status_code == 200, stored.text
    location = stored.json()["entry"][len(resources)]["response"]["location"]
    return str(location.split("/")[1])


async def consent(client: AsyncClient, who: SignedIn, patient_id: str, decision: str) -> None:
    response = await client.post(
        f"/api/v1/patients/{patient_id}/consents",
        json={
            "purpose": "research",
            "decision": decision,
            "method": "paper",
            "policy_version": "research-2026-01",
        },
        headers=who.headers,
    )
    assert response.status_code == 201, response.text


async def export(client: AsyncClient, researcher: SignedIn, **body: Any) -> dict[str, Any]:
    response = await client.post(EXPORTS, json={**EVERYTHING, **body}, headers=researcher.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_export_when_only_one_patient_granted_research_includes_only_them_deidentified(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "research-deid", "clinician", "researcher")
    clinician = staff["clinician"]
    granted = await record_patient(client, clinician, "R-1")
    never_asked = await record_patient(client, clinician, "R-2")
    denied = await record_patient(client, clinician, "R-3")
    await consent(client, clinician, granted, "granted")
    await consent(client, clinician, denied, "denied")

    result = await export(client, staff["researcher"])

    assert (result["patients_included"], result["patients_excluded_for_consent"]) == (1, 2)
    assert result["date_precision"] == "month"
    (patient,) = result["patients"]
    assert len(patient["pseudonym"]) == 24
    assert (patient["sex"], patient["birth_year"]) == ("female", 1956)
    ran_on = datetime.fromisoformat(result["ran_at"]).date()
    assert patient["age_band"] == age_band(date(1956, 3, 14), ran_on)
    observations = [
        (o["code"], o["value"], o["unit"], o["effective"]) for o in patient["observations"]
    ]
    assert observations == [("2160-0", "1.4", "mg/dL", "2024-03")]
    (condition,) = patient["conditions"]
    assert (condition["icd10_code"], condition["onset"]) == ("I48.91", "2019-06")
    assert [(m["code"], m["started"]) for m in patient["medications"]] == [("6809", "2021-02")]
    (order,) = patient["anticoagulant_prescriptions"]  # not metformin, not the draft
    assert (order["code"], order["dose"], order["status"]) == ("1364430", "5", "active")
    assert order["indication"] == "nvaf" and order["started"] == "2024-03"
    text = json.dumps(result, ensure_ascii=False)
    for value in (*IDENTIFYING, "R-1", granted, never_asked, denied):
        assert value not in text, f"{value!r} leaked into the export"


async def test_export_when_research_consent_revoked_leaves_the_patient_out_of_the_next_one(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "research-revoke", "clinician", "agent", "researcher")
    clinician, researcher = staff["clinician"], staff["researcher"]
    patient_id = await record_patient(client, clinician, "RV-1")
    actor = actor_of(researcher)

    before = await export(client, researcher)
    await consent(client, clinician, patient_id, "granted")
    while_granted = await export(client, researcher)
    await consent(client, staff["agent"], patient_id, "revoked")
    after = await export(client, researcher)
    async with container.uow(actor.organization_id) as uow:
        with pytest.raises(ConsentRequired) as refused:
            await require_consent(uow, actor, patient_id, "research")

    counts = [
        (r["patients_included"], r["patients_excluded_for_consent"])
        for r in (before, while_granted, after)
    ]
    assert counts == [(0, 1), (1, 0), (0, 1)]
    assert after["patients"] == []
    assert refused.value.code == "consent_required"


async def test_extract_patient_when_research_consent_missing_refuses_naming_the_purpose(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "research-extract", "clinician", "researcher")
    clinician = staff["clinician"]
    patient_id = await record_patient(client, clinician, "RX-1")
    actor = actor_of(staff["researcher"])
    request = ResearchRequest(datasets=("observations",), loinc_codes=("2160-0",))
    pseudonymize = new_pseudonymizer()

    async def extract() -> dict[str, Any]:
        async with container.uow(actor.organization_id) as uow:
            found = await extract_patient(
                uow,
                container.phi,
                actor,
                patient_id=patient_id,
                request=request,
                pseudonymize=pseudonymize,
                today=uow.clock.now().date(),
            )
            await uow.commit()
        return found

    with pytest.raises(ConsentRequired) as never_asked:
        await extract()
    await consent(client, clinician, patient_id, "granted")
    granted = await extract()
    await consent(client, clinician, patient_id, "revoked")
    with pytest.raises(ConsentRequired) as revoked:
        await extract()

    assert never_asked.value.status == 409
    assert never_asked.value.code == "consent_required"
    assert "research" in never_asked.value.detail
    assert patient_id not in never_asked.value.detail
    assert "revoked" in revoked.value.detail
    assert granted["pseudonym"] == pseudonymize(patient_id)
    assert [o["effective"] for o in granted["observations"]] == ["2024"]  # year by default
    assert "conditions" not in granted


async def test_extract_patient_when_patient_is_another_organizations_is_not_found(
    container: Container, client: AsyncClient
) -> None:
    theirs = await clinic(container, client, "research-other", "clinician")
    ours = await clinic(container, client, "research-ours", "researcher")
    patient_id = await record_patient(client, theirs["clinician"], "RO-1")
    await consent(client, theirs["clinician"], patient_id, "granted")
    actor = actor_of(ours["researcher"])

    result = await export(client, ours["researcher"])
    async with container.uow(actor.organization_id) as uow:
        with pytest.raises(PatientNotFound):
            await extract_patient(
                uow,
                container.phi,
                actor,
                patient_id=patient_id,
                request=ResearchRequest(datasets=("conditions",)),
                pseudonymize=new_pseudonymizer(),
                today=uow.clock.now().date(),
            )

    assert (result["patients_included"], result["patients_excluded_for_consent"]) == (0, 0)


async def test_pseudonyms_when_exported_twice_differ_between_exports(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "research-pseudo", "clinician", "researcher")
    clinician = staff["clinician"]
    for mrn in ("P-1", "P-2"):
        patient_id = await record_patient(client, clinician, mrn)
        await consent(client, clinician, patient_id, "granted")

    first = await export(client, staff["researcher"])
    second = await export(client, staff["researcher"])

    first_ids = {p["pseudonym"] for p in first["patients"]}
    second_ids = {p["pseudonym"] for p in second["patients"]}
    assert len(first_ids) == len(second_ids) == 2
    assert first_ids.isdisjoint(second_ids)
    assert first["export_id"] != second["export_id"]
    assert [p["pseudonym"] for p in first["patients"]] == sorted(first_ids)


async def test_export_when_patient_is_over_89_collapses_age_and_withholds_birth_year(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "research-90", "clinician", "researcher")
    patient_id = await record_patient(client, staff["clinician"], "OLD-1", birth_date="1925-07-04")
    await consent(client, staff["clinician"], patient_id, "granted")

    result = await export(client, staff["researcher"])

    (patient,) = result["patients"]
    assert (patient["age_band"], patient["birth_year"]) == ("90+", None)
    assert "1925" not in json.dumps(result)


async def test_export_when_period_given_selects_entries_by_their_clinical_date(
    container: Container, client: AsyncClient
) -> None:
    staff = await clinic(container, client, "research-period", "clinician", "researcher")
    patient_id = await record_patient(client, staff["clinician"], "PER-1")
    await consent(client, staff["clinician"], patient_id, "granted")
    researcher = staff["researcher"]

    march = await export(client, researcher, from_period="2024-03", to_period="2024-03")
    april_on = await export(client, researcher, from_period="2024-04")
    until_2020 = await export(
        client,
        researcher,
        datasets=["conditions"],
        loinc_codes=[],
        to_period="2020",
        date_precision="year",
    )

    (patient,) = march["patients"]
    assert len(patient["observations"]) == 1 and len(patient["anticoagulant_prescriptions"]) == 1
    assert patient["conditions"] == [] and patient["medications"] == []
    assert (april_on["patients_included"], april_on["patients_excluded_for_consent"]) == (0, 0)
    (old,) = until_2020["patients"]
    assert [c["onset"] for c in old["conditions"]] == ["2019"]
    assert old["observations"] is None  # not asked for


async def test_export_when_run_is_audited_once_per_export_and_announced_with_counts(
    container: Container, client: AsyncClient, owner_engine: AsyncEngine
) -> None:
    staff = await clinic(container, client, "research-audit", "clinician", "researcher")
    clinician, researcher = staff["clinician"], staff["researcher"]
    included = await record_patient(client, clinician, "AU-1")
    left_out = await record_patient(client, clinician, "AU-2")
    await consent(client, clinician, included, "granted")
    org = researcher.member.organization_id

    result = await export(client, researcher)

    async with owner_engine.connect() as conn:
        audits = (
            await conn.execute(
                select(
                    AuditEvent.action,
                    AuditEvent.target_type,
                    AuditEvent.target_id,
                    AuditEvent.purpose,
                    AuditEvent.actor_id,
                ).where(AuditEvent.organization_id == org, AuditEvent.action.like("research.%"))
            )
        ).all()
        events = (
            await conn.execute(
                select(OutboxMessage.payload).where(
                    OutboxMessage.organization_id == org,
                    OutboxMessage.event_type == "interop.ResearchExportCompleted",
                )
            )
        ).all()
    user = researcher.member.user_id
    assert sorted(audits) == [
        ("research.export", "research_export", result["export_id"], "research", user),
        ("research.extract", "patient", included, "research", user),
    ]
    assert left_out not in {a.target_id for a in audits}
    (event,) = events
    assert event.payload["export_id"] == result["export_id"]
    assert event.payload["patients_included"] == 1
    assert event.payload["patients_excluded_for_consent"] == 1
    assert event.payload["date_precision"] == "month"
    assert included not in json.dumps(event.payload)


def _problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"datasets": []}, "datasets"),
        ({"datasets": ["notes"]}, "datasets"),
        ({"datasets": ["observations"]}, "loinc_codes"),
        ({"datasets": ["observations"], "loinc_codes": ["2160-1"]}, "loinc_codes"),
        ({"datasets": ["observations"], "loinc_codes": ["creatinine"]}, "loinc_codes"),
        ({"datasets": ["conditions"], "loinc_codes": ["2160-0"]}, "loinc_codes"),
        ({"datasets": ["conditions"], "from_period": "2024-03"}, "from_period"),
        ({"datasets": ["conditions"], "from_period": "2024-03-01"}, "from_period"),
        ({"datasets": ["conditions"], "from_period": "2025", "to_period": "2024"}, "to_period"),
        ({"datasets": ["conditions"], "date_precision": "day"}, "date_precision"),
        ({"datasets": ["conditions"], "patient_id": "x"}, "patient_id"),
    ],
    ids=[
        "empty",
        "unknown-dataset",
        "no-codes",
        "check-digit",
        "not-loinc",
        "codes-alone",
        "month-with-year-precision",
        "a-day",
        "inverted",
        "precision",
        "extra",
    ],
)
async def test_export_when_body_invalid_is_a_422_naming_the_field(
    container: Container,
    client: AsyncClient,
    owner_engine: AsyncEngine,
    body: dict[str, Any],
    field: str,
) -> None:
    staff = await clinic(container, client, "research-422", "researcher")

    response = await client.post(EXPORTS, json=body, headers=staff["researcher"].headers)

    problem = _problem(response, 422)
    fields = [e["field"] for e in problem["errors"]]
    assert any(field in f.split(".") for f in fields), fields
    async with owner_engine.connect() as conn:
        audited = await conn.scalar(
            select(AuditEvent.id).where(AuditEvent.action.like("research.%")).limit(1)
        )
    assert audited is None


@pytest.mark.parametrize(
    ("role", "status"),
    [("researcher", 200), ("clinician", 403), ("admin", 403), ("agent", 403)],
)
async def test_export_permissions_per_role(
    container: Container, client: AsyncClient, role: str, status: int
) -> None:
    staff = await clinic(container, client, f"research-perm-{role}", role)

    response = await client.post(
        EXPORTS, json={"datasets": ["conditions"]}, headers=staff[role].headers
    )

    assert response.status_code == status, response.text

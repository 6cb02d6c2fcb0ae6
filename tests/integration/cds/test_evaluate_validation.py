"""POST /api/v1/cds/evaluate refuses malformed input with a 422 problem naming the field.
(Record mode's ``patient`` / ``patient_id`` choice is tested in test_evaluate_record_mode.py.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select

from clinicos.bootstrap import Container
from clinicos.cds.models import CdsEvaluation
from tests.integration.cds.api_cases import EVALUATE, base_body, signed_in
from tests.support.tenancy_fixtures import assert_problem

Edit = Callable[[dict[str, Any]], None]


def patient(**changes: Any) -> Edit:
    return lambda body: body["patient"].update(changes)


def order(**changes: Any) -> Edit:
    return lambda body: body["order"].update(changes)


def drop_patient(*names: str) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        for name in names:
            body["patient"].pop(name)

    return edit


def top(**changes: Any) -> Edit:
    return lambda body: body.update(changes)


# (edit, field the problem must name, a word its message must contain)
CASES: dict[str, tuple[Edit, str, str]] = {
    "both-creatinine-units": (
        patient(serum_creatinine_umol_l=88.4),
        "body.patient",
        "one unit",
    ),
    "neither-age-nor-birth-date": (drop_patient("age_years"), "body.patient", "birth_date"),
    "both-age-and-birth-date": (patient(birth_date="1966-01-01"), "body.patient", "birth_date"),
    "negative-dose": (order(dose_mg=-5), "body.order.dose_mg", "greater than 0"),
    "zero-dose": (order(dose_mg=0), "body.order.dose_mg", "greater than 0"),
    "unknown-drug": (order(drug="heparin"), "body.order.drug", "apixaban"),
    "unknown-frequency": (order(frequency="Q8H"), "body.order.frequency", "BID"),
    "unknown-indication": (order(indication="stroke"), "body.order.indication", "nvaf"),
    "naive-as-of": (top(as_of="2026-11-22T10:00:00"), "body.as_of", "timezone"),
    "naive-measurement-datetime": (
        patient(weight_measured_at="2026-11-15T08:00:00"),
        "body.patient.weight_measured_at",
        "timezone",
    ),
    "extra-top-level-field": (top(comment="x"), "body.comment", "not permitted"),
    "extra-patient-field": (patient(name="x"), "body.patient.name", "not permitted"),
    "extra-order-field": (order(route="oral"), "body.order.route", "not permitted"),
    "age-above-130": (patient(age_years=131), "body.patient.age_years", "130"),
    "negative-age": (patient(age_years=-1), "body.patient.age_years", "0"),
    "zero-weight": (patient(weight_kg=0), "body.patient.weight_kg", "greater than 0"),
    "weight-above-500": (patient(weight_kg=501), "body.patient.weight_kg", "500"),
    "zero-creatinine": (
        patient(serum_creatinine_mg_dl=0),
        "body.patient.serum_creatinine_mg_dl",
        "0.01",
    ),
    # Found by the parser fuzzer: 1e-300 mg/dL overflowed Cockcroft-Gault's rounding (a 500).
    "creatinine-1e-300": (
        patient(serum_creatinine_mg_dl=1e-300),
        "body.patient.serum_creatinine_mg_dl",
        "0.01",
    ),
    "creatinine-below-assay-resolution": (
        patient(serum_creatinine_mg_dl=0.009),
        "body.patient.serum_creatinine_mg_dl",
        "0.01",
    ),
    "creatinine-umol-below-assay-resolution": (
        lambda body: (
            body["patient"].pop("serum_creatinine_mg_dl"),
            patient(serum_creatinine_umol_l=0.5)(body),
        ),
        "body.patient.serum_creatinine_umol_l",
        "0.884",
    ),
    "unknown-sex": (patient(sex="x"), "body.patient.sex", "male"),
    "missing-order": (lambda body: body.pop("order"), "body.order", "required"),
    "too-many-medications": (
        patient(other_medications=[f"drug {i}" for i in range(101)]),
        "body.patient.other_medications",
        "100",
    ),
    "birth-date-gives-age-above-130": (
        lambda body: (body["patient"].pop("age_years"), patient(birth_date="1890-01-01")(body)),
        "body.patient.birth_date",
        "130",
    ),
    "birth-date-after-as-of": (
        lambda body: (body["patient"].pop("age_years"), patient(birth_date="2027-01-01")(body)),
        "body.patient.birth_date",
        "0-130",
    ),
}


async def _evaluation_count(container: Container, organization_id: str) -> int:
    async with container.uow(organization_id) as uow:
        return int(
            (
                await uow.session.execute(select(func.count()).select_from(CdsEvaluation))
            ).scalar_one()
        )


@pytest.mark.parametrize("name", list(CASES))
async def test_evaluate_malformed_input_is_422_naming_the_field(
    container: Container, client: AsyncClient, name: str
) -> None:
    edit, field, words = CASES[name]
    clinician = (await signed_in(container, client, "bad-input-org", "clinician"))["clinician"]
    body = base_body()
    edit(body)

    response = await client.post(EVALUATE, json=body, headers=clinician.headers)

    problem = assert_problem(response, 422, "validation_failed")
    named = [e for e in problem["errors"] if e["field"] == field]
    assert named, problem
    assert any(words in e["message"] for e in named), named
    assert field in problem["detail"]
    assert await _evaluation_count(container, clinician.member.organization_id) == 0


async def test_evaluate_problem_never_echoes_submitted_values(
    container: Container, client: AsyncClient
) -> None:
    clinician = (await signed_in(container, client, "echo-org", "clinician"))["clinician"]
    body = base_body()
    body["patient"]["name"] = "Maria Quispe"
    body["patient"]["weight_kg"] = 777

    response = await client.post(EVALUATE, json=body, headers=clinician.headers)

    assert response.status_code == 422
    assert "Maria" not in response.text and "777" not in response.text

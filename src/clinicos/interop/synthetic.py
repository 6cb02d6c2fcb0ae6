"""Synthetic patients as FHIR R4 transaction bundles shaped like Synthea's output (Patient +
Encounter + Observation + Condition + MedicationRequest, ``urn:uuid:`` references).

Deterministic for a seed and a reference date: the same call gives the same bundles, so demos,
tests and benchmarks are reproducible. The people are invented (Bolivian and Brazilian names,
fictitious ids: Bolivian CI numbers and CPF-shaped numbers that are not valid CPFs) and the
clinical values are plausible, not real. ``demo_fixtures`` adds the named seed patients whose
facts reproduce the decision-support seed cases (P-001 CrCl 29, P-002 CrCl 31, P-007 Beers).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INDICATION_SYSTEM = "urn:clinicos:cs:anticoagulation-indication"
MRN_SYSTEM = "https://clinicos.dev/fhir/sid/mrn"

_GIVEN = {
    ("BO", "female"): ["Ana", "Rosa", "María", "Juana", "Elena", "Lucía", "Carmen", "Sonia"],
    ("BO", "male"): ["Juan", "Luis", "Carlos", "Mario", "Jorge", "Víctor", "Álvaro", "René"],
    ("BR", "female"): ["Ana", "Maria", "Francisca", "Juliana", "Adriana", "Camila", "Beatriz"],
    ("BR", "male"): ["José", "João", "Antônio", "Francisco", "Paulo", "Lucas", "Pedro"],
}
_FAMILY = {
    "BO": ["Quispe", "Mamani", "Condori", "Choque", "Flores", "Vargas", "Apaza", "Huanca"],
    "BR": ["Silva", "Santos", "Oliveira", "Souza", "Pereira", "Lima", "Costa", "Ferreira"],
}
_CITIES = {
    "BO": [("El Alto", "La Paz"), ("La Paz", "La Paz"), ("Santa Cruz de la Sierra", "Santa Cruz")],
    "BR": [("São Paulo", "SP"), ("Recife", "PE"), ("Belo Horizonte", "MG")],
}
_STREETS = {"BO": "Av. 6 de Marzo", "BR": "Rua das Flores"}
_LANGUAGE = {"BO": "es", "BR": "pt"}

# (ICD-10, SNOMED, display, prevalence among generated adults)
_CONDITIONS = [
    ("I10", "38341003", "Essential hypertension", 0.45),
    ("E11.9", "44054006", "Type 2 diabetes mellitus", 0.2),
    ("I48.91", "49436004", "Atrial fibrillation", 0.15),
    ("I82.40", "128053003", "Deep vein thrombosis", 0.06),
    ("N18.3", "433144002", "Chronic kidney disease stage 3", 0.1),
]
# RxCUI (ingredient), display, dose mg, frequency
_DRUGS = {
    "apixaban": ("1364430", "apixaban", Decimal(5), "BID"),
    "rivaroxaban": ("1114195", "rivaroxaban", Decimal(20), "QD"),
    "dabigatran": ("1546356", "dabigatran", Decimal(150), "BID"),
    "warfarin": ("11289", "warfarin", Decimal(5), "QD"),
    "metformin": ("6809", "metformin", Decimal(850), "BID"),
    "amlodipine": ("17767", "amlodipine", Decimal(5), "QD"),
    "atorvastatin": ("83367", "atorvastatin", Decimal(20), "QD"),
}
_FREQUENCY_TEXT = {"QD": "once daily", "BID": "twice daily"}


@dataclass(frozen=True)
class SeedPatient:
    """A named demo patient whose facts reproduce one decision-support seed case."""

    mrn: str
    given: str
    family: str
    sex: str
    age_years: int
    weight_kg: Decimal
    creatinine_mg_dl: Decimal
    condition: tuple[str, str, str]  # ICD-10, SNOMED, display
    note: str


# Facts of G-006/G-008/G-047 in ../shared/clinical/doac-examples.json (doac-rules.md §"seed").
SEED_PATIENTS = (
    SeedPatient(
        "P-001",
        "Jorge",
        "Apaza",
        "male",
        60,
        Decimal("78.3"),
        Decimal("3.0"),
        ("I82.40", "128053003", "Deep vein thrombosis"),
        "dabigatran for DVT at CrCl 29 → BLOCK",
    ),
    SeedPatient(
        "P-002",
        "René",
        "Huanca",
        "male",
        60,
        Decimal("83.7"),
        Decimal("3.0"),
        ("I82.40", "128053003", "Deep vein thrombosis"),
        "dabigatran for DVT at CrCl 31 → PASS",
    ),
    SeedPatient(
        "P-007",
        "Víctor",
        "Choque",
        "male",
        78,
        Decimal("82"),
        Decimal("1.0"),
        ("I48.91", "49436004", "Atrial fibrillation"),
        "rivaroxaban 20 mg QD for NVAF at 78 → WARN (Beers)",
    ),
)


class _Builder:
    """Collects one patient's entries with ``urn:uuid:`` full URLs from a seeded RNG."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.entries: list[dict[str, Any]] = []

    def new_url(self) -> str:
        return f"urn:uuid:{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"

    def add(self, resource: dict[str, Any]) -> str:
        url = self.new_url()
        self.entries.append(
            {
                "fullUrl": url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
        return url


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _birth_date(rng: random.Random, as_of: date, age: int) -> date:
    """A birth date on which the person is exactly ``age`` on ``as_of``."""
    latest = date(as_of.year - age, as_of.month, min(as_of.day, 28))
    return latest - timedelta(days=rng.randint(1, 300))


def _quantity(value: Decimal, unit: str, code: str | None = None) -> dict[str, Any]:
    return {"value": float(value), "unit": unit, "system": UCUM, "code": code or unit}


def _observation(
    patient: str,
    encounter: str,
    code: str,
    display: str,
    category: str,
    effective: datetime,
    **value: Any,
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": patient},
        "encounter": {"reference": encounter},
        "effectiveDateTime": _instant(effective),
        "issued": _instant(effective + timedelta(hours=4)),
        **value,
    }


def _condition(patient: str, icd10: str, snomed: str, display: str, onset: date) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": CONDITION_VERIFICATION, "code": "confirmed"}]},
        "code": {
            "coding": [
                {"system": ICD10, "code": icd10, "display": display},
                {"system": SNOMED, "code": snomed, "display": display},
            ],
            "text": display,
        },
        "subject": {"reference": patient},
        "onsetDateTime": onset.isoformat(),
    }


def _medication_request(
    patient: str,
    encounter: str,
    drug: str,
    authored: datetime,
    *,
    dose: Decimal | None = None,
    frequency: str | None = None,
    indication: str | None = None,
) -> dict[str, Any]:
    rxcui, display, default_dose, default_frequency = _DRUGS[drug]
    frequency = frequency or default_frequency
    per_day = 2 if frequency == "BID" else 1
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": rxcui, "display": display}],
            "text": display,
        },
        "subject": {"reference": patient},
        "encounter": {"reference": encounter},
        "authoredOn": _instant(authored),
        "dosageInstruction": [
            {
                "text": f"{dose or default_dose} mg {_FREQUENCY_TEXT[frequency]}",
                "timing": {
                    "repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"},
                    "code": {"text": frequency},
                },
                "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral"}]},
                "doseAndRate": [{"doseQuantity": _quantity(dose or default_dose, "mg")}],
            }
        ],
    }
    if indication:
        resource["reasonCode"] = [{"coding": [{"system": INDICATION_SYSTEM, "code": indication}]}]
    return resource


def _patient_resource(
    rng: random.Random,
    *,
    country: str,
    mrn: str,
    given: str,
    family: str,
    sex: str,
    birth: date,
) -> dict[str, Any]:
    city, state = rng.choice(_CITIES[country])
    if country == "BO":
        national_id = {"type": "NI", "value": f"{rng.randint(1_000_000, 9_999_999)} LP"}
        phone = f"+591 {rng.randint(60_000_000, 79_999_999)}"
    else:
        digits = f"{rng.randint(0, 999_999_999):09d}"
        national_id = {"type": "NI", "value": f"{digits[:3]}.{digits[3:6]}.{digits[6:]}-00"}
        phone = f"+55 11 9{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
    local = f"{given}.{family}".lower().replace(" ", "")
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                "system": MRN_SYSTEM,
                "value": mrn,
            },
            {
                "type": {"coding": [{"system": V2_0203, "code": national_id["type"]}]},
                "value": national_id["value"],
            },
        ],
        "name": [{"use": "official", "family": family, "given": given.split(" ")}],
        "gender": sex,
        "birthDate": birth.isoformat(),
        "telecom": [
            {"system": "phone", "value": phone},
            {"system": "email", "value": f"{local}{rng.randint(1, 99)}@example.org"},
        ],
        "address": [
            {
                "line": [f"{_STREETS[country]} {rng.randint(1, 3000)}"],
                "city": city,
                "state": state,
                "country": country,
            }
        ],
        "communication": [
            {
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": _LANGUAGE[country]}]},
                "preferred": True,
            }
        ],
    }


def _vitals_and_labs(
    b: _Builder,
    patient: str,
    encounter: str,
    when: datetime,
    *,
    weight: Decimal,
    height: Decimal,
    creatinine: Decimal,
    umol: bool,
) -> None:
    rng = b.rng
    b.add(
        _observation(
            patient,
            encounter,
            "29463-7",
            "Body weight",
            "vital-signs",
            when,
            valueQuantity=_quantity(weight, "kg"),
        )
    )
    b.add(
        _observation(
            patient,
            encounter,
            "8302-2",
            "Body height",
            "vital-signs",
            when,
            valueQuantity=_quantity(height, "cm"),
        )
    )
    systolic, diastolic = rng.randint(105, 165), rng.randint(65, 100)
    b.add(
        _observation(
            patient,
            encounter,
            "85354-9",
            "Blood pressure panel",
            "vital-signs",
            when,
            component=[
                {
                    "code": {
                        "coding": [
                            {
                                "system": LOINC,
                                "code": "8480-6",
                                "display": "Systolic blood pressure",
                            }
                        ]
                    },
                    "valueQuantity": _quantity(Decimal(systolic), "mm[Hg]"),
                },
                {
                    "code": {
                        "coding": [
                            {
                                "system": LOINC,
                                "code": "8462-4",
                                "display": "Diastolic blood pressure",
                            }
                        ]
                    },
                    "valueQuantity": _quantity(Decimal(diastolic), "mm[Hg]"),
                },
            ],
        )
    )
    if umol:
        b.add(
            _observation(
                patient,
                encounter,
                "14682-9",
                "Creatinine [Moles/volume] in Serum or Plasma",
                "laboratory",
                when,
                valueQuantity=_quantity(
                    (creatinine * Decimal("88.4")).quantize(Decimal(1)), "umol/L"
                ),
            )
        )
    else:
        b.add(
            _observation(
                patient,
                encounter,
                "2160-0",
                "Creatinine [Mass/volume] in Serum or Plasma",
                "laboratory",
                when,
                valueQuantity=_quantity(creatinine, "mg/dL"),
            )
        )


def _encounter(patient: str, start: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "type": [
            {
                "coding": [
                    {"system": SNOMED, "code": "185349003", "display": "Encounter for check up"}
                ]
            }
        ],
        "subject": {"reference": patient},
        "period": {"start": _instant(start), "end": _instant(start + timedelta(minutes=30))},
    }


def synthetic_patient(seed: int, index: int, *, as_of: date) -> dict[str, Any]:
    """One invented patient's transaction bundle: 2-4 visits over two years with weight,
    height, blood pressure and creatinine each time, a few conditions, and the medications
    they imply (a DOAC or warfarin with INR for atrial fibrillation or DVT)."""
    rng = random.Random(f"{seed}:{index}")
    country = "BO" if index % 2 == 0 else "BR"
    sex = rng.choice(("female", "male"))
    given = rng.choice(_GIVEN[(country, sex)])
    family = " ".join(rng.sample(_FAMILY[country], 2))
    age = rng.randint(18, 92)
    b = _Builder(rng)
    patient = b.add(
        _patient_resource(
            rng,
            country=country,
            mrn=f"SYN-{seed}-{index:06d}",
            given=given,
            family=family,
            sex=sex,
            birth=_birth_date(rng, as_of, age),
        )
    )
    weight = Decimal(rng.randint(45, 110)) + Decimal(rng.randint(0, 9)) / 10
    height = Decimal(rng.randint(145, 190))
    creatinine = (Decimal(rng.randint(5, 30)) / 10).quantize(Decimal("0.1"))
    visits = sorted(
        datetime.combine(
            as_of - timedelta(days=rng.randint(1, 730)), time(rng.randint(8, 17)), tzinfo=UTC
        )
        for _ in range(rng.randint(2, 4))
    )
    encounters = []
    for when in visits:
        encounter = b.add(_encounter(patient, when))
        encounters.append((encounter, when))
        _vitals_and_labs(
            b,
            patient,
            encounter,
            when,
            weight=weight + Decimal(rng.randint(-20, 20)) / 10,
            height=height,
            creatinine=creatinine,
            umol=country == "BR" and rng.random() < 0.5,
        )
    first_encounter, first_visit = encounters[0]
    conditions = [c for c in _CONDITIONS if rng.random() < c[3] * (1.5 if age > 65 else 1)]
    for icd10, snomed, display, _ in conditions:
        b.add(
            _condition(
                patient,
                icd10,
                snomed,
                display,
                first_visit.date() - timedelta(days=rng.randint(30, 2000)),
            )
        )
    last_encounter, last_visit = encounters[-1]
    codes = {c[0] for c in conditions}
    if "I48.91" in codes or "I82.40" in codes:
        drug = rng.choice(("apixaban", "rivaroxaban", "dabigatran", "warfarin"))
        indication = "nvaf" if "I48.91" in codes else "vte_treatment"
        b.add(_medication_request(patient, last_encounter, drug, last_visit, indication=indication))
        if drug == "warfarin":
            b.add(
                _observation(
                    patient,
                    last_encounter,
                    "6301-6",
                    "INR in Platelet poor plasma by Coagulation assay",
                    "laboratory",
                    last_visit,
                    valueQuantity=_quantity(Decimal(rng.randint(15, 35)) / 10, "{INR}"),
                )
            )
    if "E11.9" in codes:
        b.add(_medication_request(patient, last_encounter, "metformin", last_visit))
    if "I10" in codes:
        b.add(_medication_request(patient, last_encounter, "amlodipine", last_visit))
    if age > 50 and rng.random() < 0.3:
        b.add(_medication_request(patient, first_encounter, "atorvastatin", first_visit))
    return {"resourceType": "Bundle", "type": "transaction", "entry": b.entries}


def seed_patient_bundle(seed: SeedPatient, *, as_of: date) -> dict[str, Any]:
    """A named seed patient measured a week before ``as_of`` (fresh for decision support)."""
    rng = random.Random(seed.mrn)
    b = _Builder(rng)
    patient = b.add(
        _patient_resource(
            rng,
            country="BO",
            mrn=seed.mrn,
            given=seed.given,
            family=seed.family,
            sex=seed.sex,
            birth=_birth_date(rng, as_of, seed.age_years),
        )
    )
    when = datetime.combine(as_of - timedelta(days=7), time(9), tzinfo=UTC)
    encounter = b.add(_encounter(patient, when))
    _vitals_and_labs(
        b,
        patient,
        encounter,
        when,
        weight=seed.weight_kg,
        height=Decimal(170),
        creatinine=seed.creatinine_mg_dl,
        umol=False,
    )
    icd10, snomed, display = seed.condition
    b.add(_condition(patient, icd10, snomed, display, when.date() - timedelta(days=20)))
    return {"resourceType": "Bundle", "type": "transaction", "entry": b.entries}


def synthetic_bundles(
    seed: int, count: int, *, as_of: date, first_index: int = 0
) -> Iterator[dict[str, Any]]:
    """``count`` invented patients, one transaction bundle each."""
    for index in range(first_index, first_index + count):
        yield synthetic_patient(seed, index, as_of=as_of)


def combined_bundle(bundles: list[dict[str, Any]]) -> dict[str, Any]:
    """Several patients' bundles as one file (what ``clinicos fhir generate`` writes)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [entry for bundle in bundles for entry in bundle["entry"]],
    }

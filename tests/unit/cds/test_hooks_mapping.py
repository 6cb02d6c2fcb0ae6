"""Pure CDS Hooks mapping (FHIR -> engine facts and order), per shared/clinical/terminology.md:
drug by RxNorm or name, dose and frequency variants, units, measurement dates, conditions,
missing prefetch, and the request shapes that are a client error."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from clinicos.cds.engine import Facts, load_rule_pack
from clinicos.cds.hooks.cards import source_of, summary_of
from clinicos.cds.hooks.mapping import (
    DOSE_FIELD,
    DRUG_FIELD,
    REASON_FIELD,
    TIMING_FIELD,
    HookInputError,
    Terminology,
    condition_flags,
    creatinine,
    dose_mg,
    draft_orders,
    frequency_code,
    indication_of,
    medication_names,
    patient_facts,
    selected,
    weight_kg,
)

TERMS = Terminology.from_pack(load_rule_pack())
AS_OF = date(2026, 11, 22)
PATIENT = "p-1"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
OWN = "urn:clinicos:cs:anticoagulation-indication"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"


def request(
    concept: dict[str, Any] | None = None,
    *,
    dose: dict[str, Any] | None = None,
    timing: dict[str, Any] | None = None,
    reason: list[dict[str, Any]] | None = None,
    rid: str = "d1",
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "medicationCodeableConcept": concept or {"coding": [{"system": RXNORM, "code": "1364430"}]},
        "reasonCode": reason
        if reason is not None
        else [{"coding": [{"system": OWN, "code": "nvaf"}]}],
        "dosageInstruction": [
            {
                "timing": timing
                if timing is not None
                else {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": dose or {"value": 5, "unit": "mg"}}],
            }
        ],
    }


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources]}


def obs(code: str, value: Any, unit: str, when: str | None = "2026-11-15") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": value, "unit": unit},
    }
    if when is not None:
        resource["effectiveDateTime"] = when
    return resource


def prefetch(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "patient": {
            "resourceType": "Patient",
            "id": PATIENT,
            "gender": "female",
            "birthDate": "1946-05-01",
        },
        "weight": bundle(obs("29463-7", 58, "kg")),
        "creatinine": bundle(obs("2160-0", 0.9, "mg/dL")),
        "medications": None,
        "conditions": None,
    }
    return base | changes


def facts_of(pre: dict[str, Any] | None, **kwargs: Any) -> Any:
    return patient_facts(pre, patient_id=PATIENT, as_of=AS_OF, terminology=TERMS, **kwargs)


# -- the ordered drug ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("concept", "drug"),
    [
        ({"coding": [{"system": RXNORM, "code": "1114195"}]}, "rivaroxaban"),
        ({"coding": [{"system": RXNORM, "code": "1037042"}]}, "dabigatran"),
        ({"text": "Apixaban 5 MG Oral Tablet"}, "apixaban"),
        ({"coding": [{"system": RXNORM, "code": "999", "display": "EDOXABAN 60mg"}]}, "edoxaban"),
        ({"text": "Xarelto 20 mg"}, "rivaroxaban"),
        ({"text": "Coumadin 5mg tab"}, "warfarin"),
    ],
    ids=["rxnorm", "rxnorm-etexilate", "text", "display", "brand", "brand-warfarin"],
)
def test_medication_names_when_code_or_name_finds_the_drug(
    concept: dict[str, Any], drug: str
) -> None:
    drugs, names = medication_names({"medicationCodeableConcept": concept}, TERMS)

    assert drugs == (drug,)
    assert names == [drug]


def test_medication_names_rxnorm_code_wins_over_text() -> None:
    concept = {"coding": [{"system": RXNORM, "code": "1364430"}], "text": "warfarin"}

    assert medication_names({"medicationCodeableConcept": concept}, TERMS)[0] == ("apixaban",)


def test_medication_names_unknown_drug_kept_as_normalized_text_and_combination_split() -> None:
    other = {"medicationCodeableConcept": {"text": "  Metformin   500 MG "}}
    combo = {"medicationCodeableConcept": {"text": "Lopinavir / Ritonavir 200-50 mg"}}
    wort = {"medicationCodeableConcept": {"text": "St. John's Wort extract"}}

    assert medication_names(other, TERMS) == ((), ["metformin 500 mg"])
    assert medication_names(combo, TERMS) == ((), ["lopinavir", "ritonavir"])
    assert medication_names(wort, TERMS) == ((), ["st johns wort"])


def test_medication_names_contained_medication_reference_is_resolved() -> None:
    resource = {
        "medicationReference": {"reference": "#m1"},
        "contained": [
            {
                "resourceType": "Medication",
                "id": "m1",
                "code": {"coding": [{"system": RXNORM, "code": "1599538"}]},
            }
        ],
    }

    assert medication_names(resource, TERMS)[0] == ("edoxaban",)


# -- dose, frequency, indication -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ({"value": 5, "unit": "mg"}, Decimal(5)),
        ({"value": 2.5, "unit": "milligram", "code": "mg"}, Decimal("2.5")),
        ({"value": 0.015, "unit": "g"}, Decimal("15.000")),
        ({"value": 2500, "unit": "mcg"}, Decimal("2.5")),
        ({"value": 1, "unit": "tablet"}, None),
        ({"value": 0, "unit": "mg"}, None),
        ({"value": True, "unit": "mg"}, None),
        ({"unit": "mg"}, None),
    ],
    ids=["mg", "ucum-code", "g", "mcg", "tablet", "zero", "bool", "no-value"],
)
def test_dose_mg_units(quantity: dict[str, Any], expected: Decimal | None) -> None:
    assert dose_mg(quantity) == expected


@pytest.mark.parametrize(
    ("timing", "expected"),
    [
        ({"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}, "QD"),
        ({"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}, "BID"),
        ({"repeat": {"frequency": 1, "period": 12, "periodUnit": "h"}}, "BID"),
        ({"repeat": {"period": 8, "periodUnit": "h"}}, "TID"),
        ({"repeat": {"frequency": 4, "period": 24, "periodUnit": "h"}}, "QID"),
        ({"repeat": {"timeOfDay": ["08:00:00", "20:00:00"]}}, "BID"),
        ({"repeat": {"when": ["MORN"]}}, "QD"),
        ({"code": {"coding": [{"code": "BID"}]}}, "BID"),
        ({"code": {"coding": [{"code": "Q24H"}]}}, "QD"),
        ({"code": {"text": "tid"}}, "TID"),
        ({"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}}, None),
        ({"repeat": {"frequency": 1, "period": 5, "periodUnit": "h"}}, None),
        ({"repeat": {"frequency": 1, "period": 36, "periodUnit": "h"}}, None),
        ({}, None),
    ],
    ids=[
        "once-daily",
        "twice-daily",
        "q12h",
        "q8h-default-frequency",
        "4-per-24h",
        "time-of-day",
        "when",
        "code-bid",
        "code-q24h",
        "code-text",
        "weekly",
        "q5h",
        "q36h",
        "empty",
    ],
)
def test_frequency_code_timing_variants(timing: dict[str, Any], expected: str | None) -> None:
    assert frequency_code(timing) == expected


@pytest.mark.parametrize(
    ("codings", "expected"),
    [
        ([(OWN, "vte_prophylaxis")], "vte_prophylaxis"),
        ([(ICD10, "I48.91")], "nvaf"),
        ([(ICD10, "I82.401")], "vte_treatment"),
        ([(ICD10, "I26.99")], "vte_treatment"),
        ([(SNOMED, "49436004")], "nvaf"),
        ([(SNOMED, "59282003")], "vte_treatment"),
        ([(ICD10, "I26.99"), (OWN, "vte_prophylaxis")], "vte_prophylaxis"),
        ([(ICD10, "I48.0"), (SNOMED, "128053003")], None),
        ([(ICD10, "E11.9")], None),
        ([], None),
    ],
    ids=[
        "own-code",
        "icd-af",
        "icd-dvt",
        "icd-pe",
        "snomed-af",
        "snomed-pe",
        "own-wins",
        "ambiguous",
        "unrelated",
        "none",
    ],
)
def test_indication_of_reason_codes(codings: list[tuple[str, str]], expected: str | None) -> None:
    reason = [{"coding": [{"system": s, "code": c}]} for s, c in codings]

    assert indication_of({"reasonCode": reason}) == expected


def test_draft_orders_reads_the_engine_order() -> None:
    (draft,) = draft_orders(bundle(request()), TERMS)

    assert draft.order == {
        "drug": "apixaban",
        "dose_mg": Decimal(5),
        "frequency": "BID",
        "indication": "nvaf",
    }
    assert draft.reference == "MedicationRequest/d1"


def test_draft_orders_unreadable_fields_are_named_not_guessed() -> None:
    resource = request(dose={"value": 1, "unit": "tab"}, timing={}, reason=[])

    (draft,) = draft_orders(bundle(resource), TERMS)

    assert draft.drug == "apixaban" and draft.order is None
    assert draft.unreadable == (DOSE_FIELD, TIMING_FIELD, REASON_FIELD)


def test_draft_orders_two_anticoagulants_in_one_order_is_unreadable_drug() -> None:
    (draft,) = draft_orders(bundle(request({"text": "apixaban or rivaroxaban"})), TERMS)

    assert draft.order is None and draft.unreadable == (DRUG_FIELD,)


def test_draft_orders_skips_other_resources_and_selected_filters() -> None:
    service_request = {"resourceType": "ServiceRequest", "id": "s1"}
    drafts = draft_orders(bundle(request(), service_request, request(rid="d2")), TERMS)

    assert [d.reference for d in drafts] == ["MedicationRequest/d1", "MedicationRequest/d2"]
    assert [d.reference for d in selected(drafts, ["MedicationRequest/d2"])] == [
        "MedicationRequest/d2"
    ]
    assert len(selected(drafts, None)) == 2


@pytest.mark.parametrize(
    "value",
    [{"resourceType": "MedicationRequest"}, [], {"resourceType": "Bundle", "entry": {}}],
    ids=["not-bundle", "list", "entry-not-list"],
)
def test_draft_orders_malformed_bundle_raises_input_error(value: Any) -> None:
    with pytest.raises(HookInputError) as excinfo:
        draft_orders(value, TERMS)

    assert excinfo.value.loc[:2] == ("context", "draftOrders")


# -- measurements --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (72, "kg", Decimal(72)),
        (72000, "g", Decimal(72)),
        (100, "[lb_av]", Decimal("45.359237")),
        (100, "lbs", Decimal("45.359237")),
        (72, "stone", None),
        (0, "kg", None),
        (900, "kg", None),
    ],
    ids=["kg", "g", "ucum-lb", "lbs", "unknown-unit", "zero", "impossible"],
)
def test_weight_kg_units(value: Any, unit: str, expected: Decimal | None) -> None:
    assert weight_kg(obs("29463-7", value, unit)) == expected


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("mg/dL", ("serum_creatinine_mg_dl", Decimal("1.2"))),
        ("umol/L", ("serum_creatinine_umol_l", Decimal("1.2"))),
        ("µmol/L", ("serum_creatinine_umol_l", Decimal("1.2"))),
        ("μmol/L", ("serum_creatinine_umol_l", Decimal("1.2"))),
        ("mmol/L", None),
    ],
    ids=["mg-dl", "umol", "micro-sign", "greek-mu", "unknown"],
)
def test_creatinine_units(unit: str, expected: Any) -> None:
    assert creatinine(obs("2160-0", 1.2, unit)) == expected


def test_patient_facts_full_prefetch_gives_engine_facts() -> None:
    result = facts_of(prefetch())

    facts = Facts.model_validate(result.facts)
    assert (facts.sex, facts.age_on(AS_OF)) == ("female", 80)
    assert (facts.weight_kg, facts.weight_measured_at) == (Decimal(58), date(2026, 11, 15))
    assert (facts.serum_creatinine_mg_dl, facts.creatinine_measured_at) == (
        Decimal("0.9"),
        date(2026, 11, 15),
    )
    assert result.unreadable == () and result.unresolved == ()


def test_patient_facts_latest_observation_by_effective_time_wins() -> None:
    weights = bundle(
        obs("29463-7", 60, "kg", "2026-10-01"),
        obs("29463-7", 62, "kg", "2026-11-20T23:30:00-04:00"),  # 2026-11-21 in UTC
        obs("29463-7", 99, "kg", None),
    )

    facts = facts_of(prefetch(weight=weights)).facts

    assert (facts["weight_kg"], facts["weight_measured_at"]) == (Decimal(62), date(2026, 11, 21))


def test_patient_facts_creatinine_in_umol_l_and_issued_time_ignored() -> None:
    measured = obs("14682-9", 132.6, "umol/L", "2026-11-01")
    measured["issued"] = "2026-11-20T10:00:00Z"

    facts = facts_of(prefetch(creatinine=bundle(measured))).facts

    assert facts["serum_creatinine_umol_l"] == Decimal("132.6")
    assert facts["creatinine_measured_at"] == date(2026, 11, 1)
    assert "serum_creatinine_mg_dl" not in facts


def test_patient_facts_undated_or_partial_date_measurement_has_no_date() -> None:
    facts = facts_of(prefetch(weight=bundle(obs("29463-7", 70, "kg", "2026-11")))).facts

    assert (facts["weight_kg"], facts["weight_measured_at"]) == (Decimal(70), None)


def test_patient_facts_entered_in_error_and_other_codes_are_ignored() -> None:
    wrong = obs("29463-7", 50, "kg", "2026-11-20")
    wrong["status"] = "entered-in-error"
    height = obs("8302-2", 170, "cm", "2026-11-21")

    facts = facts_of(prefetch(weight=bundle(wrong, height))).facts

    assert facts["weight_kg"] is None


def test_patient_facts_null_measurement_prefetch_leaves_facts_none() -> None:
    facts = facts_of(prefetch(weight=None, creatinine=None)).facts

    assert (facts["weight_kg"], facts["weight_measured_at"]) == (None, None)
    assert facts["creatinine_measured_at"] is None
    assert "serum_creatinine_mg_dl" not in facts and "serum_creatinine_umol_l" not in facts


def test_patient_facts_absent_prefetch_is_all_missing_but_readable_later() -> None:
    result = facts_of(None)

    assert result.unreadable == ("prefetch.patient",)
    assert result.unresolved == ("medications", "conditions")
    assert result.facts["weight_kg"] is None and result.facts["creatinine_measured_at"] is None


@pytest.mark.parametrize(
    ("patient", "field"),
    [
        ({"gender": "unknown", "birthDate": "1950-01-01"}, "Patient.gender"),
        ({"gender": "male", "birthDate": "1950"}, "Patient.birthDate"),
        ({"gender": "male", "birthDate": "1850-01-01"}, "Patient.birthDate"),
        ({"gender": "male", "birthDate": "2030-01-01"}, "Patient.birthDate"),
        ({"gender": "male"}, "Patient.birthDate"),
    ],
    ids=["unknown-gender", "partial-birth-date", "older-than-130", "future", "absent"],
)
def test_patient_facts_unusable_demographics_are_named(patient: dict[str, Any], field: str) -> None:
    resource = {"resourceType": "Patient", "id": PATIENT} | patient

    assert facts_of(prefetch(patient=resource)).unreadable == (field,)


def test_patient_facts_active_medications_exclude_drafts_and_stopped() -> None:
    active = {
        "resourceType": "MedicationRequest",
        "id": "a1",
        "status": "active",
        "medicationCodeableConcept": {"text": "Amiodarone 200 mg"},
    }
    stopped = active | {
        "id": "a2",
        "status": "stopped",
        "medicationCodeableConcept": {"text": "Ketoconazole"},
    }
    the_draft = active | {"id": "d1", "medicationCodeableConcept": {"text": "Apixaban"}}

    facts = facts_of(
        prefetch(medications=bundle(active, stopped, the_draft)), draft_ids=frozenset({"d1"})
    ).facts

    assert facts["other_medications"] == ("amiodarone",)


@pytest.mark.parametrize(
    ("codings", "flag"),
    [
        ([(ICD10, "Z95.2")], "mechanical_valve"),
        ([(ICD10, "Z33.1")], "pregnant"),
        ([(ICD10, "O09.90")], "pregnant"),
        ([(SNOMED, "77386006")], "pregnant"),
        ([(ICD10, "R58")], "active_bleeding"),
        ([(SNOMED, "131148009")], "active_bleeding"),
    ],
    ids=["valve", "pregnancy-z33", "pregnancy-o-chapter", "pregnancy-snomed", "bleed", "bleed-sct"],
)
def test_condition_flags_codes(codings: list[tuple[str, str]], flag: str) -> None:
    condition = {"code": {"coding": [{"system": s, "code": c} for s, c in codings]}}

    flags = condition_flags([condition])

    assert {name for name, on in flags.items() if on} == {flag}


def test_condition_flags_resolved_or_refuted_conditions_do_not_count() -> None:
    bleed = {"code": {"coding": [{"system": SNOMED, "code": "131148009"}]}}
    resolved = bleed | {"clinicalStatus": {"coding": [{"code": "resolved"}]}}
    refuted = bleed | {"verificationStatus": {"coding": [{"code": "refuted"}]}}

    assert condition_flags([resolved, refuted])["active_bleeding"] is False
    assert condition_flags([bleed | {"clinicalStatus": {"coding": [{"code": "recurrence"}]}}])[
        "active_bleeding"
    ]


# -- client errors -------------------------------------------------------------------------------


def test_prefetch_about_another_patient_raises_input_error() -> None:
    weight = obs("29463-7", 70, "kg")
    weight["subject"] = {"reference": "Patient/someone-else"}

    with pytest.raises(HookInputError) as excinfo:
        facts_of(prefetch(weight=bundle(weight)))

    assert excinfo.value.loc == ("prefetch", "weight", 0)
    assert "someone-else" not in str(excinfo.value)


@pytest.mark.parametrize("value", ["72", 5, ["x"]], ids=["string", "number", "list"])
def test_prefetch_not_a_resource_raises_input_error(value: Any) -> None:
    with pytest.raises(HookInputError) as excinfo:
        facts_of(prefetch(creatinine=value))

    assert excinfo.value.loc == ("prefetch", "creatinine")


# -- card text -----------------------------------------------------------------------------------


def test_summary_of_long_message_is_cut_at_a_word_under_140() -> None:
    text = "Beers 2023: avoid starting warfarin for atrial fibrillation or VTE in adults 65 " * 3

    summary = summary_of(text)

    assert len(summary) < 140 and summary.endswith("\u2026")
    assert text.startswith(summary[:-1])


def test_source_of_links_dailymed_and_doi() -> None:
    label = source_of(
        "ELIQUIS (apixaban) US PI v30, DailyMed setid e9481622-7cc6-418a-acb6-c5450daae9b0, 4"
    )
    beers = source_of("2023 AGS Beers Criteria, doi:10.1111/jgs.18372, Table 2")
    local = source_of("clinicos DOAC policy (doac-rules.md) 0.4 data gates")

    assert label == {
        "label": "ELIQUIS (apixaban) US PI v30",
        "url": "https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid="
        "e9481622-7cc6-418a-acb6-c5450daae9b0",
    }
    assert beers["url"] == "https://doi.org/10.1111/jgs.18372"
    assert local == {"label": "clinicos DOAC policy (doac-rules.md) 0.4 data gates"}

"""Record mode's mapping from a stored record to the engine's facts (no database): units,
the newest usable creatinine, recognised drugs and conditions, missing and incomplete data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from clinicos.cds.engine import evaluate
from clinicos.cds.record_facts import (
    RecordIncomplete,
    creatinine_fact,
    normalised_name,
    recognise_conditions,
    recognise_medications,
    record_facts,
    weight_fact,
)
from clinicos.records import ConditionEntry, Demographics, LatestObservation, MedicationEntry
from tests.unit.cds.builders import AS_OF, PACK

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"


def obs(
    code: str,
    value: str | None,
    unit: str | None,
    *,
    days: int = 5,
    issued_days: int | None = None,
    observation_id: str | None = None,
) -> LatestObservation:
    effective = AS_OF - timedelta(days=days)
    issued = AS_OF - timedelta(days=days if issued_days is None else issued_days)
    return LatestObservation(
        observation_id=observation_id or f"{code}-{days}",
        code=code,
        status="final",
        value=None if value is None else Decimal(value),
        unit=unit,
        value_text=None,
        components=(),
        effective_at=effective,
        issued_at=issued,
    )


def med(display: str, code: str = "0", system: str = ATC, entry_id: str = "m1") -> MedicationEntry:
    return MedicationEntry(
        entry_id=entry_id,
        source="medication_statement",
        code_system=system,
        code=code,
        display=display,
    )


def man_of_60() -> Demographics:
    return Demographics(patient_id="p1", sex="male", birth_date=date(1966, 3, 14))


# -- weight ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "kg"),
    [
        ("52.2", "kg", Decimal("52.2")),
        ("52200", "g", Decimal("52.2")),
        # terminology.md: 1 lb = 0.45359237 kg exactly.
        ("115", "[lb_av]", Decimal("52.16312255")),
    ],
    ids=["kilograms", "grams", "pounds"],
)
def test_weight_fact_converts_recorded_units_to_kg(value: str, unit: str, kg: Decimal) -> None:
    fact = weight_fact(obs("29463-7", value, unit))

    assert fact is not None
    assert (fact.value_kg, fact.value, fact.unit) == (kg, Decimal(value), unit)
    assert fact.measured_at == (AS_OF - timedelta(days=5)).date()


@pytest.mark.parametrize(
    ("value", "unit"),
    [(None, "kg"), ("52", None), ("52", "[oz_av]"), ("0", "kg"), ("501", "kg")],
    ids=["no-value", "no-unit", "unknown-unit", "zero", "above-engine-bound"],
)
def test_weight_fact_without_a_usable_value_is_none(value: str | None, unit: str | None) -> None:
    assert weight_fact(obs("29463-7", value, unit)) is None


def test_weight_fact_measured_late_in_the_evening_west_of_utc_counts_the_utc_day() -> None:
    # 2026-11-21 22:30 at UTC-5 is 2026-11-22 03:30 UTC: data age counts UTC days (0.4).
    evening = datetime(2026, 11, 21, 22, 30, tzinfo=UTC) + timedelta(hours=5)
    observation = obs("29463-7", "70", "kg")
    shifted = LatestObservation(**{**observation.__dict__, "effective_at": evening})

    fact = weight_fact(shifted)

    assert fact is not None and fact.measured_at == date(2026, 11, 22)


# -- creatinine -----------------------------------------------------------------------------------


def test_creatinine_fact_takes_the_newer_sample_across_units() -> None:
    mass = obs("2160-0", "1.0", "mg/dL", days=21)
    moles = obs("14682-9", "176.8", "umol/L", days=7)

    fact = creatinine_fact({"2160-0": mass, "14682-9": moles})

    assert fact is not None
    assert (fact.value, fact.unit, fact.observation_id) == (
        Decimal("176.8"),
        "umol/L",
        moles.observation_id,
    )


def test_creatinine_fact_sampled_together_prefers_the_later_issued_result() -> None:
    mass = obs("2160-0", "1.0", "mg/dL", days=7, issued_days=6)
    moles = obs("14682-9", "176.8", "umol/L", days=7, issued_days=2)

    fact = creatinine_fact({"2160-0": mass, "14682-9": moles})

    assert fact is not None and fact.unit == "umol/L"


def test_creatinine_fact_same_instant_and_issue_prefers_mg_dl() -> None:
    mass = obs("2160-0", "1.0", "mg/dL", days=7)
    moles = obs("14682-9", "176.8", "umol/L", days=7)

    fact = creatinine_fact({"2160-0": mass, "14682-9": moles})

    assert fact is not None and fact.unit == "mg/dL"


@pytest.mark.parametrize(
    "observation",
    [
        obs("2160-0", None, "mg/dL"),
        obs("2160-0", "1.0", "umol/L"),  # a mass code in a molar unit: not trusted
        obs("2160-0", "0", "mg/dL"),
    ],
    ids=["no-value", "wrong-unit-for-code", "zero"],
)
def test_creatinine_fact_unusable_result_is_none(observation: LatestObservation) -> None:
    assert creatinine_fact({"2160-0": observation}) is None


def test_creatinine_fact_unusable_newer_result_leaves_the_usable_other_unit() -> None:
    newer = obs("2160-0", None, "mg/dL", days=1)
    older = obs("14682-9", "176.8", "umol/L", days=9)

    fact = creatinine_fact({"2160-0": newer, "14682-9": older})

    assert fact is not None and fact.observation_id == older.observation_id


# -- medications ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "names"),
    [
        (med("Eliquis", code="1364430", system=RXNORM), {"apixaban"}),
        (med("dabigatran etexilate 150 MG", code="1037042", system=RXNORM), {"dabigatran"}),
        (med("Ketoconazole 200 mg oral tablet", code="J02AB02"), {"ketoconazole"}),
        (med("Lopinavir/Ritonavir 200/50 mg"), {"lopinavir", "ritonavir"}),
        (med("St. John's Wort extract"), {"st johns wort"}),
        (med("St John\u2019s wort"), {"st johns wort"}),
        (med("Rifampicin 300 mg"), {"rifampin"}),  # INN of rifampin
        (med("ENOXAPARIN 40 mg/0.4 mL"), {"enoxaparin"}),
        (med("metformin 850 mg", code="A10BA02"), set()),
        (med("ketoconazolex cream"), set()),  # a whole word only
        (med("Coumadin 5 mg"), set()),  # a brand without its RxNorm code is not recognised
    ],
    ids=[
        "doac-by-rxnorm-brand-display",
        "dabigatran-etexilate-rxcui",
        "inhibitor-by-name",
        "combination-names-both",
        "apostrophe-and-period",
        "typographic-apostrophe",
        "inn-synonym",
        "upper-case",
        "unrelated-drug",
        "no-partial-word",
        "brand-name-alone",
    ],
)
def test_recognise_medications_by_rxnorm_then_generic_name(
    entry: MedicationEntry, names: set[str]
) -> None:
    assert {m.name for m in recognise_medications([entry], PACK)} == names


def test_recognise_medications_reports_how_each_was_matched() -> None:
    found = recognise_medications(
        [med("Eliquis", code="1364430", system=RXNORM, entry_id="a"), med("verapamil", "C08DA01")],
        PACK,
    )

    assert [(m.name, m.entry_id, m.matched_by) for m in found] == [
        ("apixaban", "a", "rxnorm"),
        ("verapamil", "m1", "name"),
    ]


def test_normalised_name_matches_the_engines_spelling() -> None:
    assert normalised_name("  St. John's   WORT ") == "st johns wort"


# -- conditions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("icd10", "snomed", "facts"),
    [
        ("R58", None, {"active_bleeding"}),
        (None, "131148009", {"active_bleeding"}),
        ("Z95.2", None, {"mechanical_valve"}),
        ("Z33.1", None, {"pregnant"}),
        ("O24.419", None, {"pregnant"}),  # the pregnancy chapter
        (None, "77386006", {"pregnant"}),
        ("I48.91", "49436004", set()),  # AF: an indication, not a fact the engine reads
        ("Z95.1", None, set()),  # aortocoronary bypass graft, not a valve
    ],
)
def test_recognise_conditions_sets_engine_facts(
    icd10: str | None, snomed: str | None, facts: set[str]
) -> None:
    entry = ConditionEntry(entry_id="c1", icd10_code=icd10, snomed_code=snomed)

    assert {c.fact for c in recognise_conditions([entry])} == facts


# -- the whole record -----------------------------------------------------------------------------


def test_record_facts_builds_engine_facts_that_reproduce_p001() -> None:
    # 80 x 52.2 / (72 x 2.0) = 29.0 -> dabigatran VTE BLOCK (doac-rules.md 0.6 P-001).
    record = record_facts(
        demographics=man_of_60(),
        observations={
            "29463-7": obs("29463-7", "52.2", "kg"),
            "2160-0": obs("2160-0", "2.0", "mg/dL"),
        },
        medications=[med("amiodarone 200 mg")],
        conditions=[],
        pack=PACK,
        as_of=AS_OF,
    )

    evaluation = evaluate(
        record.facts,
        {"drug": "dabigatran", "dose_mg": 150, "frequency": "BID", "indication": "vte_treatment"},
        PACK,
        AS_OF,
    )
    assert (record.age_years, record.sex, record.facts.other_medications) == (
        60,
        "male",
        ("amiodarone",),
    )
    assert evaluation.outcome == "BLOCK"
    assert evaluation.crcl_ml_min == Decimal("29.0")
    # amiodarone + dabigatran VTE at CrCl < 50: the P-gp avoid rule fires too.
    assert {r.key for r in evaluation.reasons} == {
        "dabigatran_crcl_30_or_less_vte",
        "dabigatran_pgp_inhibitor_renal_avoid",
    }


def test_record_facts_without_measurements_leaves_them_none() -> None:
    record = record_facts(
        demographics=man_of_60(),
        observations={},
        medications=[],
        conditions=[],
        pack=PACK,
        as_of=AS_OF,
    )

    facts = record.facts
    assert (facts.weight_kg, facts.serum_creatinine_mg_dl, facts.serum_creatinine_umol_l) == (
        None,
        None,
        None,
    )
    assert (record.weight, record.creatinine) == (None, None)


def test_record_facts_age_turns_on_the_birthday_in_utc() -> None:
    demographics = Demographics(patient_id="p1", sex="female", birth_date=date(1946, 11, 22))

    on_birthday = record_facts(
        demographics=demographics,
        observations={},
        medications=[],
        conditions=[],
        pack=PACK,
        as_of=datetime(2026, 11, 22, 0, 30, tzinfo=UTC),
    )
    day_before = record_facts(
        demographics=demographics,
        observations={},
        medications=[],
        conditions=[],
        pack=PACK,
        as_of=datetime(2026, 11, 21, 23, 30, tzinfo=UTC),
    )

    assert (on_birthday.age_years, day_before.age_years) == (80, 79)


@pytest.mark.parametrize(
    ("sex", "birth_date", "fields"),
    [
        ("unknown", date(1966, 3, 14), ["sex"]),
        ("other", None, ["sex", "birth_date"]),
        ("male", None, ["birth_date"]),
        ("male", date(2027, 1, 1), ["birth_date"]),  # born after as_of
        ("male", date(1880, 1, 1), ["birth_date"]),  # older than 130
    ],
)
def test_record_facts_without_usable_sex_or_age_refuses_naming_fields(
    sex: str, birth_date: date | None, fields: list[str]
) -> None:
    with pytest.raises(RecordIncomplete) as raised:
        record_facts(
            demographics=Demographics(patient_id="p1", sex=sex, birth_date=birth_date),
            observations={},
            medications=[],
            conditions=[],
            pack=PACK,
            as_of=AS_OF,
        )

    assert raised.value.data == {"fields": fields}
    assert raised.value.status == 409

"""Record mode: a patient's stored record mapped to the engine's ``Facts`` — plain functions over
plain data (units, recognised drugs and conditions, the newest usable measurement), and the one
gathering step that reads the record inside the evaluation's unit of work.

Codes and conversions follow ../shared/clinical/terminology.md: match by code first, fall back
to the generic name; measurement time is ``effective_at`` (collection), not ``issued_at``.
Nothing is ever invented: a value the record does not hold (or holds in a form the check cannot
use) stays None, so the engine's data gates (ATTEST, doac-rules.md 0.4) speak instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

from clinicos.cds.engine import Facts, RulePack
from clinicos.cds.engine.inputs import MAX_AGE_YEARS, MAX_WEIGHT_KG, plausible_creatinine
from clinicos.kernel.actor import Actor
from clinicos.kernel.errors import Conflict
from clinicos.platform.db.uow import SqlUnitOfWork
from clinicos.platform.phi import PhiKeyring
from clinicos.records import (
    ConditionEntry,
    Demographics,
    LatestObservation,
    MedicationEntry,
    active_conditions,
    active_medications,
    latest_observations,
    patient_demographics,
)

# terminology.md "Observations": LOINC body weight and serum/plasma creatinine (mass, moles).
WEIGHT = "29463-7"
CREATININE_MASS = "2160-0"
CREATININE_MOLES = "14682-9"
RECORD_CODES = (WEIGHT, CREATININE_MASS, CREATININE_MOLES)
# terminology.md "Units and conversions": 1 lb = 0.45359237 kg (exact by definition), 1 g.
_KG_PER_UNIT: dict[str, Decimal] = {
    "kg": Decimal(1),
    "g": Decimal("0.001"),
    "[lb_av]": Decimal("0.45359237"),
}
# The unit each creatinine code is recorded in (records refuses any other, terminology.md);
# the engine converts umol/L itself (÷ 88.4, doac-rules.md 0.5), so values pass through as
# measured and the CrCl is the same either way.
_CREATININE_UNIT: dict[str, Literal["mg/dL", "umol/L"]] = {
    CREATININE_MASS: "mg/dL",
    CREATININE_MOLES: "umol/L",
}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# WHO INN names the engine's lists spell the US way (USAN, doac-rules.md A8). Rifampicin is the
# INN of rifampin: a record written outside the US must not hide a BLOCK-level inducer.
GENERIC_SYNONYMS: dict[str, str] = {"rifampicin": "rifampin"}

# Cockcroft-Gault has a male and a female form; records' "other" and "unknown" map to neither
# (no policy says which to assume), so the check refuses rather than guess.
_ENGINE_SEX: dict[str, Literal["male", "female"]] = {"male": "male", "female": "female"}

ConditionFact = Literal["active_bleeding", "mechanical_valve", "pregnant"]
# terminology.md "Conditions and states". ICD-10 codes match the code and its subcodes (a
# prefix up to the dot); "O" is the whole pregnancy chapter (O00-O9A), as the table says.
# Codes marked (verify) there are used as written until the terminology review.
ICD10_FACTS: tuple[tuple[str, ConditionFact], ...] = (
    ("R58", "active_bleeding"),  # haemorrhage, not elsewhere classified (verify)
    ("Z95.2", "mechanical_valve"),  # presence of prosthetic heart valve
    ("Z33.1", "pregnant"),  # pregnant state, incidental
    ("O", "pregnant"),  # chapter XV: pregnancy, childbirth and the puerperium
)
SNOMED_FACTS: dict[str, ConditionFact] = {
    "131148009": "active_bleeding",  # bleeding
    "77386006": "pregnant",  # pregnancy
}


class RecordIncomplete(Conflict):
    """The record lacks what no data gate covers: Cockcroft-Gault needs a sex (male or female)
    and an age, and no policy says what to assume. Names the fields, never their values."""

    code = "cds_record_incomplete"
    title = "The patient's record lacks facts the check needs"


@dataclass(frozen=True)
class WeightFact:
    """The weight used: as measured (value, unit) and in kg, with when and which observation."""

    value_kg: Decimal
    value: Decimal
    unit: str
    measured_at: date
    observation_id: str


@dataclass(frozen=True)
class CreatinineFact:
    """The serum creatinine used, in the unit it was measured in."""

    value: Decimal
    unit: Literal["mg/dL", "umol/L"]
    code: str
    measured_at: date
    observation_id: str


@dataclass(frozen=True)
class RecognisedMedication:
    """A drug of the rule pack found on the record: its generic name and where it came from."""

    name: str
    source: str
    entry_id: str
    matched_by: Literal["rxnorm", "name"]


@dataclass(frozen=True)
class RecognisedCondition:
    """A condition that set one of the engine's facts."""

    fact: ConditionFact
    entry_id: str
    code_system: Literal["icd-10", "snomed-ct"]
    code: str


@dataclass(frozen=True)
class RecordFacts:
    """The engine's facts and how each was derived from the record (PHI-light: no names, no
    birth date — an age in years)."""

    patient_id: str
    facts: Facts
    age_years: int
    sex: Literal["male", "female"]
    weight: WeightFact | None
    creatinine: CreatinineFact | None
    medications: tuple[RecognisedMedication, ...]
    conditions: tuple[RecognisedCondition, ...]


# -- pure mapping -------------------------------------------------------------------------------


def measured_on(moment: datetime) -> date:
    """The measurement's UTC date (data age is counted in whole UTC days, doac-rules.md 0.4)."""
    return moment.astimezone(UTC).date()


def weight_fact(observation: LatestObservation | None) -> WeightFact | None:
    """The weight in kg, or None when there is none the engine may use (no value, a unit other
    than kg, g or [lb_av], or outside the engine's 0-500 kg bounds)."""
    if observation is None or observation.value is None or observation.unit is None:
        return None
    factor = _KG_PER_UNIT.get(observation.unit)
    if factor is None:
        return None
    kg = (observation.value * factor).normalize()
    if not 0 < kg <= MAX_WEIGHT_KG:
        return None
    return WeightFact(
        value_kg=kg,
        value=observation.value,
        unit=observation.unit,
        measured_at=measured_on(observation.effective_at),
        observation_id=observation.observation_id,
    )


def _creatinine_candidate(observation: LatestObservation | None) -> CreatinineFact | None:
    if observation is None or observation.value is None or observation.value <= 0:
        return None
    unit = _CREATININE_UNIT.get(observation.code)
    if unit is None or observation.unit != unit:
        return None
    if not plausible_creatinine(observation.value, unit):  # a typo, not a fact: the gate asks
        return None
    return CreatinineFact(
        value=observation.value,
        unit=unit,
        code=observation.code,
        measured_at=measured_on(observation.effective_at),
        observation_id=observation.observation_id,
    )


def creatinine_fact(observations: Mapping[str, LatestObservation]) -> CreatinineFact | None:
    """The newer (by ``effective_at``, when the sample was taken) of the latest usable mg/dL
    and umol/L results. On the same instant, the later-issued one (a re-run), then mg/dL."""
    best: tuple[tuple[datetime, datetime, bool], CreatinineFact] | None = None
    for code in (CREATININE_MASS, CREATININE_MOLES):
        observation = observations.get(code)
        candidate = _creatinine_candidate(observation)
        if observation is None or candidate is None:
            continue
        issued = observation.issued_at or observation.effective_at
        rank = (observation.effective_at, issued, code == CREATININE_MASS)
        if best is None or rank > best[0]:
            best = (rank, candidate)
    return None if best is None else best[1]


def normalised_name(text: str) -> str:
    """Lower-case words separated by single spaces, apostrophes and periods dropped like the
    engine's medication names (doac-rules.md A8: "st johns wort")."""
    text = text.lower().replace("\u2019", "").replace("'", "").replace(".", " ")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def pack_vocabulary(pack: RulePack) -> frozenset[str]:
    """Every generic name the pack's rules can act on: the anticoagulants and every list."""
    names: set[str] = set(pack.drugs)
    for list_name in type(pack.drug_lists).model_fields:
        names |= pack.drug_list(list_name)
    return frozenset(names)


def _names_in(display: str, vocabulary: frozenset[str]) -> list[str]:
    """Pack names appearing as whole words in a drug's display ("Lopinavir/Ritonavir 200/50 mg"
    names two), INN synonyms mapped to the pack's spelling."""
    text = f" {normalised_name(display)} "
    found = [name for name in sorted(vocabulary) if f" {name} " in text]
    found += [
        target
        for synonym, target in sorted(GENERIC_SYNONYMS.items())
        if f" {synonym} " in text and target in vocabulary
    ]
    return list(dict.fromkeys(found))


def recognise_medications(
    entries: Iterable[MedicationEntry], pack: RulePack
) -> tuple[RecognisedMedication, ...]:
    """The pack's drugs on the medication list: an anticoagulant by its RxNorm ingredient code
    (terminology.md "Drugs"), else any pack name in the entry's display (terminology.md: other
    medications are matched by generic name). Brand names and ATC codes alone are not
    recognised (no verified table yet)."""
    by_rxnorm = {code: drug for drug, info in pack.drugs.items() for code in info.rxnorm}
    vocabulary = pack_vocabulary(pack)
    found: list[RecognisedMedication] = []
    for entry in entries:
        drug = by_rxnorm.get(entry.code) if entry.code_system == RXNORM else None
        if drug is not None:
            found.append(RecognisedMedication(drug, entry.source, entry.entry_id, "rxnorm"))
            continue
        found.extend(
            RecognisedMedication(name, entry.source, entry.entry_id, "name")
            for name in _names_in(entry.display, vocabulary)
        )
    return tuple(found)


def _icd10_fact(code: str) -> ConditionFact | None:
    code = code.strip().upper()
    for prefix, fact in ICD10_FACTS:
        if code.startswith(prefix):
            return fact
    return None


def recognise_conditions(entries: Iterable[ConditionEntry]) -> tuple[RecognisedCondition, ...]:
    """The active conditions that set an engine fact, by ICD-10 and/or SNOMED CT code."""
    found: list[RecognisedCondition] = []
    for entry in entries:
        if entry.icd10_code is not None:
            fact = _icd10_fact(entry.icd10_code)
            if fact is not None:
                found.append(RecognisedCondition(fact, entry.entry_id, "icd-10", entry.icd10_code))
        if entry.snomed_code is not None:
            snomed = SNOMED_FACTS.get(entry.snomed_code.strip())
            if snomed is not None:
                found.append(
                    RecognisedCondition(snomed, entry.entry_id, "snomed-ct", entry.snomed_code)
                )
    return tuple(found)


def age_on(birth_date: date, day: date) -> int:
    """Whole years on ``day`` (terminology.md: from birthDate, on the evaluation date)."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def record_facts(
    *,
    demographics: Demographics,
    observations: Mapping[str, LatestObservation],
    medications: Iterable[MedicationEntry],
    conditions: Iterable[ConditionEntry],
    pack: RulePack,
    as_of: datetime,
) -> RecordFacts:
    """The engine's facts from the record's parts. A sex other than male/female, or a missing or
    impossible birth date, raises :class:`RecordIncomplete` (409): Cockcroft-Gault cannot run
    without them and no data gate covers them. Missing weight or creatinine stay None."""
    missing: list[str] = []
    sex = _ENGINE_SEX.get(demographics.sex)
    if sex is None:
        missing.append("sex")
    day = as_of.astimezone(UTC).date()  # the engine's evaluation date (UTC)
    age = None if demographics.birth_date is None else age_on(demographics.birth_date, day)
    if age is None or not 0 <= age <= MAX_AGE_YEARS:
        missing.append("birth_date")
    if missing or sex is None or age is None:
        raise RecordIncomplete(
            "the patient's record lacks "
            + " and ".join(missing)
            + " as the check needs them (sex male or female and a birth date giving an age of "
            f"0-{MAX_AGE_YEARS} on the as_of date, for Cockcroft-Gault); update the record "
            "or evaluate with the facts given inline",
            data={"fields": missing},
        )
    weight = weight_fact(observations.get(WEIGHT))
    creatinine = creatinine_fact(observations)
    recognised_medications = recognise_medications(medications, pack)
    recognised_conditions = recognise_conditions(conditions)
    flags = {condition.fact for condition in recognised_conditions}
    facts = Facts(
        age_years=age,
        sex=sex,
        weight_kg=weight.value_kg if weight else None,
        weight_measured_at=weight.measured_at if weight else None,
        serum_creatinine_mg_dl=creatinine.value
        if creatinine and creatinine.unit == "mg/dL"
        else None,
        serum_creatinine_umol_l=creatinine.value
        if creatinine and creatinine.unit == "umol/L"
        else None,
        creatinine_measured_at=creatinine.measured_at if creatinine else None,
        active_bleeding="active_bleeding" in flags,
        mechanical_valve="mechanical_valve" in flags,
        pregnant="pregnant" in flags,
        other_medications=tuple(sorted({m.name for m in recognised_medications})),
    )
    return RecordFacts(
        patient_id=demographics.patient_id,
        facts=facts,
        age_years=age,
        sex=sex,
        weight=weight,
        creatinine=creatinine,
        medications=recognised_medications,
        conditions=recognised_conditions,
    )


# -- the read -----------------------------------------------------------------------------------


async def gather_record_facts(
    uow: SqlUnitOfWork,
    *,
    phi: PhiKeyring,
    actor: Actor,
    patient_id: str,
    pack: RulePack,
    as_of: datetime,
) -> RecordFacts:
    """Read the patient's record in ``uow`` (no audit entry, no commit: the evaluation that
    uses the facts writes the one audit entry) and map it. Another organization's patient, or
    none, is records' generic 404."""
    demographics = await patient_demographics(uow, phi, actor, patient_id)
    observations = await latest_observations(uow, actor, demographics.patient_id, RECORD_CODES)
    medications = await active_medications(uow, actor, demographics.patient_id)
    conditions = await active_conditions(uow, actor, demographics.patient_id)
    return record_facts(
        demographics=demographics,
        observations=observations,
        medications=medications,
        conditions=conditions,
        pack=pack,
        as_of=as_of,
    )

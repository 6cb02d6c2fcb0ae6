"""Pure mapping from a CDS Hooks order hook (draft MedicationRequests and prefetched FHIR
resources) to the engine's facts and order, following shared/clinical/terminology.md.

No I/O, no framework: plain dicts in, plain values out, so every FHIR variant is unit-tested.
What cannot be read stays None (the engine's data gates then answer ATTEST) or is reported by
its FHIR field path (the service turns that into a card: an unreadable order is never silence).
A structurally malformed request raises :class:`HookInputError`, which the service answers 400.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from clinicos.cds.engine import RulePack
from clinicos.cds.engine.inputs import MAX_AGE_YEARS, MAX_WEIGHT_KG, plausible_creatinine

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
ICD10_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm"})
INDICATION_SYSTEM = "urn:clinicos:cs:anticoagulation-indication"
UCUM = "http://unitsofmeasure.org"

WEIGHT_LOINC = "29463-7"
CREATININE_MASS_LOINC = "2160-0"  # mg/dL
CREATININE_MOLES_LOINC = "14682-9"  # umol/L
LB_IN_KG = Decimal("0.45359237")  # terminology.md: 1 lb = 0.45359237 kg

# Prefetch keys the discovery document publishes (routes.py builds the templates from these).
PATIENT_KEY = "patient"
WEIGHT_KEY = "weight"
CREATININE_KEY = "creatinine"
MEDICATIONS_KEY = "medications"
CONDITIONS_KEY = "conditions"
# Without these two the interaction, duplicate, bleeding, valve and pregnancy rules would see
# "none" where the truth is "unknown": reported as a card rather than silently assumed empty.
LIST_PREFETCH_KEYS = (MEDICATIONS_KEY, CONDITIONS_KEY)

INDICATIONS = frozenset({"nvaf", "vte_treatment", "vte_prophylaxis"})
# terminology.md "Anticoagulation indication": AF -> nvaf; DVT/PE -> vte_treatment.
_SNOMED_INDICATIONS = {
    "49436004": "nvaf",
    "128053003": "vte_treatment",
    "59282003": "vte_treatment",
}
_ICD10_INDICATION_PREFIXES = (("I48", "nvaf"), ("I824", "vte_treatment"), ("I26", "vte_treatment"))
# terminology.md "Conditions and states" (codes marked "(verify)" there without a value are not
# guessed: a mechanical valve is recognised by ICD-10 Z95.2 only).
_SNOMED_PREGNANT = frozenset({"77386006"})
_SNOMED_BLEEDING = frozenset({"131148009"})
_ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
_REFUTED = frozenset({"entered-in-error", "refuted"})
_UNUSABLE_OBSERVATION = frozenset({"entered-in-error", "cancelled", "registered"})
_USABLE_ORDER_STATUS = frozenset({"active", "on-hold", "draft"})

# US brand names of the orderable anticoagulants: clients often send only the brand in text.
_BRANDS = {
    "eliquis": "apixaban",
    "xarelto": "rivaroxaban",
    "pradaxa": "dabigatran",
    "savaysa": "edoxaban",
    "lixiana": "edoxaban",
    "coumadin": "warfarin",
    "jantoven": "warfarin",
}
_FREQUENCY_BY_PER_DAY = {1: "QD", 2: "BID", 3: "TID", 4: "QID"}
# HL7 v3 GTSAbbreviation codes (Timing.code) that fix a daily count.
_TIMING_CODES = {
    "QD": "QD",
    "BID": "BID",
    "TID": "TID",
    "QID": "QID",
    "AM": "QD",
    "PM": "QD",
    "Q24H": "QD",
    "Q12H": "BID",
    "Q8H": "TID",
    "Q6H": "QID",
}
_PERIOD_UNITS_PER_DAY: dict[str, Decimal] = {
    "s": Decimal(86400),
    "min": Decimal(1440),
    "h": Decimal(24),
    "d": Decimal(1),
}
MAX_MEDICATION_CHARS = 200
MAX_LIST_RESOURCES = 500
MAX_DRAFT_ORDERS = 50

# Field paths reported for an order the engine cannot check (FHIR paths, never values).
DRUG_FIELD = "medicationCodeableConcept"
DOSE_FIELD = "dosageInstruction[0].doseAndRate[0].doseQuantity"
TIMING_FIELD = "dosageInstruction[0].timing.repeat"
REASON_FIELD = "reasonCode"
BIRTH_DATE_FIELD = "Patient.birthDate"
GENDER_FIELD = "Patient.gender"
PATIENT_FIELD = "prefetch.patient"


class HookInputError(ValueError):
    """The request is not a well-formed CDS Hooks call (answered 400 naming ``loc``)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclass(frozen=True)
class Terminology:
    """What mapping needs from the rule pack: RxNorm ingredient codes of the orderable drugs
    and every generic name the engine's interaction and duplicate lists compare against."""

    rxnorm: Mapping[str, str]
    orderable: frozenset[str]
    known_names: tuple[str, ...]

    @classmethod
    def from_pack(cls, pack: RulePack) -> Terminology:
        rxnorm = {code: drug for drug, info in pack.drugs.items() for code in info.rxnorm}
        names: set[str] = set(pack.drugs)
        for list_name in type(pack.drug_lists).model_fields:
            names |= pack.drug_list(list_name)
        # Longest first, so "st johns wort" wins over any shorter name inside it.
        return cls(
            rxnorm=rxnorm,
            orderable=frozenset(pack.drugs),
            known_names=tuple(sorted(names, key=lambda n: (-len(n), n))),
        )


@dataclass(frozen=True)
class PatientFacts:
    """The patient half of the engine's facts as read from prefetch.

    ``facts`` holds the ``Facts`` fields (without ``other_medications`` from other drafts);
    ``unreadable`` the fields that stop the engine (age or sex); ``unresolved`` the list
    prefetch keys the client did not send (so interactions and conditions are unknown).
    """

    facts: dict[str, Any]
    unreadable: tuple[str, ...]
    unresolved: tuple[str, ...]


@dataclass(frozen=True)
class DraftOrder:
    """One draft MedicationRequest: what it orders and, for an anticoagulant, the engine order
    (None with ``unreadable`` field paths when dose, frequency or indication cannot be read)."""

    index: int
    resource: Mapping[str, Any]
    drug: str | None
    names: tuple[str, ...]
    order: dict[str, Any] | None = None
    unreadable: tuple[str, ...] = field(default=())

    @property
    def reference(self) -> str | None:
        rid = self.resource.get("id")
        return f"MedicationRequest/{rid}" if isinstance(rid, str) and rid else None


# -- small readers -------------------------------------------------------------------------------


def _as_dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    """A string member as itself; anything else (a list or an object where FHIR has a code,
    which a set or dict lookup could not even hash) as None."""
    return value if isinstance(value, str) else None


def normalize_name(text: str) -> str:
    """doac-rules.md A8: lowercase generic names, apostrophes and dots dropped."""
    text = text.lower().replace("\u2019", "").replace("'", "").replace(".", " ")
    return re.sub(r"\s+", " ", text).strip()


# No dose, weight, creatinine or timing is written with 31 digits before the point or 30 zeros
# after it: such numbers are unreadable, which keeps every product and quotient (Cockcroft-Gault
# divides by the creatinine) within the decimal context's precision and exponent range.
_MAX_ADJUSTED_EXPONENT = 30


def _decimal(value: Any) -> Decimal | None:
    """A JSON number as an exact Decimal (via its shortest text, so 67.05 stays 67.05); None
    when it is not a finite number of a sane magnitude."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):  # ValueError: an int past 4,300 digits
        return None
    if not number.is_finite():
        return None
    if number and abs(number.adjusted()) > _MAX_ADJUSTED_EXPONENT:
        return None
    return number


def _codings(concept: Any) -> Iterator[tuple[str, str, str]]:
    """(system, code, display) of a CodeableConcept's codings."""
    for coding in _as_list(_as_dict(concept).get("coding")):
        coding = _as_dict(coding)
        system, code = coding.get("system"), coding.get("code")
        display = coding.get("display")
        yield (
            system if isinstance(system, str) else "",
            code.strip() if isinstance(code, str) else "",
            display if isinstance(display, str) else "",
        )


def _texts(concept: Any) -> list[str]:
    concept = _as_dict(concept)
    found = [concept["text"]] if isinstance(concept.get("text"), str) else []
    return found + [display for _, _, display in _codings(concept) if display]


def _icd10(code: str) -> str:
    return code.upper().replace(".", "").strip()


def _fhir_moment(value: Any) -> tuple[datetime | None, date | None]:
    """A FHIR dateTime/instant as (sort key, UTC measurement date). Partial dates ("2026-11")
    and zone-less times cannot be placed on a UTC day: no date, so the data gate says stale."""
    if not isinstance(value, str):
        return None, None
    try:
        if "T" not in value:
            day = date.fromisoformat(value)
            return datetime.combine(day, time(), tzinfo=UTC), day
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, None
    if moment.tzinfo is None:
        return None, None
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 falls before the first UTC instant
        return None, None
    return moment, moment.date()


def _effective(resource: Mapping[str, Any]) -> tuple[datetime | None, date | None]:
    """terminology.md: the measurement time is ``effectiveDateTime`` (collection), not
    ``issued``; an instant or a period's start stand in when a client sends those instead."""
    for value in (
        resource.get("effectiveDateTime"),
        resource.get("effectiveInstant"),
        _as_dict(resource.get("effectivePeriod")).get("start"),
    ):
        if value is not None:
            return _fhir_moment(value)
    return None, None


def _unit(quantity: Mapping[str, Any]) -> str:
    """The quantity's unit: the UCUM code when given, else the display unit; normalized."""
    code, unit = quantity.get("code"), quantity.get("unit")
    chosen = code if isinstance(code, str) and code else unit
    if not isinstance(chosen, str):
        return ""
    return chosen.strip().lower().replace("\u00b5", "u").replace("\u03bc", "u").replace(" ", "")


# -- prefetch ------------------------------------------------------------------------------------


def _patient_id_of(reference: Any) -> str | None:
    match = re.search(r"(?:^|/)Patient/([^/]+)$", reference) if isinstance(reference, str) else None
    return match.group(1) if match else None


def _require_same_patient(
    resource: Mapping[str, Any], patient_id: str, loc: tuple[str | int, ...]
) -> None:
    """A prefetched resource about another patient is a client error, never data to use."""
    for name in ("subject", "patient"):
        other = _patient_id_of(_as_dict(resource.get(name)).get("reference"))
        if other is not None and other != patient_id:
            raise HookInputError(loc, "refers to a patient other than context.patientId")


def prefetch_resources(
    prefetch: Mapping[str, Any], key: str, resource_type: str, patient_id: str
) -> list[Mapping[str, Any]] | None:
    """The resources of one prefetch key: a searchset Bundle, a single resource, or null (the
    client found nothing: an empty list). None when the key is absent (not prefetched)."""
    if key not in prefetch:
        return None
    value = prefetch[key]
    loc: tuple[str | int, ...] = ("prefetch", key)
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise HookInputError(loc, "must be a FHIR resource, a Bundle, or null")
    if value.get("resourceType") == "Bundle":
        entries = value.get("entry", [])
        if not isinstance(entries, list):
            raise HookInputError((*loc, "entry"), "must be a list")
        if len(entries) > MAX_LIST_RESOURCES:
            raise HookInputError((*loc, "entry"), f"at most {MAX_LIST_RESOURCES} entries")
        resources = [_as_dict(_as_dict(entry).get("resource")) for entry in entries]
    else:
        resources = [value]
    found = [r for r in resources if r.get("resourceType") == resource_type]
    for index, resource in enumerate(found):
        _require_same_patient(resource, patient_id, (*loc, index))
    return found


def _patient(
    prefetch: Mapping[str, Any], patient_id: str, as_of: date
) -> tuple[dict[str, Any], list[str]]:
    patients = prefetch_resources(prefetch, PATIENT_KEY, "Patient", patient_id)
    if not patients:
        return {}, [PATIENT_FIELD]
    patient = patients[0]
    if isinstance(patient.get("id"), str) and patient["id"] != patient_id:
        raise HookInputError(("prefetch", PATIENT_KEY, "id"), "is not context.patientId")
    facts: dict[str, Any] = {}
    unreadable: list[str] = []
    gender = patient.get("gender")
    if gender in ("male", "female"):
        facts["sex"] = gender
    else:  # Cockcroft-Gault needs male or female; "other"/"unknown" cannot be computed
        unreadable.append(GENDER_FIELD)
    birth = _birth_date(patient.get("birthDate"), as_of)
    if birth is None:
        unreadable.append(BIRTH_DATE_FIELD)
    else:
        facts["birth_date"] = birth
    return facts, unreadable


def _birth_date(value: Any, as_of: date) -> date | None:
    """A full birth date giving an age of 0-130 on the evaluation date (terminology.md: whole
    years from birthDate); a partial date ("1950") cannot give an exact age."""
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        born = date.fromisoformat(value)
    except ValueError:
        return None
    age = as_of.year - born.year - ((as_of.month, as_of.day) < (born.month, born.day))
    return born if 0 <= age <= MAX_AGE_YEARS else None


def _observations(
    prefetch: Mapping[str, Any], key: str, codes: frozenset[str], patient_id: str
) -> list[Mapping[str, Any]]:
    found = prefetch_resources(prefetch, key, "Observation", patient_id) or []
    usable = []
    for observation in found:
        if _text(observation.get("status")) in _UNUSABLE_OBSERVATION:
            continue
        loinc = {c for s, c, _ in _codings(observation.get("code")) if s == LOINC}
        if loinc & codes:
            usable.append(observation)
    # Latest measurement first; undated ones last (they can only ever be "stale").
    return sorted(
        usable,
        key=lambda o: _effective(o)[0] or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )


def weight_kg(observation: Mapping[str, Any]) -> Decimal | None:
    """A body weight in kg from valueQuantity (kg, g or [lb_av]); None if unusable."""
    quantity = _as_dict(observation.get("valueQuantity"))
    value = _decimal(quantity.get("value"))
    if value is None:
        return None
    unit = _unit(quantity)
    if unit == "kg":
        kg = value
    elif unit == "g":
        kg = value / 1000
    elif unit in ("[lb_av]", "lb", "lbs"):
        kg = value * LB_IN_KG
    else:
        return None
    # An impossible weight is not a fact: left out, the data gate asks for a fresh one.
    return kg if 0 < kg <= MAX_WEIGHT_KG else None


def creatinine(observation: Mapping[str, Any]) -> tuple[str, Decimal] | None:
    """(Facts field, value): mg/dL or umol/L as measured (the engine converts, ÷ 88.4)."""
    quantity = _as_dict(observation.get("valueQuantity"))
    value = _decimal(quantity.get("value"))
    if value is None or value <= 0:
        return None
    unit = _unit(quantity)
    # An implausible value is not a fact: left out, the data gate asks for a fresh one.
    if unit == "mg/dl" and plausible_creatinine(value, "mg/dL"):
        return "serum_creatinine_mg_dl", value
    if unit == "umol/l" and plausible_creatinine(value, "umol/L"):
        return "serum_creatinine_umol_l", value
    return None


def _measurements(prefetch: Mapping[str, Any], patient_id: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"weight_kg": None, "weight_measured_at": None}
    for observation in _observations(prefetch, WEIGHT_KEY, frozenset({WEIGHT_LOINC}), patient_id):
        kg = weight_kg(observation)
        if kg is not None:
            facts["weight_kg"], facts["weight_measured_at"] = kg, _effective(observation)[1]
            break
    facts["creatinine_measured_at"] = None
    creatinine_codes = frozenset({CREATININE_MASS_LOINC, CREATININE_MOLES_LOINC})
    for observation in _observations(prefetch, CREATININE_KEY, creatinine_codes, patient_id):
        measured = creatinine(observation)
        if measured is not None:
            facts[measured[0]] = measured[1]
            facts["creatinine_measured_at"] = _effective(observation)[1]
            break
    return facts


def condition_flags(conditions: Iterable[Mapping[str, Any]]) -> dict[str, bool]:
    """active_bleeding, mechanical_valve and pregnant from active, unrefuted Conditions."""
    flags = {"active_bleeding": False, "mechanical_valve": False, "pregnant": False}
    for condition in conditions:
        clinical = {c for _, c, _ in _codings(condition.get("clinicalStatus"))}
        verification = {c for _, c, _ in _codings(condition.get("verificationStatus"))}
        if (clinical and not clinical & _ACTIVE_CLINICAL) or verification & _REFUTED:
            continue
        for system, code, _ in _codings(condition.get("code")):
            if system in ICD10_SYSTEMS:
                icd = _icd10(code)
                flags["mechanical_valve"] |= icd.startswith("Z952")
                flags["pregnant"] |= icd.startswith("Z331") or icd.startswith("O")
                flags["active_bleeding"] |= icd.startswith("R58")
            elif system == SNOMED:
                flags["pregnant"] |= code in _SNOMED_PREGNANT
                flags["active_bleeding"] |= code in _SNOMED_BLEEDING
    return flags


def patient_facts(
    prefetch: Mapping[str, Any] | None,
    *,
    patient_id: str,
    as_of: date,
    terminology: Terminology,
    draft_ids: frozenset[str] = frozenset(),
) -> PatientFacts:
    """Facts from prefetch: Patient (age, sex), latest weight and creatinine, active
    MedicationRequests (other medications) and active Conditions (bleeding, valve, pregnancy).
    ``draft_ids``: MedicationRequest ids of the draft orders, not counted as active medications.
    """
    prefetch = prefetch or {}
    facts, unreadable = _patient(prefetch, patient_id, as_of)
    facts |= _measurements(prefetch, patient_id)
    unresolved = tuple(key for key in LIST_PREFETCH_KEYS if key not in prefetch)
    conditions = prefetch_resources(prefetch, CONDITIONS_KEY, "Condition", patient_id) or []
    facts |= condition_flags(conditions)
    requests = prefetch_resources(prefetch, MEDICATIONS_KEY, "MedicationRequest", patient_id)
    names: list[str] = []
    for request in requests or []:
        if _text(request.get("id")) in draft_ids:
            continue
        status = request.get("status")
        if status is not None and _text(status) not in _USABLE_ORDER_STATUS:
            continue
        names.extend(medication_names(request, terminology)[1])
    facts["other_medications"] = tuple(dict.fromkeys(names))
    return PatientFacts(facts=facts, unreadable=tuple(unreadable), unresolved=unresolved)


# -- the ordered medication ----------------------------------------------------------------------


def _medication_concepts(resource: Mapping[str, Any]) -> list[Any]:
    """The CodeableConcepts naming a MedicationRequest's medication (R4, contained, or R5)."""
    concepts: list[Any] = []
    if "medicationCodeableConcept" in resource:
        concepts.append(resource["medicationCodeableConcept"])
    reference = _as_dict(resource.get("medicationReference"))
    r5 = _as_dict(resource.get("medication"))
    if r5:
        concepts.append(r5.get("concept"))
        reference = reference or _as_dict(r5.get("reference"))
    target = reference.get("reference")
    if isinstance(target, str) and target.startswith("#"):
        for contained in _as_list(resource.get("contained")):
            contained = _as_dict(contained)
            if contained.get("resourceType") == "Medication" and contained.get("id") == target[1:]:
                concepts.append(contained.get("code"))
    if isinstance(reference.get("display"), str):
        concepts.append({"text": reference["display"]})
    return concepts


def _words(text: str) -> str:
    return f" {re.sub(r'[^a-z0-9]+', ' ', normalize_name(text))} "


def medication_names(
    resource: Mapping[str, Any], terminology: Terminology
) -> tuple[tuple[str, ...], list[str]]:
    """(orderable anticoagulants it names, generic names for the engine's medication list).

    terminology.md: match by code first (RxNorm ingredient), then a case-insensitive generic
    name in ``coding.display`` or ``text``. A text naming none of the engine's drugs is kept
    as written (normalized), so the duplicate check still sees an unknown anticoagulant name.
    """
    concepts = _medication_concepts(resource)
    for concept in concepts:
        for system, code, _ in _codings(concept):
            if system == RXNORM and code in terminology.rxnorm:
                drug = terminology.rxnorm[code]
                return (drug,), [drug]
    texts = [text for concept in concepts for text in _texts(concept)]
    found: list[str] = []
    for text in texts:
        words = _words(text)
        for name in terminology.known_names:
            if f" {name} " in words and name not in found:
                found.append(name)
        for brand, generic in _BRANDS.items():
            if f" {brand} " in words and generic not in found:
                found.append(generic)
    if found:
        return tuple(name for name in found if name in terminology.orderable), found
    first = next((normalize_name(t) for t in texts if normalize_name(t)), None)
    return (), [first[:MAX_MEDICATION_CHARS]] if first else []


def dose_mg(dose_quantity: Any) -> Decimal | None:
    """A dose in mg from a doseQuantity in mg, g or micrograms; None otherwise (a dose in
    tablets needs the product strength, which the order does not carry reliably)."""
    quantity = _as_dict(dose_quantity)
    value = _decimal(quantity.get("value"))
    if value is None or value <= 0:
        return None
    unit = _unit(quantity)
    if unit == "mg":
        return value
    if unit == "g":
        return value * 1000
    if unit in ("ug", "mcg"):
        return value / 1000
    return None


def frequency_code(timing: Any) -> str | None:
    """QD/BID/TID/QID from ``timing.repeat`` (frequency per period, periodUnit s/min/h/d;
    or a count of timeOfDay/when with no period), else from ``timing.code``."""
    timing = _as_dict(timing)
    repeat = _as_dict(timing.get("repeat"))
    per_day = _per_day(repeat) if repeat else None
    if per_day is not None:
        return _FREQUENCY_BY_PER_DAY.get(per_day)
    for _, code, _ in _codings(timing.get("code")):
        if code.upper() in _TIMING_CODES:
            return _TIMING_CODES[code.upper()]
    text = _as_dict(timing.get("code")).get("text")
    if isinstance(text, str) and text.strip().upper() in _TIMING_CODES:
        return _TIMING_CODES[text.strip().upper()]
    return None


def _per_day(repeat: Mapping[str, Any]) -> int | None:
    period = _decimal(repeat.get("period"))
    unit = _text(repeat.get("periodUnit"))
    frequency = _decimal(repeat.get("frequency", 1))
    if period is None:
        times = _as_list(repeat.get("timeOfDay")) or _as_list(repeat.get("when"))
        return len(times) if times and "frequency" not in repeat else None
    if frequency is None or frequency <= 0 or period <= 0 or unit not in _PERIOD_UNITS_PER_DAY:
        return None
    per_day = frequency * _PERIOD_UNITS_PER_DAY[unit] / period
    return int(per_day) if per_day == per_day.to_integral_value() else None


def indication_of(resource: Mapping[str, Any]) -> str | None:
    """nvaf / vte_treatment / vte_prophylaxis from ``reasonCode`` (or R5 ``reason.concept``).

    The project's own code system wins (it is the only one that says prophylaxis); clinical
    codes map AF -> nvaf and DVT/PE -> vte_treatment. Two different answers -> None (ambiguous).
    """
    concepts = list(_as_list(resource.get("reasonCode")))
    concepts += [_as_dict(r).get("concept") for r in _as_list(resource.get("reason"))]
    own: set[str] = set()
    clinical: set[str] = set()
    for concept in concepts:
        for system, code, _ in _codings(concept):
            if system == INDICATION_SYSTEM and code in INDICATIONS:
                own.add(code)
            elif system == SNOMED and code in _SNOMED_INDICATIONS:
                clinical.add(_SNOMED_INDICATIONS[code])
            elif system in ICD10_SYSTEMS:
                icd = _icd10(code)
                clinical |= {
                    ind for prefix, ind in _ICD10_INDICATION_PREFIXES if icd.startswith(prefix)
                }
    chosen = own or clinical
    return next(iter(chosen)) if len(chosen) == 1 else None


def engine_order(
    resource: Mapping[str, Any], drug: str
) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
    """The engine's order from a draft MedicationRequest, or the field paths it lacks."""
    dosages = _as_list(resource.get("dosageInstruction"))
    dosage = _as_dict(dosages[0]) if dosages else {}
    dose_and_rate = _as_list(dosage.get("doseAndRate"))
    dose = dose_mg(_as_dict(dose_and_rate[0]).get("doseQuantity")) if dose_and_rate else None
    frequency = frequency_code(dosage.get("timing"))
    indication = indication_of(resource)
    unreadable = tuple(
        name
        for name, value in (
            (DOSE_FIELD, dose),
            (TIMING_FIELD, frequency),
            (REASON_FIELD, indication),
        )
        if value is None
    )
    if unreadable:
        return None, unreadable
    return {"drug": drug, "dose_mg": dose, "frequency": frequency, "indication": indication}, ()


def draft_orders(draft_orders_bundle: Any, terminology: Terminology) -> list[DraftOrder]:
    """Every MedicationRequest of ``context.draftOrders`` (other order types are not ours)."""
    loc: tuple[str | int, ...] = ("context", "draftOrders")
    bundle = _as_dict(draft_orders_bundle)
    if bundle.get("resourceType") != "Bundle":
        raise HookInputError(loc, "must be a FHIR Bundle")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise HookInputError((*loc, "entry"), "must be a list")
    if len(entries) > MAX_DRAFT_ORDERS:
        raise HookInputError((*loc, "entry"), f"at most {MAX_DRAFT_ORDERS} draft orders")
    drafts = []
    for index, entry in enumerate(entries):
        resource = _as_dict(_as_dict(entry).get("resource"))
        if not resource.get("resourceType"):
            raise HookInputError((*loc, "entry", index, "resource"), "must be a FHIR resource")
        if resource.get("resourceType") != "MedicationRequest":
            continue
        drugs, names = medication_names(resource, terminology)
        if len(drugs) > 1:  # "apixaban or rivaroxaban": an anticoagulant, but which one?
            drafts.append(DraftOrder(index, resource, drugs[0], tuple(names), None, (DRUG_FIELD,)))
            continue
        drug = drugs[0] if drugs else None
        order, unreadable = engine_order(resource, drug) if drug else (None, ())
        drafts.append(DraftOrder(index, resource, drug, tuple(names), order, unreadable))
    return drafts


def selected(drafts: Sequence[DraftOrder], selections: Sequence[str] | None) -> list[DraftOrder]:
    """order-select checks only the orders the user just selected; order-sign checks all."""
    if selections is None:
        return list(drafts)
    wanted = set(selections)
    return [d for d in drafts if d.reference is not None and d.reference in wanted]

"""The record's JSON API contract for observations, conditions, allergies, the medication list
and prescriptions (Pydantic).

Strict like the patient schemas: unknown fields are refused, every string and number is
bounded, and an invalid value is named by its field in the 422, never echoed. Shapes and
vocabularies are checked here; what needs the terminology (LOINC check digits, plausible
weights, BP components) or the clock is checked by the use cases, which also serve imports."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from clinicos.records.schemas import StrictModel
from clinicos.records.services.clinical import (
    LOINC,
    AllergyCategory,
    AllergyClinicalStatus,
    AllergyVerificationStatus,
    ConditionClinicalStatus,
    ConditionVerificationStatus,
    Criticality,
    ObservationCategory,
    ObservationStatus,
)
from clinicos.records.services.medications import PrescriptionStatus, StatementStatus
from clinicos.records.services.terminology import normalise_unit

MAX_COMPONENTS = 10

MedicationCodeSystem = Literal[
    "http://www.nlm.nih.gov/research/umls/rxnorm", "http://www.whocc.no/atc"
]
AllergyCodeSystem = Literal[
    "http://www.nlm.nih.gov/research/umls/rxnorm",
    "http://snomed.info/sct",
    "http://www.whocc.no/atc",
]


def _unit(value: Any) -> Any:
    return normalise_unit(value) if isinstance(value, str) else value


EntryId = Annotated[str, StringConstraints(min_length=1, max_length=36)]
CodeSystemUri = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=4, max_length=200, pattern=r"^(https?://|urn:)\S+$"
    ),
]
Code = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^\S+$")
]
Display = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# UCUM codes are printable ASCII without spaces (kg, mg/dL, umol/L, mm[Hg], {INR}).
Unit = Annotated[
    str,
    BeforeValidator(_unit),
    StringConstraints(min_length=1, max_length=32, pattern=r"^[!-~]+$"),
]
# Up to 9 integer digits and 6 decimals: beyond any laboratory result, and exact on SQLite too
# (whose NUMERIC keeps 15 significant digits).
Measurement = Annotated[Decimal, Field(max_digits=15, decimal_places=6, allow_inf_nan=False)]
Dose = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=4, allow_inf_nan=False)]
Frequency = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_upper=True,
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ./-]*$",
    ),
    Field(description="A code such as QD, BID, TID, QID, Q8H, PRN"),
]
Route = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z][A-Za-z -]*$",
    ),
    Field(description="oral, intravenous, subcutaneous …"),
]
Indication = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$"
    ),
    Field(description="A code: nvaf, vte_treatment, vte_prophylaxis, or an ICD-10 code"),
]
Icd10Code = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, min_length=3, max_length=16)
]
SnomedCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=6, max_length=18, pattern=r"^[0-9]+$")
]
Version = Annotated[int, Field(ge=1, description="The version read; 409 if it changed since")]


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


# Read side: decimals leave as JSON numbers (72.5, not "72.5000000000").
Number = Annotated[
    Decimal, PlainSerializer(_json_number, return_type=int | float, when_used="json")
]


def _present(value: object, info: ValidationInfo) -> object:
    """A PATCH may leave a required field out, but not clear it."""
    if value is None:
        raise ValueError(f"{info.field_name} may not be null")
    return value


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


T = TypeVar("T")


class EntryPageRead(BaseModel, Generic[T]):
    patient_id: str
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class EntryRead(ReadModel):
    id: str
    patient_id: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int


# -- observations -------------------------------------------------------------------------------


class ComponentBody(StrictModel):
    code: Code = Field(description="LOINC, e.g. 8480-6 systolic, 8462-4 diastolic")
    display: Display | None = None
    value: Measurement
    unit: Unit


class ObservationCreate(StrictModel):
    code_system: CodeSystemUri = LOINC
    code: Code = Field(description="LOINC code, e.g. 29463-7 body weight")
    display: Display | None = None
    category: ObservationCategory
    status: ObservationStatus = "final"
    value: Measurement | None = Field(default=None, description="A quantity, with `unit`")
    unit: Unit | None = Field(default=None, description="UCUM, e.g. kg, mg/dL, umol/L")
    value_text: Display | None = None
    components: list[ComponentBody] | None = Field(default=None, max_length=MAX_COMPONENTS)
    effective_at: AwareDatetime = Field(description="When the sample was collected or measured")
    issued_at: AwareDatetime | None = Field(default=None, description="When it was released")
    encounter_id: EntryId | None = None


class ObservationUpdate(StrictModel):
    """Partial update: only the fields present change; ``null`` clears an optional field.
    A new value of a released result makes it ``amended`` unless ``status`` says otherwise."""

    version: Version | None = None
    status: ObservationStatus | None = None
    display: Display | None = None
    value: Measurement | None = None
    unit: Unit | None = None
    value_text: Display | None = None
    components: list[ComponentBody] | None = Field(default=None, max_length=MAX_COMPONENTS)
    issued_at: AwareDatetime | None = None

    _status_present = field_validator("status")(_present)


class ComponentRead(BaseModel):
    code: str
    display: str | None = None
    value: Number
    unit: str


class ObservationRead(EntryRead):
    encounter_id: str | None
    status: str
    category: str
    code_system: str
    code: str
    display: str | None
    value: Number | None
    unit: str | None
    value_text: str | None
    components: list[ComponentRead]
    effective_at: datetime
    issued_at: datetime | None

    @field_validator("components", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


# -- conditions ---------------------------------------------------------------------------------


class ConditionCreate(StrictModel):
    icd10_code: Icd10Code | None = Field(default=None, description="e.g. I48.91")
    snomed_code: SnomedCode | None = Field(default=None, description="e.g. 49436004")
    display: Display | None = None
    clinical_status: ConditionClinicalStatus = "active"
    verification_status: ConditionVerificationStatus = "confirmed"
    onset_date: date | None = None
    abatement_date: date | None = None
    encounter_id: EntryId | None = None


class ConditionUpdate(StrictModel):
    version: Version | None = None
    icd10_code: Icd10Code | None = None
    snomed_code: SnomedCode | None = None
    display: Display | None = None
    clinical_status: ConditionClinicalStatus | None = None
    verification_status: ConditionVerificationStatus | None = None
    onset_date: date | None = None
    abatement_date: date | None = None

    _statuses_present = field_validator("clinical_status", "verification_status")(_present)


class ConditionRead(EntryRead):
    encounter_id: str | None
    icd10_code: str | None
    snomed_code: str | None
    display: str | None
    clinical_status: str
    verification_status: str
    onset_date: date | None
    abatement_date: date | None


# -- allergies ----------------------------------------------------------------------------------


class AllergyCreate(StrictModel):
    code_system: AllergyCodeSystem
    code: Code
    display: Display | None = None
    category: AllergyCategory | None = None
    clinical_status: AllergyClinicalStatus = "active"
    verification_status: AllergyVerificationStatus = "confirmed"
    criticality: Criticality | None = None
    reaction: Display | None = Field(default=None, description="e.g. urticaria, anaphylaxis")


class AllergyUpdate(StrictModel):
    version: Version | None = None
    display: Display | None = None
    category: AllergyCategory | None = None
    clinical_status: AllergyClinicalStatus | None = None
    verification_status: AllergyVerificationStatus | None = None
    criticality: Criticality | None = None
    reaction: Display | None = None

    _statuses_present = field_validator("clinical_status", "verification_status")(_present)


class AllergyRead(EntryRead):
    code_system: str
    code: str
    display: str | None
    category: str | None
    clinical_status: str
    verification_status: str
    criticality: str | None
    reaction: str | None


# -- the medication list and prescriptions ------------------------------------------------------


class MedicationBody(StrictModel):
    code_system: MedicationCodeSystem = "http://www.nlm.nih.gov/research/umls/rxnorm"
    code: Code = Field(description="RxCUI (e.g. 1364430 apixaban) or ATC code")
    display: Display = Field(description="The drug's name")
    dose: Dose | None = None
    dose_unit: Unit | None = None
    frequency: Frequency | None = None
    route: Route | None = None


class MedicationCreate(MedicationBody):
    status: StatementStatus = "active"
    effective_start: date | None = None
    effective_end: date | None = None


class MedicationChanges(StrictModel):
    version: Version | None = None
    code_system: MedicationCodeSystem | None = None
    code: Code | None = None
    display: Display | None = None
    dose: Dose | None = None
    dose_unit: Unit | None = None
    frequency: Frequency | None = None
    route: Route | None = None

    _drug_present = field_validator("code_system", "code", "display")(_present)


class MedicationUpdate(MedicationChanges):
    status: StatementStatus | None = None
    effective_start: date | None = None
    effective_end: date | None = None

    _status_present = field_validator("status")(_present)


class PrescriptionCreate(MedicationBody):
    indication: Indication | None = None
    encounter_id: EntryId | None = None


class PrescriptionUpdate(MedicationChanges):
    indication: Indication | None = None


class PrescriptionAction(StrictModel):
    """Body of issue / complete / cancel (optional): the version read, for a 409 if it moved."""

    version: Version | None = None


class _MedicationRead(EntryRead):
    code_system: str
    code: str
    display: str
    dose: Number | None
    dose_unit: str | None
    frequency: str | None
    route: str | None


class MedicationRead(_MedicationRead):
    status: StatementStatus
    effective_start: date | None
    effective_end: date | None
    source_prescription_id: str | None


class PrescriptionRead(_MedicationRead):
    encounter_id: str | None
    status: PrescriptionStatus
    indication: str | None
    prescriber_id: str
    issued_at: datetime | None
    ended_at: datetime | None
    cds_evaluation_id: str | None = Field(
        description="The decision-support evaluation the issue passed, if one ran"
    )


ObservationPage = EntryPageRead[ObservationRead]
ConditionPage = EntryPageRead[ConditionRead]
AllergyPage = EntryPageRead[AllergyRead]
MedicationPage = EntryPageRead[MedicationRead]
PrescriptionPage = EntryPageRead[PrescriptionRead]

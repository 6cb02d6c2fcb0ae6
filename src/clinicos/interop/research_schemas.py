"""The API contract of de-identified research exports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from clinicos.interop.research import MAX_LOINC_CODES, Dataset
from clinicos.platform.http.strict import StrictBody

LoincCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,7}-[0-9]$")]
Period = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}(-(0[1-9]|1[0-2]))?$")]


class ResearchExportCreate(StrictBody):
    """Which data (``datasets``; observations by ``loinc_codes``), an optional period on each
    entry's clinical date (``from_period``/``to_period``: ``YYYY`` or ``YYYY-MM``, both
    included, never finer than ``date_precision``) and how precise dates are (``year``: HIPAA
    Safe Harbor; ``month``: beyond it, see docs/contexts/interop.md)."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[Dataset] = Field(min_length=1, max_length=4)
    loinc_codes: list[LoincCode] = Field(default_factory=list, max_length=MAX_LOINC_CODES)
    from_period: Period | None = None
    to_period: Period | None = None
    date_precision: Literal["year", "month"] = "year"


class Component(BaseModel):
    code: str
    value: str | None
    unit: str | None


class ObservationRow(BaseModel):
    code: str
    category: str
    status: str
    value: str | None = Field(description="A decimal, as text (exact)")
    unit: str | None
    components: list[Component]
    effective: str | None = Field(description="YYYY or YYYY-MM")


class ConditionRow(BaseModel):
    icd10_code: str | None
    snomed_code: str | None
    clinical_status: str
    verification_status: str
    onset: str | None
    abatement: str | None
    recorded: str | None


class MedicationRow(BaseModel):
    code_system: str
    code: str
    status: str
    dose: str | None
    dose_unit: str | None
    frequency: str | None
    route: str | None
    started: str | None
    ended: str | None


class PrescriptionRow(MedicationRow):
    indication: str | None


class ResearchPatient(BaseModel):
    """One patient, de-identified. A dataset that was not asked for is null."""

    pseudonym: str = Field(description="Stable within this export only")
    sex: str
    birth_year: int | None = Field(description="Withheld (null) from age 90")
    age_band: str | None = Field(description="Five-year band on the export date, or 90+")
    observations: list[ObservationRow] | None = None
    conditions: list[ConditionRow] | None = None
    medications: list[MedicationRow] | None = None
    anticoagulant_prescriptions: list[PrescriptionRow] | None = None


class ResearchExportRead(BaseModel):
    export_id: str
    ran_at: datetime
    datasets: list[str]
    date_precision: str
    patients_included: int
    patients_excluded_for_consent: int = Field(
        description="Patients with matching data left out: research consent not granted"
    )
    patients: list[ResearchPatient]

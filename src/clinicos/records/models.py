"""The clinical record's tables: patients, encounters, notes, observations, conditions,
allergies, the medication list and prescriptions.

Every table is tenant-owned (``organization_id``; row-level security on PostgreSQL) and
refers to identity's users by id only. Columns that identify a person hold PHI tokens
(``clinicos.platform.phi``: AES-GCM bound to organization, table, column and row) and are
marked with ``ENCRYPTED_COLUMN``; their exact-match search keys are HMAC blind indexes marked
with ``BLIND_INDEX_COLUMN``. Key rotation finds every encrypted column through that marker
(``clinicos.platform.phi.encrypted_columns``), so a new PHI column is rotated once declared.

Codes, statuses, units and dates of clinical events are stored in clear: they are what
decision support and the KPIs compute on, and without the encrypted identifiers they do not
name anyone (docs/contexts/records.md lists every column and how it is protected).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clinicos.platform.db.base import Base, UTCDateTime
from clinicos.platform.phi import BLIND_INDEX_COLUMN, ENCRYPTED_COLUMN


def _token(*, nullable: bool = True) -> Mapped[Any]:
    return mapped_column(Text, nullable=nullable, info=dict(ENCRYPTED_COLUMN))


def _blind(*, nullable: bool = True) -> Mapped[Any]:
    return mapped_column(String(64), nullable=nullable, info=dict(BLIND_INDEX_COLUMN))


class Patient(Base):
    """A person under care in one organization.

        ``mrn`` is required and unique per organization through its blind index (``mrn_index``).
    ``name_index`` indexes the normalised ``"<given> <family>"`` and ``family_name_index`` the
    family name alone (exact match only: see docs/contexts/records.md on name search).
    ``birth_date`` is stored as an encrypted ISO date; ``address`` as encrypted JSON. ``sex``
    (FHIR administrative gender) and ``preferred_language`` stay in clear: decision support and
    messaging read them, and alone they identify no one. ``version`` counts updates (FHIR
    ``meta.versionId``).
    """

    __tablename__ = "patient"
    __table_args__ = (
        Index("ux_patient_organization_id_mrn_index", "organization_id", "mrn_index", unique=True),
        Index("ix_patient_organization_id_name_index", "organization_id", "name_index"),
        Index(
            "ix_patient_organization_id_family_name_index", "organization_id", "family_name_index"
        ),
        Index(
            "ix_patient_organization_id_national_id_index", "organization_id", "national_id_index"
        ),
        Index("ix_patient_organization_id_phone_index", "organization_id", "phone_index"),
        Index("ix_patient_organization_id_email_index", "organization_id", "email_index"),
        Index("ix_patient_organization_id_created_at_id", "organization_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    mrn: Mapped[str] = _token(nullable=False)
    mrn_index: Mapped[str] = _blind(nullable=False)
    given_name: Mapped[str | None] = _token()
    family_name: Mapped[str] = _token(nullable=False)
    family_name_index: Mapped[str] = _blind(nullable=False)
    name_index: Mapped[str | None] = _blind()
    birth_date: Mapped[str | None] = _token()
    sex: Mapped[str] = mapped_column(String(16))
    national_id: Mapped[str | None] = _token()
    national_id_index: Mapped[str | None] = _blind()
    phone: Mapped[str | None] = _token()
    phone_index: Mapped[str | None] = _blind()
    email: Mapped[str | None] = _token()
    email_index: Mapped[str | None] = _blind()
    address: Mapped[str | None] = _token()
    preferred_language: Mapped[str | None] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class _PatientScoped:
    """Columns every clinical row shares: its tenant and its patient."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Encounter(_PatientScoped, Base):
    """A contact between the patient and the clinic (FHIR ``Encounter``).

    ``status``: planned | in-progress | finished | cancelled | entered-in-error;
    ``class_code``: v3 ActCode (AMB ambulatory, EMER, IMP inpatient, VR virtual, HH home).
    ``reason_text`` is free text and therefore encrypted."""

    __tablename__ = "encounter"
    __table_args__ = (
        Index(
            "ix_encounter_organization_id_patient_id_period_start",
            "organization_id",
            "patient_id",
            "period_start",
        ),
    )

    patient_id: Mapped[str] = mapped_column(String(36), ForeignKey("patient.id"))
    status: Mapped[str] = mapped_column(String(32))
    class_code: Mapped[str] = mapped_column(String(16))
    type_code: Mapped[str | None] = mapped_column(String(64))
    type_display: Mapped[str | None] = mapped_column(String(200))
    reason_text: Mapped[str | None] = _token()
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class ClinicalNote(_PatientScoped, Base):
    """A note: ``draft`` (editable by its author) → ``final`` (immutable: ``content_sha256``
    of the text, ``finalized_by``, ``finalized_at``). A correction is an addendum: another
    note whose ``amends_note_id`` names the final note it amends, with its own lifecycle.
    ``status`` may also be ``entered-in-error`` for a draft that is discarded."""

    __tablename__ = "clinical_note"
    __table_args__ = (
        Index(
            "ix_clinical_note_organization_id_patient_id_created_at",
            "organization_id",
            "patient_id",
            "created_at",
        ),
    )

    patient_id: Mapped[str] = mapped_column(String(36), ForeignKey("patient.id"))
    encounter_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("encounter.id"))
    amends_note_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("clinical_note.id"))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(24))
    text: Mapped[str] = _token(nullable=False)
    author_id: Mapped[str] = mapped_column(String(36))
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    finalized_by: Mapped[str | None] = mapped_column(String(36))
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class Observation(_PatientScoped, Base):
    """A measurement (FHIR ``Observation``): LOINC ``code``; a quantity (``value`` +
    UCUM ``unit``), a coded/text ``value_text``, or ``components`` (blood pressure:
    ``[{"code", "value", "unit"}]``). ``effective_at`` is when the sample was collected or the
    measurement taken (what freshness rules use); ``issued_at`` when the result was released.
    ``status``: registered | preliminary | final | amended | corrected | cancelled |
    entered-in-error. ``category``: vital-signs | laboratory | …"""

    __tablename__ = "observation"
    __table_args__ = (
        Index(
            "ix_observation_organization_id_patient_id_code_effective_at",
            "organization_id",
            "patient_id",
            "code",
            "effective_at",
        ),
    )

    patient_id: Mapped[str] = mapped_column(String(36), ForeignKey("patient.id"))
    encounter_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("encounter.id"))
    status: Mapped[str] = mapped_column(String(24))
    category: Mapped[str] = mapped_column(String(32))
    code_system: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(64))
    display: Mapped[str | None] = mapped_column(String(200))
    value: Mapped[Decimal | None] = mapped_column(Numeric(asdecimal=True))
    unit: Mapped[str | None] = mapped_column(String(32))
    value_text: Mapped[str | None] = mapped_column(String(200))
    components: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class Condition(_PatientScoped, Base):
    """A problem or diagnosis (FHIR ``Condition``), coded in ICD-10 and/or SNOMED CT.
    ``clinical_status``: active | recurrence | relapse | inactive | remission | resolved;
    ``verification_status``: unconfirmed | provisional | differential | confirmed | refuted |
    entered-in-error."""

    __tablename__ = "condition"
    __table_args__ = (
        Index("ix_condition_organization_id_patient_id", "organization_id", "patient_id"),
    )

    patient_id: Mapped[str] = mapped_column(String(36), ForeignKey("patient.id"))
    encounter_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("encounter.id"))
    icd10_code: Mapped[str | None] = mapped_column(String(16))
    snomed_code: Mapped[str | None] = mapped_column(String(32))
    display: Mapped[str | None] = mapped_column(String(200))
    clinical_status: Mapped[str] = mapped_column(String(24))
    verification_status: Mapped[str] = mapped_column(String(24))
    onset_date: Mapped[date | None] = mapped_column(Date)
    abatement_date: Mapped[date | None] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class Allergy(_PatientScoped, Base):
    """An allergy or intolerance (FHIR ``AllergyIntolerance``): the substance code (RxNorm,
    SNOMED or ATC), ``clinical_status`` (active | inactive | resolved), ``criticality`` (low |
    high | unable-to-assess), and the coded reaction's display text."""

    __tablename__ = "allergy"
    __table_args__ = (
        Index("ix_allergy_organization_id_patient_id", "organization_id", "patient_id"),
    )

    patient_id: Mapped[str] = mapped_column(String(36), ForeignKey("patient.id"))
    code_system: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(64))
    display: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(24))
    clinical_status: Mapped[str] = mapped_column(String(24))
    verification_status: Mapped[str] = mapped_column(String(24))
    criticality: Mapped[str | None] = mapped_column(String(24))
    reaction: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class _Medication:
    """The drug and how it is taken, shared by the medication list and prescriptions."""

    code_system: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(64))
    display: Mapped[str] = mapped_column(String(200))
    dose: Mapped[Decimal | None] = mapped_column(Numeric(asdecimal=True))
    dose_unit: Mapped[str | None] = mapped_column(String(32))
    frequency: Mapped[str | None] = mapped_column(String(32))
    route: Mapped[str | None] = mapped_column(String(32))


class MedicationStatement(_PatientScoped, _Medication, Base):
    """A medication the patient takes (the active medication list; FHIR
    ``MedicationStatement``). ``status``: active | completed | stopped | on-hold |
    entered-in-error. A prescription issued here also enters the list."""

    __tablename__ = "medication_statement"
    __table_args__ = (
        Index(
            "ix_medication_statement_organization_id_patient_id", "organization_id", "patient_id"
        ),
    )

    patient_id: Mapped[str] = mapped_column(String(36), ForeignKey("patient.id"))
    status: Mapped[str] = mapped_column(String(24))
    effective_start: Mapped[date | None] = mapped_column(Date)
    effective_end: Mapped[date | None] = mapped_column(Date)
    source_prescription_id: Mapped[str | None] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class Prescription(_PatientScoped, _Medication, Base):
    """An order (FHIR ``MedicationRequest``): ``draft`` → ``active`` (issued, signed by the
    prescriber) → ``completed`` | ``cancelled``. ``indication`` is a code (for DOACs, the CDS
    indication key, e.g. ``nvaf``, ``vte_treatment``). ``cds_evaluation_id`` is the decision-
    support check the issue passed (the seam to decision support)."""

    __tablename__ = "prescription"
    __table_args__ = (
        Index(
            "ix_prescription_organization_id_patient_id_status",
            "organization_id",
            "patient_id",
            "status",
        ),
    )

    patient_id: Mapped[str] = mapped_column(String(36), ForeignKey("patient.id"))
    encounter_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("encounter.id"))
    status: Mapped[str] = mapped_column(String(24))
    indication: Mapped[str | None] = mapped_column(String(64))
    prescriber_id: Mapped[str] = mapped_column(String(36))
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cds_evaluation_id: Mapped[str | None] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


RECORD_TABLES: tuple[type[Base], ...] = (
    Patient,
    Encounter,
    ClinicalNote,
    Observation,
    Condition,
    Allergy,
    MedicationStatement,
    Prescription,
)

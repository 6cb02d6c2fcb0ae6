"""records: patients, encounters, notes, observations, conditions, allergies, medication list,
prescriptions; PHI columns hold tokens; tenant-scoped by row-level security

Revision ID: 0007_records
Revises: 0006_cds_overrides
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_records"
down_revision: str | None = "0006_cds_overrides"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "clinicos_app"
_TENANT = "nullif(current_setting('app.organization_id', true), '')"
_SCOPE = f"(organization_id = {_TENANT})"
TABLES = (
    "patient",
    "encounter",
    "clinical_note",
    "observation",
    "condition",
    "allergy",
    "medication_statement",
    "prescription",
)


def _protect_sql(table: str) -> str:
    # FORCE row-level security as in 0004-0006. The app role reads, creates and updates clinical
    # rows but never deletes one: mistakes are marked entered-in-error, finals get addenda.
    return f"""
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY {table}_tenant ON {table} USING {_SCOPE} WITH CHECK {_SCOPE};
REVOKE ALL ON {table} FROM {APP_ROLE};
GRANT SELECT, INSERT, UPDATE ON {table} TO {APP_ROLE};
"""


def upgrade() -> None:
    op.create_table(
        "patient",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("mrn", sa.Text(), nullable=False),
        sa.Column("mrn_index", sa.String(length=64), nullable=False),
        sa.Column("given_name", sa.Text(), nullable=True),
        sa.Column("family_name", sa.Text(), nullable=False),
        sa.Column("family_name_index", sa.String(length=64), nullable=False),
        sa.Column("name_index", sa.String(length=64), nullable=True),
        sa.Column("birth_date", sa.Text(), nullable=True),
        sa.Column("sex", sa.String(length=16), nullable=False),
        sa.Column("national_id", sa.Text(), nullable=True),
        sa.Column("national_id_index", sa.String(length=64), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("phone_index", sa.String(length=64), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("email_index", sa.String(length=64), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("preferred_language", sa.String(length=16), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient")),
    )
    op.create_index(
        "ix_patient_organization_id_created_at_id",
        "patient",
        ["organization_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_patient_organization_id_email_index",
        "patient",
        ["organization_id", "email_index"],
        unique=False,
    )
    op.create_index(
        "ix_patient_organization_id_family_name_index",
        "patient",
        ["organization_id", "family_name_index"],
        unique=False,
    )
    op.create_index(
        "ix_patient_organization_id_name_index",
        "patient",
        ["organization_id", "name_index"],
        unique=False,
    )
    op.create_index(
        "ix_patient_organization_id_national_id_index",
        "patient",
        ["organization_id", "national_id_index"],
        unique=False,
    )
    op.create_index(
        "ix_patient_organization_id_phone_index",
        "patient",
        ["organization_id", "phone_index"],
        unique=False,
    )
    op.create_index(
        "ux_patient_organization_id_mrn_index",
        "patient",
        ["organization_id", "mrn_index"],
        unique=True,
    )

    op.create_table(
        "allergy",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("code_system", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("display", sa.String(length=200), nullable=True),
        sa.Column("category", sa.String(length=24), nullable=True),
        sa.Column("clinical_status", sa.String(length=24), nullable=False),
        sa.Column("verification_status", sa.String(length=24), nullable=False),
        sa.Column("criticality", sa.String(length=24), nullable=True),
        sa.Column("reaction", sa.String(length=200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_allergy_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allergy")),
    )
    op.create_index(
        "ix_allergy_organization_id_patient_id",
        "allergy",
        ["organization_id", "patient_id"],
        unique=False,
    )

    op.create_table(
        "encounter",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("class_code", sa.String(length=16), nullable=False),
        sa.Column("type_code", sa.String(length=64), nullable=True),
        sa.Column("type_display", sa.String(length=200), nullable=True),
        sa.Column("reason_text", sa.Text(), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_encounter_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encounter")),
    )
    op.create_index(
        "ix_encounter_organization_id_patient_id_period_start",
        "encounter",
        ["organization_id", "patient_id", "period_start"],
        unique=False,
    )

    op.create_table(
        "medication_statement",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("effective_start", sa.Date(), nullable=True),
        sa.Column("effective_end", sa.Date(), nullable=True),
        sa.Column("source_prescription_id", sa.String(length=36), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code_system", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("display", sa.String(length=200), nullable=False),
        sa.Column("dose", sa.Numeric(), nullable=True),
        sa.Column("dose_unit", sa.String(length=32), nullable=True),
        sa.Column("frequency", sa.String(length=32), nullable=True),
        sa.Column("route", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_medication_statement_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medication_statement")),
    )
    op.create_index(
        "ix_medication_statement_organization_id_patient_id",
        "medication_statement",
        ["organization_id", "patient_id"],
        unique=False,
    )

    op.create_table(
        "clinical_note",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("encounter_id", sa.String(length=36), nullable=True),
        sa.Column("amends_note_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author_id", sa.String(length=36), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.Column("finalized_by", sa.String(length=36), nullable=True),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["amends_note_id"],
            ["clinical_note.id"],
            name=op.f("fk_clinical_note_amends_note_id_clinical_note"),
        ),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounter.id"], name=op.f("fk_clinical_note_encounter_id_encounter")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_clinical_note_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinical_note")),
    )
    op.create_index(
        "ix_clinical_note_organization_id_patient_id_created_at",
        "clinical_note",
        ["organization_id", "patient_id", "created_at"],
        unique=False,
    )

    op.create_table(
        "condition",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("encounter_id", sa.String(length=36), nullable=True),
        sa.Column("icd10_code", sa.String(length=16), nullable=True),
        sa.Column("snomed_code", sa.String(length=32), nullable=True),
        sa.Column("display", sa.String(length=200), nullable=True),
        sa.Column("clinical_status", sa.String(length=24), nullable=False),
        sa.Column("verification_status", sa.String(length=24), nullable=False),
        sa.Column("onset_date", sa.Date(), nullable=True),
        sa.Column("abatement_date", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounter.id"], name=op.f("fk_condition_encounter_id_encounter")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_condition_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_condition")),
    )
    op.create_index(
        "ix_condition_organization_id_patient_id",
        "condition",
        ["organization_id", "patient_id"],
        unique=False,
    )

    op.create_table(
        "observation",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("encounter_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("code_system", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("display", sa.String(length=200), nullable=True),
        sa.Column("value", sa.Numeric(), nullable=True),
        sa.Column("unit", sa.String(length=32), nullable=True),
        sa.Column("value_text", sa.String(length=200), nullable=True),
        sa.Column("components", sa.JSON(), nullable=True),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounter.id"], name=op.f("fk_observation_encounter_id_encounter")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_observation_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observation")),
    )
    op.create_index(
        "ix_observation_organization_id_patient_id_code_effective_at",
        "observation",
        ["organization_id", "patient_id", "code", "effective_at"],
        unique=False,
    )

    op.create_table(
        "prescription",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("encounter_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("indication", sa.String(length=64), nullable=True),
        sa.Column("prescriber_id", sa.String(length=36), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cds_evaluation_id", sa.String(length=36), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code_system", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("display", sa.String(length=200), nullable=False),
        sa.Column("dose", sa.Numeric(), nullable=True),
        sa.Column("dose_unit", sa.String(length=32), nullable=True),
        sa.Column("frequency", sa.String(length=32), nullable=True),
        sa.Column("route", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounter.id"], name=op.f("fk_prescription_encounter_id_encounter")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_prescription_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prescription")),
    )
    op.create_index(
        "ix_prescription_organization_id_patient_id_status",
        "prescription",
        ["organization_id", "patient_id", "status"],
        unique=False,
    )

    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(_protect_sql(table))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP POLICY IF EXISTS {table}_tenant ON {table};")
    op.drop_index("ix_prescription_organization_id_patient_id_status", table_name="prescription")

    op.drop_table("prescription")
    op.drop_index(
        "ix_observation_organization_id_patient_id_code_effective_at", table_name="observation"
    )

    op.drop_table("observation")
    op.drop_index("ix_condition_organization_id_patient_id", table_name="condition")

    op.drop_table("condition")
    op.drop_index(
        "ix_clinical_note_organization_id_patient_id_created_at", table_name="clinical_note"
    )

    op.drop_table("clinical_note")
    op.drop_index(
        "ix_medication_statement_organization_id_patient_id", table_name="medication_statement"
    )

    op.drop_table("medication_statement")
    op.drop_index("ix_encounter_organization_id_patient_id_period_start", table_name="encounter")

    op.drop_table("encounter")
    op.drop_index("ix_allergy_organization_id_patient_id", table_name="allergy")

    op.drop_table("allergy")
    op.drop_index("ux_patient_organization_id_mrn_index", table_name="patient")
    op.drop_index("ix_patient_organization_id_phone_index", table_name="patient")
    op.drop_index("ix_patient_organization_id_national_id_index", table_name="patient")
    op.drop_index("ix_patient_organization_id_name_index", table_name="patient")
    op.drop_index("ix_patient_organization_id_family_name_index", table_name="patient")
    op.drop_index("ix_patient_organization_id_email_index", table_name="patient")
    op.drop_index("ix_patient_organization_id_created_at_id", table_name="patient")

    op.drop_table("patient")

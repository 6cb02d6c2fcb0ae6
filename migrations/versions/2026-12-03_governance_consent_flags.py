"""governance: patients' consent decisions (append-only) and feature flags per organization

Revision ID: 0012_governance_consent_flags
Revises: 0011_cds_attestations
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_governance_consent_flags"
down_revision: str | None = "0011_cds_attestations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "clinicos_app"
_TENANT = "nullif(current_setting('app.organization_id', true), '')"
_SCOPE = f"(organization_id = {_TENANT})"
# FORCE row-level security as for every tenant table. Consent is append-only for the app role
# (SELECT, INSERT: a change of mind is a new row, the history is evidence); flags are updated
# in place (SELECT, INSERT, UPDATE), never deleted (a flag without a row has its default).
_PROTECT_SQL = f"""
ALTER TABLE consent_record ENABLE ROW LEVEL SECURITY;
ALTER TABLE consent_record FORCE ROW LEVEL SECURITY;
CREATE POLICY consent_record_tenant ON consent_record USING {_SCOPE} WITH CHECK {_SCOPE};
REVOKE ALL ON consent_record FROM {APP_ROLE};
GRANT SELECT, INSERT ON consent_record TO {APP_ROLE};
ALTER TABLE feature_flag ENABLE ROW LEVEL SECURITY;
ALTER TABLE feature_flag FORCE ROW LEVEL SECURITY;
CREATE POLICY feature_flag_tenant ON feature_flag USING {_SCOPE} WITH CHECK {_SCOPE};
REVOKE ALL ON feature_flag FROM {APP_ROLE};
GRANT SELECT, INSERT, UPDATE ON feature_flag TO {APP_ROLE};
"""
_UNPROTECT_SQL = """
DROP POLICY IF EXISTS consent_record_tenant ON consent_record;
DROP POLICY IF EXISTS feature_flag_tenant ON feature_flag;
"""


def upgrade() -> None:
    op.create_table(
        "consent_record",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("recorded_by", sa.String(length=36), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "decision IN ('granted', 'denied', 'revoked')",
            name=op.f("ck_consent_record_decision_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_record")),
    )
    op.create_index(
        "ix_consent_record_org_patient_purpose_recorded_at",
        "consent_record",
        ["organization_id", "patient_id", "purpose", "recorded_at"],
        unique=False,
    )
    op.create_table(
        "feature_flag",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=36), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "key", name=op.f("pk_feature_flag")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PROTECT_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UNPROTECT_SQL)
    op.drop_table("feature_flag")
    op.drop_index(
        "ix_consent_record_org_patient_purpose_recorded_at",
        table_name="consent_record",
    )
    op.drop_table("consent_record")

"""cds: attestations of missing/stale data per patient and order; the order and the attestations
used on each evaluation

Revision ID: 0011_cds_attestations
Revises: 0010_cds_prescription_ref
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_cds_attestations"
down_revision: str | None = "0010_cds_prescription_ref"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "clinicos_app"
_TENANT = "nullif(current_setting('app.organization_id', true), '')"
_SCOPE = f"(organization_id = {_TENANT})"

# FORCE row-level security as for the other cds tables (0004, 0006). An attestation is a
# governance record: the app role inserts and reads it, never changes or deletes it (an expired
# one simply stops counting). PHI key rotation re-seals `reason` through the owner engine.
_PROTECT_SQL = f"""
ALTER TABLE cds_attestation ENABLE ROW LEVEL SECURITY;
ALTER TABLE cds_attestation FORCE ROW LEVEL SECURITY;
CREATE POLICY cds_attestation_tenant ON cds_attestation USING {_SCOPE} WITH CHECK {_SCOPE};
REVOKE ALL ON cds_attestation FROM {APP_ROLE};
GRANT SELECT, INSERT ON cds_attestation TO {APP_ROLE};
"""

_UNPROTECT_SQL = "DROP POLICY IF EXISTS cds_attestation_tenant ON cds_attestation;"

# audit_event.actor_type (0002) is a VARCHAR(16) with no CHECK constraint: governance validates
# the value in code (ACTOR_TYPES), so the new "service" actor type needs no schema change.


def upgrade() -> None:
    # Expand-only on cds_evaluation: nullable columns, no backfill (older evaluations recorded
    # no dose or frequency, so they cannot be attested; re-evaluating gives a new row). RLS and
    # the append-only grants are table-level and cover the new columns.
    with op.batch_alter_table("cds_evaluation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dose_mg", sa.Numeric(), nullable=True))
        batch_op.add_column(sa.Column("frequency", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("order_fingerprint", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("attestation_ids", sa.JSON(), nullable=True))
    op.create_table(
        "cds_attestation",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("evaluation_id", sa.String(length=36), nullable=False),
        sa.Column("drug", sa.String(length=32), nullable=False),
        sa.Column("dose_mg", sa.Numeric(), nullable=False),
        sa.Column("frequency", sa.String(length=8), nullable=False),
        sa.Column("indication", sa.String(length=32), nullable=False),
        sa.Column("order_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attested_by", sa.String(length=36), nullable=False),
        sa.Column("attested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["cds_evaluation.id"],
            name=op.f("fk_cds_attestation_evaluation_id_cds_evaluation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cds_attestation")),
    )
    op.create_index(
        "ix_cds_attestation_scope",
        "cds_attestation",
        ["organization_id", "patient_id", "order_fingerprint"],
        unique=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PROTECT_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UNPROTECT_SQL)
    op.drop_index("ix_cds_attestation_scope", table_name="cds_attestation")
    op.drop_table("cds_attestation")
    with op.batch_alter_table("cds_evaluation", schema=None) as batch_op:
        batch_op.drop_column("attestation_ids")
        batch_op.drop_column("order_fingerprint")
        batch_op.drop_column("frequency")
        batch_op.drop_column("dose_mg")

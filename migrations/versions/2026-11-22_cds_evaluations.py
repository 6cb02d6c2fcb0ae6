"""cds: recorded evaluations (governance records of each order check); append-only, tenant-scoped

Revision ID: 0004_cds
Revises: 0003_governance
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_cds"
down_revision: str | None = "0003_governance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "clinicos_app"
# The transaction's tenant, as SqlUnitOfWork sets it; unset or empty means "no tenant", which
# matches no row (every evaluation belongs to an organization).
_TENANT = "nullif(current_setting('app.organization_id', true), '')"
_SCOPE = f"(organization_id = {_TENANT})"

# FORCE: the owner is held to the policy too (see 0003). An evaluation is a governance record:
# the app role appends and reads, never changes or removes one.
_PROTECT_SQL = f"""
ALTER TABLE cds_evaluation ENABLE ROW LEVEL SECURITY;
ALTER TABLE cds_evaluation FORCE ROW LEVEL SECURITY;
CREATE POLICY cds_evaluation_tenant ON cds_evaluation USING {_SCOPE} WITH CHECK {_SCOPE};
REVOKE ALL ON cds_evaluation FROM {APP_ROLE};
GRANT SELECT, INSERT ON cds_evaluation TO {APP_ROLE};
"""

_UNPROTECT_SQL = "DROP POLICY IF EXISTS cds_evaluation_tenant ON cds_evaluation;"


def upgrade() -> None:
    op.create_table(
        "cds_evaluation",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("evaluated_by", sa.String(length=36), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("drug", sa.String(length=32), nullable=False),
        sa.Column("indication", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("crcl_ml_min", sa.Numeric(), nullable=True),
        sa.Column("reason_keys", sa.JSON(), nullable=False),
        sa.Column("rule_pack_id", sa.String(length=64), nullable=False),
        sa.Column("rule_pack_version", sa.String(length=64), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cds_evaluation")),
    )
    with op.batch_alter_table("cds_evaluation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cds_evaluation_organization_id_evaluated_at",
            ["organization_id", "evaluated_at"],
            unique=False,
        )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PROTECT_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UNPROTECT_SQL)
    with op.batch_alter_table("cds_evaluation", schema=None) as batch_op:
        batch_op.drop_index("ix_cds_evaluation_organization_id_evaluated_at")
    op.drop_table("cds_evaluation")

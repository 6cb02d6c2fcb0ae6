"""cds: overrides of BLOCK/WARN evaluations (reasoned, co-signed for BLOCK); tenant-scoped

Revision ID: 0006_cds_overrides
Revises: 0005_cds_packs
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_cds_overrides"
down_revision: str | None = "0005_cds_packs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "clinicos_app"
_TENANT = "nullif(current_setting('app.organization_id', true), '')"
_SCOPE = f"(organization_id = {_TENANT})"

# FORCE row-level security as in 0004/0005. The app role records overrides and co-signs them
# (an update of status and cosigned_*), never deletes one: they are governance records.
_PROTECT_SQL = f"""
ALTER TABLE cds_override ENABLE ROW LEVEL SECURITY;
ALTER TABLE cds_override FORCE ROW LEVEL SECURITY;
CREATE POLICY cds_override_tenant ON cds_override USING {_SCOPE} WITH CHECK {_SCOPE};
REVOKE ALL ON cds_override FROM {APP_ROLE};
GRANT SELECT, INSERT, UPDATE ON cds_override TO {APP_ROLE};
"""

_UNPROTECT_SQL = "DROP POLICY IF EXISTS cds_override_tenant ON cds_override;"


def upgrade() -> None:
    op.create_table(
        "cds_override",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("evaluation_id", sa.String(length=36), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cosigned_by", sa.String(length=36), nullable=True),
        sa.Column("cosigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["cds_evaluation.id"],
            name=op.f("fk_cds_override_evaluation_id_cds_evaluation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cds_override")),
        sa.UniqueConstraint("evaluation_id", name=op.f("uq_cds_override_evaluation_id")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PROTECT_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UNPROTECT_SQL)
    op.drop_table("cds_override")

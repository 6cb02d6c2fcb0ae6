"""cds: rule-pack catalogue (installation) and per-organization pack activation (tenant-scoped)

Revision ID: 0005_cds_packs
Revises: 0004_cds
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_cds_packs"
down_revision: str | None = "0004_cds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "clinicos_app"
_TENANT = "nullif(current_setting('app.organization_id', true), '')"
_SCOPE = f"(organization_id = {_TENANT})"

# The catalogue is installation-level (no tenant): the app role registers packs and records
# approvals, never deletes one. An activation belongs to one organization: FORCE row-level
# security as in 0004; re-activation updates the row, the audit trail keeps the history.
_PROTECT_SQL = f"""
REVOKE ALL ON cds_rule_pack FROM {APP_ROLE};
GRANT SELECT, INSERT, UPDATE ON cds_rule_pack TO {APP_ROLE};
ALTER TABLE cds_pack_activation ENABLE ROW LEVEL SECURITY;
ALTER TABLE cds_pack_activation FORCE ROW LEVEL SECURITY;
CREATE POLICY cds_pack_activation_tenant ON cds_pack_activation
  USING {_SCOPE} WITH CHECK {_SCOPE};
REVOKE ALL ON cds_pack_activation FROM {APP_ROLE};
GRANT SELECT, INSERT, UPDATE ON cds_pack_activation TO {APP_ROLE};
"""

_UNPROTECT_SQL = "DROP POLICY IF EXISTS cds_pack_activation_tenant ON cds_pack_activation;"


def upgrade() -> None:
    op.create_table(
        "cds_rule_pack",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_sha256", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", "version", name=op.f("pk_cds_rule_pack")),
    )
    op.create_table(
        "cds_pack_activation",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("pack_id", sa.String(length=64), nullable=False),
        sa.Column("pack_version", sa.String(length=64), nullable=False),
        sa.Column("effective_version", sa.String(length=64), nullable=False),
        sa.Column("overlay", sa.JSON(), nullable=True),
        sa.Column("overlay_sha256", sa.String(length=64), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_cds_pack_activation")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PROTECT_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UNPROTECT_SQL)
    op.drop_table("cds_pack_activation")
    op.drop_table("cds_rule_pack")

"""cds: CDS Hooks clients (issuer + JWKS), seen token ids, returned cards; tenant-scoped

Revision ID: 0009_cds_hooks
Revises: 0008_cds_patient_ref
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_cds_hooks"
down_revision: str | None = "0008_cds_patient_ref"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "clinicos_app"
_TENANT = "nullif(current_setting('app.organization_id', true), '')"
_SCOPE = f"(organization_id = {_TENANT})"
# Token verification learns the tenant from the client row it looks up by issuer, so before
# the tenant is known it may read exactly one row: the one whose issuer it names in
# app.cds_issuer for the current transaction (docs/adr/0015). Read-only; no other row shows.
_ISSUER = "nullif(current_setting('app.cds_issuer', true), '')"

# FORCE row-level security as in 0004-0007. Clients are registered and removed (delete: the
# audit trail keeps the history); seen token ids are inserted and purged once expired; cards
# are inserted and later receive their feedback (update), never deleted.
_GRANTS = {
    "cds_hooks_client": "SELECT, INSERT, DELETE",
    "cds_hooks_jti": "SELECT, INSERT, DELETE",
    "cds_hooks_card": "SELECT, INSERT, UPDATE",
}


def _protect_sql(table: str, grants: str) -> str:
    return f"""
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY {table}_tenant ON {table} USING {_SCOPE} WITH CHECK {_SCOPE};
REVOKE ALL ON {table} FROM {APP_ROLE};
GRANT {grants} ON {table} TO {APP_ROLE};
"""


_ISSUER_POLICY_SQL = (
    "CREATE POLICY cds_hooks_client_issuer ON cds_hooks_client "
    f"FOR SELECT USING (issuer = {_ISSUER});"
)

_UNPROTECT_SQL = """
DROP POLICY IF EXISTS cds_hooks_card_tenant ON cds_hooks_card;
DROP POLICY IF EXISTS cds_hooks_jti_tenant ON cds_hooks_jti;
DROP POLICY IF EXISTS cds_hooks_client_issuer ON cds_hooks_client;
DROP POLICY IF EXISTS cds_hooks_client_tenant ON cds_hooks_client;
"""


def upgrade() -> None:
    op.create_table(
        "cds_hooks_client",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("jwks", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cds_hooks_client")),
        sa.UniqueConstraint("issuer", name=op.f("uq_cds_hooks_client_issuer")),
    )
    op.create_table(
        "cds_hooks_jti",
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("jti", sa.String(length=200), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti", name=op.f("pk_cds_hooks_jti")),
    )
    op.create_index("ix_cds_hooks_jti_expires_at", "cds_hooks_jti", ["expires_at"], unique=False)
    op.create_table(
        "cds_hooks_card",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("evaluation_id", sa.String(length=36), nullable=True),
        sa.Column("evaluation_outcome", sa.String(length=16), nullable=True),
        sa.Column("reason_key", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("hook_instance", sa.String(length=100), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=True),
        sa.Column("acting_for", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feedback_outcome", sa.String(length=16), nullable=True),
        sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("override_reason_code", sa.String(length=64), nullable=True),
        sa.Column("override_comment", sa.Text(), nullable=True),
        sa.Column("override_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["cds_evaluation.id"],
            name=op.f("fk_cds_hooks_card_evaluation_id_cds_evaluation"),
        ),
        sa.ForeignKeyConstraint(
            ["override_id"],
            ["cds_override.id"],
            name=op.f("fk_cds_hooks_card_override_id_cds_override"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cds_hooks_card")),
    )
    op.create_index(
        "ix_cds_hooks_card_organization_id_created_at",
        "cds_hooks_card",
        ["organization_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_cds_hooks_card_evaluation_id", "cds_hooks_card", ["evaluation_id"], unique=False
    )
    if op.get_bind().dialect.name == "postgresql":
        for table, grants in _GRANTS.items():
            op.execute(_protect_sql(table, grants))
        op.execute(_ISSUER_POLICY_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UNPROTECT_SQL)
    op.drop_index("ix_cds_hooks_card_evaluation_id", table_name="cds_hooks_card")
    op.drop_index("ix_cds_hooks_card_organization_id_created_at", table_name="cds_hooks_card")
    op.drop_table("cds_hooks_card")
    op.drop_index("ix_cds_hooks_jti_expires_at", table_name="cds_hooks_jti")
    op.drop_table("cds_hooks_jti")
    op.drop_table("cds_hooks_client")

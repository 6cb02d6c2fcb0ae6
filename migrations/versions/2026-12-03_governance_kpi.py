"""governance: the KPI projection of decision-support events and its daily rollup

Revision ID: 0013_governance_kpi
Revises: 0012_governance_consent_flags
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_governance_kpi"
down_revision: str | None = "0012_governance_consent_flags"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "clinicos_app"
_TENANT = "nullif(current_setting('app.organization_id', true), '')"
_SCOPE = f"(organization_id = {_TENANT})"
# FORCE row-level security as for every tenant table. The app role inserts counted events,
# fills in a block's resolution time (UPDATE) and deletes rows past retention; the daily rollup
# is counters (INSERT, UPDATE on conflict, DELETE past retention).
_PROTECT_SQL = f"""
ALTER TABLE governance_kpi_event ENABLE ROW LEVEL SECURITY;
ALTER TABLE governance_kpi_event FORCE ROW LEVEL SECURITY;
CREATE POLICY governance_kpi_event_tenant ON governance_kpi_event
    USING {_SCOPE} WITH CHECK {_SCOPE};
REVOKE ALL ON governance_kpi_event FROM {APP_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON governance_kpi_event TO {APP_ROLE};
ALTER TABLE governance_kpi_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE governance_kpi_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY governance_kpi_daily_tenant ON governance_kpi_daily
    USING {_SCOPE} WITH CHECK {_SCOPE};
REVOKE ALL ON governance_kpi_daily FROM {APP_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON governance_kpi_daily TO {APP_ROLE};
"""
_UNPROTECT_SQL = """
DROP POLICY IF EXISTS governance_kpi_event_tenant ON governance_kpi_event;
DROP POLICY IF EXISTS governance_kpi_daily_tenant ON governance_kpi_daily;
"""


def upgrade() -> None:
    op.create_table(
        "governance_kpi_event",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("evaluation_id", sa.String(length=36), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("drug", sa.String(length=32), nullable=True),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("rule_keys", sa.JSON(), nullable=True),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("block_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_seconds", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('evaluation', 'override', 'cosign', 'attestation')",
            name=op.f("ck_governance_kpi_event_kind_known"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_governance_kpi_event")),
    )
    op.create_index(
        "ix_governance_kpi_event_org_occurred_at",
        "governance_kpi_event",
        ["organization_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_governance_kpi_event_org_evaluation_id",
        "governance_kpi_event",
        ["organization_id", "evaluation_id"],
        unique=False,
    )
    op.create_index(
        "ix_governance_kpi_event_org_block_at",
        "governance_kpi_event",
        ["organization_id", "block_at"],
        unique=False,
    )
    op.create_table(
        "governance_kpi_daily",
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "organization_id",
            "timezone",
            "day",
            "metric",
            "key",
            name=op.f("pk_governance_kpi_daily"),
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PROTECT_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UNPROTECT_SQL)
    op.drop_table("governance_kpi_daily")
    op.drop_index("ix_governance_kpi_event_org_block_at", table_name="governance_kpi_event")
    op.drop_index("ix_governance_kpi_event_org_evaluation_id", table_name="governance_kpi_event")
    op.drop_index("ix_governance_kpi_event_org_occurred_at", table_name="governance_kpi_event")
    op.drop_table("governance_kpi_event")

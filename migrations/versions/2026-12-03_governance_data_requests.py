"""governance: data-subject requests (with their step history) and legal holds

Revision ID: 0014_governance_data_requests
Revises: 0013_governance_kpi
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_governance_data_requests"
down_revision: str | None = "0013_governance_kpi"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "clinicos_app"
_TENANT = "nullif(current_setting('app.organization_id', true), '')"
_SCOPE = f"(organization_id = {_TENANT})"
# FORCE row-level security as for every tenant table. A request's status moves on (SELECT,
# INSERT, UPDATE); its step history is append-only evidence (SELECT, INSERT); a legal hold is
# lifted in place and never deleted (SELECT, INSERT, UPDATE). Nothing here is deleted by the app.
_GRANTS = {
    "data_subject_request": "SELECT, INSERT, UPDATE",
    "data_subject_request_step": "SELECT, INSERT",
    "legal_hold": "SELECT, INSERT, UPDATE",
}
_PROTECT_SQL = "".join(
    f"""
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
CREATE POLICY {table}_tenant ON {table} USING {_SCOPE} WITH CHECK {_SCOPE};
REVOKE ALL ON {table} FROM {APP_ROLE};
GRANT {grants} ON {table} TO {APP_ROLE};
"""
    for table, grants in _GRANTS.items()
)
_UNPROTECT_SQL = "".join(f"DROP POLICY IF EXISTS {table}_tenant ON {table};\n" for table in _GRANTS)


def upgrade() -> None:
    op.create_table(
        "data_subject_request",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("received_by", sa.String(length=36), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handled_by", sa.String(length=36), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome_code", sa.String(length=64), nullable=True),
        sa.Column("correction_target", sa.String(length=32), nullable=True),
        sa.Column("correction_entry_id", sa.String(length=36), nullable=True),
        sa.Column("correction_field", sa.String(length=32), nullable=True),
        sa.Column("proposed_value", sa.Text(), nullable=True),
        sa.Column("request_reason", sa.Text(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("categories", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('access', 'correction', 'portability', 'erasure')",
            name=op.f("ck_data_subject_request_kind_known"),
        ),
        sa.CheckConstraint(
            "status IN ('received', 'in_progress', 'completed', 'rejected', 'refused')",
            name=op.f("ck_data_subject_request_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_subject_request")),
    )
    op.create_index(
        "ix_data_subject_request_org_status_deadline",
        "data_subject_request",
        ["organization_id", "status", "deadline_at"],
        unique=False,
    )
    op.create_index(
        "ix_data_subject_request_org_patient_received",
        "data_subject_request",
        ["organization_id", "patient_id", "received_at"],
        unique=False,
    )
    op.create_table(
        "data_subject_request_step",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note_code", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["data_subject_request.id"],
            name=op.f("fk_data_subject_request_step_request_id_data_subject_request"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_subject_request_step")),
        sa.UniqueConstraint(
            "request_id", "seq", name=op.f("uq_data_subject_request_step_request_id_seq")
        ),
    )
    op.create_table(
        "legal_hold",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("placed_by", sa.String(length=36), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_by", sa.String(length=36), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lift_reason_code", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_hold")),
    )
    op.create_index(
        "ix_legal_hold_org_patient",
        "legal_hold",
        ["organization_id", "patient_id"],
        unique=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PROTECT_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UNPROTECT_SQL)
    op.drop_index("ix_legal_hold_org_patient", table_name="legal_hold")
    op.drop_table("legal_hold")
    op.drop_table("data_subject_request_step")
    op.drop_index("ix_data_subject_request_org_patient_received", table_name="data_subject_request")
    op.drop_index("ix_data_subject_request_org_status_deadline", table_name="data_subject_request")
    op.drop_table("data_subject_request")

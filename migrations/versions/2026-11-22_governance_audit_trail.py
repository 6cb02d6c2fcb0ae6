"""governance: hash-chained audit trail and chain heads; append-only and tenant-scoped on PostgreSQL

Revision ID: 0003_governance
Revises: 0002_identity
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_governance"
down_revision: str | None = "0002_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "clinicos_app"
# The transaction's tenant, as SqlUnitOfWork sets it; unset or empty means "no tenant".
_TENANT = "nullif(current_setting('app.organization_id', true), '')"
# An organization's rows only with its id set; installation rows only with no tenant set.
_EVENT_SCOPE = f"(organization_id = {_TENANT} OR (organization_id IS NULL AND {_TENANT} IS NULL))"
_HEAD_SCOPE = f"(chain_key = coalesce({_TENANT}, 'installation'))"

# The app role may append and read audit rows, never change or remove them; it moves a chain
# head forward but may not delete one (a deleted head would hide a truncated chain).
# FORCE: the tables' owner is held to the same policies unless it is a superuser or has
# BYPASSRLS, which is also what pg_dump needs to back these tables up.
_PROTECT_SQL = f"""
ALTER TABLE audit_event ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_event FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_event_tenant ON audit_event
  USING {_EVENT_SCOPE} WITH CHECK {_EVENT_SCOPE};
ALTER TABLE audit_chain_head ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_head FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_chain_head_tenant ON audit_chain_head
  USING {_HEAD_SCOPE} WITH CHECK {_HEAD_SCOPE};
REVOKE ALL ON audit_event, audit_chain_head FROM {APP_ROLE};
GRANT SELECT, INSERT ON audit_event TO {APP_ROLE};
GRANT SELECT, INSERT, UPDATE ON audit_chain_head TO {APP_ROLE};
"""

_UNPROTECT_SQL = """
DROP POLICY IF EXISTS audit_chain_head_tenant ON audit_chain_head;
DROP POLICY IF EXISTS audit_event_tenant ON audit_event;
"""


def upgrade() -> None:
    op.create_table(
        "audit_chain_head",
        sa.Column("chain_key", sa.String(length=36), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chain_key", name=op.f("pk_audit_chain_head")),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=True),
        sa.Column("chain_key", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=200), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target_type", sa.String(length=100), nullable=True),
        sa.Column("target_id", sa.String(length=200), nullable=True),
        sa.Column("purpose", sa.String(length=100), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "(organization_id IS NULL AND chain_key = 'installation') "
            "OR chain_key = organization_id",
            name=op.f("ck_audit_event_chain_key_matches_organization"),
        ),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_audit_event_seq_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("chain_key", "seq", name=op.f("uq_audit_event_chain_key_seq")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_action", ["action"], unique=False)
        batch_op.create_index("ix_audit_event_actor_id", ["actor_id"], unique=False)
        batch_op.create_index(
            "ix_audit_event_organization_id_occurred_at",
            ["organization_id", "occurred_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_audit_event_target_type_target_id", ["target_type", "target_id"], unique=False
        )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PROTECT_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UNPROTECT_SQL)
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_target_type_target_id")
        batch_op.drop_index("ix_audit_event_organization_id_occurred_at")
        batch_op.drop_index("ix_audit_event_actor_id")
        batch_op.drop_index("ix_audit_event_action")

    op.drop_table("audit_event")
    op.drop_table("audit_chain_head")

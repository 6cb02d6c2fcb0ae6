"""governance: retention — the audit chain's anchor, the purge function, and retention runs

Revision ID: 0015_governance_retention
Revises: 0014_governance_data_requests
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_governance_retention"
down_revision: str | None = "0014_governance_data_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "clinicos_app"
_TENANT = "nullif(current_setting('app.organization_id', true), '')"
_CHAIN_SCOPE = f"(chain_key = coalesce({_TENANT}, 'installation'))"
_ORG_SCOPE = f"(organization_id = {_TENANT})"
# Keep equal to clinicos.config.AUDIT_RETENTION_FLOOR_DAYS.
FLOOR_DAYS = 365

# The app role may not delete audit rows (migration 0005). Retention deletes them only through
# this function, which runs with its owner's rights and checks, inside the database, that:
# the chain is the transaction's own tenant's; every row it removes is older than the floor and
# than the asked cutoff; it removes a contiguous prefix of the chain (from the anchor on), and
# it moves the anchor to the last removed row's seq and hash in the same statement, so the rest
# of the chain still verifies from the anchor. The app role can read the anchor, never write it.
_PROTECT_SQL = f"""
ALTER TABLE audit_chain_anchor ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_anchor FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_chain_anchor_tenant ON audit_chain_anchor
  USING {_CHAIN_SCOPE} WITH CHECK {_CHAIN_SCOPE};
REVOKE ALL ON audit_chain_anchor FROM {APP_ROLE};
GRANT SELECT ON audit_chain_anchor TO {APP_ROLE};
ALTER TABLE retention_run ENABLE ROW LEVEL SECURITY;
ALTER TABLE retention_run FORCE ROW LEVEL SECURITY;
CREATE POLICY retention_run_tenant ON retention_run USING {_ORG_SCOPE} WITH CHECK {_ORG_SCOPE};
REVOKE ALL ON retention_run FROM {APP_ROLE};
GRANT SELECT, INSERT, UPDATE ON retention_run TO {APP_ROLE};

CREATE FUNCTION governance_purge_audit(p_chain_key text, p_before timestamptz, p_limit integer)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, public
AS $fn$
DECLARE
  v_tenant text := coalesce({_TENANT}, 'installation');
  v_from bigint;
  v_first_young bigint;
  v_upto bigint;
  v_hash text;
  v_deleted bigint;
BEGIN
  IF p_chain_key IS DISTINCT FROM v_tenant THEN
    RAISE EXCEPTION 'audit purge: not the transaction''s own chain'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_before IS NULL OR p_before > now() - interval '{FLOOR_DAYS} days' THEN
    RAISE EXCEPTION 'audit purge: rows younger than {FLOOR_DAYS} days are never purged'
      USING ERRCODE = 'check_violation';
  END IF;
  IF p_limit IS NULL OR p_limit < 1 THEN
    RAISE EXCEPTION 'audit purge: limit must be positive' USING ERRCODE = 'check_violation';
  END IF;
  PERFORM 1 FROM audit_chain_head WHERE chain_key = p_chain_key FOR UPDATE;
  SELECT coalesce(max(purged_through_seq), 0) INTO v_from
    FROM audit_chain_anchor WHERE chain_key = p_chain_key;
  SELECT min(seq) INTO v_first_young FROM audit_event
    WHERE chain_key = p_chain_key AND seq > v_from AND occurred_at >= p_before;
  SELECT max(seq) INTO v_upto FROM audit_event
    WHERE chain_key = p_chain_key AND seq > v_from AND seq <= v_from + p_limit
      AND (v_first_young IS NULL OR seq < v_first_young);
  IF v_upto IS NULL THEN
    RETURN 0;
  END IF;
  SELECT hash INTO v_hash FROM audit_event WHERE chain_key = p_chain_key AND seq = v_upto;
  DELETE FROM audit_event WHERE chain_key = p_chain_key AND seq > v_from AND seq <= v_upto;
  GET DIAGNOSTICS v_deleted = ROW_COUNT;
  INSERT INTO audit_chain_anchor AS a
      (chain_key, purged_through_seq, anchor_hash, purged_rows, updated_at)
    VALUES (p_chain_key, v_upto, v_hash, v_deleted, now())
    ON CONFLICT (chain_key) DO UPDATE SET
      purged_through_seq = EXCLUDED.purged_through_seq,
      anchor_hash = EXCLUDED.anchor_hash,
      purged_rows = a.purged_rows + EXCLUDED.purged_rows,
      updated_at = EXCLUDED.updated_at;
  RETURN v_deleted;
END
$fn$;
REVOKE ALL ON FUNCTION governance_purge_audit(text, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION governance_purge_audit(text, timestamptz, integer) TO {APP_ROLE};
"""  # noqa: S608 - constants only, no input
_UNPROTECT_SQL = """
DROP FUNCTION IF EXISTS governance_purge_audit(text, timestamptz, integer);
DROP POLICY IF EXISTS retention_run_tenant ON retention_run;
DROP POLICY IF EXISTS audit_chain_anchor_tenant ON audit_chain_anchor;
"""


def upgrade() -> None:
    op.create_table(
        "audit_chain_anchor",
        sa.Column("chain_key", sa.String(length=36), nullable=False),
        sa.Column("purged_through_seq", sa.BigInteger(), nullable=False),
        sa.Column("anchor_hash", sa.String(length=64), nullable=False),
        sa.Column("purged_rows", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chain_key", name=op.f("pk_audit_chain_anchor")),
    )
    op.create_table(
        "retention_run",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("purged", sa.JSON(), nullable=False),
        sa.Column("cutoffs", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')",
            name=op.f("ck_retention_run_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_run")),
    )
    op.create_index(
        "ix_retention_run_organization_id_started_at",
        "retention_run",
        ["organization_id", "started_at"],
        unique=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PROTECT_SQL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_UNPROTECT_SQL)
    op.drop_index("ix_retention_run_organization_id_started_at", table_name="retention_run")
    op.drop_table("retention_run")
    op.drop_table("audit_chain_anchor")

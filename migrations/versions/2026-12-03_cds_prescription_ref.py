"""cds: the prescription (and its version) an evaluation gated; nullable

Revision ID: 0010_cds_prescription_ref
Revises: 0009_cds_hooks
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_cds_prescription_ref"
down_revision: str | None = "0009_cds_hooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Expand-only: two nullable columns and an index, no backfill (evaluations made before the
# prescribing gate checked no prescription). Row-level security (0004's tenant policy) and the
# app role's grants (SELECT, INSERT) are table-level and already cover the new columns, so the
# row stays append-only and tenant-scoped. The id refers to records' prescription without a
# foreign key: contexts refer to each other's rows by id only (ARCHITECTURE.md). The index
# serves the gate's look-up of earlier evaluations of the same draft (an override to honour).


def upgrade() -> None:
    with op.batch_alter_table("cds_evaluation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prescription_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("prescription_version", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_cds_evaluation_organization_id_prescription_id",
            ["organization_id", "prescription_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("cds_evaluation", schema=None) as batch_op:
        batch_op.drop_index("ix_cds_evaluation_organization_id_prescription_id")
        batch_op.drop_column("prescription_version")
        batch_op.drop_column("prescription_id")

"""cds: the patient an evaluation was run for (record mode, prescribing gate); nullable

Revision ID: 0008_cds_patient_ref
Revises: 0007_records
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_cds_patient_ref"
down_revision: str | None = "0007_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Expand-only: a nullable column and an index, no backfill (inline evaluations have no patient).
# Row-level security (0004's tenant policy) and the app role's grants (SELECT, INSERT) are
# table-level, so they already cover the new column: the row stays append-only and
# tenant-scoped. The id refers to records' patient without a foreign key: contexts refer to
# each other's rows by id only (ARCHITECTURE.md), and an evaluation outlives nothing it names.


def upgrade() -> None:
    with op.batch_alter_table("cds_evaluation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("patient_id", sa.String(length=36), nullable=True))
        batch_op.create_index(
            "ix_cds_evaluation_organization_id_patient_id",
            ["organization_id", "patient_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("cds_evaluation", schema=None) as batch_op:
        batch_op.drop_index("ix_cds_evaluation_organization_id_patient_id")
        batch_op.drop_column("patient_id")

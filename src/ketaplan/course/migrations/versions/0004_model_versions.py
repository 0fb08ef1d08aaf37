"""Relief models learned from the clinic's record: model_versions.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("clinic", sa.String(200), nullable=False),
        sa.Column("drug", sa.String(16), nullable=False),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("n_patients", sa.Integer(), nullable=False),
        sa.Column("prior", sa.String(200), nullable=False),
        sa.Column("prior_weight", sa.Float(), nullable=False),
        sa.Column("ketaplan_version", sa.String(32), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("accepted_at", sa.DateTime(), nullable=True),
        sa.Column("accepted_by", sa.String(64), nullable=True),
        sa.Column("in_use", sa.Boolean(), nullable=False),
        sa.CheckConstraint("status in ('proposed', 'accepted', 'rejected')", name="ck_model_versions_status"),
    )


def downgrade() -> None:
    op.drop_table("model_versions")

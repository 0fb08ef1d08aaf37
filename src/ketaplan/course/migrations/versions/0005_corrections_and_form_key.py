"""Corrections without loss and a shared form key: voided_at on every entry table, entry_revisions, app_secrets.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ENTRY_TABLES = ("weights", "infusions", "levels", "pain_diary", "side_effects", "labs", "notes")


def upgrade() -> None:
    for table in ENTRY_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("voided_at", sa.DateTime(), nullable=True))
    op.create_table(
        "entry_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("previous", sa.Text(), nullable=False),
        sa.Column("replaced_by", sa.Integer(), nullable=True),
        sa.CheckConstraint("kind in ('correct', 'void', 'cancel', 'override')", name="ck_entry_revisions_kind"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("entry_revisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entry_revisions_patient_id"), ["patient_id"], unique=False)
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("app_secrets")
    with op.batch_alter_table("entry_revisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entry_revisions_patient_id"))
    op.drop_table("entry_revisions")
    for table in ENTRY_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("voided_at")

"""instruction_sheets: patient instruction sheets quoted from the knowledge base

Each sheet belongs to a patient (and optionally an appointment); its paragraphs cite the
knowledge-base passages they quote, and it reaches the patient only once a physician approved it.
An outbox message may carry an approved sheet to its patient (``instruction_sheet_id``).

Revision ID: a7c8d9e0f1b2
Revises: f2b3c4d5e6a7
Create Date: 2026-12-04 19:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import models.types

revision: str = "a7c8d9e0f1b2"
down_revision: str | None = "f2b3c4d5e6a7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instruction_sheets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("paragraphs", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("reviewed_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rejection_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("approved_text", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointments.id"]),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["reviewer_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("instruction_sheets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_instruction_sheets_appointment_id"), ["appointment_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_instruction_sheets_patient_id"), ["patient_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_instruction_sheets_status"), ["status"], unique=False)
    # An outbox message may carry an approved sheet to its patient (kind "instructions").
    with op.batch_alter_table("notification_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("instruction_sheet_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_notification_outbox_instruction_sheet_id_instruction_sheets"),
            "instruction_sheets",
            ["instruction_sheet_id"],
            ["id"],
        )


def downgrade() -> None:
    op.execute("DELETE FROM notification_outbox WHERE kind = 'instructions'")
    with op.batch_alter_table("notification_outbox", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_notification_outbox_instruction_sheet_id_instruction_sheets"),
            type_="foreignkey",
        )
        batch_op.drop_column("instruction_sheet_id")
    with op.batch_alter_table("instruction_sheets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instruction_sheets_status"))
        batch_op.drop_index(batch_op.f("ix_instruction_sheets_patient_id"))
        batch_op.drop_index(batch_op.f("ix_instruction_sheets_appointment_id"))
    op.drop_table("instruction_sheets")

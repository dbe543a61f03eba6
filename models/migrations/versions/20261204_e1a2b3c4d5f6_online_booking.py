"""online_booking: online booking by patients; slot holds that never overlap

The practice's rules for the public booking page (one row), the slot holds taken by
patients while they confirm their identity, and a registration status on patients (those
who registered themselves online stay "pending" until a secretary checks them).

Two live holds of one practitioner never overlap: PostgreSQL enforces it with an exclusion
constraint (btree_gist, already installed by the scheduling revision), SQLite, whose writers
are serialised, with triggers. An expired hold is released (``released_at`` set) before a new
one is taken over it.

Revision ID: e1a2b3c4d5f6
Revises: d5e7a9c1b3f2
Create Date: 2026-12-04 19:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import models.types

revision: str = "e1a2b3c4d5f6"
down_revision: str | None = "d5e7a9c1b3f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OVERLAP_SQLITE = """
    NEW.released_at IS NULL AND EXISTS (
        SELECT 1 FROM slot_holds AS other
        WHERE other.practitioner_id = NEW.practitioner_id
          AND other.id IS NOT NEW.id
          AND other.released_at IS NULL
          AND other.starts_at < NEW.ends_at
          AND other.ends_at > NEW.starts_at
    )
"""
NO_OVERLAP_SQLITE = [
    f"""CREATE TRIGGER slot_holds_no_overlap_insert BEFORE INSERT ON slot_holds
    WHEN {OVERLAP_SQLITE}
    BEGIN SELECT RAISE(ABORT, 'slot_hold_overlap'); END""",
    f"""CREATE TRIGGER slot_holds_no_overlap_update
    BEFORE UPDATE OF practitioner_id, starts_at, ends_at, released_at ON slot_holds
    WHEN {OVERLAP_SQLITE}
    BEGIN SELECT RAISE(ABORT, 'slot_hold_overlap'); END""",
]
NO_OVERLAP_POSTGRESQL = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    """ALTER TABLE slot_holds ADD CONSTRAINT slot_hold_overlap
    EXCLUDE USING gist (practitioner_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&)
    WHERE (released_at IS NULL)""",
]


def upgrade() -> None:
    op.create_table(
        "online_booking_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("allow_new_patients", sa.Boolean(), nullable=False),
        sa.Column("min_notice_hours", sa.Integer(), nullable=False),
        sa.Column("horizon_days", sa.Integer(), nullable=False),
        sa.Column("max_future_bookings", sa.Integer(), nullable=False),
        sa.Column("hold_minutes", sa.Integer(), nullable=False),
        sa.Column("visit_types", sa.JSON(), nullable=False),
        sa.Column("practitioner_ids", sa.JSON(), nullable=False),
        sa.Column("phone_ranges", sa.JSON(), nullable=False),
        sa.Column("frame_ancestors", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("updated_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_online_booking_rules")),
    )
    op.create_table(
        "slot_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("practitioner_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("visit_type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("expires_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("released_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("release_reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
        sa.Column("client_address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("birth_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("first_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("sex", sqlmodel.sql.sqltypes.AutoString(length=1), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
        sa.Column("contact_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("code_sent_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("code_attempts", sa.Integer(), nullable=False),
        sa.Column("verified_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("starts_at < ends_at", name=op.f("ck_slot_holds_range")),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_slot_holds_appointment_id_appointments"),
        ),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["practitioners.id"],
            name=op.f("fk_slot_holds_practitioner_id_practitioners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slot_holds")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_slot_holds_token_hash")),
    )
    with op.batch_alter_table("slot_holds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_slot_holds_contact_hash"), ["contact_hash"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_slot_holds_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(
            "ix_slot_holds_practitioner_id_starts_at",
            ["practitioner_id", "starts_at"],
            unique=False,
        )
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "registration_status",
                sa.String(length=16),
                nullable=False,
                server_default="active",
            )
        )
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": NO_OVERLAP_SQLITE, "postgresql": NO_OVERLAP_POSTGRESQL}.get(
        dialect, []
    ):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS slot_holds_no_overlap_insert")
        op.execute("DROP TRIGGER IF EXISTS slot_holds_no_overlap_update")
    # A plain DROP COLUMN (SQLite >= 3.35): batch mode would copy the table, and dropping the
    # old one fails on the foreign keys that point to it once patients have appointments.
    op.drop_column("patients", "registration_status")
    with op.batch_alter_table("slot_holds", schema=None) as batch_op:
        batch_op.drop_index("ix_slot_holds_practitioner_id_starts_at")
        batch_op.drop_index(batch_op.f("ix_slot_holds_expires_at"))
        batch_op.drop_index(batch_op.f("ix_slot_holds_contact_hash"))
    op.drop_table("slot_holds")
    op.drop_table("online_booking_rules")

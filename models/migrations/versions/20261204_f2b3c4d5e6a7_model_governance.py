"""model_governance: model acceptance and assistant feedback

What the secretaries did with each proposed action (``assistant_proposals``), the acceptance
runs of the models (``model_acceptances``) and the admin's choices (``model_governance``).

Revision ID: f2b3c4d5e6a7
Revises: e1a2b3c4d5f6
Create Date: 2026-12-04 19:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import models.types

revision: str = "f2b3c4d5e6a7"
down_revision: str | None = "e1a2b3c4d5f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

String = sqlmodel.sql.sqltypes.AutoString
UTC = models.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "assistant_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("tool", String(length=64), nullable=False),
        sa.Column("provider", String(length=16), nullable=False),
        sa.Column("model", String(length=128), nullable=False),
        sa.Column("model_digest", String(length=128), nullable=False),
        sa.Column("prompt_version", sa.Integer(), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("tool_errors", sa.Integer(), nullable=False),
        sa.Column("proposed_at", UTC(timezone=True), nullable=False),
        sa.Column("decision", String(length=8), nullable=False),
        sa.Column("edited_args", sa.JSON(), nullable=False),
        sa.Column("refusal_reason", String(length=500), nullable=False),
        sa.Column("decided_at", UTC(timezone=True), nullable=True),
        sa.Column("seconds_to_decision", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "decision IN ('', 'approve', 'edit', 'reject')",
            name=op.f("ck_assistant_proposals_decision"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistant_proposals")),
    )
    op.create_index(
        "ix_assistant_proposals_conversation_id_decision",
        "assistant_proposals",
        ["conversation_id", "decision"],
    )
    op.create_index(
        op.f("ix_assistant_proposals_proposed_at"), "assistant_proposals", ["proposed_at"]
    )
    op.create_table(
        "model_acceptances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", String(length=16), nullable=False),
        sa.Column("model", String(length=128), nullable=False),
        sa.Column("digest", String(length=128), nullable=False),
        sa.Column("prompt_version", sa.Integer(), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("scenarios", sa.Integer(), nullable=False),
        sa.Column("pass_1", sa.Float(), nullable=False),
        sa.Column("pass_k", sa.Float(), nullable=False),
        sa.Column("rules_pass_1", sa.Float(), nullable=False),
        sa.Column("rules_pass_k", sa.Float(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("run_at", UTC(timezone=True), nullable=False),
        sa.Column("run_by", String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_acceptances")),
    )
    op.create_index(op.f("ix_model_acceptances_model"), "model_acceptances", ["model"])
    op.create_table(
        "model_governance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mode", String(length=8), nullable=False),
        sa.Column("acceptance_id", sa.Integer(), nullable=True),
        sa.Column("forced_provider", String(length=16), nullable=False),
        sa.Column("forced_model", String(length=128), nullable=False),
        sa.Column("max_refusal_rate", sa.Float(), nullable=False),
        sa.Column("max_edit_rate", sa.Float(), nullable=False),
        sa.Column("min_approval_rate", sa.Float(), nullable=False),
        sa.Column("min_decisions", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.Column("updated_by", String(length=128), nullable=False),
        sa.CheckConstraint(
            "mode IN ('gate', 'pinned', 'forced', 'rules')", name=op.f("ck_model_governance_mode")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_governance")),
    )


def downgrade() -> None:
    op.drop_table("model_governance")
    op.drop_index(op.f("ix_model_acceptances_model"), table_name="model_acceptances")
    op.drop_table("model_acceptances")
    op.drop_index(op.f("ix_assistant_proposals_proposed_at"), table_name="assistant_proposals")
    op.drop_index(
        "ix_assistant_proposals_conversation_id_decision", table_name="assistant_proposals"
    )
    op.drop_table("assistant_proposals")

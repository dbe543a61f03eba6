"""mcp_clients: areas and write access

Each MCP client gets the list of areas (MCP servers) it may open and whether it may call the
tools that change data. The server defaults give existing clients what they had before: every
area of the time, and write access.

Revision ID: be4b3c1841bb
Revises: 3f5193472415
Create Date: 2026-11-23 14:27:38.443365
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "be4b3c1841bb"
down_revision: str | None = "3f5193472415"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: the areas served when this migration was written.
ALL_AREAS = '["agenda", "knowledge", "letters", "questionnaires"]'


def upgrade() -> None:
    with op.batch_alter_table("mcp_clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("areas", sa.JSON(), nullable=False, server_default=sa.text(f"'{ALL_AREAS}'"))
        )
        batch_op.add_column(
            sa.Column("can_write", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("mcp_clients", schema=None) as batch_op:
        batch_op.drop_column("can_write")
        batch_op.drop_column("areas")

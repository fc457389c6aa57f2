"""imap: expunged UIDs with their MODSEQ (QRESYNC VANISHED, RFC 7162 §3.2.10)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "expunged_messages",
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["folders.id"],
            name=op.f("fk_expunged_messages_folder_id_folders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("folder_id", "uid", name=op.f("pk_expunged_messages")),
    )
    op.create_index(
        "ix_expunged_messages_folder_modseq",
        "expunged_messages",
        ["folder_id", "modseq"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_expunged_messages_folder_modseq", table_name="expunged_messages")
    op.drop_table("expunged_messages")

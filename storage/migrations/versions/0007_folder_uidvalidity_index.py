"""index folders.uidvalidity: every new folder reads its maximum

Creating a box reads max(uidvalidity) for each of its folders; without an index that is a
scan of every folder, which made creating many boxes quadratic.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 21:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_folders_uidvalidity"), "folders", ["uidvalidity"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_folders_uidvalidity"), table_name="folders")

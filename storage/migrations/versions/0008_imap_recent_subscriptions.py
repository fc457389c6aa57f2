"""IMAP \\Recent, subscriptions of their own, a UIDVALIDITY counter that survives deletions

- folders.recent_uid: the highest UID a session has been told of (RFC 3501 §2.3.2); the
  messages already there count as seen, so an upgrade makes nothing recent;
- subscriptions (account, name): the subscription list no longer lives on the folder row
  (RFC 3501 §6.3.6: a name stays subscribed when its folder is deleted, and may be subscribed
  without existing); the folders subscribed so far are copied there;
- counters ('uidvalidity'): the last UIDVALIDITY given, so that deleting the folder that held
  the highest value cannot make its name come back with it (RFC 3501 §2.3.1.1).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_subscriptions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "name", name=op.f("pk_subscriptions")),
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counters")),
    )
    op.execute(
        "INSERT INTO subscriptions (account_id, name)"
        " SELECT account_id, name FROM folders WHERE subscribed"
    )
    op.execute(
        "INSERT INTO counters (name, value)"
        " SELECT 'uidvalidity', COALESCE(MAX(uidvalidity), 0) FROM folders"
    )
    with op.batch_alter_table("folders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("recent_uid", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.drop_column("subscribed")
    op.execute("UPDATE folders SET recent_uid = uidnext - 1")


def downgrade() -> None:
    with op.batch_alter_table("folders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("subscribed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.drop_column("recent_uid")
    op.execute(
        "UPDATE folders SET subscribed = TRUE WHERE EXISTS (SELECT 1 FROM subscriptions s"
        " WHERE s.account_id = folders.account_id AND s.name = folders.name)"
    )
    op.drop_table("counters")
    op.drop_table("subscriptions")

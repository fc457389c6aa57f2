"""relay queue: DSN reports owed per recipient; app passwords for mail clients

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Patient boxes of Corsican INS (2A/2B) were stored with upper-case letters while every
    # lookup lowercases the address: store them lowercase like every other box.
    op.execute(sa.text("UPDATE accounts SET address = lower(address) WHERE kind = 'PAT'"))
    op.create_table(
        "app_passwords",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_app_passwords_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_passwords")),
    )
    op.create_index(
        op.f("ix_app_passwords_account_id"), "app_passwords", ["account_id"], unique=False
    )
    with op.batch_alter_table("relay_queue") as batch:
        batch.add_column(sa.Column("action", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("status", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("remote_mta", sa.String(length=300), nullable=True))
        batch.add_column(
            sa.Column("smtputf8", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("finished_at", storage.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_app_passwords_account_id"), table_name="app_passwords")
    op.drop_table("app_passwords")
    with op.batch_alter_table("relay_queue") as batch:
        for column in ("finished_at", "smtputf8", "remote_mta", "status", "action"):
            batch.drop_column(column)

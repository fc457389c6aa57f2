"""filing jobs: documents of messages delivered to patients, filed by a worker; entryUUID

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dossier_documents") as batch:
        batch.add_column(sa.Column("entry_uuid", sa.String(length=100), nullable=True))
    op.create_table(
        "filing_jobs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "message_row_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("auth_method", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_row_id"],
            ["messages.id"],
            name=op.f("fk_filing_jobs_message_row_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.account_id"],
            name=op.f("fk_filing_jobs_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filing_jobs")),
        sa.UniqueConstraint("message_row_id", name=op.f("uq_filing_jobs_message_row_id")),
    )
    op.create_index(
        "ix_filing_jobs_state_next", "filing_jobs", ["state", "next_attempt_at"], unique=False
    )
    op.create_index(op.f("ix_filing_jobs_patient_id"), "filing_jobs", ["patient_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_filing_jobs_patient_id"), table_name="filing_jobs")
    op.drop_index("ix_filing_jobs_state_next", table_name="filing_jobs")
    op.drop_table("filing_jobs")
    with op.batch_alter_table("dossier_documents") as batch:
        batch.drop_column("entry_uuid")

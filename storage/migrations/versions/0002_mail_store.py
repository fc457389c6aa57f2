"""mail store: blobs, folders, messages, relay queue, dossier

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 16:26:22.980717
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_blobs")),
    )
    op.create_table(
        "folders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("special_use", sa.String(length=20), nullable=True),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uidnext", sa.BigInteger(), nullable=False),
        sa.Column("highestmodseq", sa.BigInteger(), nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_folders_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_folders")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_folders_account_id")),
    )
    op.create_table(
        "relay_queue",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("notify", sa.String(length=40), nullable=True),
        sa.Column("ret", sa.String(length=4), nullable=True),
        sa.Column("envid", sa.String(length=100), nullable=True),
        sa.Column("orcpt", sa.String(length=500), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delay_notified", sa.Boolean(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["blob_sha256"], ["blobs.sha256"], name=op.f("fk_relay_queue_blob_sha256_blobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relay_queue")),
    )
    with op.batch_alter_table("relay_queue", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_relay_queue_blob_sha256"), ["blob_sha256"], unique=False
        )
        batch_op.create_index(
            "ix_relay_queue_state_next", ["state", "next_attempt_at"], unique=False
        )

    op.create_table(
        "dossier_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("unique_id", sa.String(length=200), nullable=False),
        sa.Column("superseded_by_id", sa.Integer(), nullable=True),
        sa.Column("type_code", sa.String(length=40), nullable=False),
        sa.Column("type_display", sa.String(length=300), nullable=False),
        sa.Column("class_code", sa.String(length=40), nullable=False),
        sa.Column("format_code", sa.String(length=200), nullable=False),
        sa.Column("confidentiality_code", sa.String(length=10), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("mime_type", sa.String(length=100), nullable=False),
        sa.Column("creation_time", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("service_start_time", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("author_national_id", sa.String(length=20), nullable=False),
        sa.Column("author_name", sa.String(length=300), nullable=False),
        sa.Column("author_institution", sa.String(length=300), nullable=False),
        sa.Column("author_specialty", sa.String(length=300), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("rendition_blob_sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("source_message_id", sa.Text(), nullable=True),
        sa.Column("source_folder_id", sa.Integer(), nullable=True),
        sa.Column("source_uid", sa.BigInteger(), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("filed_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("hidden_from_professionals", sa.Boolean(), nullable=False),
        sa.Column("visible_to_patient", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["blob_sha256"], ["blobs.sha256"], name=op.f("fk_dossier_documents_blob_sha256_blobs")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.account_id"],
            name=op.f("fk_dossier_documents_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rendition_blob_sha256"],
            ["blobs.sha256"],
            name=op.f("fk_dossier_documents_rendition_blob_sha256_blobs"),
        ),
        sa.ForeignKeyConstraint(
            ["source_folder_id"],
            ["folders.id"],
            name=op.f("fk_dossier_documents_source_folder_id_folders"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["superseded_by_id"],
            ["dossier_documents.id"],
            name=op.f("fk_dossier_documents_superseded_by_id_dossier_documents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dossier_documents")),
        sa.UniqueConstraint(
            "patient_id", "unique_id", name=op.f("uq_dossier_documents_patient_id")
        ),
    )
    with op.batch_alter_table("dossier_documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dossier_documents_patient_id"), ["patient_id"], unique=False
        )

    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("internal_date", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("body_structure", sa.Text(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["blob_sha256"], ["blobs.sha256"], name=op.f("fk_messages_blob_sha256_blobs")
        ),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["folders.id"],
            name=op.f("fk_messages_folder_id_folders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("folder_id", "uid", name=op.f("uq_messages_folder_id")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_blob_sha256"), ["blob_sha256"], unique=False)
        batch_op.create_index("ix_messages_folder_modseq", ["folder_id", "modseq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_folder_modseq")
        batch_op.drop_index(batch_op.f("ix_messages_blob_sha256"))
    op.drop_table("messages")
    with op.batch_alter_table("dossier_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dossier_documents_patient_id"))
    op.drop_table("dossier_documents")
    with op.batch_alter_table("relay_queue", schema=None) as batch_op:
        batch_op.drop_index("ix_relay_queue_state_next")
        batch_op.drop_index(batch_op.f("ix_relay_queue_blob_sha256"))
    op.drop_table("relay_queue")
    op.drop_table("folders")
    op.drop_table("blobs")

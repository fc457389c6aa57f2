"""accounts, patients, directory caches and audit log

Revision ID: 0001
Revises:
Create Date: 2026-11-23 16:26:22.980717
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=3), nullable=False),
        sa.Column("national_id", sa.String(length=20), nullable=True),
        sa.Column("structure_id", sa.String(length=40), nullable=True),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("address", name=op.f("uq_accounts_address")),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounts_national_id"), ["national_id"], unique=False)

    op.create_table(
        "annuaire_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("imported_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annuaire_imports")),
    )
    op.create_table(
        "annuaire_mailboxes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bal_type", sa.Text(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("national_id", sa.String(length=20), nullable=True),
        sa.Column("id_pp_type", sa.Text(), nullable=False),
        sa.Column("id_pp", sa.Text(), nullable=False),
        sa.Column("structure_id_type", sa.Text(), nullable=False),
        sa.Column("structure_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("civility", sa.Text(), nullable=False),
        sa.Column("last_name", sa.Text(), nullable=False),
        sa.Column("first_name", sa.Text(), nullable=False),
        sa.Column("profession_code", sa.Text(), nullable=False),
        sa.Column("profession_label", sa.Text(), nullable=False),
        sa.Column("specialty_code", sa.Text(), nullable=False),
        sa.Column("specialty_label", sa.Text(), nullable=False),
        sa.Column("dematerialisation", sa.Text(), nullable=False),
        sa.Column("structure_name", sa.Text(), nullable=False),
        sa.Column("postal_code", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annuaire_mailboxes")),
    )
    with op.batch_alter_table("annuaire_mailboxes", schema=None) as batch_op:
        batch_op.create_index("ix_annuaire_mailboxes_address", ["address"], unique=False)
        batch_op.create_index("ix_annuaire_mailboxes_national_id", ["national_id"], unique=False)

    op.create_table(
        "annuaire_persons",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("national_id", sa.String(length=20), nullable=False),
        sa.Column("id_pp_type", sa.Text(), nullable=False),
        sa.Column("id_pp", sa.Text(), nullable=False),
        sa.Column("civility", sa.Text(), nullable=False),
        sa.Column("last_name", sa.Text(), nullable=False),
        sa.Column("first_name", sa.Text(), nullable=False),
        sa.Column("profession_code", sa.Text(), nullable=False),
        sa.Column("profession_label", sa.Text(), nullable=False),
        sa.Column("specialty_code", sa.Text(), nullable=False),
        sa.Column("specialty_label", sa.Text(), nullable=False),
        sa.Column("mode_code", sa.Text(), nullable=False),
        sa.Column("structure_id", sa.Text(), nullable=False),
        sa.Column("siret", sa.Text(), nullable=False),
        sa.Column("finess", sa.Text(), nullable=False),
        sa.Column("structure_name", sa.Text(), nullable=False),
        sa.Column("postal_code", sa.Text(), nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annuaire_persons")),
    )
    with op.batch_alter_table("annuaire_persons", schema=None) as batch_op:
        batch_op.create_index("ix_annuaire_persons_national_id", ["national_id"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("auth_method", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("object_type", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.String(length=200), nullable=False),
        sa.Column("patient_ins", sa.String(length=15), nullable=True),
        sa.Column("remote_address", sa.String(length=60), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_patient_ins"), ["patient_ins"], unique=False)

    op.create_table(
        "listeblanche_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("dn_text", sa.Text(), nullable=True),
        sa.Column("dn_normalized", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("origin", sa.String(length=10), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listeblanche_entries")),
    )
    with op.batch_alter_table("listeblanche_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_listeblanche_entries_domain"), ["domain"], unique=False
        )

    op.create_table(
        "listeblanche_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("imported_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("generated_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("domains", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listeblanche_imports")),
    )
    op.create_table(
        "account_certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("subject_dn", sa.Text(), nullable=False),
        sa.Column("subject_text", sa.Text(), nullable=False),
        sa.Column("serial_hex", sa.String(length=64), nullable=False),
        sa.Column("issuer_dn", sa.Text(), nullable=False),
        sa.Column("not_after", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("added_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_certificates_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_certificates")),
        sa.UniqueConstraint(
            "fingerprint_sha256", name=op.f("uq_account_certificates_fingerprint_sha256")
        ),
    )
    with op.batch_alter_table("account_certificates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_account_certificates_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "org_members",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("added_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["accounts.id"],
            name=op.f("fk_org_members_member_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["accounts.id"],
            name=op.f("fk_org_members_org_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "member_id", name=op.f("pk_org_members")),
    )
    with op.batch_alter_table("org_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_org_members_member_id"), ["member_id"], unique=False)

    op.create_table(
        "patients",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("ins", sa.String(length=15), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("personal_email", sa.String(length=320), nullable=True),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("state_changed_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_patients_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_patients")),
        sa.UniqueConstraint("ins", name=op.f("uq_patients_ins")),
    )
    op.create_table(
        "patient_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("opened_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.account_id"],
            name=op.f("fk_patient_contacts_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_contacts")),
        sa.UniqueConstraint("patient_id", "address", name=op.f("uq_patient_contacts_patient_id")),
    )
    with op.batch_alter_table("patient_contacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patient_contacts_patient_id"), ["patient_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("patient_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_contacts_patient_id"))
    op.drop_table("patient_contacts")
    op.drop_table("patients")
    with op.batch_alter_table("org_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_org_members_member_id"))
    op.drop_table("org_members")
    with op.batch_alter_table("account_certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_certificates_account_id"))
    op.drop_table("account_certificates")
    op.drop_table("listeblanche_imports")
    with op.batch_alter_table("listeblanche_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_listeblanche_entries_domain"))
    op.drop_table("listeblanche_entries")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_patient_ins"))
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))
    op.drop_table("audit_log")
    with op.batch_alter_table("annuaire_persons", schema=None) as batch_op:
        batch_op.drop_index("ix_annuaire_persons_national_id")
    op.drop_table("annuaire_persons")
    with op.batch_alter_table("annuaire_mailboxes", schema=None) as batch_op:
        batch_op.drop_index("ix_annuaire_mailboxes_national_id")
        batch_op.drop_index("ix_annuaire_mailboxes_address")
    op.drop_table("annuaire_mailboxes")
    op.drop_table("annuaire_imports")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_national_id"))
    op.drop_table("accounts")

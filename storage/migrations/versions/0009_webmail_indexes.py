"""index the dossier by document date: the webmail lists it newest first

``storage.dossier.list_documents`` orders a patient's documents by document date (the
filing date when there is none), then filing date, then id; without an index SQLite sorted
every document of the patient for each page (issue #6, webmail pages within 200 ms). With
it, a page is read in index order.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_dossier_documents_patient_date",
        "dossier_documents",
        ["patient_id", sa.text("coalesce(creation_time, filed_at)"), "filed_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_dossier_documents_patient_date", table_name="dossier_documents")

"""SQLAlchemy models: the whole persistent schema.

The schema evolves only through Alembic migrations in `storage/migrations/versions/`; a test
checks that the migrations and these models describe the same schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware (SQLite drops tz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """A mapped class's table, for Core statements on the hot paths."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


# --- accounts and mailboxes -------------------------------------------------------------


class Account(Base):
    """A mailbox: PER (one professional), ORG (a team), APP (a system), PAT (a patient)."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    kind: Mapped[str] = mapped_column(String(3))  # PER | ORG | APP | PAT
    national_id: Mapped[str | None] = mapped_column(String(20), index=True)
    structure_id: Mapped[str | None] = mapped_column(String(40))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(10), default="active")  # active | disabled
    password_hash: Mapped[str | None] = mapped_column(String(200))
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OrgMember(Base):
    """A member of an ORG box may read it and send as it with their own credentials."""

    __tablename__ = "org_members"

    org_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccountCertificate(Base):
    """A client certificate bound to an account (SASL EXTERNAL)."""

    __tablename__ = "account_certificates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    subject_dn: Mapped[str] = mapped_column(Text)  # normalised (certs.dn)
    subject_text: Mapped[str] = mapped_column(Text)
    serial_hex: Mapped[str] = mapped_column(String(64))
    issuer_dn: Mapped[str] = mapped_column(Text)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AppPassword(Base):
    """A password for one mail client (patients' IMAP/submission access, when enabled).

    Patients sign in to the webmail with a password and a one-time code; a mail client
    cannot do the second step, so it gets its own revocable password instead.
    """

    __tablename__ = "app_passwords"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Patient(Base):
    """A Mon espace santé mailbox holder, `<INS>@patient.mssante.fr`."""

    __tablename__ = "patients"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    ins: Mapped[str] = mapped_column(String(15), unique=True)
    state: Mapped[str] = mapped_column(String(10), default="active")  # active|opposed|closed
    personal_email: Mapped[str | None] = mapped_column(String(320))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PatientContact(Base):
    """A professional address the patient may answer (it wrote first); closed by FIN."""

    __tablename__ = "patient_contacts"
    __table_args__ = (UniqueConstraint("patient_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patients.account_id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(10), default="open")  # open | closed
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- national directory caches ----------------------------------------------------------


class ListeBlancheEntry(Base):
    """One (domain, operator certificate DN) pair of the national liste blanche."""

    __tablename__ = "listeblanche_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), index=True)  # lowercased
    dn_text: Mapped[str | None] = mapped_column(Text)
    dn_normalized: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # national: from the published file (replaced by each import); local: added by the
    # operator (development peers, test operators) and kept across imports.
    origin: Mapped[str] = mapped_column(String(10), default="national")


class ListeBlancheImport(Base):
    __tablename__ = "listeblanche_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    generated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    file_name: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(Integer)
    domains: Mapped[int] = mapped_column(Integer)


class AnnuaireImport(Base):
    """One import of an annuaire extraction; the `active` one is what the cache holds."""

    __tablename__ = "annuaire_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # the file kind (AnnuaireKind value)
    file_name: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    records: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=False)


class AnnuairePerson(Base):
    """One line of PS_LibreAcces_Personne_activite (one activity of one professional)."""

    __tablename__ = "annuaire_persons"
    __table_args__ = (Index("ix_annuaire_persons_national_id", "national_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    national_id: Mapped[str] = mapped_column(String(20))
    id_pp_type: Mapped[str] = mapped_column(Text, default="")
    id_pp: Mapped[str] = mapped_column(Text, default="")
    civility: Mapped[str] = mapped_column(Text, default="")
    last_name: Mapped[str] = mapped_column(Text, default="")
    first_name: Mapped[str] = mapped_column(Text, default="")
    profession_code: Mapped[str] = mapped_column(Text, default="")
    profession_label: Mapped[str] = mapped_column(Text, default="")
    specialty_code: Mapped[str] = mapped_column(Text, default="")
    specialty_label: Mapped[str] = mapped_column(Text, default="")
    mode_code: Mapped[str] = mapped_column(Text, default="")
    structure_id: Mapped[str] = mapped_column(Text, default="")
    siret: Mapped[str] = mapped_column(Text, default="")
    finess: Mapped[str] = mapped_column(Text, default="")
    structure_name: Mapped[str] = mapped_column(Text, default="")
    postal_code: Mapped[str] = mapped_column(Text, default="")
    city: Mapped[str] = mapped_column(Text, default="")


class AnnuaireMailbox(Base):
    """One line of Extraction_Correspondance_MSSante (a published MSSanté box)."""

    __tablename__ = "annuaire_mailboxes"
    __table_args__ = (
        Index("ix_annuaire_mailboxes_address", "address"),
        Index("ix_annuaire_mailboxes_national_id", "national_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    bal_type: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(320))
    national_id: Mapped[str | None] = mapped_column(String(20))  # None for ORG boxes
    id_pp_type: Mapped[str] = mapped_column(Text, default="")
    id_pp: Mapped[str] = mapped_column(Text, default="")
    structure_id_type: Mapped[str] = mapped_column(Text, default="")
    structure_id: Mapped[str] = mapped_column(Text, default="")
    service: Mapped[str] = mapped_column(Text, default="")
    civility: Mapped[str] = mapped_column(Text, default="")
    last_name: Mapped[str] = mapped_column(Text, default="")
    first_name: Mapped[str] = mapped_column(Text, default="")
    profession_code: Mapped[str] = mapped_column(Text, default="")
    profession_label: Mapped[str] = mapped_column(Text, default="")
    specialty_code: Mapped[str] = mapped_column(Text, default="")
    specialty_label: Mapped[str] = mapped_column(Text, default="")
    dematerialisation: Mapped[str] = mapped_column(Text, default="")
    structure_name: Mapped[str] = mapped_column(Text, default="")
    postal_code: Mapped[str] = mapped_column(Text, default="")


# --- mail store -------------------------------------------------------------------------


class Blob(Base):
    """A content-addressed message body or document, stored once under the blob directory."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str | None] = mapped_column(String(40))  # encryption key id, if encrypted
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Folder(Base):
    """An IMAP mailbox (RFC 3501 §2.3.1.1 UIDVALIDITY/UIDNEXT, RFC 7162 HIGHESTMODSEQ)."""

    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))  # UTF-8; modified UTF-7 only on the wire
    special_use: Mapped[str | None] = mapped_column(String(20))  # RFC 6154 (\\Sent, ...)
    # From the `uidvalidity` counter (storage/mailstore.py); the index is migration 0007's.
    uidvalidity: Mapped[int] = mapped_column(BigInteger, index=True)
    uidnext: Mapped[int] = mapped_column(BigInteger, default=1)
    highestmodseq: Mapped[int] = mapped_column(BigInteger, default=1)
    # RFC 3501 §2.3.2 \Recent: the highest UID some session has already been told of; the
    # messages above it are recent for the next session that claims them (mailstore.py).
    recent_uid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscription(Base):
    """A name in an account's subscription list (RFC 3501 §6.3.6): independent of the
    folders, a name may be subscribed without existing and stays when its folder goes."""

    __tablename__ = "subscriptions"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(500), primary_key=True)  # UTF-8, as folders.name


class Counter(Base):
    """A named value that only grows and survives whatever it numbers (UIDVALIDITY: RFC 3501
    §2.3.1.1, never reused for a name even after the folder is deleted)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Message(Base):
    """One message in one folder; the body is a shared blob."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("folder_id", "uid"),
        Index("ix_messages_folder_modseq", "folder_id", "modseq"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(BigInteger)
    modseq: Mapped[int] = mapped_column(BigInteger)
    flags: Mapped[str] = mapped_column(Text, default="")  # space-separated system flags+keywords
    internal_date: Mapped[datetime] = mapped_column(UTCDateTime)
    size: Mapped[int] = mapped_column(BigInteger)
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    message_id: Mapped[str | None] = mapped_column(Text)
    envelope: Mapped[str] = mapped_column(Text, default="")  # cached RFC 3501 ENVELOPE (JSON)
    body_structure: Mapped[str] = mapped_column(Text, default="")  # cached BODYSTRUCTURE (JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExpungedMessage(Base):
    """A UID expunged from a folder, with the MODSEQ of its removal (RFC 7162 §3.2.10).

    QRESYNC clients learn what vanished since the MODSEQ they last saw; UIDs are never reused
    in a folder while its UIDVALIDITY stands, so (folder, uid) identifies the removal.
    """

    __tablename__ = "expunged_messages"
    __table_args__ = (Index("ix_expunged_messages_folder_modseq", "folder_id", "modseq"),)

    folder_id: Mapped[int] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True
    )
    uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    modseq: Mapped[int] = mapped_column(BigInteger)


class QueueEntry(Base):
    """A message waiting to be relayed to another operator, one row per recipient."""

    __tablename__ = "relay_queue"
    __table_args__ = (Index("ix_relay_queue_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    sender: Mapped[str] = mapped_column(String(320))  # envelope MAIL FROM ("" for DSNs)
    recipient: Mapped[str] = mapped_column(String(320))
    # RFC 3461 DSN parameters.
    notify: Mapped[str | None] = mapped_column(String(40))
    ret: Mapped[str | None] = mapped_column(String(4))
    envid: Mapped[str | None] = mapped_column(String(100))
    orcpt: Mapped[str | None] = mapped_column(String(500))
    # queued: to relay; report: a DSN is owed for it (action/status say which); done.
    state: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    delay_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # RFC 3464 §2.3.3/§2.3.4: what the DSN owed for this recipient reports (state "report").
    action: Mapped[str | None] = mapped_column(String(12))  # failed|delayed|delivered|relayed
    status: Mapped[str | None] = mapped_column(String(12))  # enhanced status code
    remote_mta: Mapped[str | None] = mapped_column(String(300))
    smtputf8: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- dossier and audit ------------------------------------------------------------------


class DossierDocument(Base):
    """A document filed into a patient's dossier, with its provenance and visibility."""

    __tablename__ = "dossier_documents"
    __table_args__ = (
        UniqueConstraint("patient_id", "unique_id"),
        # The dossier newest first (storage.dossier.list_documents) read in index order, not
        # sorted: migration 0009.
        Index(
            "ix_dossier_documents_patient_date",
            "patient_id",
            text("coalesce(creation_time, filed_at)"),
            "filed_at",
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patients.account_id", ondelete="CASCADE"), index=True
    )
    unique_id: Mapped[str] = mapped_column(String(200))
    # IHE XDS entryUUID of the DocumentEntry (an RPLC association may name it, not uniqueId).
    entry_uuid: Mapped[str | None] = mapped_column(String(100))
    superseded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("dossier_documents.id", ondelete="SET NULL")
    )
    type_code: Mapped[str] = mapped_column(String(40), default="")  # LOINC
    type_display: Mapped[str] = mapped_column(String(300), default="")
    class_code: Mapped[str] = mapped_column(String(40), default="")
    format_code: Mapped[str] = mapped_column(String(200), default="")
    confidentiality_code: Mapped[str] = mapped_column(String(10), default="")
    title: Mapped[str] = mapped_column(Text, default="")
    mime_type: Mapped[str] = mapped_column(String(100))
    creation_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    service_start_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    author_national_id: Mapped[str] = mapped_column(String(20), default="")
    author_name: Mapped[str] = mapped_column(String(300), default="")
    author_institution: Mapped[str] = mapped_column(String(300), default="")
    author_specialty: Mapped[str] = mapped_column(String(300), default="")
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    rendition_blob_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(BigInteger)
    source_message_id: Mapped[str | None] = mapped_column(Text)
    source_folder_id: Mapped[int | None] = mapped_column(
        ForeignKey("folders.id", ondelete="SET NULL")
    )
    source_uid: Mapped[int | None] = mapped_column(BigInteger)
    sender: Mapped[str] = mapped_column(String(320), default="")
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    hidden_from_professionals: Mapped[bool] = mapped_column(Boolean, default=False)
    visible_to_patient: Mapped[bool] = mapped_column(Boolean, default=True)


class FilingJob(Base):
    """Filing the documents of one message delivered to a patient (issue #4).

    Enqueued in the delivery transaction, so no delivered message misses its filing; the
    worker leases a job, files, and marks it done in one transaction (idempotent re-runs).
    """

    __tablename__ = "filing_jobs"
    __table_args__ = (Index("ix_filing_jobs_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_row_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patients.account_id", ondelete="CASCADE"), index=True
    )
    sender: Mapped[str] = mapped_column(String(320), default="")  # envelope MAIL FROM
    actor: Mapped[str] = mapped_column(String(320), default="")  # authenticated identity
    auth_method: Mapped[str] = mapped_column(String(40), default="")
    state: Mapped[str] = mapped_column(String(10), default="queued")  # queued | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text, default="")  # JSON: filed / refused, reasons
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """Who did what to which data, when and how they proved who they are."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(320))
    auth_method: Mapped[str] = mapped_column(String(40), default="")
    action: Mapped[str] = mapped_column(String(60))
    object_type: Mapped[str] = mapped_column(String(40), default="")
    object_id: Mapped[str] = mapped_column(String(200), default="")
    patient_ins: Mapped[str | None] = mapped_column(String(15), index=True)
    remote_address: Mapped[str] = mapped_column(String(60), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


# --- patients' webmail (issue #6) ------------------------------------------------------------


class WebSession(Base):
    """A patient's webmail session (issue #6 login).

    The cookie holds a random token; only its SHA-256 is stored. A ``code`` session has
    passed the password and waits for the one-time code (its hash, expiry and failed
    attempts are kept here); a ``full`` session is logged in. Logging in never promotes a
    row: the ``full`` session gets a new identifier (session fixation).
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the token
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    stage: Mapped[str] = mapped_column(String(8))  # code | full
    csrf_token: Mapped[str] = mapped_column(String(64))
    auth_method: Mapped[str] = mapped_column(String(40), default="")
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    remote_address: Mapped[str] = mapped_column(String(60), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PatientTotpStep(Base):
    """The last TOTP time step accepted for a patient: RFC 6238 §5.2, a code is used once."""

    __tablename__ = "patient_totp_steps"

    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patients.account_id", ondelete="CASCADE"), primary_key=True
    )
    last_step: Mapped[int] = mapped_column(BigInteger)


class PatientNotification(Base):
    """How far new-message notifications went for a patient (mssante.md §4, issue #6).

    ``notified_message_id`` is the highest INBOX message row notified: anything above it is
    owed a notification; a failed send is retried from ``next_attempt_at``.
    """

    __tablename__ = "patient_notifications"

    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patients.account_id", ondelete="CASCADE"), primary_key=True
    )
    notified_message_id: Mapped[int] = mapped_column(BigInteger, default=0)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

"""What the patients' webmail reads and writes (issue #6), every query in one place.

The webmail (``webmail/``) holds no SQL: it calls :class:`WebmailStore`, one short
transaction per method. Every read of a patient's message or document is written to the
audit log in the transaction that serves it, and so is every refused attempt (an identifier
that is not the patient's is reported as absent). Changes to a folder (flags, a message
saved to Sent) take the folder's next MODSEQ, as the IMAP store does (RFC 7162 §3.1), and
are published to ``on_change`` so that IMAP IDLE sessions see them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit, dossier
from storage.blobs import BlobStore
from storage.db import Database
from storage.delivery import append_message, record_blob
from storage.mime import parse_metadata
from storage.models import (
    Account,
    AnnuaireMailbox,
    AuditEvent,
    DossierDocument,
    Folder,
    Message,
    Patient,
    PatientContact,
    PatientNotification,
)

__all__ = [
    "AccessPage",
    "Contact",
    "DocumentPage",
    "FolderPage",
    "ListedMessage",
    "OwedNotification",
    "Party",
    "StoredMessage",
    "WebmailStore",
]

INBOX = "INBOX"
SENT = "Sent"  # RFC 6154 \Sent, created with every account (storage.mailstore)
_CIVILITY = {"DR": "Dr", "PR": "Pr", "MME": "Mme", "M": "M.", "MLLE": "Mlle"}


@dataclass(frozen=True)
class ListedMessage:
    id: int
    uid: int
    flags: frozenset[str]
    internal_date: datetime
    size: int
    envelope: list[Any]  # RFC 3501 §7.4.2 ENVELOPE, cached at delivery (storage.mime)
    structure: list[Any] | None  # RFC 3501 BODYSTRUCTURE, cached at delivery


@dataclass(frozen=True)
class FolderPage:
    folder: str
    messages: list[ListedMessage]
    total: int
    unseen: int


@dataclass(frozen=True)
class DocumentPage:
    documents: list[DossierDocument]
    total: int  # documents matching, on every page


@dataclass(frozen=True)
class AccessPage:
    events: list[AuditEvent]
    total: int  # events recorded, on every page


@dataclass(frozen=True)
class StoredMessage:
    id: int
    folder_id: int
    folder: str
    uid: int
    flags: frozenset[str]
    internal_date: datetime
    data: bytes
    message_id: str | None


@dataclass(frozen=True)
class Party:
    """Who a mailbox is, for people: a name and an organisation (annuaire, then account)."""

    address: str
    name: str
    organisation: str


@dataclass(frozen=True)
class Contact:
    """An authorised contact of a patient (mssante.md §4): ``open`` or ``closed`` (FIN)."""

    party: Party
    state: str


@dataclass(frozen=True)
class OwedNotification:
    patient_id: int
    personal_email: str
    up_to: int  # the highest INBOX message row id it covers


class _Unchanged(Exception):
    """A write that turned out to change nothing: its transaction is rolled back."""

    def __init__(self, flags: frozenset[str]) -> None:
        super().__init__()
        self.flags = flags


def _listed(m: Message) -> ListedMessage:
    try:
        envelope = json.loads(m.envelope) if m.envelope else []
    except ValueError:
        envelope = []
    try:
        structure = json.loads(m.body_structure)["structure"] if m.body_structure else None
    except (ValueError, KeyError, TypeError):
        structure = None
    return ListedMessage(
        m.id, m.uid, frozenset(m.flags.split()), m.internal_date, m.size, envelope, structure
    )


def _person_name(row: AnnuaireMailbox) -> str:
    if row.last_name:
        civility = _CIVILITY.get(row.civility.upper(), "")
        return " ".join(p for p in (civility, row.first_name, row.last_name) if p)
    return row.service or row.structure_name


class WebmailStore:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        *,
        on_change: Callable[[Iterable[int]], None] | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.on_change = on_change

    def _changed(self, *folder_ids: int) -> None:
        if self.on_change is not None:
            self.on_change(folder_ids)

    # --- folders ---------------------------------------------------------------------------

    async def page(self, account_id: int, folder: str, *, offset: int, limit: int) -> FolderPage:
        """One page of a folder, newest first, with its counts."""
        async with self.db.session() as s:
            folder_id = await s.scalar(
                select(Folder.id).where(Folder.account_id == account_id, Folder.name == folder)
            )
            if folder_id is None:
                return FolderPage(folder, [], 0, 0)
            total = await s.scalar(select(func.count()).where(Message.folder_id == folder_id))
            unseen = await s.scalar(
                select(func.count()).where(
                    Message.folder_id == folder_id,
                    ~(" " + Message.flags + " ").contains(" \\Seen ", autoescape=True),
                )
            )
            rows = (
                await s.scalars(
                    select(Message)
                    .where(Message.folder_id == folder_id)
                    .order_by(Message.uid.desc())
                    .offset(offset)
                    .limit(limit)
                )
            ).all()
        return FolderPage(folder, [_listed(m) for m in rows], total or 0, unseen or 0)

    async def message(
        self, account_id: int, message_id: int, *, actor: audit.Actor, ins: str, purpose: str
    ) -> StoredMessage | None:
        """One of the patient's messages with its bytes, the access audited (mssante.md §7);
        another account's message is absent, and the attempt is audited too."""
        async with self.db.write() as s:
            row = (
                await s.execute(
                    select(Message, Folder.name)
                    .join(Folder, Folder.id == Message.folder_id)
                    .where(Message.id == message_id, Folder.account_id == account_id)
                )
            ).first()
            if row is None:
                audit.record(
                    s,
                    actor,
                    "message.refused",
                    object_type="message",
                    object_id=str(message_id),
                    patient_ins=ins,
                    detail={"purpose": purpose, "found": False},
                )
                return None
            m, folder = row
            audit.record(
                s,
                actor,
                f"message.{purpose}",
                object_type="message",
                object_id=f"{m.folder_id}:{m.uid}",
                patient_ins=ins,
                detail={"message_id": m.message_id},
            )
            sha, found = m.blob_sha256, m
        data = await asyncio.to_thread(self.blobs.get, sha)
        return StoredMessage(
            found.id,
            found.folder_id,
            folder,
            found.uid,
            frozenset(found.flags.split()),
            found.internal_date,
            data,
            found.message_id,
        )

    async def add_flags(self, folder_id: int, uid: int, flags: Sequence[str]) -> frozenset[str]:
        """Add flags to one message (RFC 3501 §6.4.6 +FLAGS); returns the flags it had.

        When the message has them all already (a message read again), nothing is written.
        Otherwise, in a write turn, the folder's MODSEQ is taken first: its row lock
        serialises writers of the folder, so a test-and-set such as ``$MDNSent`` (RFC 3503)
        happens once (the flags are read again under that lock).
        """
        async with self.db.session() as s:
            before = await self._flags(s, folder_id, uid)
        if before is None or before.issuperset(flags):
            return before or frozenset()
        try:
            async with self.db.write() as s:
                modseq = await s.scalar(
                    update(Folder)
                    .where(Folder.id == folder_id)
                    .values(highestmodseq=Folder.highestmodseq + 1)
                    .returning(Folder.highestmodseq)
                )
                before = await self._flags(s, folder_id, uid)
                if before is None or before.issuperset(flags):
                    raise _Unchanged(before or frozenset())  # HIGHESTMODSEQ stays
                await s.execute(
                    update(Message)
                    .where(Message.folder_id == folder_id, Message.uid == uid)
                    .values(flags=" ".join(sorted(before | set(flags))), modseq=modseq)
                )
        except _Unchanged as unchanged:
            return unchanged.flags
        self._changed(folder_id)
        return before

    @staticmethod
    async def _flags(s: AsyncSession, folder_id: int, uid: int) -> frozenset[str] | None:
        """The flags of one message, or None when it is gone."""
        text = await s.scalar(
            select(Message.flags).where(Message.folder_id == folder_id, Message.uid == uid)
        )
        return None if text is None else frozenset(text.split())

    async def save_sent(self, account_id: int, data: bytes, *, actor: audit.Actor, ins: str) -> int:
        """Keep a sent message in the patient's Sent folder (issue #6 "Envoyés"), seen."""
        ref, meta = await asyncio.to_thread(lambda: (self.blobs.put(data), parse_metadata(data)))
        async with self.db.write() as s:
            folder_id = await s.scalar(
                select(Folder.id).where(Folder.account_id == account_id, Folder.name == SENT)
            )
            if folder_id is None:
                raise LookupError(f"account {account_id} has no {SENT} folder")
            await record_blob(s, ref)
            message = await append_message(s, folder_id, ref, meta, flags="\\Seen")
            await s.flush()
            audit.record(
                s,
                actor,
                "message.sent",
                object_type="message",
                object_id=f"{folder_id}:{message.uid}",
                patient_ins=ins,
                detail={"message_id": meta.message_id},
            )
            row_id = message.id
        self._changed(folder_id)
        return row_id

    async def message_ids(
        self, account_id: int, refs: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], int]:
        """Row ids of the patient's messages known by (folder id, UID) (dossier provenance)."""
        wanted = set(refs)
        if not wanted:
            return {}
        async with self.db.session() as s:
            rows = await s.execute(
                select(Message.folder_id, Message.uid, Message.id)
                .join(Folder, Folder.id == Message.folder_id)
                .where(
                    Folder.account_id == account_id,
                    Message.folder_id.in_({f for f, _ in wanted}),
                    Message.uid.in_({u for _, u in wanted}),
                )
            )
            return {(f, u): i for f, u, i in rows.all() if (f, u) in wanted}

    # --- people ----------------------------------------------------------------------------

    async def parties(self, addresses: Iterable[str]) -> dict[str, Party]:
        """Names and organisations from the annuaire cache, else the local account's name."""
        wanted = {a.lower() for a in addresses if a}
        if not wanted:
            return {}
        found: dict[str, Party] = {}
        async with self.db.session() as s:
            for row in (
                await s.scalars(
                    select(AnnuaireMailbox)
                    .where(AnnuaireMailbox.address.in_(wanted))
                    .order_by(AnnuaireMailbox.id)
                )
            ).all():
                if row.address not in found:
                    organisation = row.structure_name if row.last_name else ""
                    if not row.last_name and row.service and row.structure_name:
                        organisation = row.structure_name
                    found[row.address] = Party(row.address, _person_name(row), organisation)
            missing = wanted - set(found)
            if missing:
                for account in (
                    await s.scalars(select(Account).where(Account.address.in_(missing)))
                ).all():
                    found[account.address] = Party(account.address, account.display_name, "")
        return found

    async def contacts(self, patient_id: int) -> list[Contact]:
        """The professionals the patient may answer, or could until they ended the exchange."""
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    select(PatientContact.address, PatientContact.state)
                    .where(PatientContact.patient_id == patient_id)
                    .order_by(PatientContact.opened_at.desc())
                )
            ).all()
        parties = await self.parties(a for a, _ in rows)
        return [
            Contact(parties.get(address, Party(address, "", "")), state) for address, state in rows
        ]

    # --- dossier ---------------------------------------------------------------------------

    async def document_types(self, patient_id: int) -> set[dossier.TypeKey]:
        """The (typeCode, display) pairs of the documents the patient sees."""
        async with self.db.session() as s:
            return await dossier.document_types(s, patient_id, viewer="patient")

    async def documents(
        self,
        patient_id: int,
        *,
        types: Collection[dossier.TypeKey] | None = None,
        offset: int,
        limit: int,
    ) -> DocumentPage:
        """One page of the documents the patient sees (of ``types`` only), newest first."""
        async with self.db.session() as s:
            total = await dossier.count_documents(s, patient_id, viewer="patient", types=types)
            rows = await dossier.list_documents(
                s, patient_id, viewer="patient", types=types, offset=offset, limit=limit
            )
        return DocumentPage(rows, total)

    async def document(
        self, patient_id: int, document_id: int, *, actor: audit.Actor, ins: str, purpose: str
    ) -> DossierDocument | None:
        async with self.db.write() as s:
            return await dossier.get_document(
                s,
                patient_id,
                document_id,
                viewer="patient",
                actor=actor,
                ins=ins,
                purpose=purpose,
            )

    async def read_blob(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self.blobs.get, sha256)

    async def set_hidden(
        self, patient_id: int, document_id: int, hidden: bool, *, actor: audit.Actor, ins: str
    ) -> bool:
        async with self.db.write() as s:
            doc = await dossier.set_hidden(s, patient_id, document_id, hidden, actor=actor, ins=ins)
            return doc is not None

    async def filed_contents(self, patient_id: int, sha256s: Iterable[str]) -> set[str]:
        """Which of these contents are already in the patient's dossier."""
        wanted = set(sha256s)
        if not wanted:
            return set()
        async with self.db.session() as s:
            rows = await s.scalars(
                select(DossierDocument.blob_sha256).where(
                    DossierDocument.patient_id == patient_id,
                    DossierDocument.blob_sha256.in_(wanted),
                )
            )
            return set(rows.all())

    async def file_attachment(
        self,
        patient_id: int,
        document: Any,
        content: bytes,
        provenance: dossier.Provenance,
        now: datetime,
    ) -> bool:
        """File one attachment the patient chose (storage.dossier.file_documents); False when
        it was already there."""
        ref = await asyncio.to_thread(self.blobs.put, content)
        async with self.db.write() as s:
            await record_blob(s, ref)
            result = await dossier.file_documents(
                s, patient_id, [(document, ref, None)], provenance, now
            )
        return bool(result.filed)

    # --- access log ------------------------------------------------------------------------

    async def record(
        self,
        actor: audit.Actor,
        action: str,
        *,
        ins: str,
        object_id: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """An audit event on its own (a read receipt sent, or refused, for a message)."""
        async with self.db.write() as s:
            audit.record(
                s,
                actor,
                action,
                object_type="message",
                object_id=object_id,
                patient_ins=ins,
                detail=detail,
            )

    async def access_log(self, ins: str, *, offset: int, limit: int) -> AccessPage:
        """One page of the events touching the patient's data, most recent first."""
        async with self.db.session() as s:
            total = await audit.count_for_patient(s, ins)
            events = await audit.events_for_patient(s, ins, offset=offset, limit=limit)
        return AccessPage(list(events), total)

    # --- new-message notifications (mssante.md §4) -----------------------------------------

    async def owed_notifications(
        self, now: datetime, lease_until: datetime, *, limit: int = 50
    ) -> list[OwedNotification]:
        """Patients with INBOX messages above their notification mark, claimed until
        ``lease_until`` (another node skips them meanwhile; a crash retries after it)."""
        mark = func.coalesce(PatientNotification.notified_message_id, 0)
        stmt = (
            select(Patient.account_id, Patient.personal_email, func.max(Message.id))
            .join(Folder, Folder.account_id == Patient.account_id)
            .join(Message, Message.folder_id == Folder.id)
            .outerjoin(PatientNotification, PatientNotification.patient_id == Patient.account_id)
            .where(
                Folder.name == INBOX,
                Patient.state == "active",
                Patient.personal_email.is_not(None),
                Message.id > mark,
                or_(
                    PatientNotification.next_attempt_at.is_(None),
                    PatientNotification.next_attempt_at <= now,
                ),
            )
            .group_by(Patient.account_id, Patient.personal_email)
            .limit(limit)
        )
        owed: list[OwedNotification] = []
        async with self.db.session() as s:
            rows = (await s.execute(stmt)).all()
            for patient_id, email, top in rows:
                row = await s.get(PatientNotification, patient_id)
                if row is None:
                    s.add(
                        PatientNotification(
                            patient_id=patient_id,
                            notified_message_id=0,
                            attempts=0,
                            next_attempt_at=lease_until,
                        )
                    )
                else:
                    row.next_attempt_at = lease_until
                owed.append(OwedNotification(patient_id, email or "", int(top)))
            try:
                await s.commit()
            except IntegrityError:  # another node claimed a new row first: its turn
                await s.rollback()
                return []
        return owed

    async def notified(self, patient_id: int, up_to: int, now: datetime) -> None:
        async with self.db.write() as s:
            row = await s.get(PatientNotification, patient_id)
            if row is None:
                return
            row.notified_message_id = max(row.notified_message_id, up_to)
            row.notified_at, row.next_attempt_at = now, None
            row.attempts, row.last_error = 0, None

    async def notification_failed(
        self, patient_id: int, error: str, now: datetime, *, initial: float, maximum: float
    ) -> None:
        """A failed send: retried after a doubling delay (``initial`` up to ``maximum`` s)."""
        async with self.db.write() as s:
            row = await s.get(PatientNotification, patient_id)
            if row is None:
                return
            row.attempts += 1
            row.last_error = error[:1000]
            delay = min(maximum, initial * 2 ** (row.attempts - 1))
            row.next_attempt_at = now + timedelta(seconds=delay)

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
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Row,
    bindparam,
    func,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import audit, dossier
from storage.blobs import BlobStore
from storage.db import Database, Executor
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
    "AccessEvent",
    "AccessPage",
    "Contact",
    "FolderPage",
    "ListedMessage",
    "OwedNotification",
    "Party",
    "Reads",
    "StoredMessage",
    "WebmailStore",
]

INBOX = "INBOX"
SENT = "Sent"  # RFC 6154 \Sent, created with every account (storage.mailstore)
_CIVILITY = {"DR": "Dr", "PR": "Pr", "MME": "Mme", "M": "M.", "MLLE": "Mlle"}

# Statements of every page view, built once: each keeps its cache key between executions, and
# they run on Core connections (no ORM unit of work or entity loading on these paths).
_FOLDER_COUNTS = select(
    Folder.id,
    select(func.count()).where(Message.folder_id == Folder.id).scalar_subquery(),
    select(func.count())
    .where(
        Message.folder_id == Folder.id,
        ~(" " + Message.flags + " ").contains(" \\Seen ", autoescape=True),
    )
    .scalar_subquery(),
).where(Folder.account_id == bindparam("account"), Folder.name == bindparam("folder"))
_FOLDER_ROWS = (
    select(
        Message.id,
        Message.uid,
        Message.flags,
        Message.internal_date,
        Message.size,
        Message.envelope,
        Message.body_structure,
    )
    .where(Message.folder_id == bindparam("folder_id"))
    .order_by(Message.uid.desc())
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_OWN_MESSAGE = (
    select(
        Message.id,
        Message.folder_id,
        Folder.name,
        Message.uid,
        Message.flags,
        Message.internal_date,
        Message.blob_sha256,
        Message.message_id,
    )
    .join(Folder, Folder.id == Message.folder_id)
    .where(Message.id == bindparam("id"), Folder.account_id == bindparam("account"))
)
_FLAGS = select(Message.flags).where(
    Message.folder_id == bindparam("folder_id"), Message.uid == bindparam("uid")
)
_ANNUAIRE_PARTIES = select(
    literal(0).label("source"),
    AnnuaireMailbox.id,
    AnnuaireMailbox.address,
    AnnuaireMailbox.civility,
    AnnuaireMailbox.first_name,
    AnnuaireMailbox.last_name,
    AnnuaireMailbox.service,
    AnnuaireMailbox.structure_name,
    literal("").label("display_name"),
).where(AnnuaireMailbox.address.in_(bindparam("addresses", expanding=True)))
_ACCOUNT_PARTIES = select(
    literal(1), Account.id, Account.address, *(literal("") for _ in range(5)), Account.display_name
).where(Account.address.in_(bindparam("addresses", expanding=True)))
_PARTIES_UNION: CompoundSelect[Any] = union_all(_ANNUAIRE_PARTIES, _ACCOUNT_PARTIES)
# The annuaire's entries first, each address's first entry first; then the accounts.
_PARTIES = _PARTIES_UNION.order_by(
    _PARTIES_UNION.selected_columns.source, _PARTIES_UNION.selected_columns.id
)
_CONTACTS = (
    select(PatientContact.address, PatientContact.state)
    .where(PatientContact.patient_id == bindparam("patient"))
    .order_by(PatientContact.opened_at.desc())
)
_FILED = select(DossierDocument.blob_sha256).where(
    DossierDocument.patient_id == bindparam("patient"),
    DossierDocument.blob_sha256.in_(bindparam("sha256s", expanding=True)),
)
_MESSAGE_IDS = (
    select(Message.folder_id, Message.uid, Message.id)
    .join(Folder, Folder.id == Message.folder_id)
    .where(
        Folder.account_id == bindparam("account"),
        Message.folder_id.in_(bindparam("folders", expanding=True)),
        Message.uid.in_(bindparam("uids", expanding=True)),
    )
)
_ACCESS_COUNT = select(func.count()).where(AuditEvent.patient_ins == bindparam("ins"))
_ACCESS_PAGE = (
    select(AuditEvent.at, AuditEvent.actor, AuditEvent.auth_method, AuditEvent.action)
    .where(AuditEvent.patient_ins == bindparam("ins"))
    .order_by(AuditEvent.id.desc())  # newest first: storage.audit.events_for_patient
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)


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
class AccessEvent:
    """What the access log shows of an audit event (mssante.md §7: who, when, what, how)."""

    at: datetime
    actor: str
    auth_method: str
    action: str


@dataclass(frozen=True)
class AccessPage:
    events: list[AccessEvent]
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


_ListedRow = Row[int, int, str, datetime, int, str, str]  # _FOLDER_ROWS
_PartyRow = Row[int, int, str, str, str, str, str, str, str]  # _PARTIES


def _listed(row: _ListedRow) -> ListedMessage:
    row_id, uid, flags, internal_date, size, envelope_json, structure_json = row
    envelope, structure = _decoded(envelope_json, structure_json)
    return ListedMessage(
        row_id, uid, frozenset(flags.split()), internal_date, size, envelope, structure
    )


# A message's cached ENVELOPE and BODYSTRUCTURE never change once delivered: a page of the
# inbox viewed again decodes nothing (the lists are shared: read them, never change them).
@lru_cache(maxsize=1024)
def _decoded(envelope_json: str, structure_json: str) -> tuple[list[Any], list[Any] | None]:
    try:
        envelope = json.loads(envelope_json) if envelope_json else []
    except ValueError:
        envelope = []
    try:
        structure = json.loads(structure_json)["structure"] if structure_json else None
    except (ValueError, KeyError, TypeError):
        structure = None
    return envelope, structure


def _party(row: _PartyRow) -> Party:
    """An annuaire entry as people know it: a person's civility and name with their
    structure, or an organisation's service (else its name); an account: its name."""
    source, _id, address, civility, first_name, last_name, service, structure, account = row
    if source == 1:
        return Party(address, account, "")
    if last_name:
        shown = _CIVILITY.get(civility.upper(), "")
        return Party(address, " ".join(p for p in (shown, first_name, last_name) if p), structure)
    return Party(address, service or structure, structure if service else "")


class Reads:
    """The reads of one page on one Core connection (``WebmailStore.reads``): a page makes
    several, and each connection costs a pool checkout and a reset."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def page(self, account_id: int, folder: str, *, offset: int, limit: int) -> FolderPage:
        """One page of a folder, newest first, with its counts."""
        found = await self.conn.execute(_FOLDER_COUNTS, {"account": account_id, "folder": folder})
        counted = found.first()
        if counted is None:
            return FolderPage(folder, [], 0, 0)
        folder_id, total, unseen = counted
        rows = await self.conn.execute(
            _FOLDER_ROWS, {"folder_id": folder_id, "offset": offset, "limit": limit}
        )
        return FolderPage(folder, [_listed(m) for m in rows], total or 0, unseen or 0)

    async def parties(self, addresses: Iterable[str]) -> dict[str, Party]:
        """Names and organisations from the annuaire cache (its first entry for an address),
        else the local account's name."""
        wanted = sorted({a.lower() for a in addresses if a})
        found: dict[str, Party] = {}
        if wanted:
            for row in await self.conn.execute(_PARTIES, {"addresses": wanted}):
                found.setdefault(row.address, _party(row))
        return found

    async def contacts(
        self, patient_id: int, also: Iterable[str] = ()
    ) -> tuple[list[Contact], dict[str, Party]]:
        """The professionals the patient may answer, or could until they ended the exchange
        (mssante.md §4), most recent first; and the parties of them and of ``also``."""
        rows = (await self.conn.execute(_CONTACTS, {"patient": patient_id})).all()
        parties = await self.parties([*(a for a, _ in rows), *also])
        contacts = [Contact(parties.get(a.lower(), Party(a, "", "")), state) for a, state in rows]
        return contacts, parties

    async def filed(self, patient_id: int, sha256s: Iterable[str]) -> set[str]:
        """Which of these contents are already in the patient's dossier."""
        wanted = sorted(set(sha256s))
        if not wanted:
            return set()
        rows = await self.conn.scalars(_FILED, {"patient": patient_id, "sha256s": wanted})
        return set(rows.all())

    async def message_ids(
        self, account_id: int, refs: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], int]:
        """Row ids of the patient's messages known by (folder id, UID) (dossier provenance)."""
        wanted = set(refs)
        if not wanted:
            return {}
        rows = await self.conn.execute(
            _MESSAGE_IDS,
            {
                "account": account_id,
                "folders": sorted({f for f, _ in wanted}),
                "uids": sorted({u for _, u in wanted}),
            },
        )
        return {(f, u): i for f, u, i in rows if (f, u) in wanted}

    async def document_types(self, patient_id: int) -> dict[dossier.TypeKey, int]:
        """How many documents the patient sees of each (typeCode, display) pair."""
        return await dossier.document_type_counts(self.conn, patient_id, viewer="patient")

    async def documents(
        self,
        patient_id: int,
        *,
        types: Collection[dossier.TypeKey] | None = None,
        offset: int,
        limit: int,
    ) -> list[dossier.ListedDocument]:
        """One page of the documents the patient sees (of ``types`` only), newest first."""
        return await dossier.list_document_rows(
            self.conn, patient_id, viewer="patient", types=types, offset=offset, limit=limit
        )

    async def access_log(self, ins: str, *, offset: int, limit: int) -> AccessPage:
        """One page of the events touching the patient's data, most recent first."""
        total = await self.conn.scalar(_ACCESS_COUNT, {"ins": ins})
        rows = await self.conn.execute(_ACCESS_PAGE, {"ins": ins, "offset": offset, "limit": limit})
        return AccessPage([AccessEvent(*row) for row in rows], int(total or 0))


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
        self.audit = audit.AuditWriter(db)  # page views' access records, group-committed

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[Reads]:
        """One connection for the reads of a page (:class:`Reads`)."""
        async with self.db.read() as conn:
            yield Reads(conn)

    async def parties(self, addresses: Iterable[str]) -> dict[str, Party]:
        async with self.reads() as r:
            return await r.parties(addresses)

    async def contacts(self, patient_id: int) -> list[Contact]:
        async with self.reads() as r:
            contacts, _ = await r.contacts(patient_id)
        return contacts

    def _changed(self, *folder_ids: int) -> None:
        if self.on_change is not None:
            self.on_change(folder_ids)

    # --- folders ---------------------------------------------------------------------------

    async def message(
        self, account_id: int, message_id: int, *, actor: audit.Actor, ins: str, purpose: str
    ) -> StoredMessage | None:
        """One of the patient's messages with its bytes, returned once the access is in the
        audit log (mssante.md §7); another account's message is absent, and the attempt is
        audited too."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(_OWN_MESSAGE, {"id": message_id, "account": account_id})
            ).first()
        if row is None:
            event = audit.event_values(
                actor,
                "message.refused",
                object_type="message",
                object_id=str(message_id),
                patient_ins=ins,
                detail={"purpose": purpose, "found": False},
            )
        else:
            event = audit.event_values(
                actor,
                f"message.{purpose}",
                object_type="message",
                object_id=f"{row.folder_id}:{row.uid}",
                patient_ins=ins,
                detail={"message_id": row.message_id},
            )
        await self.audit.write(event)  # durable before anything is shown (mssante.md §7)
        if row is None:
            return None
        data = await asyncio.to_thread(self.blobs.get, row.blob_sha256)
        return StoredMessage(
            row.id,
            row.folder_id,
            row.name,
            row.uid,
            frozenset(row.flags.split()),
            row.internal_date,
            data,
            row.message_id,
        )

    async def add_flags(
        self,
        folder_id: int,
        uid: int,
        flags: Sequence[str],
        *,
        known: frozenset[str] | None = None,
    ) -> frozenset[str]:
        """Add flags to one message (RFC 3501 §6.4.6 +FLAGS); returns the flags it had.

        When the message has them all already (a message read again), nothing is written:
        ``known`` are its flags as the caller just read them (no read here then). Otherwise,
        in a write turn, the folder's MODSEQ is taken first: its row lock serialises writers
        of the folder, so a test-and-set such as ``$MDNSent`` (RFC 3503) happens once (the
        flags are read again under that lock).
        """
        before = known
        if before is None:
            async with self.db.read() as conn:
                before = await self._flags(conn, folder_id, uid)
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
    async def _flags(s: Executor, folder_id: int, uid: int) -> frozenset[str] | None:
        """The flags of one message, or None when it is gone."""
        text = await s.scalar(_FLAGS, {"folder_id": folder_id, "uid": uid})
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

    # --- people ----------------------------------------------------------------------------

    # --- dossier ---------------------------------------------------------------------------

    async def document(
        self, patient_id: int, document_id: int, *, actor: audit.Actor, ins: str, purpose: str
    ) -> DossierDocument | None:
        async with self.db.session() as s:
            doc = await dossier.find_document(s, patient_id, document_id, viewer="patient")
        event = dossier.read_event(
            doc, document_id, viewer="patient", actor=actor, ins=ins, purpose=purpose
        )
        await self.audit.write(event)  # durable before anything is shown (mssante.md §7)
        return doc

    async def read_blob(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self.blobs.get, sha256)

    async def set_hidden(
        self, patient_id: int, document_id: int, hidden: bool, *, actor: audit.Actor, ins: str
    ) -> bool:
        async with self.db.write() as s:
            doc = await dossier.set_hidden(s, patient_id, document_id, hidden, actor=actor, ins=ins)
            return doc is not None

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
        await self.audit.write(
            audit.event_values(
                actor,
                action,
                object_type="message",
                object_id=object_id,
                patient_ins=ins,
                detail=detail,
            )
        )

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

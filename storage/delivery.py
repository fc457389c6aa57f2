"""Durable acceptance of a message: one blob, its mailbox copies and queue entries, one commit.

This is the promise behind every ``250``: when :meth:`MessageStore.store` returns, the body is
written and fsynced (content-addressed, so every local copy shares it), the messages are in
their INBOXes with UIDs and MODSEQs allocated, and the relay queue holds the remote copies and
the delivery reports owed. A crash before the commit leaves at most an unreferenced blob.

The plan it receives is built by the routing pipeline; this module only reads the attributes
declared in the protocols below and knows nothing of the rules that produced them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit, filing_jobs, queue
from storage.blobs import BlobRef, BlobStore
from storage.db import Database
from storage.mime import MessageMeta, meta_to_json, parse_metadata
from storage.models import Blob, Folder, Message, PatientContact, QueueEntry, utcnow

__all__ = ["DEFAULT_LIFETIME", "MessageStore", "append_message", "record_blob", "wants_success"]

DEFAULT_LIFETIME = timedelta(days=5)  # how long the relay queue keeps retrying (RFC 5321 §4.5.4.1)


class _LocalCopy(Protocol):
    @property
    def account_id(self) -> int: ...
    @property
    def address(self) -> str: ...
    @property
    def notify(self) -> str | None: ...
    @property
    def orcpt(self) -> str | None: ...
    @property
    def patient(self) -> bool: ...


class _RelayCopy(Protocol):
    @property
    def address(self) -> str: ...
    @property
    def notify(self) -> str | None: ...
    @property
    def orcpt(self) -> str | None: ...


class _FailedCopy(_RelayCopy, Protocol):
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str: ...


class _Contact(Protocol):
    @property
    def patient_account_id(self) -> int: ...
    @property
    def address(self) -> str: ...
    @property
    def open(self) -> bool: ...


class _Plan(Protocol):
    @property
    def data(self) -> bytes: ...
    @property
    def sender(self) -> str: ...
    @property
    def envid(self) -> str | None: ...
    @property
    def ret(self) -> str | None: ...
    @property
    def local(self) -> Sequence[_LocalCopy]: ...
    @property
    def relay(self) -> Sequence[_RelayCopy]: ...
    @property
    def failed(self) -> Sequence[_FailedCopy]: ...
    @property
    def contacts(self) -> Sequence[_Contact]: ...
    @property
    def actor(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def remote_address(self) -> str: ...
    @property
    def smtputf8(self) -> bool: ...
    @property
    def completes(self) -> Sequence[int]: ...


def wants_success(notify: str | None) -> bool:
    """RFC 3461 §4.1: a success report only when NOTIFY lists SUCCESS."""
    return notify is not None and "SUCCESS" in notify.upper().split(",")


async def record_blob(session: AsyncSession, ref: BlobRef) -> None:
    values = {"sha256": ref.sha256, "size": ref.size, "created_at": utcnow()}
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(pg_insert(Blob).values(**values).on_conflict_do_nothing())
    else:
        await session.execute(sqlite_insert(Blob).values(**values).on_conflict_do_nothing())


async def append_message(
    session: AsyncSession,
    folder_id: int,
    ref: BlobRef,
    meta: MessageMeta,
    *,
    flags: str = "",
) -> Message:
    """Add one message to a folder: next UID and MODSEQ (RFC 3501 §2.3.1.1, RFC 7162 §3.1)."""
    # The row lock taken by this UPDATE serialises concurrent appends to one folder, so
    # UIDs are strictly ascending in commit order on PostgreSQL too.
    uid, modseq = (
        await session.execute(
            update(Folder)
            .where(Folder.id == folder_id)
            .values(uidnext=Folder.uidnext + 1, highestmodseq=Folder.highestmodseq + 1)
            .returning(Folder.uidnext - 1, Folder.highestmodseq)
        )
    ).one()
    envelope, structure = meta_to_json(meta)
    message = Message(
        folder_id=folder_id,
        uid=uid,
        modseq=modseq,
        flags=flags,
        internal_date=utcnow(),
        size=ref.size,
        blob_sha256=ref.sha256,
        message_id=meta.message_id,
        envelope=envelope,
        body_structure=structure,
    )
    session.add(message)
    return message


class MessageStore:
    """`routing.pipeline.MessageStore` over the database and the blob store."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        *,
        lifetime: timedelta = DEFAULT_LIFETIME,
        on_delivered: Callable[[Sequence[int]], None] | None = None,
        on_patient_delivery: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.lifetime = lifetime
        self.on_delivered = on_delivered  # folder ids that received mail (IDLE wake-up)
        self.on_patient_delivery = on_patient_delivery  # filing jobs were added (wake-up)

    async def store(self, plan: _Plan) -> None:
        # Blocking work off the event loop: hashing, writing and fsyncing the body, and
        # parsing its MIME structure once for IMAP (architecture.md, storage model).
        ref, meta = await asyncio.to_thread(self._prepare, plan.data)
        now = utcnow()
        folders: list[int] = []
        async with self.db.write() as session:
            await record_blob(session, ref)
            inboxes = await self._inboxes(session, [c.account_id for c in plan.local])
            actor = audit.Actor(plan.actor, plan.method, plan.remote_address)
            for copy in plan.local:
                folder_id = inboxes[copy.account_id]
                message = await append_message(session, folder_id, ref, meta)
                folders.append(folder_id)
                if copy.patient:
                    # Issue #4: the documents it carries are filed by a worker; the job is
                    # part of this transaction so no delivered message misses its filing.
                    await session.flush()
                    filing_jobs.enqueue(
                        session,
                        message_row_id=message.id,
                        patient_id=copy.account_id,
                        sender=plan.sender,
                        actor=plan.actor,
                        auth_method=plan.method,
                        now=now,
                    )
                    audit.record(
                        session,
                        actor,
                        "message.deliver",
                        object_type="message",
                        object_id=f"{folder_id}:{message.uid}",
                        patient_ins=copy.address.split("@", 1)[0].upper(),
                        detail={"message_id": meta.message_id, "sender": plan.sender},
                    )
                if wants_success(copy.notify):
                    session.add(
                        self._entry(
                            plan, ref, copy, state="report", action="delivered", status="2.0.0"
                        )
                    )
            for relay in plan.relay:
                session.add(self._entry(plan, ref, relay, state="queued"))
            for failed in plan.failed:
                entry = self._entry(
                    plan, ref, failed, state="report", action="failed", status=failed.status
                )
                entry.last_error = failed.reason
                session.add(entry)
            for contact in plan.contacts:
                await self._set_contact(session, contact)
            # This message is the report owed for these entries (a DSN): settled in the same
            # transaction, so a report is neither lost nor sent twice across a crash.
            await queue.settle(session, plan.completes, now)
        if folders and self.on_delivered is not None:
            self.on_delivered(folders)
        if self.on_patient_delivery is not None and any(c.patient for c in plan.local):
            self.on_patient_delivery()

    def _prepare(self, data: bytes) -> tuple[BlobRef, MessageMeta]:
        return self.blobs.put(data), parse_metadata(data)

    def _entry(
        self,
        plan: _Plan,
        ref: BlobRef,
        rcpt: _RelayCopy,
        *,
        state: str,
        action: str | None = None,
        status: str | None = None,
    ) -> QueueEntry:
        created = utcnow()
        return QueueEntry(
            blob_sha256=ref.sha256,
            sender=plan.sender,
            recipient=rcpt.address,
            notify=rcpt.notify,
            ret=plan.ret,
            envid=plan.envid,
            orcpt=rcpt.orcpt,
            state=state,
            attempts=0,
            next_attempt_at=created,
            created_at=created,
            expires_at=created + self.lifetime,
            action=action,
            status=status,
            smtputf8=plan.smtputf8,
        )

    @staticmethod
    async def _inboxes(session: AsyncSession, account_ids: Sequence[int]) -> dict[int, int]:
        if not account_ids:
            return {}
        rows = await session.execute(
            select(Folder.account_id, Folder.id).where(
                Folder.account_id.in_(set(account_ids)), Folder.name == "INBOX"
            )
        )
        found = {account: folder for account, folder in rows.all()}
        missing = set(account_ids) - set(found)
        if missing:
            raise LookupError(f"accounts without an INBOX: {sorted(missing)}")
        return found

    @staticmethod
    async def _set_contact(session: AsyncSession, contact: _Contact) -> None:
        row = await session.scalar(
            select(PatientContact).where(
                PatientContact.patient_id == contact.patient_account_id,
                PatientContact.address == contact.address,
            )
        )
        now = utcnow()
        if row is None:
            if not contact.open:
                return  # closing an exchange that never opened changes nothing
            session.add(
                PatientContact(
                    patient_id=contact.patient_account_id,
                    address=contact.address,
                    state="open",
                    opened_at=now,
                )
            )
        elif contact.open and row.state != "open":
            row.state, row.opened_at, row.closed_at = "open", now, None
        elif not contact.open and row.state != "closed":
            row.state, row.closed_at = "closed", now

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
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy import Connection, Insert, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit, filing_jobs, queue
from storage.blobs import BlobRef, BlobStore
from storage.db import Database, Executor, dialect_of
from storage.mime import MessageMeta, meta_to_json, parse_metadata
from storage.models import (
    AuditEvent,
    Blob,
    FilingJob,
    Folder,
    Message,
    PatientContact,
    QueueEntry,
    table_of,
    utcnow,
)
from storage.sync_runner import SyncRunner

__all__ = [
    "DEFAULT_LIFETIME",
    "MessageStore",
    "allocate_uids",
    "append_message",
    "insert_blobs",
    "message_values",
    "record_blob",
    "record_blobs",
    "wants_success",
]

DEFAULT_LIFETIME = timedelta(days=5)  # how long the relay queue keeps retrying (RFC 5321 §4.5.4.1)


# Hot-path statements, built once: a statement object keeps its cache key, so each execution
# skips rebuilding and re-hashing the expression (SQLAlchemy's compiled cache does the rest).
_FOLDERS = table_of(Folder).c
_ALLOCATE = (
    update(table_of(Folder))
    .where(_FOLDERS.id == bindparam("folder"))
    .values(
        uidnext=_FOLDERS.uidnext + bindparam("count"),
        highestmodseq=_FOLDERS.highestmodseq + bindparam("count"),
    )
    .returning(
        _FOLDERS.uidnext - bindparam("count"), _FOLDERS.highestmodseq - bindparam("count") + 1
    )
)
# SQLite has one writer at a time: a group's folders are all advanced in one statement
# (``:folders`` is a JSON array holding each folder once per message it receives).
_FOLDERS_NAME = table_of(Folder).name
_COUNT_OF_THIS_FOLDER = (
    f"(SELECT count(*) FROM json_each(:folders) AS j WHERE j.value = {_FOLDERS_NAME}.id)"
)
_ALLOCATE_MANY_SQLITE = text(
    f"UPDATE {_FOLDERS_NAME} SET uidnext = uidnext + {_COUNT_OF_THIS_FOLDER},"
    f" highestmodseq = highestmodseq + {_COUNT_OF_THIS_FOLDER}"
    f" WHERE {_FOLDERS_NAME}.id IN (SELECT j.value FROM json_each(:folders) AS j)"
    f" RETURNING {_FOLDERS_NAME}.id, uidnext, highestmodseq"
)
_INBOXES = select(_FOLDERS.account_id, _FOLDERS.id).where(
    _FOLDERS.account_id.in_(bindparam("accounts", expanding=True)), _FOLDERS.name == "INBOX"
)
_INSERT_MESSAGES = insert(table_of(Message)).returning(
    table_of(Message).c.id, sort_by_parameter_order=True
)
_INSERT_BLOBS: dict[str, Insert] = {
    "sqlite": sqlite_insert(table_of(Blob)).on_conflict_do_nothing(),
    "postgresql": pg_insert(table_of(Blob)).on_conflict_do_nothing(),
}
_INSERT_ROWS = {model: insert(table_of(model)) for model in (FilingJob, AuditEvent, QueueEntry)}
_CONTACTS = table_of(PatientContact)
_THIS_CONTACT = (
    _CONTACTS.c.patient_id == bindparam("p_patient"),
    _CONTACTS.c.address == bindparam("p_address"),
)
_CONTACT_STATE = select(_CONTACTS.c.state).where(*_THIS_CONTACT)
_OPEN_NEW_CONTACT = insert(_CONTACTS)
_REOPEN_CONTACT = (
    update(_CONTACTS)
    .where(*_THIS_CONTACT)
    .values(state="open", opened_at=bindparam("p_now"), closed_at=None)
)
_CLOSE_CONTACT = (
    update(_CONTACTS).where(*_THIS_CONTACT).values(state="closed", closed_at=bindparam("p_now"))
)


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
    await record_blobs(session, [ref])


async def record_blobs(session: Executor, refs: Sequence[BlobRef]) -> None:
    """Reference counted nowhere: a blob row exists once per content (content-addressed)."""
    if refs:
        await session.execute(_INSERT_BLOBS[dialect_of(session)], _blob_rows(refs, utcnow()))


def insert_blobs(conn: Connection, refs: Iterable[BlobRef], now: datetime) -> None:
    """``record_blobs`` on a sync connection, in its transaction (storage.sync_runner)."""
    rows = _blob_rows(refs, now)
    if rows:
        conn.execute(_INSERT_BLOBS[conn.dialect.name], rows)


def _blob_rows(refs: Iterable[BlobRef], now: datetime) -> list[dict[str, Any]]:
    return [{"sha256": r.sha256, "size": r.size, "created_at": now} for r in refs]


async def allocate_uids(session: Executor, folder_id: int, count: int = 1) -> tuple[int, int]:
    """Reserve ``count`` consecutive UIDs and MODSEQs in a folder; returns the first of each
    (RFC 3501 §2.3.1.1: UIDs strictly ascending; RFC 7162 §3.1: a MODSEQ per change)."""
    # The row lock taken by this UPDATE serialises concurrent appends to one folder, so
    # UIDs are strictly ascending in commit order on PostgreSQL too.
    uid, modseq = (await session.execute(_ALLOCATE, {"folder": folder_id, "count": count})).one()
    return int(uid), int(modseq)


def message_values(
    folder_id: int,
    uid: int,
    modseq: int,
    ref: BlobRef,
    meta: MessageMeta,
    flags: str = "",
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The columns of one message row (the ENVELOPE and BODYSTRUCTURE cached for IMAP)."""
    envelope, structure = meta_to_json(meta)
    now = now or utcnow()
    return {
        "folder_id": folder_id,
        "uid": uid,
        "modseq": modseq,
        "flags": flags,
        "internal_date": now,
        "size": ref.size,
        "blob_sha256": ref.sha256,
        "message_id": meta.message_id,
        "envelope": envelope,
        "body_structure": structure,
        "created_at": now,
    }


async def append_message(
    session: AsyncSession,
    folder_id: int,
    ref: BlobRef,
    meta: MessageMeta,
    *,
    flags: str = "",
) -> Message:
    """Add one message to a folder: next UID and MODSEQ (RFC 3501 §2.3.1.1, RFC 7162 §3.1)."""
    uid, modseq = await allocate_uids(session, folder_id)
    message = Message(**message_values(folder_id, uid, modseq, ref, meta, flags))
    session.add(message)
    return message


@dataclass
class _Pending:
    """A plan waiting for the next group commit, with what was prepared off the loop."""

    plan: _Plan
    ref: BlobRef
    meta: MessageMeta
    done: asyncio.Future[list[int]] = field(repr=False)


class MessageStore:
    """`routing.pipeline.MessageStore` over the database and the blob store.

    Group commit: deliveries that arrive while a transaction is being written wait for the
    next one and are committed together (one transaction, one WAL fsync for many messages),
    which is where concurrent SMTP sessions spent their time. Each caller still returns only
    once its own message is committed; if a group fails, its plans are retried one by one
    so that one bad plan fails alone.

    A group is written by one function of a sync Connection, run by the database's
    :class:`storage.sync_runner.SyncRunner` in this process's write turn: on SQLite in a
    worker thread, its statements and the commit without a hand-off to the event loop each.
    """

    MAX_GROUP = 64

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        *,
        lifetime: timedelta = DEFAULT_LIFETIME,
        on_delivered: Callable[[Sequence[int]], None] | None = None,
        on_patient_delivery: Callable[[], None] | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.lifetime = lifetime
        self.on_delivered = on_delivered  # folder ids that received mail (IDLE wake-up)
        self.on_patient_delivery = on_patient_delivery  # filing jobs were added (wake-up)
        self.on_queued = on_queued  # relay or report entries were added (relay worker)
        self.run = SyncRunner.shared(db)
        self._pending: list[_Pending] = []
        self._committer: asyncio.Task[None] | None = None

    async def store(self, plan: _Plan) -> None:
        # Blocking work off the event loop: hashing, writing and fsyncing the body, and
        # parsing its MIME structure once for IMAP (architecture.md, storage model).
        ref, meta = await asyncio.to_thread(self._prepare, plan.data)
        pending = _Pending(plan, ref, meta, asyncio.get_running_loop().create_future())
        self._pending.append(pending)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_loop())
        # Shielded: a caller that goes away (client disconnect) does not cancel the commit.
        folders = await asyncio.shield(pending.done)
        if folders and self.on_delivered is not None:
            self.on_delivered(folders)
        if self.on_patient_delivery is not None and any(c.patient for c in plan.local):
            self.on_patient_delivery()
        if self.on_queued is not None and _queues(plan):
            self.on_queued()

    async def _commit_loop(self) -> None:
        group: list[_Pending] = []
        try:
            while self._pending:
                group = self._pending[: self.MAX_GROUP]
                del self._pending[: len(group)]
                await self._commit_group(group)
        except BaseException as exc:  # cancelled at shutdown: these were not committed
            for one in group + self._pending:
                _settle(one, exc)
            self._pending.clear()
            raise

    async def _commit_group(self, group: list[_Pending]) -> None:
        try:
            await self._commit(group)
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0], exc)
                return
            for one in group:  # find the plan that failed: each in its own transaction
                try:
                    await self._commit([one])
                except Exception as single:
                    _settle(one, single)

    async def _commit(self, group: list[_Pending]) -> None:
        # The whole group in one trip (storage/sync_runner.py): on SQLite a worker thread
        # writes and commits it, in this process's write turn, without waking the event loop
        # for each statement; an exception rolls everything back.
        folders = await self.run.write(partial(self._write, tuple(group)))
        for one, touched in zip(group, folders, strict=True):
            if not one.done.done():
                one.done.set_result(touched)

    def _write(self, group: Sequence[_Pending], conn: Connection) -> tuple[list[list[int]], bool]:
        """Every row of the group in one transaction; the folders each plan delivered to.
        Runs in the SyncRunner (a worker thread on SQLite): it touches no event loop object."""
        now = utcnow()
        insert_blobs(conn, {p.ref.sha256: p.ref for p in group}.values(), now)
        inboxes = self._inboxes(conn, [c.account_id for p in group for c in p.plan.local])
        copies = [(p, c, inboxes[c.account_id]) for p in group for c in p.plan.local]
        message_ids = self._append(conn, copies, now)
        jobs: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        entries: list[dict[str, Any]] = []
        for (one, copy, folder_id), (row_id, uid) in zip(copies, message_ids, strict=True):
            plan = one.plan
            if copy.patient:
                # Issue #4: the documents it carries are filed by a worker; the job is
                # part of this transaction so no delivered message misses its filing.
                jobs.append(
                    filing_jobs.job_values(
                        message_row_id=row_id,
                        patient_id=copy.account_id,
                        sender=plan.sender,
                        actor=plan.actor,
                        auth_method=plan.method,
                        now=now,
                    )
                )
                events.append(
                    audit.event_values(
                        audit.Actor(plan.actor, plan.method, plan.remote_address),
                        "message.deliver",
                        object_type="message",
                        object_id=f"{folder_id}:{uid}",
                        patient_ins=copy.address.split("@", 1)[0].upper(),
                        detail={"message_id": one.meta.message_id, "sender": plan.sender},
                        at=now,
                    )
                )
            if wants_success(copy.notify):
                entries.append(
                    self._entry(one, copy, now, state="report", action="delivered", status="2.0.0")
                )
        for one in group:
            entries.extend(self._entry(one, r, now, state="queued") for r in one.plan.relay)
            entries.extend(
                self._entry(
                    one, f, now, state="report", action="failed", status=f.status, error=f.reason
                )
                for f in one.plan.failed
            )
        for table, rows in ((FilingJob, jobs), (AuditEvent, events), (QueueEntry, entries)):
            if rows:
                conn.execute(_INSERT_ROWS[table], rows)
        for one in group:
            for contact in one.plan.contacts:
                self._set_contact(conn, contact, now)
            # This message is the report owed for these entries (a DSN): settled in the same
            # transaction, so a report is neither lost nor sent twice across a crash.
            queue.settle_in(conn, one.plan.completes, now)
        return [[folder for p, _c, folder in copies if p is one] for one in group], True

    @staticmethod
    def _append(
        conn: Connection, copies: Sequence[tuple[_Pending, _LocalCopy, int]], now: datetime
    ) -> list[tuple[int, int]]:
        """Insert the messages; returns (row id, UID) for each copy, in order."""
        if not copies:
            return []
        counts = Counter(folder for _p, _c, folder in copies)
        next_ids: dict[int, tuple[int, int]] = {}  # each folder's next (UID, MODSEQ)
        if conn.dialect.name == "sqlite":  # one writer at a time: every folder at once
            folders = json.dumps([folder for _p, _c, folder in copies])
            for folder, uidnext, highest in conn.execute(
                _ALLOCATE_MANY_SQLITE, {"folders": folders}
            ):
                count = counts[int(folder)]
                next_ids[int(folder)] = (int(uidnext) - count, int(highest) - count + 1)
            if len(next_ids) != len(counts):
                raise LookupError(f"folders not found: {sorted(set(counts) - set(next_ids))}")
        else:
            # Folders in a fixed order: two nodes' groups never wait on each other's row
            # locks. The row lock taken by each UPDATE serialises concurrent appends to one
            # folder, so UIDs are strictly ascending in commit order (allocate_uids).
            for folder in sorted(counts):
                params = {"folder": folder, "count": counts[folder]}
                uid, modseq = conn.execute(_ALLOCATE, params).one()
                next_ids[folder] = (int(uid), int(modseq))
        rows: list[dict[str, Any]] = []
        for one, _copy, folder in copies:
            uid, modseq = next_ids[folder]
            next_ids[folder] = (uid + 1, modseq + 1)
            rows.append(message_values(folder, uid, modseq, one.ref, one.meta, now=now))
        ids = [int(i) for i in conn.execute(_INSERT_MESSAGES, rows).scalars()]
        return [(i, int(r["uid"])) for i, r in zip(ids, rows, strict=True)]

    def _prepare(self, data: bytes) -> tuple[BlobRef, MessageMeta]:
        return self.blobs.put(data), parse_metadata(data)

    def _entry(
        self,
        one: _Pending,
        rcpt: _RelayCopy,
        created: datetime,
        *,
        state: str,
        action: str | None = None,
        status: str | None = None,
        error: str | None = None,
    ) -> dict[str, Any]:
        return {
            "blob_sha256": one.ref.sha256,
            "sender": one.plan.sender,
            "recipient": rcpt.address,
            "notify": rcpt.notify,
            "ret": one.plan.ret,
            "envid": one.plan.envid,
            "orcpt": rcpt.orcpt,
            "state": state,
            "attempts": 0,
            "next_attempt_at": created,
            "created_at": created,
            "expires_at": created + self.lifetime,
            "action": action,
            "status": status,
            "last_error": error,
            "delay_notified": False,
            "smtputf8": one.plan.smtputf8,
        }

    @staticmethod
    def _inboxes(conn: Connection, account_ids: Sequence[int]) -> dict[int, int]:
        if not account_ids:
            return {}
        rows = conn.execute(_INBOXES, {"accounts": sorted(set(account_ids))})
        found = {account: folder for account, folder in rows.all()}
        missing = set(account_ids) - set(found)
        if missing:
            raise LookupError(f"accounts without an INBOX: {sorted(missing)}")
        return found

    @staticmethod
    def _set_contact(conn: Connection, contact: _Contact, now: datetime) -> None:
        """Open or close an authorised contact (mssante.md §4: FIN closes the exchange)."""
        this = {"p_patient": contact.patient_account_id, "p_address": contact.address}
        state = conn.scalar(_CONTACT_STATE, this)
        if state is None:
            if contact.open:  # closing an exchange that never opened changes nothing
                conn.execute(
                    _OPEN_NEW_CONTACT,
                    {
                        "patient_id": contact.patient_account_id,
                        "address": contact.address,
                        "state": "open",
                        "opened_at": now,
                    },
                )
            return
        if contact.open and state != "open":
            conn.execute(_REOPEN_CONTACT, {**this, "p_now": now})
        elif not contact.open and state != "closed":
            conn.execute(_CLOSE_CONTACT, {**this, "p_now": now})


def _queues(plan: _Plan) -> bool:
    """Whether storing the plan gave the relay worker something to do."""
    return bool(plan.relay or plan.failed or any(wants_success(c.notify) for c in plan.local))


def _settle(pending: _Pending, exc: BaseException) -> None:
    if not pending.done.done():
        if isinstance(exc, Exception):
            pending.done.set_exception(exc)
        else:
            pending.done.cancel()

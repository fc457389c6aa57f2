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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage import audit, filing_jobs, queue
from storage.blobs import BlobRef, BlobStore
from storage.db import Database, Executor, dialect_of
from storage.mime import MessageMeta, meta_to_json, parse_metadata
from storage.models import (
    AuditEvent,
    Base,
    Blob,
    FilingJob,
    Folder,
    Message,
    PatientContact,
    QueueEntry,
    utcnow,
)

__all__ = [
    "DEFAULT_LIFETIME",
    "MessageStore",
    "allocate_uids",
    "append_message",
    "message_values",
    "record_blob",
    "record_blobs",
    "wants_success",
]

DEFAULT_LIFETIME = timedelta(days=5)  # how long the relay queue keeps retrying (RFC 5321 §4.5.4.1)


def _table(model: type[Base]) -> Table:
    """A mapped class's table, for Core statements on the hot path."""
    return cast(Table, model.__table__)


# Hot-path statements, built once: a statement object keeps its cache key, so each execution
# skips rebuilding and re-hashing the expression (SQLAlchemy's compiled cache does the rest).
_FOLDERS = _table(Folder).c
_ALLOCATE = (
    update(_table(Folder))
    .where(_FOLDERS.id == bindparam("folder"))
    .values(
        uidnext=_FOLDERS.uidnext + bindparam("count"),
        highestmodseq=_FOLDERS.highestmodseq + bindparam("count"),
    )
    .returning(
        _FOLDERS.uidnext - bindparam("count"), _FOLDERS.highestmodseq - bindparam("count") + 1
    )
)
_INBOXES = select(_FOLDERS.account_id, _FOLDERS.id).where(
    _FOLDERS.account_id.in_(bindparam("accounts", expanding=True)), _FOLDERS.name == "INBOX"
)
_INSERT_MESSAGES = insert(_table(Message)).returning(
    _table(Message).c.id, sort_by_parameter_order=True
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
    now = utcnow()
    rows = [{"sha256": r.sha256, "size": r.size, "created_at": now} for r in refs]
    if not rows:
        return
    insert_ = pg_insert if dialect_of(session) == "postgresql" else sqlite_insert
    await session.execute(insert_(_table(Blob)).on_conflict_do_nothing(), rows)


async def allocate_uids(session: Executor, folder_id: int, count: int = 1) -> tuple[int, int]:
    """Reserve ``count`` consecutive UIDs and MODSEQs in a folder; returns the first of each
    (RFC 3501 §2.3.1.1: UIDs strictly ascending; RFC 7162 §3.1: a MODSEQ per change)."""
    # The row lock taken by this UPDATE serialises concurrent appends to one folder, so
    # UIDs are strictly ascending in commit order on PostgreSQL too.
    uid, modseq = (await session.execute(_ALLOCATE, {"folder": folder_id, "count": count})).one()
    return int(uid), int(modseq)


def message_values(
    folder_id: int, uid: int, modseq: int, ref: BlobRef, meta: MessageMeta, flags: str = ""
) -> dict[str, Any]:
    """The columns of one message row (the ENVELOPE and BODYSTRUCTURE cached for IMAP)."""
    envelope, structure = meta_to_json(meta)
    now = utcnow()
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
        async with self.db.transaction() as conn:
            folders = await self._write(conn, group)
        for one, touched in zip(group, folders, strict=True):
            if not one.done.done():
                one.done.set_result(touched)

    async def _write(self, conn: AsyncConnection, group: list[_Pending]) -> list[list[int]]:
        """Every row of the group in one transaction; the folders each plan delivered to."""
        now = utcnow()
        await record_blobs(conn, list({p.ref.sha256: p.ref for p in group}.values()))
        inboxes = await self._inboxes(conn, [c.account_id for p in group for c in p.plan.local])
        copies = [(p, c, inboxes[c.account_id]) for p in group for c in p.plan.local]
        message_ids = await self._append(conn, copies)
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
                    self._entry(one, copy, state="report", action="delivered", status="2.0.0")
                )
        for one in group:
            entries.extend(self._entry(one, r, state="queued") for r in one.plan.relay)
            entries.extend(
                self._entry(
                    one, f, state="report", action="failed", status=f.status, error=f.reason
                )
                for f in one.plan.failed
            )
        for table, rows in ((FilingJob, jobs), (AuditEvent, events), (QueueEntry, entries)):
            if rows:
                await conn.execute(insert(_table(table)), rows)
        for one in group:
            for contact in one.plan.contacts:
                await self._set_contact(conn, contact)
            # This message is the report owed for these entries (a DSN): settled in the same
            # transaction, so a report is neither lost nor sent twice across a crash.
            await queue.settle(conn, one.plan.completes, now)
        return [[folder for p, _c, folder in copies if p is one] for one in group]

    @staticmethod
    async def _append(
        conn: Executor, copies: Sequence[tuple[_Pending, _LocalCopy, int]]
    ) -> list[tuple[int, int]]:
        """Insert the messages; returns (row id, UID) for each copy, in order."""
        counts = Counter(folder for _p, _c, folder in copies)
        # Folders in a fixed order: two nodes' groups never wait on each other's row locks.
        next_ids = {f: await allocate_uids(conn, f, counts[f]) for f in sorted(counts)}
        rows: list[dict[str, Any]] = []
        for one, _copy, folder in copies:
            uid, modseq = next_ids[folder]
            next_ids[folder] = (uid + 1, modseq + 1)
            rows.append(message_values(folder, uid, modseq, one.ref, one.meta))
        if not rows:
            return []
        result = await conn.execute(_INSERT_MESSAGES, rows)
        ids = [int(i) for i in result.scalars()]
        return [(i, int(r["uid"])) for i, r in zip(ids, rows, strict=True)]

    def _prepare(self, data: bytes) -> tuple[BlobRef, MessageMeta]:
        return self.blobs.put(data), parse_metadata(data)

    def _entry(
        self,
        one: _Pending,
        rcpt: _RelayCopy,
        *,
        state: str,
        action: str | None = None,
        status: str | None = None,
        error: str | None = None,
    ) -> dict[str, Any]:
        created = utcnow()
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
    async def _inboxes(conn: Executor, account_ids: Sequence[int]) -> dict[int, int]:
        if not account_ids:
            return {}
        rows = await conn.execute(_INBOXES, {"accounts": sorted(set(account_ids))})
        found = {account: folder for account, folder in rows.all()}
        missing = set(account_ids) - set(found)
        if missing:
            raise LookupError(f"accounts without an INBOX: {sorted(missing)}")
        return found

    @staticmethod
    async def _set_contact(conn: Executor, contact: _Contact) -> None:
        """Open or close an authorised contact (mssante.md §4: FIN closes the exchange)."""
        table = _table(PatientContact)
        state = await conn.scalar(
            select(table.c.state).where(
                table.c.patient_id == contact.patient_account_id,
                table.c.address == contact.address,
            )
        )
        now = utcnow()
        if state is None:
            if contact.open:  # closing an exchange that never opened changes nothing
                await conn.execute(
                    insert(table).values(
                        patient_id=contact.patient_account_id,
                        address=contact.address,
                        state="open",
                        opened_at=now,
                    )
                )
            return
        mine = update(table).where(
            table.c.patient_id == contact.patient_account_id, table.c.address == contact.address
        )
        if contact.open and state != "open":
            await conn.execute(mine.values(state="open", opened_at=now, closed_at=None))
        elif not contact.open and state != "closed":
            await conn.execute(mine.values(state="closed", closed_at=now))


def _queues(plan: _Plan) -> bool:
    """Whether storing the plan gave the relay worker something to do."""
    return bool(plan.relay or plan.failed or any(wants_success(c.notify) for c in plan.local))


def _settle(pending: _Pending, exc: BaseException) -> None:
    if not pending.done.done():
        if isinstance(exc, Exception):
            pending.done.set_exception(exc)
        else:
            pending.done.cancel()

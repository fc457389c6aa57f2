"""The mail store: folders (IMAP mailboxes) and messages of each account.

The module functions create an account's folders (with their RFC 6154 special uses);
:class:`MailStore` is the API the IMAP door calls: every SQL statement the door needs lives
here, so that ``imap/`` never sees a query. Each method is one short transaction.

Conventions shared with the door:

* flags are stored as one space-separated text column, sorted, ``\\Recent`` never stored
  (:func:`split_flags`, :func:`join_flags`);
* every change to a message (new message, flags, expunge) takes the folder's next MODSEQ
  (RFC 7162 §3.1): the row lock of ``UPDATE folders ... RETURNING`` serialises writers of one
  folder, so MODSEQs and UIDs grow in commit order; all messages changed by one command share
  that command's MODSEQ (RFC 7162 §3.1.3 allows it);
* an expunged UID is remembered with the MODSEQ of its removal (:class:`ExpungedMessage`):
  ``changes_since(modseq)`` is then all a session needs to catch up (new messages, flag
  changes, expunges) and what QRESYNC's VANISHED (EARLIER) reports (RFC 7162 §3.2.5);
* after each commit the folder ids that changed go to ``on_change`` (the change bus), which
  wakes the other sessions watching them;
* ``\\Recent`` (RFC 3501 §2.3.2) is a per-folder high-water mark, ``folders.recent_uid``: the
  messages above it have not been shown to any session yet; a read-write session claims them
  (:meth:`MailStore.claim_recent`, under the folder's row lock, so two sessions never both
  get one) and keeps its recent UIDs for itself;
* subscriptions are names in their own table (RFC 3501 §6.3.6), independent of the folders;
  UIDVALIDITY comes from a counter that survives deleted folders (RFC 3501 §2.3.1.1).
"""

from __future__ import annotations

import asyncio
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Row,
    Select,
    Text,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.blobs import BlobStore
from storage.db import Database
from storage.delivery import insert_blobs, message_values
from storage.mime import parse_metadata
from storage.models import (
    Account,
    AuditEvent,
    Counter,
    ExpungedMessage,
    Folder,
    Message,
    Subscription,
    table_of,
    utcnow,
)
from storage.rounds import ReadRounds
from storage.sync_runner import SyncRunner

__all__ = [
    "DEFAULT_FOLDERS",
    "DELIMITER",
    "AuditEntry",
    "Changes",
    "CopyResult",
    "FolderInfo",
    "FolderStatus",
    "MailStore",
    "MailboxError",
    "Snapshot",
    "StoreResult",
    "create_default_folders",
    "create_folder",
    "folders_of",
    "join_flags",
    "split_flags",
]

# RFC 6154 §2: special-use attributes for the folders every account gets.
DEFAULT_FOLDERS: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)
#: The hierarchy delimiter of folder names (RFC 3501 §5.1.1).
DELIMITER: Final = "/"
# Ranges per query: keeps statements small when a client sends thousands of disjoint UIDs.
_CHUNK: Final = 400
_MAX_UID: Final = 2**32 - 1  # RFC 3501 §2.3.1.1: UIDs are 32-bit
_QUICK_UIDS: Final = 1000  # FETCH/STORE of at most this many UIDs: run on the event loop
_QUICK_OCTETS: Final = 64 * 1024  # contents read on the event loop (read_blobs)
_SPAN: Final = 4096  # ranges this close together are read as one and filtered (_in_ranges)


_UIDVALIDITY: Final = "uidvalidity"


async def _next_uidvalidity(session: AsyncSession) -> int:
    """RFC 3501 §2.3.1.1: UIDVALIDITY must change when a name is reused for a new mailbox.

    Seconds since the epoch, kept strictly increasing across the whole store by a counter row
    that deleting a folder does not touch (migration 0008); its row lock orders creators."""
    now = int(time.time())
    following = Counter.value + 1
    value = await session.scalar(
        update(Counter)
        .where(Counter.name == _UIDVALIDITY)
        .values(value=case((following > now, following), else_=now))
        .returning(Counter.value)
    )
    if value is None:  # a database built from the models rather than the migrations
        highest = await session.scalar(select(func.max(Folder.uidvalidity)))
        value = max(now, (highest or 0) + 1)
        session.add(Counter(name=_UIDVALIDITY, value=value))
        await session.flush()
    return int(value)


async def create_folder(
    session: AsyncSession, account_id: int, name: str, special_use: str | None = None
) -> Folder:
    folder = Folder(
        account_id=account_id,
        name=name,
        special_use=special_use,
        uidvalidity=await _next_uidvalidity(session),
        uidnext=1,
        highestmodseq=1,
    )
    session.add(folder)
    await session.flush()
    return folder


async def create_default_folders(session: AsyncSession, account_id: int) -> list[Folder]:
    """The folders of a new account, subscribed: clients that show only the subscribed
    folders (most do, through LSUB or LIST (SUBSCRIBED)) show these from the start."""
    folders = [await create_folder(session, account_id, n, s) for n, s in DEFAULT_FOLDERS]
    session.add_all(Subscription(account_id=account_id, name=f.name) for f in folders)
    await session.flush()
    return folders


async def folders_of(session: AsyncSession, account_id: int) -> Sequence[Folder]:
    stmt = select(Folder).where(Folder.account_id == account_id).order_by(Folder.id)
    return (await session.scalars(stmt)).all()


# -- flags --------------------------------------------------------------------------------------


def split_flags(text: str) -> list[str]:
    """The flags of the ``messages.flags`` column."""
    return text.split()


def join_flags(flags: Iterable[str]) -> str:
    """The column value for a set of flags: sorted, unique, without ``\\Recent``."""
    return " ".join(sorted({f for f in flags if f and f != "\\Recent"}))


# -- results ------------------------------------------------------------------------------------


class MailboxError(Exception):
    """A refused mailbox operation; ``code`` is the RFC 5530 response code that fits."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class FolderInfo:
    id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """RFC 3501 §6.3.10 STATUS data (and RFC 8438 SIZE, RFC 9208 DELETED)."""

    messages: int
    recent: int  # not yet shown to any session (RFC 3501 §6.3.10)
    unseen: int
    size: int
    deleted: int
    deleted_storage: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int


@dataclass(slots=True)
class Snapshot:
    """A folder as SELECT sees it: its UIDs ascending (sequence number n is ``uids[n-1]``)."""

    folder: FolderInfo
    uids: array[int]
    first_unseen_uid: int | None
    modseq: int  # the HIGHESTMODSEQ read before the UIDs (changes after it come again)
    recent: list[int]  # the UIDs recent for this session (RFC 3501 §2.3.2), ascending


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in a folder since a MODSEQ: messages (new or flags) and expunged UIDs."""

    highestmodseq: int
    uidnext: int
    changed: list[tuple[int, int, str]]  # (uid, modseq, flags), by uid
    expunged: list[int]  # ascending
    recent_uid: int = 0  # the folder's \\Recent mark when read (RFC 3501 §2.3.2)


@dataclass(frozen=True, slots=True)
class StoreResult:
    """STORE outcome: (uid, flags, modseq) of every matched message, and UNCHANGEDSINCE
    failures (RFC 7162 §3.1.3 MODIFIED)."""

    rows: list[tuple[int, str, int]]
    changed: frozenset[int]
    modified: list[int]


@dataclass(frozen=True, slots=True)
class CopyResult:
    """RFC 4315 §3 COPYUID data."""

    uidvalidity: int
    source_uids: list[int]
    target_uids: list[int]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audit event to write with an operation on a patient's mailbox (storage.audit)."""

    actor: audit.Actor
    action: str
    patient_ins: str
    object_id: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def values(self, **detail: Any) -> dict[str, Any]:
        """The audit event's columns (``detail`` added to the entry's own)."""
        return audit.event_values(
            self.actor,
            self.action,
            object_type="mailbox",
            object_id=self.object_id,
            patient_ins=self.patient_ins,
            detail={**self.detail, **detail} or None,
        )

    def write(self, session: AsyncSession, **detail: Any) -> None:
        session.add(AuditEvent(**self.values(**detail)))

    def insert(self, conn: Connection, **detail: Any) -> None:
        """The same event written on a Core connection, in its transaction."""
        conn.execute(_INSERT_AUDIT, self.values(**detail))


UidRanges = Sequence[tuple[int, int]]


def _uid_in(ranges: UidRanges) -> ColumnElement[bool]:
    return or_(
        *(Message.uid.between(lo, hi) if lo != hi else Message.uid == lo for lo, hi in ranges)
    )


def _few(ranges: UidRanges) -> bool:
    """At most ``_QUICK_UIDS`` UIDs: an operation on the event loop (SyncRunner's quick)."""
    return sum(hi - lo + 1 for lo, hi in ranges) <= _QUICK_UIDS


def _chunks(ranges: UidRanges) -> Iterable[UidRanges]:
    for start in range(0, len(ranges), _CHUNK):
        yield ranges[start : start + _CHUNK]


def _in_ranges(
    conn: Connection,
    columns: tuple[str, ...],
    folder_id: int,
    ranges: UidRanges,
    *,
    changed_since: int | None = None,
    deleted: bool = False,
) -> list[Row[Any]]:
    """``columns`` (the first is ``uid``) of a folder's messages whose UID is in ``ranges``,
    by UID. Many ranges close together (a client's ``2,4:6,9,12:14``) are read as the one
    range around them and filtered here: a statement with a pair of parameters per range
    cost more to bind than to run. Otherwise, statements of at most ``_CHUNK`` ranges."""
    lo = min(start for start, _ in ranges)
    hi = max(end for _, end in ranges)
    if len(ranges) > 2 and hi - lo < _SPAN:
        stmt, params = _by_ranges(
            columns, folder_id, [(lo, hi)], changed_since=changed_since, deleted=deleted
        )
        inside = bytearray(hi - lo + 1)  # which UIDs of the span the ranges hold
        for start, end in ranges:
            inside[start - lo : end - lo + 1] = b"\x01" * (end - start + 1)
        return [row for row in conn.execute(stmt, params) if inside[row[0] - lo]]
    found: list[Row[Any]] = []
    for chunk in _chunks(ranges):
        stmt, params = _by_ranges(
            columns, folder_id, chunk, changed_since=changed_since, deleted=deleted
        )
        found.extend(conn.execute(stmt, params).all())
    if len(ranges) > _CHUNK:
        found.sort(key=lambda row: row[0])
    return found


# Statements run for almost every IMAP command, built once: SQLAlchemy then reuses their
# cache keys, and they run on a Core connection (no ORM session to open, flush and close).
_FT = table_of(Folder)
_MT = table_of(Message)
_XT = table_of(ExpungedMessage)
_F = _FT.c
_M = _MT.c
_X = _XT.c
_A = table_of(Account).c
_S = table_of(Subscription).c


def _has(flag: str) -> ColumnElement[bool]:
    """``messages.flags`` holds ``flag`` (a whole word of the space-separated list)."""
    return (literal(" ") + _M.flags + literal(" ")).contains(f" {flag} ", autoescape=True)


_FOLDER_COLUMNS = (_F.id, _F.name, _F.special_use, _F.uidvalidity, _F.uidnext, _F.highestmodseq)
_FOLDER_BY_NAME = select(*_FOLDER_COLUMNS).where(
    _F.account_id == bindparam("account"), _F.name == bindparam("name")
)
_FOLDERS_OF = select(*_FOLDER_COLUMNS).where(_F.account_id == bindparam("account")).order_by(_F.id)
_FOLDER_ROW = select(*_FOLDER_COLUMNS, _F.recent_uid).where(_F.id == bindparam("folder"))
_SUBSCRIPTIONS = select(_S.name).where(_S.account_id == bindparam("account"))
# changes_since in ONE statement (one consistent snapshot, one round trip): the folder's
# row (kind 0: HIGHESTMODSEQ, UIDNEXT, recent mark), the messages changed after the MODSEQ
# (kind 1: uid, modseq, flags) and the UIDs expunged after it (kind 2: uid, modseq).
_CHANGES = union_all(
    select(
        literal_column("0").label("kind"),
        _F.highestmodseq.label("a"),
        _F.uidnext.label("b"),
        _F.recent_uid.label("c"),
        cast(null(), Text).label("flags"),
    ).where(_F.id == bindparam("folder")),
    select(literal_column("1"), _M.uid, _M.modseq, literal_column("0"), _M.flags).where(
        _M.folder_id == bindparam("folder"), _M.modseq > bindparam("modseq")
    ),
    select(literal_column("2"), _X.uid, _X.modseq, literal_column("0"), cast(null(), Text)).where(
        _X.folder_id == bindparam("folder"), _X.modseq > bindparam("modseq")
    ),
)
_RECENT_MARK = select(_F.recent_uid).where(_F.id == bindparam("folder"))
_UIDS = select(_M.uid).where(_M.folder_id == bindparam("folder")).order_by(_M.uid)
_FIRST_UNSEEN = select(func.min(_M.uid)).where(_M.folder_id == bindparam("folder"), ~_has("\\Seen"))
_EXPUNGED_SINCE = (
    select(_X.uid)
    .where(_X.folder_id == bindparam("folder"), _X.modseq > bindparam("modseq"))
    .order_by(_X.uid)
)
# The folder's next MODSEQ; the row lock serialises this folder's writers (RFC 7162 §3.1).
_BUMP = (
    update(_FT)
    .where(_F.id == bindparam("folder"))
    .values(highestmodseq=_F.highestmodseq + 1)
    .returning(_F.highestmodseq)
)
_SET_FLAGS = (
    update(_MT)
    .where(_M.folder_id == bindparam("folder"), _M.uid.in_(bindparam("uids", expanding=True)))
    .values(flags=bindparam("new_flags"), modseq=bindparam("new_modseq"))
)
_DELETE_MESSAGES = delete(_MT).where(
    _M.folder_id == bindparam("folder"), _M.uid.in_(bindparam("uids", expanding=True))
)
_INSERT_EXPUNGED = insert(_XT)
_INSERT_MESSAGE = insert(_MT)
_INSERT_AUDIT = insert(table_of(AuditEvent))
# RFC 3501 §2.3.2 claims: the first UPDATE locks the row only while something is left to
# claim (a session that finds the mark at or above its top writes nothing, no fsync).
_CLAIM_LOCK = (
    update(_FT)
    .where(_F.id == bindparam("folder"), _F.recent_uid < bindparam("top"))
    .values(recent_uid=_F.recent_uid)
    .returning(_F.recent_uid)
)
_CLAIM_SET = (
    update(_FT)
    .where(_F.id == bindparam("folder"), _F.recent_uid < bindparam("top"))
    .values(recent_uid=bindparam("top"))
)
_APPEND_TARGET = (
    select(_F.account_id, _A.quota_bytes)
    .join(table_of(Account), _A.id == _F.account_id)
    .where(_F.id == bindparam("folder"))
)
# RFC 3501 §6.3.11 APPEND: one UID and one MODSEQ, and the UIDVALIDITY for APPENDUID.
_ALLOCATE_ONE = (
    update(_FT)
    .where(_F.id == bindparam("folder"))
    .values(uidnext=_F.uidnext + 1, highestmodseq=_F.highestmodseq + 1)
    .returning(_F.uidnext - 1, _F.highestmodseq, _F.uidvalidity)
)
_USED = (
    select(func.coalesce(func.sum(_M.size), 0))
    .select_from(_MT.join(_FT, _F.id == _M.folder_id))
    .where(_F.account_id == bindparam("account"))
)
_QUOTA_LIMIT = select(_A.quota_bytes).where(_A.id == bindparam("account"))
_STATUS = (
    select(
        _F.id,
        _F.uidnext,
        _F.uidvalidity,
        _F.highestmodseq,
        func.count(_M.id),
        func.coalesce(func.sum(case((_M.uid > _F.recent_uid, 1), else_=0)), 0),
        func.coalesce(func.sum(case((_has("\\Seen"), 0), else_=1)), 0),
        func.coalesce(func.sum(_M.size), 0),
        func.coalesce(func.sum(case((_has("\\Deleted"), 1), else_=0)), 0),
        func.coalesce(func.sum(case((_has("\\Deleted"), _M.size), else_=0)), 0),
    )
    .select_from(_FT.outerjoin(_MT, _M.folder_id == _F.id))
    .where(_F.id.in_(bindparam("folders", expanding=True)))
    .group_by(_F.id, _F.uidnext, _F.uidvalidity, _F.highestmodseq, _F.recent_uid)
)


def _by_ranges(
    columns: tuple[str, ...],
    folder_id: int,
    ranges: UidRanges,
    *,
    changed_since: int | None = None,
    deleted: bool = False,
) -> tuple[Select[Any], dict[str, int]]:
    """``SELECT columns`` of a folder's messages in UID ``ranges`` (at most ``_CHUNK``), by
    UID, and its parameters. The statement has a number of ranges rounded up to a power of
    two (the last range repeated): clients send sets of every length (imaptest: a different
    one for most FETCHes), and one statement per length missed SQLAlchemy's compiled cache
    every time (a third of a millisecond of compiling per command)."""
    slots = _slots(len(ranges))
    params: dict[str, int] = {"folder": folder_id}
    for i in range(slots):
        params[f"lo{i}"], params[f"hi{i}"] = ranges[min(i, len(ranges) - 1)]
    if changed_since is not None:
        params["since"] = changed_since
    return _ranges_statement(columns, slots, changed_since is not None, deleted), params


def _slots(count: int) -> int:
    return min(1 << (count - 1).bit_length(), _CHUNK) if count > 1 else 1


@lru_cache(maxsize=256)
def _ranges_statement(
    columns: tuple[str, ...], slots: int, changed_since: bool, deleted: bool
) -> Select[Any]:
    """Built once per shape (building and hashing the expression was a tenth of a FETCH)."""
    stmt = select(*(_M[name] for name in columns)).where(
        _M.folder_id == bindparam("folder"),
        or_(*(_M.uid.between(bindparam(f"lo{i}"), bindparam(f"hi{i}")) for i in range(slots))),
    )
    if changed_since:
        stmt = stmt.where(_M.modseq > bindparam("since"))  # RFC 7162 §3.1.4.1 CHANGEDSINCE
    if deleted:
        stmt = stmt.where(_has("\\Deleted"))
    return stmt.order_by(_M.uid)


@dataclass(frozen=True, slots=True)
class _FolderChanges:
    """One read round's answer for a folder: all changes after ``since`` (the oldest MODSEQ
    of the round's callers); each caller keeps those after its own (:meth:`after`)."""

    since: int
    exists: bool
    highestmodseq: int
    uidnext: int
    recent_uid: int
    changed: list[tuple[int, int, str]]  # (uid, modseq, flags), by uid
    expunged: list[tuple[int, int]]  # (uid, modseq), by uid

    def after(self, modseq: int) -> Changes:
        if not self.exists:
            return Changes(modseq, 0, [], [])
        if self.highestmodseq <= modseq:
            return Changes(self.highestmodseq, self.uidnext, [], [], self.recent_uid)
        if modseq <= self.since:
            changed, expunged = self.changed, [uid for uid, _ in self.expunged]
        else:
            changed = [c for c in self.changed if c[1] > modseq]
            expunged = [uid for uid, m in self.expunged if m > modseq]
        return Changes(self.highestmodseq, self.uidnext, changed, expunged, self.recent_uid)


def _is_inbox(name: str) -> bool:
    return name.upper() == "INBOX"


def _parents(name: str) -> list[str]:
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


class MailStore:
    """The mailboxes and messages of accounts, as the IMAP door uses them."""

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
        # The hot paths: one trip to the database per operation (storage.sync_runner).
        self.run = SyncRunner(db)
        # Sessions with a folder selected ask together after a change (storage.rounds).
        self._changes: ReadRounds[int, _FolderChanges] = ReadRounds(self._read_changes)
        # \\Recent marks known committed, and claims under way (claim_recent).
        self._claimed: dict[tuple[int, int], int] = {}
        self._claiming: dict[tuple[int, int], asyncio.Future[None]] = {}

    def close(self) -> None:
        """Release the SQLite worker threads and their connections (also done when the
        store is garbage-collected)."""
        self.run.close()

    def _changed(self, *folder_ids: int) -> None:
        if self.on_change is not None and folder_ids:
            self.on_change(folder_ids)

    # -- folders --------------------------------------------------------------------------------

    async def folders(self, account_id: int) -> list[FolderInfo]:
        def read(conn: Connection) -> list[FolderInfo]:
            return [FolderInfo(*row) for row in conn.execute(_FOLDERS_OF, {"account": account_id})]

        return await self.run.read(read, quick=True)

    async def folder(self, account_id: int, name: str) -> FolderInfo | None:
        def read(conn: Connection) -> FolderInfo | None:
            row = conn.execute(_FOLDER_BY_NAME, {"account": account_id, "name": name}).first()
            return None if row is None else FolderInfo(*row)

        return await self.run.read(read, quick=True)

    async def create(self, account_id: int, name: str, special_use: str | None = None) -> None:
        """RFC 3501 §6.3.3: the new folder and its missing superiors."""
        async with self.db.write() as s:
            existing = set(
                (await s.scalars(select(Folder.name).where(Folder.account_id == account_id))).all()
            )
            if name in existing:
                raise MailboxError("ALREADYEXISTS", f"mailbox {name} already exists")
            for parent in _parents(name):
                if parent not in existing:
                    await create_folder(s, account_id, parent)
            await create_folder(s, account_id, name, special_use)

    async def delete(self, account_id: int, name: str) -> None:
        """RFC 3501 §6.3.4 (its inferiors stay; the name shows as \\Noselect while they do)."""
        if _is_inbox(name):
            raise MailboxError("CANNOT", "INBOX cannot be deleted")
        async with self.db.write() as s:
            folder_id = await s.scalar(
                select(Folder.id).where(Folder.account_id == account_id, Folder.name == name)
            )
            if folder_id is None:
                raise MailboxError("NONEXISTENT", f"mailbox {name} does not exist")
            await s.execute(delete(Folder).where(Folder.id == folder_id))
        self._changed(folder_id)

    async def rename(self, account_id: int, old: str, new: str) -> None:
        """RFC 3501 §6.3.5: inferiors follow; renaming INBOX moves its messages out. The
        subscriptions of the renamed folders follow them (§6.3.5 is silent; a client would
        otherwise lose sight of the folder it just renamed)."""
        async with self.db.write() as s:
            folders = {
                f.name: f
                for f in (
                    await s.scalars(select(Folder).where(Folder.account_id == account_id))
                ).all()
            }
            source = folders.get(old)
            if source is None:
                raise MailboxError("NONEXISTENT", f"mailbox {old} does not exist")
            if new in folders or _is_inbox(new):
                raise MailboxError("ALREADYEXISTS", f"mailbox {new} already exists")
            if new.startswith(old + DELIMITER):
                raise MailboxError("CANNOT", "a mailbox cannot be renamed into itself")
            for parent in _parents(new):
                if parent not in folders:
                    folders[parent] = await create_folder(s, account_id, parent)
            if _is_inbox(old):
                await self._rename_inbox(s, source, new)
                changed = [source.id]
                renamed = {old: new}
            else:
                moving = [
                    f for n, f in folders.items() if n == old or n.startswith(old + DELIMITER)
                ]
                renamed = {f.name: new + f.name[len(old) :] for f in moving}
                for folder in moving:
                    folder.name = renamed[folder.name]
                changed = [f.id for f in moving]
            await self._follow_rename(s, account_id, renamed, keep=_is_inbox(old))
        self._changed(*changed)

    @staticmethod
    async def _follow_rename(
        s: AsyncSession, account_id: int, renamed: dict[str, str], *, keep: bool
    ) -> None:
        """Subscribe the new names of subscribed folders; drop the old ones unless ``keep``
        (INBOX stays after its messages move out)."""
        subscribed = set(
            (
                await s.scalars(
                    select(Subscription.name).where(
                        Subscription.account_id == account_id,
                        Subscription.name.in_(list(renamed) + list(renamed.values())),
                    )
                )
            ).all()
        )
        for old, new in renamed.items():
            if old not in subscribed:
                continue
            if not keep:
                await s.execute(
                    delete(Subscription).where(
                        Subscription.account_id == account_id, Subscription.name == old
                    )
                )
            if new not in subscribed:
                s.add(Subscription(account_id=account_id, name=new))
        await s.flush()

    async def _rename_inbox(self, s: AsyncSession, inbox: Folder, new: str) -> None:
        target = await create_folder(s, inbox.account_id, new, None)
        modseq = await self._bump(s, inbox.id)
        uids = (await s.scalars(select(Message.uid).where(Message.folder_id == inbox.id))).all()
        await s.execute(
            update(Message).where(Message.folder_id == inbox.id).values(folder_id=target.id)
        )
        target.uidnext = inbox.uidnext
        target.highestmodseq = modseq
        target.recent_uid = inbox.recent_uid  # the moved messages stay as recent as they were
        if uids:
            await s.execute(
                insert(ExpungedMessage),
                [{"folder_id": inbox.id, "uid": uid, "modseq": modseq} for uid in uids],
            )

    async def subscriptions(self, account_id: int) -> set[str]:
        """The account's subscription list: names, existing as folders or not."""

        def read(conn: Connection) -> set[str]:
            return set(conn.scalars(_SUBSCRIPTIONS, {"account": account_id}).all())

        return await self.run.read(read, quick=True)

    async def subscribe(self, account_id: int, name: str, subscribed: bool) -> None:
        """RFC 3501 §6.3.6-7: add or remove a name, whether a folder has it or not; both are
        idempotent (subscribing twice, or unsubscribing a name not listed, changes nothing)."""
        async with self.db.write() as s:
            where = (Subscription.account_id == account_id, Subscription.name == name)
            if not subscribed:
                await s.execute(delete(Subscription).where(*where))
                return
            if await s.scalar(select(Subscription.name).where(*where)) is None:
                s.add(Subscription(account_id=account_id, name=name))

    async def status(self, folder_ids: Sequence[int]) -> dict[int, FolderStatus]:
        """STATUS of several folders in one query (LIST-STATUS, RFC 5819)."""
        if not folder_ids:
            return {}
        params = {"folders": list(folder_ids)}
        rows = await self.run.read(lambda conn: conn.execute(_STATUS, params).all())
        return {
            fid: FolderStatus(
                int(count),
                int(recent_n),
                int(unseen_n),
                int(size),
                int(dele),
                int(dsize),
                nxt,
                validity,
                hms,
            )
            for fid, nxt, validity, hms, count, recent_n, unseen_n, size, dele, dsize in rows
        }

    async def quota(self, account_id: int) -> tuple[int, int | None]:
        """(bytes used by every message of the account, Account.quota_bytes) (RFC 9208)."""
        params = {"account": account_id}

        def read(conn: Connection) -> tuple[int, int | None]:
            used = conn.scalar(_USED, params)
            return int(used or 0), conn.scalar(_QUOTA_LIMIT, params)

        return await self.run.read(read)

    # -- selected folder ------------------------------------------------------------------------

    async def snapshot(self, folder_id: int, *, claim_recent: bool) -> Snapshot:
        """SELECT: the HIGHESTMODSEQ first, then the UIDs (whatever commits in between comes
        back in the next :meth:`changes_since`); the messages recent for this session are
        claimed (SELECT) or only looked at (EXAMINE: RFC 3501 §6.3.2 leaves them recent)."""
        params = {"folder": folder_id}

        def read(conn: Connection) -> tuple[FolderInfo, int, array[int], int | None]:
            row = conn.execute(_FOLDER_ROW, params).first()
            if row is None:
                raise MailboxError("NONEXISTENT", "mailbox does not exist")
            info = FolderInfo(*row[:6])
            uids = array("I", conn.scalars(_UIDS, params).all())
            return info, int(row.recent_uid), uids, conn.scalar(_FIRST_UNSEEN, params)

        info, seen_mark, uids, first_unseen = await self.run.read(read)
        top = uids[-1] if uids else 0
        mark = (
            await self.claim_recent(folder_id, top, mark=seen_mark, uidvalidity=info.uidvalidity)
            if claim_recent
            else seen_mark
        )
        recent = uids[bisect_right(uids, mark) :].tolist()
        return Snapshot(info, uids, first_unseen, info.highestmodseq, recent)

    async def claim_recent(
        self, folder_id: int, top: int, *, mark: int | None = None, uidvalidity: int = 0
    ) -> int:
        """RFC 3501 §2.3.2: make this session the first to be told of the messages up to UID
        ``top``. Returns the mark found: the UIDs in (mark, top] are recent for the caller
        alone. ``mark``, when given, is the mark as just read (it only grows): at or above
        ``top`` nothing is left to claim and nothing is written. The first UPDATE takes the
        folder's row lock (the write lock on SQLite) only if something is left, so a
        concurrent claimer waits and then finds the mark moved.

        After a delivery every session of the folder asks at once, and all but one would
        write for nothing: this process remembers the highest mark it has seen committed
        for the folder (``uidvalidity`` tells a folder from a later one with the same id)
        and lets the sessions of one moment wait for the claim under way instead of
        queueing their own."""
        if mark is None:
            mark = await self.recent_mark(folder_id)
        key = (folder_id, uidvalidity)
        while True:
            mark = max(mark, self._claimed.get(key, 0))
            if mark >= top:
                return top  # nothing new to claim: no write (and no fsync) for a plain SELECT
            under_way = self._claiming.get(key)
            if under_way is None:
                break
            await asyncio.shield(under_way)  # then look again: it may have claimed less
        params = {"folder": folder_id, "top": top}

        def claim(conn: Connection) -> tuple[int, bool]:
            found = conn.scalar(_CLAIM_LOCK, params)
            if found is None or found >= top:
                return top, False
            conn.execute(_CLAIM_SET, params)
            return int(found), True

        self._claiming[key] = done = asyncio.get_running_loop().create_future()
        try:
            found = await self.run.write(claim, quick=True, durable=False)
            self._claimed[key] = max(self._claimed.get(key, 0), top)
            return found
        finally:
            del self._claiming[key]
            done.set_result(None)

    async def recent_mark(self, folder_id: int) -> int:
        """The mark without claiming (EXAMINE: what is still recent for whoever selects)."""
        mark = await self.run.read(
            lambda conn: conn.scalar(_RECENT_MARK, {"folder": folder_id}), quick=True
        )
        return int(mark or 0)

    async def changes_since(self, folder_id: int, modseq: int) -> Changes:
        """New messages, flag changes and expunges after ``modseq`` (RFC 7162 §3.1), and the
        folder's recent mark. Run after every command of every session with the folder
        selected: the callers of one moment share one query (:class:`ReadRounds`), which
        started after each of them asked (so it sees the commit that woke them)."""
        found = await self._changes.ask(folder_id, modseq)
        return found.after(modseq)

    async def _read_changes(self, folder_id: int, since: int) -> _FolderChanges:
        params = {"folder": folder_id, "modseq": since}
        # Quick: what changed since this session's last command, a few rows.
        rows = await self.run.read(lambda conn: conn.execute(_CHANGES, params).all(), quick=True)
        top: tuple[int, int, int] | None = None
        changed: list[tuple[int, int, str]] = []
        expunged: list[tuple[int, int]] = []
        for kind, a, b, c, flags in rows:
            if kind == 1:
                changed.append((a, b, flags))
            elif kind == 2:
                expunged.append((a, b))
            else:
                top = (a, b, c)
        if top is None:
            return _FolderChanges(since, False, since, 0, 0, [], [])
        changed.sort()
        expunged.sort()
        return _FolderChanges(since, True, int(top[0]), int(top[1]), int(top[2]), changed, expunged)

    async def expunged_since(
        self, folder_id: int, modseq: int, ranges: UidRanges | None
    ) -> list[int]:
        """UIDs expunged after ``modseq`` (QRESYNC VANISHED (EARLIER), RFC 7162 §3.2.5)."""
        params = {"folder": folder_id, "modseq": modseq}
        uids = await self.run.read(lambda conn: conn.scalars(_EXPUNGED_SINCE, params).all())
        if ranges is None:
            return list(uids)
        return [u for u in uids if any(lo <= u <= hi for lo, hi in ranges)]

    async def rows(
        self,
        folder_id: int,
        ranges: UidRanges,
        columns: Sequence[str],
        *,
        changed_since: int | None = None,
    ) -> list[Row[Any]]:
        """Columns of the messages whose UID is in ``ranges``, by UID (FETCH, SEARCH)."""
        # Core columns, not ORM attributes: no ORM result processing for 100,000 rows.
        # In one order whatever the client's: one statement (and compiled form) per set.
        wanted = ("uid", *sorted(set(columns) - {"uid"}))

        def read(conn: Connection) -> list[Row[Any]]:
            return _in_ranges(conn, wanted, folder_id, ranges, changed_since=changed_since)

        return await self.run.read(read, quick=_few(ranges))

    async def read_blob(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self.blobs.get, sha256)

    async def read_blobs(
        self, shas: Sequence[str], *, octets: int | None = None
    ) -> dict[str, bytes]:
        """Several contents in one trip to a worker thread (FETCH of many bodies); read at
        once when the caller knows they add up to a few kilobytes (``octets``): from the
        page cache that takes microseconds, a trip to the thread a turn of the event loop."""
        get = self.blobs.get

        def read() -> dict[str, bytes]:
            return {sha: get(sha) for sha in dict.fromkeys(shas)}

        if octets is not None and octets <= _QUICK_OCTETS:
            return read()
        return await asyncio.to_thread(read)

    async def record(self, entry: AuditEntry, **detail: Any) -> None:
        """An audit event on its own (reading a patient's mailbox changes nothing else)."""

        def write(conn: Connection) -> tuple[None, bool]:
            entry.insert(conn, **detail)
            return None, True

        await self.run.write(write, quick=True)

    # -- changes --------------------------------------------------------------------------------

    @staticmethod
    async def _bump(s: AsyncSession, folder_id: int) -> int:
        """The folder's next MODSEQ; the row lock serialises this folder's writers."""
        return _bumped(await s.scalar(_BUMP, {"folder": folder_id}))

    @staticmethod
    def _bump_sync(conn: Connection, folder_id: int) -> int:
        return _bumped(conn.scalar(_BUMP, {"folder": folder_id}))

    async def store_flags(
        self,
        folder_id: int,
        ranges: UidRanges,
        action: str,
        flags: Sequence[str],
        *,
        unchanged_since: int | None = None,
        entry: AuditEntry | None = None,
    ) -> StoreResult:
        """RFC 3501 §6.4.6 STORE (``action`` replace / add / remove), RFC 7162 §3.1.3
        UNCHANGEDSINCE: a message whose MODSEQ is above it is left alone and reported."""
        given = {f for f in flags if f != "\\Recent"}

        def write(conn: Connection) -> tuple[StoreResult, bool]:
            modseq = self._bump_sync(conn, folder_id)
            current: list[Any] = _in_ranges(conn, ("uid", "flags", "modseq"), folder_id, ranges)
            out: list[tuple[int, str, int]] = []
            modified: list[int] = []
            updates: dict[str, list[int]] = {}
            for uid, text, old_modseq in current:
                if unchanged_since is not None and old_modseq > unchanged_since:
                    modified.append(uid)
                    continue
                old = set(text.split())
                new = (
                    given
                    if action == "replace"
                    else old | given
                    if action == "add"
                    else old - given
                )
                new_text = join_flags(new)
                if new_text != text:
                    updates.setdefault(new_text, []).append(uid)
                    out.append((uid, new_text, modseq))
                else:
                    out.append((uid, text, old_modseq))
            if not updates:  # nothing changed: keep HIGHESTMODSEQ as it was
                return StoreResult(out, frozenset(), modified), False
            for new_text, uids in updates.items():
                for start in range(0, len(uids), _CHUNK * 2):
                    values = {
                        "folder": folder_id,
                        "uids": uids[start : start + _CHUNK * 2],
                        "new_flags": new_text,
                        "new_modseq": modseq,
                    }
                    conn.execute(_SET_FLAGS, values)
            changed = frozenset(uid for uids in updates.values() for uid in uids)
            if entry is not None:
                entry.insert(
                    conn, uids=_compact(sorted(changed)), action=action, flags=sorted(given)
                )
            return StoreResult(out, changed, modified), True

        # Not worth an fsync unless audited (storage.sync_runner: like Dovecot's flags).
        result = await self.run.write(write, quick=_few(ranges), durable=entry is not None)
        if result.changed:
            self._changed(folder_id)
        return result

    async def expunge(
        self,
        folder_id: int,
        ranges: UidRanges | None = None,
        *,
        entry: AuditEntry | None = None,
        known_size: int | None = None,
    ) -> list[int]:
        """RFC 3501 §6.4.3 EXPUNGE (RFC 4315 §2.1 UID EXPUNGE with ``ranges``): the messages
        flagged \\Deleted go; their UIDs are remembered with this MODSEQ. ``known_size``: how
        many messages the caller sees in the folder (a selected session knows): finding the
        \\Deleted ones among a few is quick (SyncRunner), among 100,000 it takes 30 ms."""

        def write(conn: Connection) -> tuple[list[int], bool]:
            modseq = self._bump_sync(conn, folder_id)
            within = ranges if ranges is not None else [(1, _MAX_UID)]
            uids = [row[0] for row in _in_ranges(conn, ("uid",), folder_id, within, deleted=True)]
            if not uids:
                return [], False
            for removal, params in _removal(folder_id, uids, modseq):
                conn.execute(removal, params)
            if entry is not None:
                entry.insert(conn, uids=_compact(uids))
            return uids, True

        if ranges is not None:
            few = _few(ranges)
        else:
            few = known_size is not None and known_size <= _QUICK_UIDS
        uids = await self.run.write(write, quick=few, durable=entry is not None)
        if uids:
            self._changed(folder_id)
        return uids

    @staticmethod
    async def _remove(s: AsyncSession, folder_id: int, uids: list[int], modseq: int) -> None:
        for stmt, params in _removal(folder_id, uids, modseq):
            await s.execute(stmt, params)

    async def copy(
        self,
        source_id: int,
        ranges: UidRanges,
        target_id: int,
        *,
        move: bool = False,
        entry: AuditEntry | None = None,
    ) -> CopyResult:
        """RFC 3501 §6.4.7 COPY, RFC 6851 MOVE: new UIDs in the target (RFC 4315 COPYUID);
        the same blobs; flags kept (\\Recent is never stored)."""
        async with self.db.write_turn(), self.db.session() as s:
            source_modseq = await self._bump(s, source_id) if move else 0
            rows: list[Message] = []
            for chunk in _chunks(ranges):
                rows.extend(
                    (
                        await s.execute(
                            select(Message).where(Message.folder_id == source_id, _uid_in(chunk))
                        )
                    )
                    .scalars()
                    .all()
                )
            messages = sorted(rows, key=lambda m: m.uid)
            if not messages:
                await s.rollback()
                target = await s.get(Folder, target_id)
                return CopyResult(target.uidvalidity if target else 0, [], [])
            count = len(messages)
            first, modseq, validity = (
                await s.execute(
                    update(Folder)
                    .where(Folder.id == target_id)
                    .values(uidnext=Folder.uidnext + count, highestmodseq=Folder.highestmodseq + 1)
                    .returning(Folder.uidnext - count, Folder.highestmodseq, Folder.uidvalidity)
                )
            ).one()
            target_uids = list(range(first, first + count))
            await s.execute(
                insert(Message),
                [
                    {
                        "folder_id": target_id,
                        "uid": uid,
                        "modseq": modseq,
                        "flags": m.flags,
                        "internal_date": m.internal_date,
                        "size": m.size,
                        "blob_sha256": m.blob_sha256,
                        "message_id": m.message_id,
                        "envelope": m.envelope,
                        "body_structure": m.body_structure,
                        "created_at": m.created_at,
                    }
                    for m, uid in zip(messages, target_uids, strict=True)
                ],
            )
            source_uids = [m.uid for m in messages]
            if move:
                await self._remove(s, source_id, source_uids, source_modseq)
            if entry is not None:
                entry.write(s, uids=_compact(source_uids), target_folder=target_id)
            await s.commit()
        self._changed(source_id, target_id) if move else self._changed(target_id)
        return CopyResult(validity, source_uids, target_uids)

    async def append(
        self,
        folder_id: int,
        data: bytes,
        flags: Sequence[str],
        internal_date: datetime | None,
        *,
        entry: AuditEntry | None = None,
    ) -> tuple[int, int]:
        """RFC 3501 §6.3.11 APPEND: (UIDVALIDITY, UID) for RFC 4315 APPENDUID; the account's
        quota (RFC 9208 §5.1, Account.quota_bytes) is checked first."""
        params = {"folder": folder_id}
        found = await self.run.read(
            lambda conn: conn.execute(_APPEND_TARGET, params).first(), quick=True
        )
        if found is None:
            raise MailboxError("TRYCREATE", "mailbox does not exist")
        account_id, limit = found
        if limit is not None:
            used, _ = await self.quota(account_id)
            if used + len(data) > limit:
                raise MailboxError("OVERQUOTA", "the mailbox quota would be exceeded")
        ref, meta = await asyncio.to_thread(lambda: (self.blobs.put(data), parse_metadata(data)))

        def write(conn: Connection) -> tuple[tuple[int, int], bool]:
            insert_blobs(conn, [ref], utcnow())  # content-addressed: once
            allocated = conn.execute(_ALLOCATE_ONE, params).first()
            if allocated is None:  # deleted since the lookup
                raise MailboxError("TRYCREATE", "mailbox does not exist")
            uid, modseq, validity = allocated
            values = message_values(folder_id, uid, modseq, ref, meta, join_flags(flags))
            if internal_date is not None:
                values["internal_date"] = internal_date
            conn.execute(_INSERT_MESSAGE, values)
            if entry is not None:
                entry.insert(conn, uid=uid, message_id=meta.message_id)
            return (int(validity or 0), int(uid)), True

        appended = await self.run.write(write, quick=True)
        self._changed(folder_id)
        return appended


def _bumped(modseq: int | None) -> int:
    """The new MODSEQ ``_BUMP`` returned; none: the folder is gone."""
    if modseq is None:
        raise MailboxError("NONEXISTENT", "mailbox does not exist")
    return int(modseq)


def _removal(folder_id: int, uids: list[int], modseq: int) -> Iterator[tuple[Executable, Any]]:
    """The statements that remove these messages and remember their UIDs with ``modseq``
    (RFC 7162 §3.2.10 VANISHED), in chunks of bounded size."""
    for start in range(0, len(uids), _CHUNK * 2):
        yield _DELETE_MESSAGES, {"folder": folder_id, "uids": uids[start : start + _CHUNK * 2]}
    yield _INSERT_EXPUNGED, [{"folder_id": folder_id, "uid": u, "modseq": modseq} for u in uids]


def _compact(uids: Sequence[int]) -> str:
    """``1:3,7`` for the audit log."""
    parts: list[str] = []
    start = prev = None
    for uid in uids:
        if prev is not None and uid == prev + 1:
            prev = uid
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)

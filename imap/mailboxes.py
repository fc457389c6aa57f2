"""Mailbox commands: SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST, LSUB, STATUS
and the QUOTA commands (RFC 3501 §6.3, RFC 5258, RFC 5819, RFC 6154, RFC 7162, RFC 9208).

Names are UTF-8 in the store and modified UTF-7 on the wire (the parser decodes them); the
hierarchy delimiter is ``/``; ``INBOX`` is case-insensitive (RFC 3501 §5.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from imap.arguments import (
    Command,
    CreateArgs,
    ListArgs,
    ListSelectOptions,
    LsubArgs,
    MailboxArgs,
    QuotaRootArgs,
    RenameArgs,
    SelectArgs,
    StatusArgs,
)
from imap.context import CommandError
from imap.responses import MAILBOX_FLAGS, flag_list, mailbox_name, sequence_text, string
from imap.selected import SelectedMailbox
from imap.utf7 import UndecodableName
from storage.mailstore import DELIMITER, FolderInfo, FolderStatus

if TYPE_CHECKING:
    from imap.session import Session

__all__ = [
    "create",
    "delete",
    "getquota",
    "getquotaroot",
    "list_",
    "lsub",
    "rename",
    "select",
    "setquota",
    "status",
    "subscribe",
    "unsubscribe",
]

SYSTEM_FLAGS: Final = MAILBOX_FLAGS  # imap.responses
_BAD_NAME: Final = re.compile(r"[%*\x00-\x1f\x7f]")
_MAX_NAME: Final = 500  # folders.name


def _check_encoding(name: str) -> None:
    """RFC 3501 §5.1.3: a name given to a folder is valid modified UTF-7 (else it would not
    come back on the wire as it was sent)."""
    if isinstance(name, UndecodableName):
        raise CommandError(f"invalid mailbox name {name}: {name.reason}", code="CANNOT")


def _check_name(name: str) -> None:
    """A name a client may create (RFC 3501 §5.1: no wildcards; no empty level)."""
    _check_encoding(name)
    levels = name.split(DELIMITER)
    if not name or _BAD_NAME.search(name) or any(not level for level in levels):
        raise CommandError(f"invalid mailbox name {name!r}", code="CANNOT")
    if len(name.encode("utf-8")) > _MAX_NAME:
        raise CommandError("mailbox name too long", code="LIMIT")


async def _folder(session: Session, name: str, code: str = "NONEXISTENT") -> FolderInfo:
    folder = await session.services.store.folder(session.account_id, name)
    if folder is None:
        raise CommandError(f"mailbox {name} does not exist", code=code)
    return folder


# -- SELECT / EXAMINE -----------------------------------------------------------------------------


async def select(session: Session, command: Command) -> str:
    """RFC 3501 §6.3.1-2, RFC 7162 §3.1.2 (CONDSTORE) and §3.2.5 (QRESYNC)."""
    args = command.args
    assert isinstance(args, SelectArgs)
    readonly = command.name == "EXAMINE"
    if args.qresync is not None and not session.qresync:
        raise CommandError("QRESYNC must be enabled first (RFC 7162 §3.2.5)", status="BAD")
    had_mailbox = session.selected is not None
    session.unselect()
    if had_mailbox and session.qresync:
        session.untagged("OK [CLOSED] previous mailbox closed")  # RFC 7162 §3.2.11
    store = session.services.store
    folder = await _folder(session, args.mailbox)
    # RFC 3501 §2.3.2: SELECT claims the recent messages, EXAMINE leaves them to others.
    snapshot = await store.snapshot(folder.id, claim_recent=not readonly)
    selected = SelectedMailbox(folder.name, snapshot, readonly)
    if args.condstore:
        session.condstore = True
    session.untagged(f"FLAGS {flag_list(SYSTEM_FLAGS).decode()}")
    permanent = "()" if readonly else flag_list((*SYSTEM_FLAGS, "\\*")).decode()
    session.untagged(f"OK [PERMANENTFLAGS {permanent}] flags permitted")
    session.untagged(f"{selected.exists} EXISTS")
    session.untagged(f"{len(selected.recent)} RECENT")
    if snapshot.first_unseen_uid is not None:
        first = selected.seq_of(snapshot.first_unseen_uid)
        if first is not None:
            session.untagged(f"OK [UNSEEN {first}] first unseen message")
    session.untagged(f"OK [UIDVALIDITY {selected.uidvalidity}] UIDs valid")
    session.untagged(f"OK [UIDNEXT {snapshot.folder.uidnext}] predicted next UID")
    session.untagged(f"OK [HIGHESTMODSEQ {selected.modseq}] highest MODSEQ")
    session.select(selected)
    if args.qresync is not None and args.qresync.uidvalidity == selected.uidvalidity:
        await _qresync(session, selected, args)
    entry = session.audit("imap.select", mailbox=folder.name, readonly=readonly)
    if entry is not None:
        await store.record(entry)
    mode = "READ-ONLY" if readonly else "READ-WRITE"
    return f"[{mode}] {command.name} completed"


async def _qresync(session: Session, selected: SelectedMailbox, args: SelectArgs) -> None:
    """RFC 7162 §3.2.5.2: what vanished and what changed since the client's MODSEQ."""
    assert args.qresync is not None
    store = session.services.store
    modseq = args.qresync.modseq
    known = args.qresync.known_uids
    ranges = known.resolve(selected.max_uid or 1) if known is not None else None
    vanished = await store.expunged_since(selected.folder_id, modseq, ranges)
    if vanished:
        session.untagged(f"VANISHED (EARLIER) {sequence_text(vanished)}")
    if not selected.exists:
        return
    rows = await store.rows(
        selected.folder_id,
        [(selected.uids[0], selected.max_uid)],
        ("flags", "modseq"),
        changed_since=modseq,
    )
    for row in rows:
        seq = selected.seq_of(row.uid)
        if seq is not None:
            session.announce_keywords(row.flags)
            flags = flag_list(selected.flags_of(row.uid, row.flags)).decode()
            session.untagged(f"{seq} FETCH (UID {row.uid} FLAGS {flags} MODSEQ ({row.modseq}))")


# -- CREATE / DELETE / RENAME / SUBSCRIBE ------------------------------------------------------


async def create(session: Session, command: Command) -> str:
    """RFC 3501 §6.3.3, RFC 6154 §3 USE."""
    args = command.args
    assert isinstance(args, CreateArgs)
    _check_encoding(args.mailbox)
    name = args.mailbox.removesuffix(DELIMITER)
    if name == "INBOX":
        raise CommandError("INBOX already exists", code="ALREADYEXISTS")
    _check_name(name)
    if len(args.special_use) > 1:
        raise CommandError("one special use per mailbox", code="USEATTR")
    use = args.special_use[0] if args.special_use else None
    if use is not None and use not in ("\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash"):
        raise CommandError(f"special use {use} is not supported", code="USEATTR")
    await session.services.store.create(session.account_id, name, use)
    return "CREATE completed"


async def delete(session: Session, command: Command) -> str:
    """RFC 3501 §6.3.4."""
    args = command.args
    assert isinstance(args, MailboxArgs)
    if session.selected is not None and session.selected.name == args.mailbox:
        raise CommandError("the selected mailbox cannot be deleted", code="INUSE")
    await session.services.store.delete(session.account_id, args.mailbox)
    return "DELETE completed"


async def rename(session: Session, command: Command) -> str:
    """RFC 3501 §6.3.5."""
    args = command.args
    assert isinstance(args, RenameArgs)
    _check_name(args.new_name)
    await session.services.store.rename(session.account_id, args.mailbox, args.new_name)
    return "RENAME completed"


async def subscribe(session: Session, command: Command) -> str:
    """RFC 3501 §6.3.6-7 (UNSUBSCRIBE too: ``command.name`` says which). The list holds
    names: one that does not exist may be subscribed, and stays when its folder is deleted."""
    args = command.args
    assert isinstance(args, MailboxArgs)
    wanted = command.name == "SUBSCRIBE"
    if wanted:
        _check_name(args.mailbox)  # a name that could exist (no wildcard, no empty level)
    await session.services.store.subscribe(session.account_id, args.mailbox, wanted)
    return f"{command.name} completed"


unsubscribe = subscribe


# -- LIST / LSUB ----------------------------------------------------------------------------------


def _pattern(reference: str, pattern: str) -> re.Pattern[str]:
    """RFC 3501 §6.3.8: ``*`` matches anything, ``%`` anything but the delimiter."""
    full = pattern if pattern.startswith(DELIMITER) or not reference else reference + pattern
    regex = "".join(
        ".*" if c == "*" else f"[^{re.escape(DELIMITER)}]*" if c == "%" else re.escape(c)
        for c in full
    )
    return re.compile(regex, re.DOTALL)


def _matches(patterns: list[re.Pattern[str]], name: str) -> bool:
    # RFC 3501 §5.1: INBOX is case-insensitive, also as the first level of a pattern.
    return any(p.fullmatch(name) or (name == "INBOX" and p.fullmatch("inbox")) for p in patterns)


def _superiors(name: str) -> list[str]:
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:i]) for i in range(1, len(parts))]


def _hidden_parents(patterns: list[re.Pattern[str]], subscribed: Iterable[str]) -> set[str]:
    """Superiors of the subscribed names the patterns do not match: RFC 3501 §6.3.9 (LSUB
    ``%`` shows them ``\\Noselect``) and RFC 5258 §3.5 (CHILDINFO with RECURSIVEMATCH)."""
    return {
        parent for name in subscribed if not _matches(patterns, name) for parent in _superiors(name)
    }


def _attributes(
    folder: FolderInfo | None, has_children: bool, extended: bool, subscribed: bool
) -> list[str]:
    attrs: list[str] = []
    if folder is None:
        attrs += ["\\NonExistent"] if extended else ["\\Noselect"]
    attrs.append("\\HasChildren" if has_children else "\\HasNoChildren")  # RFC 3348
    if folder is not None and folder.special_use:
        attrs.append(folder.special_use)  # RFC 6154 §2
    if subscribed:
        attrs.append("\\Subscribed")  # RFC 5258 §3.1
    return attrs


def _tree(folders: Iterable[FolderInfo]) -> tuple[dict[str, FolderInfo], set[str], set[str]]:
    """(existing by name, every name incl. missing superiors, names having children)."""
    by_name = {f.name: f for f in folders}
    names = set(by_name)
    parents: set[str] = set()
    for name in by_name:
        for parent in _superiors(name):
            names.add(parent)
            parents.add(parent)
    return by_name, names, parents


def _meets(select: ListSelectOptions, folder: FolderInfo | None, subscribed: bool) -> bool:
    """RFC 5258 §3.1 selection options (RFC 6154 §3 SPECIAL-USE); REMOTE selects nothing
    more here (no remote mailboxes)."""
    if select.subscribed and not subscribed:
        return False
    return not (select.special_use and (folder is None or not folder.special_use))


async def list_(session: Session, command: Command) -> str:
    """RFC 3501 §6.3.8, RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154."""
    args = command.args
    assert isinstance(args, ListArgs)
    if args.patterns == ("",) and not args.extended:
        # RFC 3501 §6.3.8: the delimiter and the root.
        session.untagged(f'LIST (\\Noselect) "{DELIMITER}" ""')
        return "LIST completed"
    store = session.services.store
    folders = await store.folders(session.account_id)
    by_name, names, parents = _tree(folders)
    patterns = [_pattern(args.reference, p) for p in args.patterns if p]
    select, returns = args.select, args.returns
    wants_subscriptions = select.subscribed or returns.subscribed
    subscribed = await store.subscriptions(session.account_id) if wants_subscriptions else set()
    if select.subscribed:
        names |= subscribed  # RFC 5258 §3.1: a subscribed name is listed even if it is gone
    # RFC 5258 §3.5: with RECURSIVEMATCH, a name that is not subscribed but has a subscribed
    # descendant the patterns leave out is listed with CHILDINFO ("SUBSCRIBED").
    hidden = _hidden_parents(patterns, subscribed) if select.recursive_match else set()
    shown: list[tuple[str, FolderInfo | None]] = []
    for name in sorted(names, key=lambda n: (n != "INBOX", n)):
        folder = by_name.get(name)
        if not _matches(patterns, name):
            continue
        meets = _meets(select, folder, name in subscribed)
        childinfo = not meets and select.subscribed and name in hidden
        if not meets and not childinfo:
            continue
        attrs = _attributes(folder, name in parents, args.extended, name in subscribed)
        extra = ' ("CHILDINFO" ("SUBSCRIBED"))' if childinfo else ""
        line = f'LIST ({" ".join(attrs)}) "{DELIMITER}" ' + mailbox_name(name).decode("utf-8")
        session.untagged(line + extra)
        shown.append((name, folder))
    if returns.status is not None:
        if "HIGHESTMODSEQ" in returns.status:
            session.enable_condstore()
        ids = [f.id for _, f in shown if f is not None]
        found = await store.status(ids)
        for name, folder in shown:
            if folder is not None and folder.id in found:
                _status_line(session, name, returns.status, found[folder.id])
    return "LIST completed"


async def lsub(session: Session, command: Command) -> str:
    """RFC 3501 §6.3.9: the subscribed names the pattern matches (``\\Noselect`` when no
    folder has the name), and with ``%`` the unsubscribed superiors of subscribed names the
    pattern leaves out, as ``\\Noselect``."""
    args = command.args
    assert isinstance(args, LsubArgs)
    store = session.services.store
    by_name, _, parents = _tree(await store.folders(session.account_id))
    subscribed = await store.subscriptions(session.account_id)
    patterns = [_pattern(args.reference, args.pattern)]
    listed = {name for name in subscribed if _matches(patterns, name)}
    placeholders = {
        name
        for name in _hidden_parents(patterns, subscribed)
        if name not in subscribed and _matches(patterns, name)
    }
    for name in sorted(listed | placeholders, key=lambda n: (n != "INBOX", n)):
        attrs = ["\\HasChildren" if name in parents else "\\HasNoChildren"]
        if name in placeholders or name not in by_name:
            attrs.insert(0, "\\Noselect")
        session.untagged(
            f'LSUB ({" ".join(attrs)}) "{DELIMITER}" ' + mailbox_name(name).decode("utf-8")
        )
    return "LSUB completed"


# -- STATUS ---------------------------------------------------------------------------------------


def _status_line(session: Session, name: str, items: Iterable[str], st: FolderStatus) -> None:
    values = {
        "MESSAGES": st.messages,
        "RECENT": st.recent,
        "UIDNEXT": st.uidnext,
        "UIDVALIDITY": st.uidvalidity,
        "UNSEEN": st.unseen,
        "HIGHESTMODSEQ": st.highestmodseq,
        "SIZE": st.size,
        "DELETED": st.deleted,
        "DELETED-STORAGE": st.deleted_storage,
        "APPENDLIMIT": session.settings.max_message_size,
    }
    data = " ".join(f"{item} {values[item]}" for item in items if item in values)
    session.untagged(f"STATUS {mailbox_name(name).decode('utf-8')} ({data})")


async def status(session: Session, command: Command) -> str:
    """RFC 3501 §6.3.10 (HIGHESTMODSEQ enables CONDSTORE, RFC 7162 §3.1)."""
    args = command.args
    assert isinstance(args, StatusArgs)
    folder = await _folder(session, args.mailbox)
    if "HIGHESTMODSEQ" in args.items:
        session.enable_condstore()
    found = await session.services.store.status([folder.id])
    _status_line(session, folder.name, args.items, found[folder.id])
    return "STATUS completed"


# -- QUOTA (RFC 9208) ---------------------------------------------------------------------------


def _quota_line(used: int, limit: int) -> str:
    # RFC 9208 §5.1: STORAGE in units of 1024 octets.
    return f'QUOTA "" (STORAGE {(used + 1023) // 1024} {limit // 1024})'


async def getquotaroot(session: Session, command: Command) -> str:
    args = command.args
    assert isinstance(args, MailboxArgs)
    folder = await _folder(session, args.mailbox)
    used, limit = await session.services.store.quota(session.account_id)
    name = mailbox_name(folder.name).decode("utf-8")
    if limit is None:
        session.untagged(f"QUOTAROOT {name}")
    else:
        session.untagged(f'QUOTAROOT {name} ""')
        session.untagged(_quota_line(used, limit))
    return "GETQUOTAROOT completed"


async def getquota(session: Session, command: Command) -> str:
    args = command.args
    assert isinstance(args, QuotaRootArgs)
    used, limit = await session.services.store.quota(session.account_id)
    if args.root != "" or limit is None:
        raise CommandError(f"no quota root {string(args.root).decode()}", code="NONEXISTENT")
    session.untagged(_quota_line(used, limit))
    return "GETQUOTA completed"


async def setquota(session: Session, command: Command) -> str:
    raise CommandError("quotas are set by the operator", code="NOPERM")

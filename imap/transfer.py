"""Moving messages: COPY, MOVE, EXPUNGE, CLOSE, UNSELECT, APPEND (RFC 3501 §6.3.11, §6.4.2-3,
§6.4.7; RFC 4315 UIDPLUS; RFC 6851 MOVE; RFC 3691 UNSELECT)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imap.arguments import AppendArgs, Command, CopyArgs, UidExpungeArgs
from imap.context import CommandError
from imap.responses import sequence_text
from storage.mailstore import FolderInfo

if TYPE_CHECKING:
    from imap.session import Session

__all__ = ["append", "close", "copy", "expunge", "unselect"]


async def _target(session: Session, name: str) -> FolderInfo:
    folder = await session.services.store.folder(session.account_id, name)
    if folder is None:
        # RFC 3501 §6.3.11, §6.4.7: the client may CREATE it and try again.
        raise CommandError(f"mailbox {name} does not exist", code="TRYCREATE")
    return folder


def _writable(session: Session) -> None:
    assert session.selected is not None
    if session.selected.readonly:
        raise CommandError("the mailbox is read-only (EXAMINE)", code="READ-ONLY")


async def copy(session: Session, command: Command) -> str:
    """COPY / MOVE (``command.verb`` says which), by sequence numbers or UIDs."""
    args = command.args
    assert isinstance(args, CopyArgs)
    sel = session.selected
    assert sel is not None
    move = command.verb == "MOVE"
    if move:
        _writable(session)
    # RFC 6851 allows MOVE into the selected mailbox: the messages get new UIDs there.
    target = await _target(session, args.mailbox)
    ranges = session.ranges(args.sequence, command.uid)
    if not ranges:
        return f"{command.verb} completed (no messages)"
    action = "imap.move" if move else "imap.copy"
    result = await session.services.store.copy(
        sel.folder_id,
        ranges,
        target.id,
        move=move,
        entry=session.audit(action, mailbox=sel.name, target=target.name),
    )
    if not result.source_uids:
        return f"{command.verb} completed (no messages)"
    code = (
        f"COPYUID {result.uidvalidity} {sequence_text(result.source_uids)} "
        f"{sequence_text(result.target_uids)}"
    )
    if move:
        # RFC 6851 §4.3: COPYUID in an untagged OK, then the expunges, then the tagged OK.
        session.untagged(f"OK [{code}] moved")
        sel.dirty = True
        await session.sync(allow_expunge=True)
        return "MOVE completed"
    return f"[{code}] COPY completed"


async def expunge(session: Session, command: Command) -> str:
    """EXPUNGE (RFC 3501 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1); the EXPUNGE (or VANISHED)
    responses are sent by the session's sync, like anybody else's."""
    _writable(session)
    sel = session.selected
    assert sel is not None
    ranges = None
    if isinstance(command.args, UidExpungeArgs):
        ranges = session.ranges(command.args.sequence, True)
        if not ranges:
            return "EXPUNGE completed"
    await session.services.store.expunge(
        sel.folder_id,
        ranges,
        entry=session.audit("imap.expunge", mailbox=sel.name),
        known_size=sel.exists,
    )
    sel.dirty = True
    return "EXPUNGE completed"


async def close(session: Session, command: Command) -> str:
    """RFC 3501 §6.4.2: expunge silently (read-write only), back to authenticated."""
    sel = session.selected
    assert sel is not None
    session.unselect()
    if not sel.readonly:
        await session.services.store.expunge(
            sel.folder_id,
            entry=session.audit("imap.expunge", mailbox=sel.name),
            known_size=sel.exists,
        )
    return "CLOSE completed"


async def unselect(session: Session, command: Command) -> str:
    """RFC 3691."""
    session.unselect()
    return "UNSELECT completed"


async def append(session: Session, command: Command) -> str:
    """RFC 3501 §6.3.11 with RFC 4315 APPENDUID."""
    args = command.args
    assert isinstance(args, AppendArgs)
    if not args.message:
        raise CommandError("an empty message cannot be appended", status="BAD")
    target = await _target(session, args.mailbox)
    flags = [f for f in args.flags if f != "\\Recent"]
    validity, uid = await session.services.store.append(
        target.id,
        args.message,
        flags,
        args.internal_date,
        entry=session.audit("imap.append", mailbox=target.name),
    )
    return f"[APPENDUID {validity} {uid}] APPEND completed"

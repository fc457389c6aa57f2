"""STORE and UID STORE (RFC 3501 §6.4.6, RFC 7162 §3.1.3 UNCHANGEDSINCE / MODIFIED)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imap.arguments import Command, StoreArgs
from imap.context import CommandError
from imap.responses import flag_list, sequence_text

if TYPE_CHECKING:
    from imap.session import Session

__all__ = ["store"]


async def store(session: Session, command: Command) -> str:
    args = command.args
    assert isinstance(args, StoreArgs)
    sel = session.selected
    assert sel is not None
    if sel.readonly:
        raise CommandError("the mailbox is read-only (EXAMINE)", code="READ-ONLY")
    if args.unchanged_since is not None:
        session.enable_condstore()  # RFC 7162 §3.1: CONDSTORE-enabling
    ranges = session.ranges(args.sequence, command.uid)
    if not ranges:
        return "STORE completed"
    result = await session.services.store.store_flags(
        sel.folder_id,
        ranges,
        args.action,
        args.flags,
        unchanged_since=args.unchanged_since,
        entry=session.audit("imap.store", mailbox=sel.name),
    )
    for uid, flags, modseq in result.rows:
        seq = sel.seq_of(uid)
        if seq is None:
            continue
        if uid in result.changed:
            sel.reported[uid] = modseq  # sync must not announce our own change again
        items: list[str] = []
        if command.uid:
            items.append(f"UID {uid}")
        if not args.silent:
            session.announce_keywords(flags)
            items.append("FLAGS " + flag_list(sel.flags_of(uid, flags)).decode())
        if session.condstore and (not args.silent or uid in result.changed):
            # RFC 7162 §3.1.3: the new MODSEQ, even with .SILENT.
            items.append(f"MODSEQ ({modseq})")
        if items and (not args.silent or (session.condstore and uid in result.changed)):
            session.untagged(f"{seq} FETCH ({' '.join(items)})")
        await session.flush_if_large()
    if result.modified:
        numbers = result.modified if command.uid else [sel.seq_of(u) or 0 for u in result.modified]
        return f"[MODIFIED {sequence_text(numbers)}] conditional STORE failed"
    return "STORE completed"

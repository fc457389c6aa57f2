"""SEARCH and UID SEARCH (RFC 3501 §6.4.4, RFC 4731 ESEARCH, RFC 5182 SAVE, RFC 7162 §3.1.5).

The columns the keys need are read in one query; keys on headers and text read the messages
in a worker thread (:mod:`imap.searching` evaluates).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from imap.arguments import Command, SearchArgs
from imap.responses import sequence_text
from imap.search import SearchAnd, SearchKey, SearchModSeq, SearchNot, SearchOr
from imap.searching import Candidate, evaluate, needs

if TYPE_CHECKING:
    from imap.session import Session

__all__ = ["search"]


def _uses_modseq(key: SearchKey) -> bool:
    match key:
        case SearchModSeq():
            return True
        case SearchNot(key=inner):
            return _uses_modseq(inner)
        case SearchOr(left=left, right=right):
            return _uses_modseq(left) or _uses_modseq(right)
        case SearchAnd(keys=keys):
            return any(_uses_modseq(k) for k in keys)
    return False


async def search(session: Session, command: Command) -> str:
    args = command.args
    assert isinstance(args, SearchArgs)
    sel = session.selected
    assert sel is not None
    modseq_key = _uses_modseq(args.criteria)
    if modseq_key:
        session.enable_condstore()  # RFC 7162 §3.1
    columns = needs(args.criteria)
    if modseq_key:
        columns.add("modseq")
    matched: list[Candidate] = []
    if sel.exists:
        store = session.services.store
        rows = await store.rows(sel.folder_id, [(sel.uids[0], sel.max_uid)], sorted(columns))
        candidates = [Candidate(seq, row.uid, row) for seq, row in sel.numbered(rows)]
        exists, max_uid, saved = sel.exists, sel.max_uid, session.saved
        load, recent = store.blobs.get, frozenset(sel.recent)

        def run() -> list[Candidate]:
            return evaluate(
                args.criteria,
                candidates,
                exists=exists,
                max_uid=max_uid,
                load=load,
                saved=saved,
                recent=recent,
            )

        # Header and text keys read messages: in a thread, so other sessions go on.
        matched = await asyncio.to_thread(run) if "blob_sha256" in columns else run()
    numbers = [c.uid if command.uid else c.seq for c in matched]
    options = args.return_options
    if options is None:
        highest = max((c.row.modseq for c in matched), default=None) if modseq_key else None
        extra = f" (MODSEQ {highest})" if highest is not None else ""
        session.untagged("SEARCH" + "".join(f" {n}" for n in numbers) + extra)
        return "SEARCH completed"
    if "SAVE" in options:
        session.saved = [c.uid for c in matched]  # RFC 5182
        if options == ("SAVE",):
            return "SEARCH completed"
    _esearch(session, command, options, numbers, _returned_modseq(matched, options, modseq_key))
    return "SEARCH completed"


def _returned_modseq(
    matched: list[Candidate], options: tuple[str, ...], modseq_key: bool
) -> int | None:
    """RFC 7162 §3.1.5: the highest MODSEQ of the messages the ESEARCH response returns:
    all matches with ALL or COUNT, else only the MIN and/or MAX message."""
    if not modseq_key or not matched:
        return None
    if "ALL" in options or "COUNT" in options:
        returned = matched
    else:
        returned = []
        if "MIN" in options:
            returned.append(matched[0])
        if "MAX" in options:
            returned.append(matched[-1])
    return max((c.row.modseq for c in returned), default=None)


def _esearch(
    session: Session,
    command: Command,
    options: tuple[str, ...],
    numbers: list[int],
    highest: int | None,
) -> None:
    """RFC 4731 §3.1: ``* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n ALL set``."""
    parts = [f'(TAG "{command.tag}")']
    if command.uid:
        parts.append("UID")
    if numbers:
        if "MIN" in options:
            parts.append(f"MIN {min(numbers)}")
        if "MAX" in options:
            parts.append(f"MAX {max(numbers)}")
    if "COUNT" in options:
        parts.append(f"COUNT {len(numbers)}")
    if "ALL" in options and numbers:
        parts.append(f"ALL {sequence_text(numbers)}")
    if highest is not None and numbers:
        parts.append(f"MODSEQ {highest}")
    session.untagged("ESEARCH " + " ".join(parts))

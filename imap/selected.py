"""The selected mailbox as one session sees it: the UID ↔ sequence number map, and the changes
not yet told to the client (RFC 3501 §5.2, §7.4.1; RFC 7162 §3.2.10).

Message sequence numbers are positions in :attr:`SelectedMailbox.uids` (ascending UIDs, an
``array`` of 4-byte integers: 100,000 messages cost 400 KB). The list changes only when the
client is told: new messages are appended when ``* n EXISTS`` is sent, expunged ones leave it
when ``* n EXPUNGE`` (or ``* VANISHED``) is sent, which RFC 3501 §7.4.1 forbids while a FETCH,
STORE or SEARCH by sequence numbers runs and when no command runs. Until then an expunged
message keeps its number (its data is gone: FETCH returns nothing for it).

:meth:`SelectedMailbox.absorb` takes what changed in the store since the last MODSEQ seen
(:class:`storage.mailstore.Changes`) and returns the updates to send; pure bookkeeping, no I/O.

The session's ``\\Recent`` messages (RFC 3501 §2.3.2) are a set of UIDs: those claimed by its
SELECT and, later, among the new messages it is told of (:meth:`SelectedMailbox.add_recent`);
the flag is shown by :meth:`SelectedMailbox.flags_of`, never stored.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from imap.sequence import SequenceSet
from storage.mailstore import Changes, Snapshot

__all__ = ["BadSequence", "SelectedMailbox", "Updates"]

R = TypeVar("R", bound=Sequence[Any])


class BadSequence(Exception):
    """A message sequence number beyond EXISTS (RFC 3501 §9: answer BAD)."""


@dataclass(slots=True)
class Updates:
    """Untagged responses owed to the client, in the order to send them."""

    expunged_seqs: list[int] = field(default_factory=list)  # * n EXPUNGE, in order
    vanished: list[int] = field(default_factory=list)  # UIDs, for * VANISHED (QRESYNC)
    exists: int | None = None  # * n EXISTS
    new_uids: list[int] = field(default_factory=list)  # the messages that EXISTS adds
    flags: list[tuple[int, int, str, int]] = field(default_factory=list)  # (seq, uid, flags, ms)


class SelectedMailbox:
    __slots__ = (
        "dirty",
        "folder_id",
        "keywords",
        "modseq",
        "name",
        "pending_expunge",
        "readonly",
        "recent",
        "reported",
        "uids",
        "uidvalidity",
    )

    def __init__(self, name: str, snapshot: Snapshot, readonly: bool) -> None:
        self.name = name
        self.folder_id = snapshot.folder.id
        self.uidvalidity = snapshot.folder.uidvalidity
        self.readonly = readonly
        self.uids: array[int] = snapshot.uids
        self.modseq = snapshot.modseq  # HIGHESTMODSEQ of the store as last absorbed
        self.pending_expunge: set[int] = set()  # expunged in the store, still numbered here
        self.reported: dict[int, int] = {}  # uid -> MODSEQ already sent by our own command
        self.dirty = False  # the change bus says the store moved on
        self.keywords: set[str] = set()  # keywords listed in FLAGS so far (RFC 3501 §7.2.6)
        self.recent: set[int] = set(snapshot.recent)  # \Recent for this session (§2.3.2)

    # -- numbers ---------------------------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def max_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def seq_of(self, uid: int) -> int | None:
        index = bisect_left(self.uids, uid)
        if index < len(self.uids) and self.uids[index] == uid:
            return index + 1
        return None

    def uid_ranges(self, sequence: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        """The UID ranges a command's set designates, within the messages the client knows.

        Sequence numbers above EXISTS raise :class:`BadSequence` (RFC 3501 §9 seq-number);
        UIDs that do not exist simply match nothing (RFC 3501 §6.4.8).
        """
        uids = self.uids
        out: list[tuple[int, int]] = []
        if uid:
            top = self.max_uid
            for lo, hi in sequence.resolve(top):
                start, end = bisect_left(uids, lo), bisect_right(uids, min(hi, top))
                if start < end:
                    out.append((uids[start], uids[end - 1]))
            return out
        for lo, hi in sequence.resolve(self.exists):
            if hi > self.exists or lo < 1:
                raise BadSequence(f"message sequence number {hi} exceeds EXISTS ({self.exists})")
            out.append((uids[lo - 1], uids[hi - 1]))
        return out

    def flags_of(self, uid: int, flags: str) -> list[str]:
        """A message's flags as this session shows them: ``\\Recent`` first when it is one
        of ours (RFC 3501 §2.3.2: a session flag, never stored nor storable)."""
        stored = flags.split()
        return ["\\Recent", *stored] if uid in self.recent else stored

    def add_recent(self, new_uids: Iterable[int], mark: int) -> None:
        """Of the new messages just told, those above ``mark`` (the recent mark this session
        claimed, or read when read-only) are recent for this session."""
        self.recent.update(uid for uid in new_uids if uid > mark)

    def known(self, uid: int) -> bool:
        return self.seq_of(uid) is not None

    def numbered(self, rows: Iterable[R]) -> Iterator[tuple[int, R]]:
        """``(sequence number, row)`` for rows sorted by UID (``row[0]`` is the UID) that the
        client knows: one merge walk, no search per row (UID FETCH 1:* on 100,000 messages)."""
        uids = self.uids
        count = len(uids)
        index = 0
        for row in rows:
            uid = row[0]
            if index < count and uids[index] != uid:
                index = bisect_left(uids, uid, index)
            if index >= count:
                return
            if uids[index] == uid:
                index += 1
                yield index, row

    # -- changes ---------------------------------------------------------------------------------

    def absorb(self, changes: Changes, *, allow_expunge: bool, qresync: bool) -> Updates:
        """Fold the store's changes in; return what to tell the client now."""
        updates = Updates()
        top = self.max_uid
        for uid in changes.expunged:
            if uid <= top and self.known(uid):
                self.pending_expunge.add(uid)
        new = [uid for uid, _modseq, _flags in changes.changed if uid > top]
        changed = [
            (uid, flags, modseq)
            for uid, modseq, flags in changes.changed
            if uid <= top and self.reported.get(uid) != modseq and uid not in self.pending_expunge
        ]
        self.modseq = max(self.modseq, changes.highestmodseq)
        self.reported.clear()
        if allow_expunge and self.pending_expunge:
            gone = sorted(self.pending_expunge)
            if qresync:
                updates.vanished = gone
            else:
                # RFC 3501 §7.4.1: each EXPUNGE renumbers the messages after it at once.
                updates.expunged_seqs = [
                    seq - index for index, seq in enumerate(self._seqs_of(gone))
                ]
            self._drop(gone)
        if new:
            updates.new_uids = sorted(set(new))
            self.uids.extend(updates.new_uids)
            updates.exists = len(self.uids)
        for uid, flags, modseq in changed:
            seq = self.seq_of(uid)
            if seq is not None:
                updates.flags.append((seq, uid, flags, modseq))
        return updates

    def _seqs_of(self, uids: list[int]) -> list[int]:
        return [seq for seq in (self.seq_of(u) for u in uids) if seq is not None]

    def _drop(self, gone: list[int]) -> None:
        if not gone:
            return
        drop = set(gone)
        self.uids = array("I", (u for u in self.uids if u not in drop))
        self.pending_expunge -= drop
        self.recent -= drop

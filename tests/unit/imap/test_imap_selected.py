"""The selected-mailbox state: numbering, and when changes may be told (RFC 3501 §7.4.1)."""

from __future__ import annotations

from array import array

import pytest

from imap.selected import BadSequence, SelectedMailbox
from imap.sequence import SequenceSet
from storage.mailstore import Changes, FolderInfo, Snapshot


def mailbox(uids: list[int], modseq: int = 10, recent: list[int] | None = None) -> SelectedMailbox:
    folder = FolderInfo(1, "INBOX", None, 42, max(uids, default=0) + 1, modseq)
    snapshot = Snapshot(folder, array("I", uids), None, modseq, recent or [])
    return SelectedMailbox("INBOX", snapshot, False)


def test_sequence_numbers_and_uid_sets() -> None:
    sel = mailbox([3, 5, 9, 12])
    assert sel.exists == 4 and sel.seq_of(9) == 3 and sel.seq_of(4) is None
    assert sel.uid_ranges(SequenceSet.parse("2:3"), uid=False) == [(5, 9)]
    assert sel.uid_ranges(SequenceSet.parse("1,4"), uid=False) == [(3, 3), (12, 12)]
    assert sel.uid_ranges(SequenceSet.parse("*"), uid=False) == [(12, 12)]
    assert sel.uid_ranges(SequenceSet.parse("4:10"), uid=True) == [(5, 9)]
    assert sel.uid_ranges(SequenceSet.parse("20:*"), uid=True) == [(12, 12)]  # RFC 3501 §9
    assert sel.uid_ranges(SequenceSet.parse("100"), uid=True) == []
    with pytest.raises(BadSequence):
        sel.uid_ranges(SequenceSet.parse("5"), uid=False)


def test_expunges_wait_until_allowed_then_renumber() -> None:
    sel = mailbox([1, 2, 3, 4, 5])
    changes = Changes(12, 7, [(6, 11, ""), (4, 12, "\\Seen")], [2, 3])
    first = sel.absorb(changes, allow_expunge=False, qresync=False)
    assert first.expunged_seqs == [] and first.exists == 6  # expunged still numbered
    assert first.flags == [(4, 4, "\\Seen", 12)]
    assert sel.uids.tolist() == [1, 2, 3, 4, 5, 6]
    later = sel.absorb(Changes(12, 7, [], []), allow_expunge=True, qresync=False)
    assert later.expunged_seqs == [2, 2]  # each EXPUNGE renumbers the rest at once
    assert sel.uids.tolist() == [1, 4, 5, 6] and later.exists is None


def test_qresync_reports_vanished_and_own_changes_are_not_repeated() -> None:
    sel = mailbox([1, 2, 3])
    sel.reported[2] = 11  # our own STORE already answered with this MODSEQ
    updates = sel.absorb(
        Changes(11, 4, [(2, 11, "\\Flagged"), (3, 11, "")], [1]), allow_expunge=True, qresync=True
    )
    assert updates.vanished == [1] and updates.expunged_seqs == []
    assert updates.flags == [(2, 3, "", 11)]
    assert sel.modseq == 11 and sel.reported == {}
    # A message added then expunged before the client heard of it is never mentioned.
    updates = sel.absorb(Changes(13, 6, [], [5]), allow_expunge=True, qresync=True)
    assert updates.vanished == [] and updates.exists is None


def test_recent_is_a_session_flag_shown_first_and_gone_with_its_message() -> None:
    # RFC 3501 §2.3.2: \Recent belongs to the session; it is never stored.
    sel = mailbox([3, 5, 9], recent=[9])
    assert sel.flags_of(9, "\\Seen") == ["\\Recent", "\\Seen"]
    assert sel.flags_of(5, "\\Seen") == ["\\Seen"]
    updates = sel.absorb(Changes(12, 13, [(10, 12, ""), (11, 12, "")], []), **_NO_QRESYNC)
    assert updates.exists == 5 and updates.new_uids == [10, 11]
    sel.add_recent(updates.new_uids, mark=10)  # another session had claimed UID 10
    assert sel.recent == {9, 11}
    updates = sel.absorb(Changes(13, 13, [], [9]), **_NO_QRESYNC)
    assert updates.expunged_seqs == [3] and sel.recent == {11}


_NO_QRESYNC = {"allow_expunge": True, "qresync": False}

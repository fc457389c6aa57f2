"""MailStore's hot paths (issue #5): coalesced change reads, the \\Recent claim, one trip per
operation; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.blobs import BlobStore
from storage.db import Database
from storage.mailstore import Changes, MailStore, create_default_folders
from storage.models import Account, Folder


def _message(n: int) -> bytes:
    return (
        f"From: a@demo.mssante.fr\r\nTo: b@demo.mssante.fr\r\nSubject: n{n}\r\n"
        f"Message-ID: <{n}@demo>\r\n\r\nbody {n}\r\n"
    ).encode()


@pytest.fixture
async def store(db: Database, tmp_path: Path) -> AsyncIterator[tuple[MailStore, int, list[int]]]:
    async with db.session() as s, s.begin():
        account = Account(address="hot@demo.mssante.fr", kind="PER")
        s.add(account)
        await s.flush()
        folders = await create_default_folders(s, account.id)
        inbox = folders[0].id
    changed: list[int] = []
    blobs = BlobStore(tmp_path / "blobs")
    blobs.ensure()
    mailstore = MailStore(db, blobs, on_change=lambda ids: changed.extend(ids))
    yield mailstore, inbox, changed
    mailstore.close()


async def test_concurrent_changes_since_share_one_query_each_gets_its_own(
    store: tuple[MailStore, int, list[int]],
) -> None:
    ms, inbox, _ = store
    assert ms.run.threaded == (ms.db.dialect == "sqlite")  # a file: worker threads
    start = (await ms.changes_since(inbox, 0)).highestmodseq
    for n in range(4):
        await ms.append(inbox, _message(n), [], None)  # UIDs 1-4
    await ms.store_flags(inbox, [(2, 2)], "add", ["\\Seen"])
    await ms.store_flags(inbox, [(3, 3)], "add", ["\\Deleted"])
    await ms.expunge(inbox)
    top = (await ms.changes_since(inbox, 0)).highestmodseq
    since = list(range(start, top + 1))
    expected = [await ms.changes_since(inbox, m) for m in since]  # one at a time
    before = ms._changes.queries
    together = await asyncio.gather(*(ms.changes_since(inbox, m) for m in since))
    assert ms._changes.queries - before == 1
    assert together == expected
    # Each caller got exactly what followed its own MODSEQ.
    for m, changes in zip(since, together, strict=True):
        assert all(modseq > m for _, modseq, _ in changes.changed)
        assert changes.highestmodseq == top
    assert expected[0].expunged == [3]
    assert [uid for uid, _, _ in expected[0].changed] == [1, 2, 4]
    assert expected[-1] == Changes(top, 5, [], [], expected[-1].recent_uid)


async def test_changes_carry_the_recent_mark_and_a_claim_below_it_writes_nothing(
    store: tuple[MailStore, int, list[int]], db: Database
) -> None:
    ms, inbox, _ = store
    for n in range(3):
        await ms.append(inbox, _message(n), [], None)
    changes = await ms.changes_since(inbox, 0)
    assert changes.recent_uid == 0  # nobody has been told of them yet (RFC 3501 §2.3.2)
    # Two sessions told at once: exactly one of them gets the three as \Recent.
    marks = await asyncio.gather(*(ms.claim_recent(inbox, 3, mark=0) for _ in range(5)))
    assert sorted(marks) == [0, 3, 3, 3, 3]
    assert (await ms.changes_since(inbox, 0)).recent_uid == 3
    async with db.session() as s:
        folder = await s.get(Folder, inbox)
        assert folder is not None
        highest = folder.highestmodseq
    # A mark already at the top: nothing to claim, and no statement at all.
    assert await ms.claim_recent(inbox, 3, mark=3) == 3
    assert await ms.claim_recent(inbox, 3) == 3
    async with db.session() as s:
        folder = await s.get(Folder, inbox)
        assert folder is not None and folder.recent_uid == 3
        assert folder.highestmodseq == highest


async def test_sessions_told_together_make_one_claim_and_a_later_delivery_another(
    store: tuple[MailStore, int, list[int]], db: Database
) -> None:
    ms, inbox, _ = store
    async with db.session() as s:
        folder = await s.get(Folder, inbox)
        assert folder is not None
        validity = folder.uidvalidity
    for n in range(2):
        await ms.append(inbox, _message(n), [], None)
    writes = 0
    write = ms.run.write

    async def counted(fn, **how):  # type: ignore[no-untyped-def]
        nonlocal writes
        writes += 1
        return await write(fn, **how)

    ms.run.write = counted  # type: ignore[method-assign]
    # Twenty sessions read the same mark (0) after the delivery: one claim is written, the
    # others wait for it and get nothing recent.
    claims = (ms.claim_recent(inbox, 2, mark=0, uidvalidity=validity) for _ in range(20))
    marks = await asyncio.gather(*claims)
    assert sorted(marks) == [0] + [2] * 19 and writes == 1
    # A session that still holds the old mark (0) writes nothing either.
    assert await ms.claim_recent(inbox, 2, mark=0, uidvalidity=validity) == 2 and writes == 1
    # A later delivery: the next session told of it claims it, and only it.
    await ms.append(inbox, _message(3), [], None)
    writes = 0
    assert await ms.claim_recent(inbox, 3, mark=0, uidvalidity=validity) == 2 and writes == 1
    # A folder that only shares the id (created after a deletion) is not taken for this one.
    assert await ms.claim_recent(inbox, 3, mark=0, uidvalidity=validity + 1) == 3
    assert writes == 2


async def test_a_store_that_changes_nothing_keeps_highestmodseq_and_wakes_nobody(
    store: tuple[MailStore, int, list[int]],
) -> None:
    ms, inbox, changed = store
    await ms.append(inbox, _message(1), ["\\Seen"], None)
    before = (await ms.changes_since(inbox, 0)).highestmodseq
    changed.clear()
    result = await ms.store_flags(inbox, [(1, 1)], "add", ["\\Seen"])
    assert result.changed == frozenset() and result.rows[0][:2] == (1, "\\Seen")
    assert (await ms.changes_since(inbox, 0)).highestmodseq == before
    assert changed == []
    result = await ms.store_flags(inbox, [(1, 1)], "add", ["\\Flagged"])
    assert result.changed == frozenset({1})
    assert (await ms.changes_since(inbox, 0)).highestmodseq == before + 1
    assert changed == [inbox]


async def test_rows_by_many_ranges_and_changedsince(
    store: tuple[MailStore, int, list[int]],
) -> None:
    ms, inbox, _ = store
    for n in range(6):
        await ms.append(inbox, _message(n), [], None)
    rows = await ms.rows(inbox, [(1, 1), (3, 4), (6, 9)], ["flags", "size"])
    assert [r.uid for r in rows] == [1, 3, 4, 6]
    modseq = (await ms.changes_since(inbox, 0)).highestmodseq
    await ms.store_flags(inbox, [(4, 5)], "add", ["\\Answered"])
    rows = await ms.rows(inbox, [(1, 6)], ["flags"], changed_since=modseq)
    assert [(r.uid, r.flags) for r in rows] == [(4, "\\Answered"), (5, "\\Answered")]
    # More ranges than one statement takes: several statements, one sorted answer.
    many = [(u, u) for u in range(1, 1000)]
    assert [r.uid for r in await ms.rows(inbox, many, [])] == [1, 2, 3, 4, 5, 6]
    assert await ms.expunge(inbox, [(1, 6)]) == []  # nothing \Deleted
    # Sets of every length (statements are shared by lengths rounded up to a power of two).
    await ms.store_flags(inbox, [(1, 1), (3, 3), (5, 5)], "add", ["\\Deleted"])
    assert await ms.expunge(inbox, [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]) == [1, 3, 5]
    assert [r.uid for r in await ms.rows(inbox, [(1, 2), (4, 4), (6, 6)], ["flags"])] == [2, 4, 6]
    # Ranges close together are read as one and filtered; in any order, overlapping or not.
    unordered = [(6, 6), (1, 2), (2, 2), (4, 4), (9, 10)]
    assert [r.uid for r in await ms.rows(inbox, unordered, ["flags"])] == [2, 4, 6]
    far = [(2, 2), (4, 4), (6, 6), (10_000, 10_000)]
    assert [r.uid for r in await ms.rows(inbox, far, ["flags"])] == [2, 4, 6]


async def test_snapshot_claims_once_and_examine_leaves_them(
    store: tuple[MailStore, int, list[int]],
) -> None:
    ms, inbox, _ = store
    for n in range(2):
        await ms.append(inbox, _message(n), [], None)
    looked = await ms.snapshot(inbox, claim_recent=False)
    assert looked.recent == [1, 2]
    first = await ms.snapshot(inbox, claim_recent=True)
    second = await ms.snapshot(inbox, claim_recent=True)
    assert (first.recent, second.recent) == ([1, 2], [])
    assert list(second.uids) == [1, 2]

"""The webmail's access records are group-committed (storage.audit.AuditWriter): each reader
waits for its own record to be durable, and concurrent readers share a transaction."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, func, select

from storage import audit
from storage.db import Database
from storage.models import AuditEvent

ACTOR = audit.Actor("146026322000196@patient.mssante.fr", "webmail:password+email-code", "::1")


def _event(n: int) -> dict[str, Any]:
    return audit.event_values(
        ACTOR, "document.read", object_type="document", object_id=str(n), patient_ins="1"
    )


async def test_concurrent_records_are_all_committed_in_fewer_transactions(db: Database) -> None:
    commits: list[int] = []
    event.listen(db.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    writer = audit.AuditWriter(db)
    await asyncio.gather(*(writer.write(_event(n)) for n in range(40)))
    async with db.session() as s:
        ids = set((await s.scalars(select(AuditEvent.object_id))).all())
    assert ids == {str(n) for n in range(40)}
    # The first record starts a transaction; the 39 that arrive meanwhile share the next.
    assert 1 <= len(commits) <= 3


async def test_a_failed_commit_fails_every_record_of_its_group_and_not_the_next(
    db: Database,
) -> None:
    writer = audit.AuditWriter(db)
    bad = {**_event(1), "actor": None}  # NOT NULL: the whole group is refused
    results = await asyncio.gather(
        writer.write(bad), writer.write(_event(2)), return_exceptions=True
    )
    assert all(isinstance(r, Exception) for r in results), results
    await writer.write(_event(3))  # the writer goes on
    async with db.session() as s:
        objects = (await s.scalars(select(AuditEvent.object_id))).all()
        assert list(objects) == ["3"]
        assert await s.scalar(select(func.count()).select_from(AuditEvent)) == 1


async def test_a_caller_cancelled_while_waiting_does_not_lose_its_record(db: Database) -> None:
    writer = audit.AuditWriter(db)
    waiting = asyncio.ensure_future(writer.write(_event(7)))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    for _ in range(100):
        async with db.session() as s:
            if await s.scalar(select(func.count()).select_from(AuditEvent)):
                break
        await asyncio.sleep(0.05)
    async with db.session() as s:
        assert (await s.scalars(select(AuditEvent.object_id))).all() == ["7"]

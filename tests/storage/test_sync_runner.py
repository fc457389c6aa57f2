"""storage/sync_runner.py: one runner per database for every store that asks, and a write
whose caller is cancelled keeps the write turn until its thread is done with it."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from sqlalchemy import Connection, text

from storage.db import Database
from storage.sync_runner import SyncRunner


async def test_the_stores_of_one_database_share_one_runner(db: Database) -> None:
    assert SyncRunner.shared(db) is SyncRunner.shared(db)
    assert await SyncRunner.shared(db).read(lambda c: c.scalar(text("SELECT 1"))) == 1


async def test_a_cancelled_write_holds_the_turn_until_its_thread_is_done(db: Database) -> None:
    runner = SyncRunner.shared(db)
    if not runner.threaded:
        pytest.skip("PostgreSQL: the write runs on the event loop (run_sync), no thread")
    started, finished = threading.Event(), threading.Event()

    def slow(conn: Connection) -> tuple[None, bool]:
        started.set()
        time.sleep(0.3)
        finished.set()
        return None, False

    writing = asyncio.create_task(runner.write(slow))
    while not started.is_set():
        await asyncio.sleep(0.01)
    writing.cancel()
    async with db.write_turn():  # the next writer of this process
        assert finished.is_set()
    assert writing.cancelled()

"""storage/sync_runner.py: one runner per database for every store that asks, a write whose
caller is cancelled keeps the write turn until its thread is done with it, and a quick
operation that finds SQLite locked by another process waits in the thread, never on the
event loop."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection, make_url, text

from storage.db import Database
from storage.sync_runner import SyncRunner

ROOT = Path(__file__).resolve().parents[2]


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


async def _sqlite_with_table(db: Database, unless: str) -> SyncRunner:
    """The database's runner, with a table ``t (n)``; the test is skipped on PostgreSQL."""
    runner = SyncRunner.shared(db)
    if not runner.threaded:
        pytest.skip(f"PostgreSQL: {unless}")
    await runner.write(lambda c: (c.exec_driver_sql("CREATE TABLE t (n INTEGER)"), True))
    return runner


async def test_a_quick_write_facing_a_locked_database_waits_off_the_event_loop(
    db: Database,
) -> None:
    runner = await _sqlite_with_table(db, "no SQLite lock")
    other = sqlite3.connect(str(make_url(db.url).database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    writing = asyncio.create_task(
        runner.write(
            lambda c: (c.exec_driver_sql("INSERT INTO t VALUES (1)").rowcount, True), quick=True
        )
    )
    started = time.monotonic()
    for _ in range(10):  # the event loop keeps turning while the write waits
        await asyncio.sleep(0.02)
    assert time.monotonic() - started < 1 and not writing.done()
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(writing, 10) == 1
    read = await runner.read(lambda c: c.exec_driver_sql("SELECT n FROM t").all(), quick=True)
    assert [tuple(row) for row in read] == [(1,)]


async def test_a_write_that_skips_the_fsync_survives_its_process_being_killed(
    db: Database,
) -> None:
    runner = await _sqlite_with_table(db, "commits are the server's")
    script = f"""
import asyncio, os, signal
from storage.db import Database
from storage.sync_runner import SyncRunner
async def main():
    runner = SyncRunner(Database({db.url!r}))
    for n in range(3):
        await runner.write(
            lambda c, n=n: (c.exec_driver_sql(f"INSERT INTO t VALUES ({{n}})"), True),
            quick=True, durable=n != 1,
        )
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint
asyncio.run(main())
"""
    killed = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=ROOT)
    assert await killed.wait() == -signal.SIGKILL
    rows = await runner.read(lambda c: c.exec_driver_sql("SELECT n FROM t ORDER BY n").all())
    assert [tuple(row) for row in rows] == [(0,), (1,), (2,)]

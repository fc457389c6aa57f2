"""Writers of one SQLite file in several server processes take turns (``server.processes``).

Each ``Database`` opened with ``share_writer_turns`` holds its own open lock file, as each
process of the server does, so two of them in one test exclude each other as two processes
would."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.db import Database, open_database


async def test_a_second_writer_waits_for_the_first_and_then_goes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mailserver.db'}"
    first, second = await open_database(url), await open_database(url)
    try:
        for db in (first, second):
            db.share_writer_turns()
        order: list[str] = []
        async with first.write_turn():
            waiting = asyncio.create_task(_write(second, order, "second"))
            await asyncio.sleep(0.2)
            assert not waiting.done()  # the lock is held by the other "process"
            order.append("first")
        await asyncio.wait_for(waiting, 5)
        assert order == ["first", "second"]
    finally:
        await first.close()
        await second.close()


async def test_a_writer_cancelled_while_waiting_does_not_keep_the_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mailserver.db'}"
    first, second = await open_database(url), await open_database(url)
    try:
        for db in (first, second):
            db.share_writer_turns()
        async with first.write_turn():
            waiting = asyncio.create_task(_write(second, [], "cancelled"))
            await asyncio.sleep(0.2)
            waiting.cancel()
        await asyncio.sleep(0.2)  # the waiting thread got the lock and gave it back
        async with asyncio.timeout(5):
            async with first.write_turn():
                pass
    finally:
        await first.close()
        await second.close()


async def _write(db: Database, order: list[str], name: str) -> None:
    async with db.write_turn():
        order.append(name)

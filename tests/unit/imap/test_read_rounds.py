"""storage.rounds.ReadRounds: concurrent reads of one key share one query, never a stale one."""

from __future__ import annotations

import asyncio

import pytest

from storage.rounds import ReadRounds


class _Query:
    """A query that records its calls and can be held until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self, key: str, since: int) -> tuple[int, int]:
        self.calls.append((key, since))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return len(self.calls), since  # (which query, the since it ran for)


async def test_concurrent_callers_share_one_query_for_the_oldest_since() -> None:
    query = _Query()
    rounds: ReadRounds[str, tuple[int, int]] = ReadRounds(query)
    answers = await asyncio.gather(*(rounds.ask("inbox", since) for since in (7, 3, 9, 5)))
    assert query.calls == [("inbox", 3)]
    assert rounds.queries == 1
    assert answers == [(1, 3)] * 4


async def test_keys_do_not_share_a_round() -> None:
    query = _Query()
    rounds: ReadRounds[str, tuple[int, int]] = ReadRounds(query)
    await asyncio.gather(rounds.ask("a", 1), rounds.ask("b", 2), rounds.ask("a", 4))
    assert sorted(query.calls) == [("a", 1), ("b", 2)]


async def test_a_caller_arriving_during_a_query_waits_for_the_next_one() -> None:
    """Freshness: the running query may have started before the commit that woke the late
    caller; it must be answered by a query that starts after it asked."""
    query = _Query()
    query.gate = asyncio.Event()
    rounds: ReadRounds[str, tuple[int, int]] = ReadRounds(query)
    early = asyncio.ensure_future(rounds.ask("inbox", 5))
    await query.started.wait()  # the first query is running
    late = asyncio.ensure_future(rounds.ask("inbox", 8))
    later = asyncio.ensure_future(rounds.ask("inbox", 6))
    await asyncio.sleep(0)
    assert len(query.calls) == 1
    query.gate.set()
    assert await early == (1, 5)
    # Both late callers joined the second round, which ran for the older of their MODSEQs.
    assert await late == (2, 6)
    assert await later == (2, 6)
    assert query.calls == [("inbox", 5), ("inbox", 6)]


async def test_a_failure_reaches_every_caller_of_its_round_and_the_next_round_runs() -> None:
    query = _Query()
    query.fail = RuntimeError("database is down")
    rounds: ReadRounds[str, tuple[int, int]] = ReadRounds(query)
    results = await asyncio.gather(
        rounds.ask("inbox", 1), rounds.ask("inbox", 2), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert len(query.calls) == 1
    query.fail = None
    assert await rounds.ask("inbox", 4) == (2, 4)


async def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    query = _Query()
    query.gate = asyncio.Event()
    rounds: ReadRounds[str, tuple[int, int]] = ReadRounds(query)
    gone = asyncio.ensure_future(rounds.ask("inbox", 1))
    stays = asyncio.ensure_future(rounds.ask("inbox", 2))
    await query.started.wait()
    gone.cancel()
    query.gate.set()
    assert await stays == (1, 1)
    with pytest.raises(asyncio.CancelledError):
        await gone

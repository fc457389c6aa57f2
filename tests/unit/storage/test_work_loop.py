"""The queue workers' loop (storage.leases.work_loop): at once when woken, polling less and
less often while idle, back to the configured pace once there is work."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from storage.leases import IDLE_BACKOFF, work_loop

POLL = 0.05


async def test_an_idle_loop_polls_less_often_and_a_wake_up_runs_a_pass_at_once() -> None:
    passes: list[float] = []
    wake, stopping = asyncio.Event(), asyncio.Event()

    async def one_pass() -> int:
        passes.append(time.monotonic())
        return 0

    loop = asyncio.create_task(
        work_loop(
            one_pass,
            wake=wake,
            stopping=stopping,
            poll_interval=POLL,
            log=logging.getLogger("test"),
        )
    )
    try:
        await asyncio.sleep(POLL * (1 + 2 + 4 + 8 + 8) + POLL / 2)
        gaps = [b - a for a, b in itertools.pairwise(passes)]
        assert len(passes) <= 7, gaps  # 1, 2, 4, 8, 8 poll intervals apart: not 24 passes
        assert max(gaps) <= POLL * IDLE_BACKOFF * 1.5, gaps
        assert gaps[-1] >= POLL * 4, gaps  # backed off
        before = len(passes)
        woken_at = time.monotonic()
        wake.set()
        while len(passes) == before:
            await asyncio.sleep(0.005)
        assert passes[-1] - woken_at < POLL  # at once, not after the backed-off interval
        await asyncio.sleep(POLL * 1.5)
        assert len(passes) >= before + 2  # and back to the configured pace
    finally:
        stopping.set()
        await asyncio.wait_for(loop, 5)


async def test_a_pass_that_finds_work_is_followed_by_another_at_once() -> None:
    work = [3, 2, 1, 0]
    done: list[int] = []
    wake, stopping = asyncio.Event(), asyncio.Event()

    async def one_pass() -> int:
        n = work.pop(0) if work else 0
        done.append(n)
        if not work:
            stopping.set()
        return n

    started = time.monotonic()
    await work_loop(
        one_pass, wake=wake, stopping=stopping, poll_interval=10, log=logging.getLogger("test")
    )
    assert done == [3, 2, 1, 0] and time.monotonic() - started < 1

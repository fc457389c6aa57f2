"""Read rounds: concurrent readers of one key share one query (a group commit for reads).

After a change to a folder every session with it selected asks the store what changed since
its own MODSEQ (RFC 7162 §3.1, RFC 3501 §7.3.1); asked one by one, twenty sessions run twenty
identical queries. :class:`ReadRounds` groups them: the callers that ask for a key while no
query for that key runs form the next *round*, which runs ONE query for the smallest argument
among them (for changes: the oldest MODSEQ); every caller gets that result (and keeps what
concerns it).

Freshness: a caller is only served by a query that starts after it asked. A caller arriving
while a query for its key runs waits for the next round: the running query may have started
before the commit that woke the caller, and could miss it. Nothing is cached between rounds,
so a change made by another process (PostgreSQL nodes) is seen by the next round as usual.

A failing query fails every caller of its round (each gets the exception); the next round
starts afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["ReadRounds"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class ReadRounds(Generic[K, T]):
    """``await rounds.ask(key, since)`` returns ``query(key, min(since of the round))``."""

    def __init__(self, query: Callable[[K, int], Awaitable[T]]) -> None:
        self._query = query
        self._waiting: dict[K, list[tuple[int, asyncio.Future[T]]]] = {}
        self._drivers: dict[K, asyncio.Task[None]] = {}
        self.queries = 0  # queries run (tests, metrics)

    async def ask(self, key: K, since: int) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.setdefault(key, []).append((since, future))
        if key not in self._drivers:
            # A task rather than the first caller: a caller cancelled mid-query must not
            # leave the others of its round without an answer.
            self._drivers[key] = loop.create_task(self._drive(key))
        return await future

    async def _drive(self, key: K) -> None:
        try:
            while True:
                # The round: everybody who asked before this query starts.
                round_ = self._waiting.pop(key, None)
                if not round_:
                    return
                live = [(since, f) for since, f in round_ if not f.done()]
                if not live:
                    continue
                self.queries += 1
                try:
                    result = await self._query(key, min(since for since, _ in live))
                except asyncio.CancelledError:
                    for _, f in live:
                        f.cancel()
                    raise
                except Exception as exc:
                    for _, f in live:
                        if not f.done():
                            f.set_exception(exc)
                    continue
                for _, f in live:
                    if not f.done():
                        f.set_result(result)
        finally:
            del self._drivers[key]
            # Only when this task was cancelled: nobody would answer the ones still waiting.
            for _, f in self._waiting.pop(key, []):
                f.cancel()

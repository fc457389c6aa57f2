"""Leased claims on durable work tables (the relay queue, filing jobs).

A claim pushes ``next_attempt_at`` forward by the lease: a node that dies mid-work leaves its
rows to be picked up again once the lease runs out, so work is never lost, only retried. On
PostgreSQL several nodes claim disjoint rows (``FOR UPDATE SKIP LOCKED``); SQLite serialises
writers, so the claiming transaction alone is enough there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute


class _Leased(Protocol):
    id: Any
    state: Any
    next_attempt_at: Any


Row = TypeVar("Row", bound=_Leased)


async def claim_due(
    session: AsyncSession,
    model: type[Row],
    state: str,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> list[Row]:
    """Rows of ``model`` in ``state`` due now, oldest first, leased until ``now + lease``."""
    state_col: InstrumentedAttribute[str] = model.state
    due_col: InstrumentedAttribute[datetime] = model.next_attempt_at
    id_col: InstrumentedAttribute[int] = model.id
    stmt = (
        select(model)
        .where(state_col == state, due_col <= now)
        .order_by(due_col, id_col)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list((await session.scalars(stmt)).all())
    for row in rows:
        row.next_attempt_at = now + lease
    return rows


IDLE_BACKOFF = 8  # an idle worker polls at most this many times less often


async def work_loop(
    one_pass: Callable[[], Awaitable[int]],
    *,
    wake: asyncio.Event,
    stopping: asyncio.Event,
    poll_interval: float,
    log: logging.Logger,
) -> None:
    """Run ``one_pass`` until ``stopping``: again at once while it finds work, else as soon
    as ``wake`` is set (a door or the store just added work) or after the poll interval,
    which doubles after each pass that found nothing, up to ``IDLE_BACKOFF`` times
    ``poll_interval``: the polls only catch retries coming due and work added by other
    processes, and an idle server then spends next to nothing on them.

    A failing pass (the database is down) is logged and retried: the loop never dies.
    """
    interval = poll_interval
    while not stopping.is_set():
        try:
            busy = await one_pass()
        except Exception as exc:
            log.error("pass failed: %s: %s", type(exc).__name__, exc)
            busy = 0
        if busy:
            interval = poll_interval
            continue
        wake.clear()
        waiter = asyncio.ensure_future(wake.wait())
        stopper = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({waiter, stopper}, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
        woken = wake.is_set()
        waiter.cancel()
        stopper.cancel()
        interval = poll_interval if woken else min(2 * interval, IDLE_BACKOFF * poll_interval)

"""The durable relay queue: one row per recipient waiting for the next hop or owed a report.

States: ``queued`` (to relay to another operator), ``report`` (a delivery status notification
is owed: ``action``/``status`` say what it reports), ``done``. Work is claimed with a lease:
the claim pushes ``next_attempt_at`` forward, so a node that dies mid-delivery leaves its
entries to be picked up again when the lease runs out, and on PostgreSQL several nodes claim
disjoint rows (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Executor
from storage.leases import claim_due
from storage.models import QueueEntry

__all__ = [
    "QueueSummary",
    "claim",
    "defer",
    "delete_entries",
    "due_delay_warnings",
    "finish",
    "list_entries",
    "owe_report",
    "retry_now",
    "settle",
    "settle_in",
    "summary",
]


async def claim(
    session: AsyncSession, state: str, now: datetime, lease: timedelta, limit: int
) -> list[QueueEntry]:
    """Entries in ``state`` due now, leased to the caller until ``now + lease``."""
    return await claim_due(session, QueueEntry, state, now, lease, limit)


async def finish(session: AsyncSession, ids: Sequence[int], now: datetime) -> None:
    if ids:
        await session.execute(
            update(QueueEntry)
            .where(QueueEntry.id.in_(list(ids)))
            .values(state="done", finished_at=now)
        )


_SETTLED_IDS = QueueEntry.id.in_(bindparam("ids", expanding=True))
# The report owed for these entries has been sent (or is not wanted): a ``report`` entry is
# finished; a still ``queued`` entry has had its delay reported (RFC 3464 delayed).
_SETTLE = (
    update(QueueEntry)
    .where(_SETTLED_IDS, QueueEntry.state == "report")
    .values(state="done", finished_at=bindparam("now")),
    update(QueueEntry)
    .where(_SETTLED_IDS, QueueEntry.state == "queued")
    .values(delay_notified=True),
)


async def settle(session: Executor, ids: Sequence[int], now: datetime) -> None:
    """The report owed for these entries has been sent (see ``_SETTLE``)."""
    if ids:
        for stmt in _SETTLE:
            await session.execute(stmt, {"ids": list(ids), "now": now})


def settle_in(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    """``settle`` on a sync connection, in its transaction (storage.sync_runner)."""
    if ids:
        for stmt in _SETTLE:
            conn.execute(stmt, {"ids": list(ids), "now": now})


async def defer(session: AsyncSession, entry_id: int, error: str, next_attempt: datetime) -> None:
    """A temporary failure: try again at ``next_attempt``."""
    await session.execute(
        update(QueueEntry)
        .where(QueueEntry.id == entry_id)
        .values(
            attempts=QueueEntry.attempts + 1, last_error=error[:2000], next_attempt_at=next_attempt
        )
    )


async def owe_report(
    session: AsyncSession,
    entry_id: int,
    *,
    action: str,
    status: str,
    error: str | None,
    remote_mta: str | None,
    now: datetime,
) -> None:
    """The recipient's fate is known (failed, relayed): a report is owed to the sender."""
    await session.execute(
        update(QueueEntry)
        .where(QueueEntry.id == entry_id)
        .values(
            state="report",
            action=action,
            status=status,
            last_error=error[:2000] if error else None,
            remote_mta=remote_mta,
            attempts=QueueEntry.attempts + 1,
            next_attempt_at=now,
        )
    )


async def due_delay_warnings(
    session: AsyncSession, now: datetime, after: timedelta, limit: int
) -> list[QueueEntry]:
    """Queued entries older than ``after`` whose sender has not been told of the delay."""
    stmt = (
        select(QueueEntry)
        .where(
            QueueEntry.state == "queued",
            QueueEntry.delay_notified.is_(False),
            QueueEntry.created_at <= now - after,
        )
        .order_by(QueueEntry.id)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


# --- operations (mailserver queue ...) ----------------------------------------------------------


@dataclass(frozen=True)
class QueueSummary:
    queued: int
    report: int
    done: int


async def summary(session: AsyncSession) -> QueueSummary:
    rows = dict(
        (await session.execute(select(QueueEntry.state, func.count()).group_by(QueueEntry.state)))
        .tuples()
        .all()
    )
    return QueueSummary(rows.get("queued", 0), rows.get("report", 0), rows.get("done", 0))


async def list_entries(
    session: AsyncSession, *, include_done: bool = False, limit: int = 1000
) -> list[QueueEntry]:
    stmt = select(QueueEntry).order_by(QueueEntry.id).limit(limit)
    if not include_done:
        stmt = stmt.where(QueueEntry.state != "done")
    return list((await session.scalars(stmt)).all())


async def retry_now(session: AsyncSession, ids: Sequence[int] | None, now: datetime) -> int:
    """Make queued entries (all, or ``ids``) due now."""
    stmt = update(QueueEntry).where(QueueEntry.state == "queued").values(next_attempt_at=now)
    if ids is not None:
        stmt = stmt.where(QueueEntry.id.in_(list(ids)))
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def delete_entries(session: AsyncSession, ids: Sequence[int]) -> int:
    """Remove entries without delivering or reporting them (operator's decision)."""
    result = await session.execute(
        delete(QueueEntry).where(QueueEntry.id.in_(list(ids)), QueueEntry.state != "done")
    )
    return int(getattr(result, "rowcount", 0) or 0)

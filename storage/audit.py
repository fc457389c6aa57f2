"""The audit log: every access to a patient's data, who, what, when and how authenticated."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.models import AuditEvent, utcnow


@dataclass(frozen=True)
class Actor:
    """Who acts: an address or identifier, how they proved it, and from where."""

    name: str
    auth_method: str = ""
    remote_address: str = ""


class EventFields(TypedDict, total=False):
    """What an event may say besides who did what (all optional)."""

    object_type: str
    object_id: str
    patient_ins: str | None  # the patient whose data it touches (the access log's key)
    detail: dict[str, Any] | None
    at: datetime | None  # default: now


def event_values(actor: Actor, action: str, **fields: Unpack[EventFields]) -> dict[str, Any]:
    """The columns of one audit event (for `record`, or a bulk insert of many)."""
    detail = fields.get("detail")
    return {
        "at": fields.get("at") or utcnow(),
        "actor": actor.name,
        "auth_method": actor.auth_method,
        "remote_address": actor.remote_address,
        "action": action,
        "object_type": fields.get("object_type", ""),
        "object_id": fields.get("object_id", ""),
        "patient_ins": fields.get("patient_ins"),
        "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else "",
    }


def record(
    session: AsyncSession, actor: Actor, action: str, **fields: Unpack[EventFields]
) -> AuditEvent:
    """Add an audit event to the session; it is committed with the caller's transaction."""
    event = AuditEvent(**event_values(actor, action, **fields))
    session.add(event)
    return event


async def events_for_patient(
    session: AsyncSession, ins: str, *, limit: int = 500, offset: int = 0
) -> Sequence[AuditEvent]:
    """The events touching one patient's data, most recent first, ``offset`` skipped.

    Most recent is last recorded: ``id`` grows as events are written (``at`` is stamped when
    they are), and the ``patient_ins`` index holds each patient's events in ``id`` order, so a
    page is read from the index without sorting the patient's whole history.
    """
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.patient_ins == ins)
        .order_by(AuditEvent.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return (await session.scalars(stmt)).all()


async def count_for_patient(session: AsyncSession, ins: str) -> int:
    """How many events touch one patient's data."""
    stmt = select(func.count()).where(AuditEvent.patient_ins == ins)
    return int(await session.scalar(stmt) or 0)


async def recent_events(session: AsyncSession, *, limit: int = 100) -> Sequence[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    return (await session.scalars(stmt)).all()


class AuditWriter:
    """Audit events written in shared transactions (a group commit), each caller waiting
    until its event is committed: an access is shown only once its record is durable
    (mssante.md §7), and ten patients reading at once cost one fsync, not ten."""

    MAX_GROUP = 256

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, values: dict[str, Any]) -> None:
        """Commit one event (``event_values``); raises what the commit raised."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((values, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_groups())
        await asyncio.shield(future)  # a client gone away does not undo the record

    async def _write_groups(self) -> None:
        while self._pending:
            group = self._pending[: self.MAX_GROUP]
            del self._pending[: self.MAX_GROUP]
            try:
                async with self.db.transaction() as conn:
                    await conn.execute(_INSERT_EVENT, [values for values, _ in group])
            except Exception as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in group:
                if not future.done():
                    future.set_result(None)


_INSERT_EVENT = insert(AuditEvent)

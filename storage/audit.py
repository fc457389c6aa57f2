"""The audit log: every access to a patient's data, who, what, when and how authenticated."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

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

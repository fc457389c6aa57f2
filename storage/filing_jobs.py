"""The durable filing queue: one job per message delivered to a patient mailbox (issue #4).

A job is added in the delivery transaction (storage/delivery.py), so filing can never be
missed; the worker claims it with a lease (storage/leases.py) and marks it done in the same
transaction that files its documents, so a crash anywhere re-runs the job and the dossier's
unique (patient, uniqueId) constraint makes the re-run file nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.leases import claim_due
from storage.models import Account, Blob, FilingJob, Message, Patient

__all__ = [
    "FilingSummary",
    "JobMessage",
    "claim",
    "complete",
    "job_values",
    "message_of",
    "retry_later",
    "summary",
]


def job_values(
    *,
    message_row_id: int,
    patient_id: int,
    sender: str,
    actor: str,
    auth_method: str,
    now: datetime,
) -> dict[str, object]:
    """The columns of a new job, due at once (for `enqueue`, or a bulk insert of many)."""
    return {
        "message_row_id": message_row_id,
        "patient_id": patient_id,
        "sender": sender,
        "actor": actor,
        "auth_method": auth_method,
        "state": "queued",
        "attempts": 0,
        "next_attempt_at": now,
        "outcome": "",
        "created_at": now,
    }


async def claim(
    session: AsyncSession, now: datetime, lease: timedelta, limit: int, state: str = "queued"
) -> list[FilingJob]:
    """Due jobs to file (``queued``) or whose notice to the sender is owed (``notify``)."""
    return await claim_due(session, FilingJob, state, now, lease, limit)


async def complete(
    session: AsyncSession, job_id: int, *, state: str, outcome: str, now: datetime
) -> None:
    """The job ran: ``done`` (documents filed, or nothing to file), ``notify`` (filed, and a
    notice of what was refused is owed to the sender: due now) or ``failed`` (the message
    could not be read; the reason is in ``outcome``)."""
    await session.execute(
        update(FilingJob)
        .where(FilingJob.id == job_id)
        .values(
            state=state,
            outcome=outcome,
            finished_at=now,
            next_attempt_at=now,
            attempts=FilingJob.attempts + 1,
        )
    )


async def retry_later(session: AsyncSession, job_id: int, error: str, when: datetime) -> None:
    await session.execute(
        update(FilingJob)
        .where(FilingJob.id == job_id)
        .values(attempts=FilingJob.attempts + 1, last_error=error[:2000], next_attempt_at=when)
    )


@dataclass(frozen=True)
class JobMessage:
    """What the worker needs to know about the message of a job."""

    message_row_id: int
    folder_id: int
    uid: int
    message_id: str | None
    blob_sha256: str
    size: int
    patient_id: int
    ins: str
    patient_address: str


async def message_of(session: AsyncSession, job: FilingJob) -> JobMessage | None:
    """The job's message and patient; None when the message was deleted meanwhile."""
    row = (
        await session.execute(
            select(Message, Blob.size, Patient.ins, Account.address)
            .join(Blob, Blob.sha256 == Message.blob_sha256)
            .join(Patient, Patient.account_id == job.patient_id)
            .join(Account, Account.id == Patient.account_id)
            .where(Message.id == job.message_row_id)
        )
    ).first()
    if row is None:
        return None
    message, size, ins, address = row
    return JobMessage(
        message_row_id=message.id,
        folder_id=message.folder_id,
        uid=message.uid,
        message_id=message.message_id,
        blob_sha256=message.blob_sha256,
        size=size,
        patient_id=job.patient_id,
        ins=ins,
        patient_address=address,
    )


@dataclass(frozen=True)
class FilingSummary:
    queued: int
    done: int
    failed: int


async def summary(session: AsyncSession) -> FilingSummary:
    rows = dict(
        (await session.execute(select(FilingJob.state, func.count()).group_by(FilingJob.state)))
        .tuples()
        .all()
    )
    return FilingSummary(rows.get("queued", 0), rows.get("done", 0), rows.get("failed", 0))


async def jobs_for(session: AsyncSession, ids: Sequence[int]) -> list[FilingJob]:
    return list((await session.scalars(select(FilingJob).where(FilingJob.id.in_(ids)))).all())

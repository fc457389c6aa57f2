"""The filing worker: files the documents of messages delivered to patients (issue #4).

One loop per node. Each pass claims due jobs with a lease (storage/filing_jobs.py), and for
each job, off the event loop: reads the message, plans its filing (filing/plan.py: hostile
archives refused, INS checked, types detected) and writes the documents' blobs; then, in one
transaction for the batch, files the documents (storage/dossier.py) and finishes the jobs.
A job whose plan refused something moves to ``notify``: the notice pass sends the sender an
integration-error notice (filing/notice.py) through the routing pipeline, then finishes it.

Filing never delays the SMTP 250 (it runs after the delivery's commit), never loses a job (a
crash re-runs it once its lease ends) and never files twice (a document already filed for
the patient is skipped, and the notice is owed until it is sent).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from filing.notice import build_notice
from filing.plan import Document, FilingPlan, FilingSettings, plan_filing
from routing.decisions import Refusal, Sender, SenderKind
from routing.headers import message_facts
from routing.pipeline import Accepted, Pipeline
from storage import dossier, filing_jobs
from storage.blobs import BlobError, BlobRef, BlobStore
from storage.db import Database
from storage.delivery import record_blob
from storage.filing_jobs import JobMessage
from storage.leases import work_loop
from storage.models import FilingJob

__all__ = ["FilingWorker", "FilingWorkerSettings"]

log = logging.getLogger("filing")

LEASE = timedelta(minutes=5)  # longer than planning one message can take
BATCH = 50


@dataclass(frozen=True)
class FilingWorkerSettings:
    hostname: str  # Message-ID domain of notices
    postmaster: str  # notices are from this address
    filing: FilingSettings = field(default_factory=FilingSettings)
    poll_interval: float = 0.5
    retry_initial: float = 30.0
    retry_max: float = 1800.0
    max_attempts: int = 20  # then the job is failed (the message stays in the mailbox)


@dataclass(frozen=True)
class _RefusalRecord:
    code: str
    reason: str
    attachment: str


@dataclass
class _Prepared:
    job: FilingJob
    message: JobMessage | None
    plan: FilingPlan | None = None
    stored: list[tuple[Document, BlobRef, BlobRef | None]] = field(default_factory=list)
    subject: str | None = None
    error: str | None = None  # a temporary failure: try again later


def _now() -> datetime:
    return datetime.now(UTC)


class FilingWorker:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        pipeline: Pipeline,
        settings: FilingWorkerSettings,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.pipeline = pipeline
        self.settings = settings
        self.clock = clock
        self.wake = asyncio.Event()  # set by the message store after a patient delivery

    def nudge(self) -> None:
        self.wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        await work_loop(
            self.run_once,
            wake=self.wake,
            stopping=stopping,
            poll_interval=self.settings.poll_interval,
            log=log,
        )

    async def run_once(self) -> int:
        """One pass; returns how many jobs it handled (0: nothing was due)."""
        return await self._file_pass() + await self._notice_pass()

    # --- filing ------------------------------------------------------------------------------

    async def _file_pass(self) -> int:
        now = self.clock()
        async with self.db.session() as session, session.begin():
            jobs = await filing_jobs.claim(session, now, LEASE, BATCH)
            messages = [await filing_jobs.message_of(session, job) for job in jobs]
        if not jobs:
            return 0
        prepared = [
            await asyncio.to_thread(self._prepare, job, message)
            for job, message in zip(jobs, messages, strict=True)
        ]
        now = self.clock()
        async with self.db.write() as session:
            for item in prepared:
                await self._finish(session, item, now)
        return len(jobs)

    def _prepare(self, job: FilingJob, message: JobMessage | None) -> _Prepared:
        """Blocking: read the message, plan its filing, write the documents' blobs."""
        item = _Prepared(job, message)
        if message is None:
            return item
        try:
            data = self.blobs.get(message.blob_sha256)
        except (BlobError, OSError) as exc:
            item.error = f"message body unreadable: {exc}"
            return item
        item.subject = message_facts(data).subject
        item.plan = plan_filing(data, message.ins, self.settings.filing)
        try:
            for doc in item.plan.documents:
                content = self.blobs.put(doc.content)
                rendition = self.blobs.put(doc.rendition) if doc.rendition else None
                item.stored.append((doc, content, rendition))
        except OSError as exc:
            item.error = f"cannot store documents: {exc}"
        return item

    async def _finish(self, session: Any, item: _Prepared, now: datetime) -> None:
        job = item.job
        if item.message is None:
            skipped = {"skipped": "the message was deleted before its documents were filed"}
            await filing_jobs.complete(
                session, job.id, state="done", outcome=json.dumps(skipped), now=now
            )
            return
        if item.error is not None or item.plan is None:
            error = item.error or "no plan"
            if job.attempts + 1 >= self.settings.max_attempts:
                log.error("filing job %s failed for good: %s", job.id, error)
                await filing_jobs.complete(
                    session, job.id, state="failed", outcome=json.dumps({"error": error}), now=now
                )
                return
            delay = min(self.settings.retry_max, self.settings.retry_initial * 2**job.attempts)
            log.warning("filing job %s deferred: %s", job.id, error)
            await filing_jobs.retry_later(session, job.id, error, now + timedelta(seconds=delay))
            return
        message = item.message
        for _doc, content, rendition in item.stored:
            await record_blob(session, content)
            if rendition is not None:
                await record_blob(session, rendition)
        result = await dossier.file_documents(
            session,
            message.patient_id,
            item.stored,
            dossier.Provenance(
                message_id=message.message_id,
                folder_id=message.folder_id,
                uid=message.uid,
                sender=job.sender,
                actor=job.actor or job.sender,
                auth_method=job.auth_method,
                ins=message.ins,
            ),
            now,
        )
        refusals = [_RefusalRecord(r.code, r.reason, r.attachment) for r in item.plan.refusals]
        outcome: dict[str, Any] = {
            "filed": [d.unique_id for d in result.filed],
            "already_filed": result.already_filed,
            "superseded": result.superseded,
            "unmatched_replacements": result.unmatched_replacements,
            "refused": [asdict(r) for r in refusals],
            "notes": list(getattr(item.plan, "notes", ())),
            "subject": item.subject,
        }
        # A notice is owed when something was refused and there is someone to tell (never
        # to a null sender: RFC 5321 §4.5.5, no report about a report).
        state = "notify" if refusals and job.sender else "done"
        await filing_jobs.complete(
            session, job.id, state=state, outcome=json.dumps(outcome, ensure_ascii=False), now=now
        )
        log.info(
            "filed %d document(s) for message %s (%d already filed, %d refused)",
            len(result.filed),
            message.message_id,
            len(result.already_filed),
            len(refusals),
        )

    # --- notices -----------------------------------------------------------------------------

    async def _notice_pass(self) -> int:
        now = self.clock()
        async with self.db.session() as session, session.begin():
            jobs = await filing_jobs.claim(session, now, LEASE, BATCH, state="notify")
            messages = [await filing_jobs.message_of(session, job) for job in jobs]
        for job, message in zip(jobs, messages, strict=True):
            await self._send_notice(job, message)
        return len(jobs)

    async def _send_notice(self, job: FilingJob, message: JobMessage | None) -> None:
        outcome = json.loads(job.outcome or "{}")
        refusals = [_RefusalRecord(**r) for r in outcome.get("refused", [])]
        now = self.clock()
        notice = build_notice(
            postmaster=self.settings.postmaster,
            to=job.sender,
            patient_address=message.patient_address if message else "",
            original_message_id=message.message_id if message else None,
            original_subject=outcome.get("subject"),
            refusals=refusals,
            now=now,
            message_id_domain=self.settings.hostname,
        )
        system = Sender(
            "", SenderKind.APP, authenticated_as=self.settings.postmaster, method="filing"
        )
        route = await self.pipeline.route("submission", system, job.sender)
        if isinstance(route, Refusal):
            log.warning("filing notice to %s cannot be delivered: %s", job.sender, route.reply())
        else:
            result = await self.pipeline.deliver(system, [Accepted(route)], notice)
            if result.delivered == 0:
                log.warning("filing notice to %s refused: %s", job.sender, result.all_refused)
            else:
                log.info("filing notice (%s) sent to %s", _codes(refusals), job.sender)
        async with self.db.session() as session, session.begin():
            await filing_jobs.complete(
                session, job.id, state="done", outcome=job.outcome, now=self.clock()
            )


def _codes(refusals: Sequence[_RefusalRecord]) -> str:
    return ",".join(sorted({r.code for r in refusals}))

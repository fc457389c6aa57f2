"""The relay worker: hands queued messages to other operators and sends the reports owed.

One loop per node. Each pass:

1. claims due ``queued`` entries (with a lease), groups them by message and destination
   domain, signs the message with our DKIM keys and relays it (`smtp.relay_client`); each
   recipient ends ``done``, owed a report (failed, or relayed when SUCCESS was asked of a
   next hop without DSN), or deferred with exponential backoff until the queue lifetime ends
   (then it fails with 4.4.7, RFC 3463);
2. tells senders about messages still queued after the delay-warning time (RFC 3464
   ``delayed``);
3. turns ``report`` entries into delivery status notifications (RFC 3464), one per message
   and sender, and delivers them through the routing pipeline like any other message; the
   entries are finished in the same transaction that stores the report.

No message ends silently: every recipient is delivered, relayed or reported.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from routing.decisions import Refusal, Sender, SenderKind
from routing.pipeline import Accepted, Pipeline
from smtp.dkim import DkimKey, sign
from smtp.dsn import RecipientReport, build_dsn, notify_wants
from smtp.relay_client import OutboundRecipient, RelayResult, RelaySettings, relay
from storage import queue
from storage.blobs import BlobError, BlobStore
from storage.db import Database
from storage.leases import work_loop
from storage.models import QueueEntry

__all__ = ["RelayWorker", "WorkerSettings"]

log = logging.getLogger("relay")

LEASE = timedelta(minutes=15)  # longer than one delivery attempt can take
BATCH = 200


@dataclass(frozen=True)
class WorkerSettings:
    hostname: str  # our host name (Reporting-MTA, Received)
    local_domains: frozenset[str]  # mail from these domains is DKIM-signed here
    postmaster: str  # reports are from this address (a box of one of local_domains)
    lifetime: timedelta = timedelta(days=5)
    delay_warning: timedelta = timedelta(hours=4)
    retry_initial: float = 60.0
    retry_max: float = 3600.0
    concurrency: int = 8
    poll_interval: float = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


class RelayWorker:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        pipeline: Pipeline,
        relay_settings: RelaySettings,
        settings: WorkerSettings,
        *,
        dkim_keys: Callable[[str], Sequence[DkimKey]] = lambda _domain: (),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.pipeline = pipeline
        self.relay_settings = relay_settings
        self.settings = settings
        self.dkim_keys = dkim_keys
        self.clock = clock
        self.wake = asyncio.Event()  # set by the doors when they queue something

    async def run(self, stopping: asyncio.Event) -> None:
        await work_loop(
            self.run_once,
            wake=self.wake,
            stopping=stopping,
            poll_interval=self.settings.poll_interval,
            log=log,
        )

    async def run_once(self) -> int:
        """One pass; returns how many entries it handled (0: nothing was due)."""
        done = await self._relay_pass()
        done += await self._delay_pass()
        done += await self._report_pass()
        return done

    # --- relaying ----------------------------------------------------------------------------

    async def _relay_pass(self) -> int:
        now = self.clock()
        async with self.db.session() as session, session.begin():
            entries = await queue.claim(session, "queued", now, LEASE, BATCH)
        if not entries:
            return 0
        groups: dict[tuple[str, str, str, str | None, str | None], list[QueueEntry]]
        groups = defaultdict(list)
        for e in entries:
            domain = e.recipient.rsplit("@", 1)[1]
            groups[(e.blob_sha256, e.sender, domain, e.envid, e.ret)].append(e)
        limit = asyncio.Semaphore(self.settings.concurrency)

        async def one(
            key: tuple[str, str, str, str | None, str | None], group: list[QueueEntry]
        ) -> None:
            async with limit:
                await self._relay_group(key[2], group)

        await asyncio.gather(*(one(k, g) for k, g in groups.items()))
        return len(entries)

    @property
    def postmaster(self) -> str:
        """Who reports are from (and whose domain signs them)."""
        return self.settings.postmaster

    def _signed(self, data: bytes, sender: str) -> bytes:
        domain = (sender or self.postmaster).rsplit("@", 1)[1]
        keys = self.dkim_keys(domain) if domain in self.settings.local_domains else ()
        if not keys:
            return data
        return sign(data, keys) + data  # RFC 6376 §5: signatures are prepended

    async def _relay_group(self, domain: str, group: list[QueueEntry]) -> None:
        first = group[0]
        try:
            data = await asyncio.to_thread(self.blobs.get, first.blob_sha256)
        except BlobError as exc:
            result = RelayResult(None, [], False, f"message body lost: {exc}", True)
        else:
            dns = await self.pipeline.directory.listed_dns(domain)
            if dns is None:
                result = RelayResult(
                    None, [], False, f"domain {domain} is no longer on the liste blanche", True
                )
            else:
                signed = await asyncio.to_thread(self._signed, data, first.sender)
                result = await relay(
                    domain=domain,
                    sender=first.sender,
                    recipients=[OutboundRecipient(e.recipient, e.notify, e.orcpt) for e in group],
                    data=signed,
                    ret=first.ret,
                    envid=first.envid,
                    settings=self.relay_settings,
                    allowed_dns=dns,
                    smtputf8=first.smtputf8,
                )
        await self._record(group, result)

    async def _record(self, group: list[QueueEntry], result: RelayResult) -> None:
        now = self.clock()
        by_address = {r.address: r for r in result.recipients}
        remote = f"dns; {result.mx}" if result.mx else None
        async with self.db.session() as session, session.begin():
            for e in group:
                r = by_address.get(e.recipient)
                if r is not None and r.accepted:
                    log.info("relayed %s -> %s via %s", e.sender or "<>", e.recipient, result.mx)
                    if notify_wants(e.notify, "SUCCESS") and not result.dsn_supported:
                        # RFC 3461 §6.2.3.2: the next hop cannot report, so we say "relayed".
                        await queue.owe_report(session, e.id, action="relayed", status="2.0.0",
                                               error=None, remote_mta=remote, now=now)  # fmt: skip
                    else:
                        await queue.finish(session, [e.id], now)
                    continue
                if r is not None:
                    error = f"smtp; {r.code} {r.enhanced or ''} {r.text}".replace("  ", " ")
                    permanent = r.permanent
                    status = r.enhanced or ("5.0.0" if permanent else "4.0.0")
                else:
                    error = result.error or "no answer for this recipient"
                    permanent = result.permanent
                    status = "5.0.0" if permanent else "4.0.0"
                if permanent:
                    log.info("bounce %s -> %s: %s", e.sender or "<>", e.recipient, error)
                    await queue.owe_report(session, e.id, action="failed", status=status,
                                           error=error, remote_mta=remote, now=now)  # fmt: skip
                elif now >= e.expires_at:
                    log.info("expired %s -> %s: %s", e.sender or "<>", e.recipient, error)
                    await queue.owe_report(
                        session, e.id, action="failed", status="4.4.7",
                        error=f"delivery time expired; last error: {error}", remote_mta=remote,
                        now=now,
                    )  # fmt: skip
                else:
                    delay = min(
                        self.settings.retry_max, self.settings.retry_initial * 2**e.attempts
                    ) * random.uniform(0.9, 1.1)
                    log.info("deferred %s -> %s (%s); retry in %.0f s", e.sender or "<>",
                             e.recipient, error, delay)  # fmt: skip
                    await queue.defer(session, e.id, error, now + timedelta(seconds=delay))

    # --- reports -------------------------------------------------------------------------------

    async def _delay_pass(self) -> int:
        now = self.clock()
        async with self.db.session() as session:
            entries = await queue.due_delay_warnings(
                session, now, self.settings.delay_warning, BATCH
            )
        if not entries:
            return 0
        for group in _by_message(entries):
            wanted = [e for e in group if notify_wants(e.notify, "DELAY") and e.sender]
            reports = [
                RecipientReport(
                    final_recipient=e.recipient,
                    action="delayed",
                    status="4.4.7" if not e.last_error else "4.0.0",
                    diagnostic=e.last_error,
                    original_recipient=e.orcpt,
                    last_attempt=now if e.attempts else None,
                    will_retry_until=e.expires_at,
                )
                for e in wanted
            ]
            await self._send_report(group, reports, now)
        return len(entries)

    async def _report_pass(self) -> int:
        now = self.clock()
        async with self.db.session() as session, session.begin():
            entries = await queue.claim(session, "report", now, LEASE, BATCH)
        if not entries:
            return 0
        for group in _by_message(entries):
            reports = []
            for e in group:
                event: Literal["SUCCESS", "FAILURE"] = (
                    "SUCCESS" if e.action in ("delivered", "relayed") else "FAILURE"
                )
                if not e.sender or not notify_wants(e.notify, event):
                    continue  # RFC 3461 §4.1 NOTIFY; never report on a report (null sender)
                reports.append(
                    RecipientReport(
                        final_recipient=e.recipient,
                        action=e.action or "failed",  # type: ignore[arg-type]
                        status=e.status or "5.0.0",
                        diagnostic=e.last_error,
                        original_recipient=e.orcpt,
                        remote_mta=e.remote_mta,
                        last_attempt=now,
                    )
                )
            await self._send_report(group, reports, now)
        return len(entries)

    async def _send_report(
        self, group: list[QueueEntry], reports: list[RecipientReport], now: datetime
    ) -> None:
        first = group[0]
        ids = [e.id for e in group]
        if not reports:
            await self._finish(ids, now)
            return
        try:
            original = await asyncio.to_thread(self.blobs.get, first.blob_sha256)
        except BlobError:
            original = b"(the original message is no longer available)\r\n"
        postmaster = self.postmaster
        dsn = build_dsn(
            reporting_mta=self.settings.hostname,
            postmaster=postmaster,
            sender=first.sender,
            original=original,
            reports=reports,
            envid=first.envid,
            ret="FULL" if first.ret == "FULL" else "HDRS",
            arrival=first.created_at,
            now=now,
            message_id_domain=self.settings.hostname,
        )
        system = Sender("", SenderKind.APP, authenticated_as=postmaster, method="dsn")
        route = await self.pipeline.route("submission", system, first.sender)
        if isinstance(route, Refusal):
            log.warning("report to %s cannot be delivered: %s", first.sender, route.reply())
            await self._finish(ids, now)
            return
        outcome = await self.pipeline.deliver(system, [Accepted(route)], dsn, completes=ids)
        if outcome.delivered == 0:
            log.warning("report to %s refused: %s", first.sender, outcome.all_refused)
            await self._finish(ids, now)
            return
        log.info("report (%s) sent to %s", ",".join(sorted({r.action for r in reports})),
                 first.sender)  # fmt: skip

    async def _finish(self, ids: list[int], now: datetime) -> None:
        async with self.db.session() as session, session.begin():
            await queue.settle(session, ids, now)


def _by_message(entries: list[QueueEntry]) -> list[list[QueueEntry]]:
    groups: dict[tuple[str, str, str | None], list[QueueEntry]] = defaultdict(list)
    for e in entries:
        groups[(e.blob_sha256, e.sender, e.envid)].append(e)
    return list(groups.values())

"""The separate notification route (mssante.md §4; issue #6 items 2 and 7).

Patients' personal addresses are ordinary Internet mail, outside the MSSanté trust space, so
what goes there never passes through the routing pipeline or the relay: login codes and
"you have a new message" notices leave through a route of their own, an SMTP relay
configured for it, or, in development, files in an outbox directory (one complete message
per file, written atomically, for the operator to read). Neither carries health data.

:class:`NotificationWorker` finds the patients with INBOX messages above their notification
mark (storage.webmail_store, tracked in the database), sends one notice each and moves the
mark: a crash between the send and the commit sends the notice again, never loses it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol

from storage.leases import work_loop
from storage.webmail_store import WebmailStore

__all__ = [
    "NEW_MESSAGE_TEXT",
    "NotificationWorker",
    "Notifier",
    "OutboxNotifier",
    "SmtpNotifier",
    "code_notice",
    "new_message_notice",
]

log = logging.getLogger("webmail")

NEW_MESSAGE_TEXT = "Vous avez reçu un nouveau message dans votre messagerie de santé"


@dataclass(frozen=True)
class Notice:
    to: str
    subject: str
    text: str


class Notifier(Protocol):
    async def send(self, notice: Notice) -> None: ...


def _message(notice: Notice, sender: str, hostname: str) -> bytes:
    m = EmailMessage(policy=SMTP)
    m["From"] = sender
    m["To"] = notice.to
    m["Subject"] = notice.subject
    m["Date"] = format_datetime(datetime.now(UTC))
    m["Message-ID"] = make_msgid(domain=hostname)
    m["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5
    m.set_content(notice.text, charset="utf-8")
    return m.as_bytes()


class OutboxNotifier:
    """Development route: ``DIR/<time>-<random>.eml``, fsynced then renamed into place."""

    def __init__(self, directory: Path, sender: str, hostname: str) -> None:
        self.directory = directory
        self.sender = sender
        self.hostname = hostname

    def _write(self, data: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}.eml"
        tmp = self.directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # codes are secrets
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        target = self.directory / name
        os.replace(tmp, target)
        return target

    async def send(self, notice: Notice) -> None:
        data = _message(notice, self.sender, self.hostname)
        await asyncio.to_thread(self._write, data)


class SmtpNotifier:
    """An SMTP relay for notifications (STARTTLS when the relay offers it)."""

    def __init__(self, host: str, port: int, sender: str, hostname: str) -> None:
        self.host, self.port = host, port
        self.sender = sender
        self.hostname = hostname

    def _send(self, data: bytes, to: str) -> None:
        with smtplib.SMTP(self.host, self.port, local_hostname=self.hostname, timeout=30) as s:
            s.ehlo()
            if s.has_extn("starttls"):
                s.starttls(context=ssl.create_default_context())
                s.ehlo()
            s.sendmail(self.sender, [to], data)

    async def send(self, notice: Notice) -> None:
        data = _message(notice, self.sender, self.hostname)
        await asyncio.to_thread(self._send, data, notice.to)


def code_notice(to: str, code: str, minutes: int) -> Notice:
    return Notice(
        to,
        "Votre code de connexion à votre messagerie de santé",
        f"Bonjour,\n\nVotre code de connexion à votre messagerie de santé est : {code}\n\n"
        f"Il est valable {minutes} minutes et ne sert qu'une fois.\n"
        "Si vous n'essayez pas de vous connecter, ignorez ce message et changez votre mot de "
        "passe : quelqu'un le connaît peut-être.\n\nNe répondez pas à ce message.\n",
    )


def new_message_notice(to: str, url: str) -> Notice:
    """mssante.md §4: the notice carries no health data (no sender, no subject)."""
    return Notice(
        to,
        "Nouveau message dans votre messagerie de santé",
        f"Bonjour,\n\n{NEW_MESSAGE_TEXT}.\n\nPour le lire, connectez-vous : {url}\n\n"
        "Ne répondez pas à ce message.\n",
    )


class NotificationWorker:
    def __init__(
        self,
        store: WebmailStore,
        notifier: Notifier,
        url: str,
        *,
        poll_interval: float = 2.0,
        retry_initial: float = 60.0,
        retry_max: float = 3600.0,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.url = url
        self.poll_interval = poll_interval
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.wake = asyncio.Event()

    async def run_once(self) -> int:
        now = datetime.now(UTC)
        owed = await self.store.owed_notifications(now, now + timedelta(minutes=5))
        for item in owed:
            try:
                await self.notifier.send(new_message_notice(item.personal_email, self.url))
            except (OSError, smtplib.SMTPException) as exc:
                await self.store.notification_failed(
                    item.patient_id,
                    str(exc),
                    now,
                    initial=self.retry_initial,
                    maximum=self.retry_max,
                )
                log.warning("notification to patient %s failed: %s", item.patient_id, exc)
                continue
            await self.store.notified(item.patient_id, item.up_to, datetime.now(UTC))
        return len(owed)

    async def run(self, stopping: asyncio.Event) -> None:
        await work_loop(
            self.run_once,
            wake=self.wake,
            stopping=stopping,
            poll_interval=self.poll_interval,
            log=log,
        )

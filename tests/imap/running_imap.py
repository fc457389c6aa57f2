"""Real IMAP clients (imaplib, imapclient, raw sockets) against a running `mailserver serve`."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from typing import Any

from imapclient import IMAPClient
from sqlalchemy import select

from mailserver.config import load_config
from storage.db import Database
from storage.models import AuditEvent
from tests.smtp.running import Running

CAMILLE = "camille.martin@demo.mssante.fr"
PAUL = "paul.lefevre@demo.mssante.fr"
PATIENT = "146026322000196@patient.mssante.fr"


def message(
    sender: str, to: str, subject: str, body: str = "Bonjour,\n", attachment: bytes | None = None
) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<{time.monotonic_ns()}@test>"
    m["Date"] = "Mon, 23 Nov 2026 10:00:00 +0100"
    m.set_content(body)
    if attachment is not None:
        m.add_attachment(attachment, maintype="application", subtype="pdf", filename="cr.pdf")
    return m.as_bytes(policy=default.clone(linesep="\r\n"))


@dataclass
class ImapServer:
    running: Running

    def account(self, address: str) -> dict[str, Any]:
        return next(a for a in self.running.install.demo["accounts"] if a["address"] == address)

    def context(self, account: dict[str, Any] | None = None) -> ssl.SSLContext:
        return self.running.context(account)

    @property
    def port(self) -> int:
        return self.running.port("imap")

    @property
    def tls_port(self) -> int:
        return self.running.port("imaps")

    # -- clients -----------------------------------------------------------------------------

    def plain(self) -> imaplib.IMAP4:
        """Port 143 before STARTTLS."""
        return imaplib.IMAP4("127.0.0.1", self.port, timeout=30)

    def starttls(self, account: dict[str, Any] | None = None) -> imaplib.IMAP4:
        c = self.plain()
        c.starttls(ssl_context=self.context(account))
        return c

    def imaps(self, account: dict[str, Any] | None = None) -> imaplib.IMAP4_SSL:
        return imaplib.IMAP4_SSL(
            "127.0.0.1", self.tls_port, ssl_context=self.context(account), timeout=30
        )

    def login(self, address: str = CAMILLE, *, app: bool = False) -> imaplib.IMAP4:
        c = self.starttls()
        acct = self.account(address)
        c.login(address, acct["app_password"] if app else acct["password"])
        return c

    def client(self, address: str = CAMILLE) -> IMAPClient:
        """imapclient over implicit TLS, logged in with the account's password."""
        c = IMAPClient("127.0.0.1", port=self.tls_port, ssl=True, ssl_context=self.context(),
                       timeout=30)  # fmt: skip
        acct = self.account(address)
        c.login(address, acct.get("app_password") or acct["password"])
        return c

    def raw(self, *, tls: bool = True) -> RawClient:
        sock = socket.create_connection(("127.0.0.1", self.tls_port if tls else self.port), 30)
        if tls:
            sock = self.context().wrap_socket(sock)
        return RawClient(sock)

    # -- mail ---------------------------------------------------------------------------------

    def deliver(self, to: str, data: bytes, sender: str = CAMILLE) -> None:
        """Submission on 587 with the sender's password (the demo allows PLAIN)."""
        s = smtplib.SMTP("127.0.0.1", self.running.port("submission"), timeout=30)
        try:
            s.starttls(context=self.context())
            s.login(sender, self.account(sender)["password"])
            s.sendmail(sender, [to], data)
        finally:
            s.quit()

    def audit(self, ins: str) -> list[AuditEvent]:
        return asyncio.run(self._audit(ins))

    async def _audit(self, ins: str) -> list[AuditEvent]:
        db = Database(load_config(self.running.install.config).database_url)
        try:
            async with db.session() as s:
                stmt = select(AuditEvent).where(AuditEvent.patient_ins == ins)
                return list((await s.scalars(stmt.order_by(AuditEvent.id))).all())
        finally:
            await db.close()


class RawClient:
    """Bytes in, lines out: for hostile input and exact responses."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed: " + self.buf.decode(errors="replace"))
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def until(self, tag: bytes) -> list[bytes]:
        """Lines up to and including the tagged response to ``tag``."""
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def closed(self, timeout: float = 10) -> bool:
        """Whether the server closes the connection (after whatever it still sends)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except TimeoutError:
            return False
        except (ConnectionError, ssl.SSLError):
            return True

    def login(self, address: str, password: str) -> None:
        self.send(b'L1 LOGIN "' + address.encode() + b'" "' + password.encode() + b'"\r\n')
        assert self.until(b"L1")[-1].startswith(b"L1 OK")

    def close(self) -> None:
        self.sock.close()

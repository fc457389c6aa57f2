"""A running `mailserver serve` for black-box SMTP tests, and real clients to talk to it."""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import tomli_w
from sqlalchemy import select

from mailserver.config import load_config
from storage.blobs import BlobStore
from storage.db import Database
from storage.models import Account, Folder, Message, QueueEntry
from tests.cli.conftest import Install

Row = TypeVar("Row")


def edit_config(install: Install, **sections: dict[str, Any]) -> None:
    doc = tomllib.loads(install.config.read_text())
    for name, values in sections.items():
        doc.setdefault(name, {}).update(values)
    install.config.write_text(tomli_w.dumps(doc))


@dataclass
class Running:
    install: Install
    proc: subprocess.Popen[bytes]
    log: Path

    def port(self, listener: str) -> int:
        return int(self.install.demo["listeners"][listener]["port"])

    def path(self, relative: str) -> str:
        return str(self.install.dir / relative)

    def context(
        self, account: dict[str, Any] | None = None, chain: str | None = None
    ) -> ssl.SSLContext:
        """A client TLS context trusting the dev PKI, optionally presenting a certificate."""
        ctx = ssl.create_default_context(cafile=self.path(self.install.demo["trust"]["ca_bundle"]))
        ctx.check_hostname = False
        if account is not None:
            ctx.load_cert_chain(self.path(account["chain"]), self.path(account["key"]))
        elif chain is not None:
            ctx.load_cert_chain(chain[0], chain[1])
        return ctx

    def submission(self, account: dict[str, Any] | None = None) -> smtplib.SMTP:
        s = smtplib.SMTP("127.0.0.1", self.port("submission"), timeout=30)
        s.ehlo("client.test")
        s.starttls(context=self.context(account))
        s.ehlo("client.test")
        return s

    def inbound(self, cert: tuple[str, str] | None) -> smtplib.SMTP:
        s = smtplib.SMTP("127.0.0.1", self.port("smtp_inbound"), timeout=30)
        s.ehlo("mail.peer.test")
        ctx = self.context()
        if cert is not None:
            ctx.load_cert_chain(cert[0], cert[1])
        s.starttls(context=ctx)
        s.ehlo("mail.peer.test")
        return s

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # --- reading what was stored (the IMAP door will read it the same way) --------------

    def inbox(self, address: str) -> list[bytes]:
        return asyncio.run(self._inbox(address))

    async def _inbox(self, address: str) -> list[bytes]:
        cfg = load_config(self.install.config)
        db = Database(cfg.database_url)
        try:
            async with db.session() as s:
                rows = (
                    await s.scalars(
                        select(Message)
                        .join(Folder, Folder.id == Message.folder_id)
                        .join(Account, Account.id == Folder.account_id)
                        .where(Account.address == address.lower(), Folder.name == "INBOX")
                        .order_by(Message.uid)
                    )
                ).all()
        finally:
            await db.close()
        blobs = BlobStore(cfg.blob_dir)
        return [blobs.get(m.blob_sha256) for m in rows]

    def queue(self) -> list[QueueEntry]:
        return self.rows(QueueEntry)

    def rows(self, model: type[Row]) -> list[Row]:
        """Every row of one table, by id (what the server stored)."""
        return asyncio.run(self._rows(model))

    async def _rows(self, model: type[Row]) -> list[Row]:
        cfg = load_config(self.install.config)
        db = Database(cfg.database_url)
        try:
            async with db.session() as s:
                stmt = select(model).order_by(model.id)  # type: ignore[attr-defined]
                return list((await s.scalars(stmt)).all())
        finally:
            await db.close()

    def peak_rss_kb(self) -> int:
        """The server process's peak resident memory so far (VmHWM), in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("no VmHWM in /proc status")

    def wait_inbox(self, address: str, count: int, timeout: float = 20) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.inbox(address)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.2)


def start_server(install: Install, log: Path) -> Running:
    fh = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailserver", "serve", "-c", str(install.config)],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    running = Running(install, proc, log)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        text = running.logs()
        if " ready " in text:
            return running
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    running.stop()
    pytest.fail("server never logged ready:\n" + running.logs())


@pytest.fixture
def serving() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for r in started:
        r.stop()

"""The webmail of a demo installation, in process, for HTTP-level tests (httpx over ASGI).

Everything is the real thing built from the installation's configuration: the database, the
mail side's pipeline, the webmail side. Professionals' messages are submitted through the
same pipeline as an SMTP submission would be.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

import httpx

from directory.identity import Identity
from mailserver.config import Config
from mailserver.mail import MailSide
from mailserver.webmailside import WebmailSide
from routing.decisions import Refusal
from routing.pipeline import Accepted
from storage.db import Database
from tests.cli.conftest import Install

CAMILLE = "camille.martin@demo.mssante.fr"
LAB = "laboratoire@demo.mssante.fr"
PATIENT = "146026322000196@patient.mssante.fr"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, html[:2000]
    return found.group(1)


def mail(
    sender: str,
    to: str,
    subject: str = "Compte rendu",
    body: str = "Bonjour,\n",
    attachments: list[tuple[str, str, bytes]] = (),
    html: str | None = None,
    **headers: str,
) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<{time.monotonic_ns()}@test>"
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    if html is not None:
        m.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments:
        main, sub = ctype.split("/")
        m.add_attachment(data, maintype=main, subtype=sub, filename=filename)
    return m.as_bytes(policy=default.clone(linesep="\r\n"))


@dataclass
class Site:
    install: Install
    cfg: Config
    db: Database
    mail: MailSide
    side: WebmailSide
    client: httpx.AsyncClient

    def account(self, address: str) -> dict[str, Any]:
        return next(
            a for a in self.install.demo["accounts"] if a["address"].lower() == address.lower()
        )

    @property
    def outbox(self) -> Path:
        return self.cfg.data_dir / "outbox"

    def outbox_messages(self, to: str) -> list[EmailMessage]:
        found = []
        for path in sorted(self.outbox.glob("*.eml")):
            m = BytesParser(policy=default).parsebytes(path.read_bytes())
            assert isinstance(m, EmailMessage)
            if m["To"] == to:
                found.append(m)
        return found

    def last_code(self, to: str) -> str:
        text = str(self.outbox_messages(to)[-1].get_content())
        found = re.search(r"est : (\d{6})", text)
        assert found, text
        return found.group(1)

    async def deliver(self, sender: str, to: str, data: bytes) -> None:
        """A professional's (or the laboratory's) submission through the pipeline."""
        box = await self.mail.lookups.mailbox(sender)
        assert box is not None
        who = Identity(box.account_id, sender, box.kind, None, "certificate")
        pipeline = self.mail.pipeline
        source = await pipeline.authenticated_sender(who, sender)
        assert not isinstance(source, Refusal), source
        route = await pipeline.route("submission", source, to)
        assert not isinstance(route, Refusal), route
        outcome = await pipeline.deliver(source, [Accepted(route)], data)
        assert outcome.delivered == 1

    async def login(self, address: str = PATIENT, client: httpx.AsyncClient | None = None) -> str:
        """Password then the e-mailed code; returns the session cookie's value."""
        c = client or self.client
        page = await c.get("/connexion")
        r = await c.post(
            "/connexion",
            data={
                "csrf": csrf_of(page.text),
                "identifiant": address,
                "mot_de_passe": self.account(address)["password"],
            },
        )
        assert r.status_code == 303, r.text
        page = await c.get("/connexion/code")
        code = self.last_code(self.account(address)["personal_email"])
        r = await c.post("/connexion/code", data={"csrf": csrf_of(page.text), "code": code})
        assert r.status_code == 303 and r.headers["location"] == "/messages", r.text
        return c.cookies["__Host-session"]

    async def csrf(self, path: str = "/messages") -> str:
        return csrf_of((await self.client.get(path)).text)

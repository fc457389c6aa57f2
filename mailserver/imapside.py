"""Composition of the IMAP side: the mail store API over the database and the blobs, the
change bus (with LISTEN/NOTIFY on PostgreSQL), and the IMAP doors, built from the
configuration. The doors share the SMTP side's TLS context and Authenticator, so identities
are checked by the same rules and failures throttled together."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

from sqlalchemy.engine import make_url

from imap.context import ImapServices, ImapSettings
from imap.server import ImapDoor
from mailserver.config import Config
from mailserver.mail import MailSide
from storage.changes import ChangeBus, PostgresRelay
from storage.db import Database
from storage.mailstore import MailStore

__all__ = ["IMAP_DOORS", "ImapSide", "build_imap_side", "imap_settings"]

log = logging.getLogger("mailserver")

IMAP_DOORS = ("imap", "imaps")


def imap_settings(cfg: Config, name: str) -> ImapSettings:
    return ImapSettings(
        name=name,
        implicit_tls=name == "imaps",
        hostname=cfg.server.hostname,
        max_message_size=cfg.limits.max_message_size,
        connections_per_address=cfg.limits.connections_per_address,
        login_timeout=cfg.limits.imap_login_timeout,
        idle_timeout=cfg.limits.imap_idle_timeout,
    )


@dataclass
class ImapSide:
    bus: ChangeBus
    store: MailStore
    services: ImapServices | None
    relay: PostgresRelay | None

    def doors(self, cfg: Config, sockets: dict[str, socket.socket]) -> list[ImapDoor]:
        if self.services is None:
            return []
        return [
            ImapDoor(imap_settings(cfg, name), self.services, sockets[name])
            for name in IMAP_DOORS
            if name in sockets
        ]

    async def start(self) -> None:
        if self.relay is not None:
            try:
                await self.relay.start()
            except Exception as exc:  # IDLE still works within this node; say why not across
                log.warning("change notification across nodes disabled: %s", exc)
                self.relay = None

    async def stop(self) -> None:
        if self.relay is not None:
            await self.relay.stop()
        self.store.close()  # its SQLite worker threads (storage.sync_runner)


def build_imap_side(cfg: Config, db: Database, mail: MailSide, bus: ChangeBus) -> ImapSide:
    store = MailStore(db, mail.store.blobs, on_change=bus.publish)
    services = None
    if mail.services.authenticator is not None:
        services = ImapServices(
            store=store, bus=bus, tls=mail.services.tls, authenticator=mail.services.authenticator
        )
    relay = None
    if db.dialect == "postgresql":
        dsn = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
        relay = PostgresRelay(bus, dsn)
    return ImapSide(bus, store, services, relay)

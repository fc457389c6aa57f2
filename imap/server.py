"""The IMAP listeners: 143 with STARTTLS (RFC 3501 §6.2.1) and 993 with implicit TLS (RFC 8314
§3.2), one :class:`imap.session.Session` per connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from imap.auth import capabilities
from imap.context import ImapServices, ImapSettings
from imap.session import Session

__all__ = ["ImapDoor"]

log = logging.getLogger("imap")


class ImapDoor:
    """One listening socket served by :class:`Session`."""

    def __init__(self, settings: ImapSettings, services: ImapServices, sock: socket.socket) -> None:
        self.name = settings.name
        self.settings = settings
        self.services = services
        self.sock = sock
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def describe(self) -> str:
        host, port = self.sock.getsockname()[:2]
        scheme = "imaps" if self.settings.implicit_tls else "imap"
        return f"{self.name}={scheme}://{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve,
            sock=self.sock,
            ssl=self.services.tls if self.settings.implicit_tls else None,
            ssl_handshake_timeout=self.settings.handshake_timeout
            if self.settings.implicit_tls
            else None,
            limit=64 * 1024,
        )

    async def _serve(self, stream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        remote = str(peer[0]) if peer else "?"
        counts = self.services.connections
        task = asyncio.current_task()
        if counts.get(remote, 0) >= self.settings.connections_per_address:
            log.warning("%s: too many connections from %s", self.name, remote)
            with contextlib.suppress(Exception):
                writer.write(b"* BYE [UNAVAILABLE] too many connections from your address\r\n")
                await writer.drain()
            writer.close()
            return
        counts[remote] = counts.get(remote, 0) + 1
        session = Session(self.settings, self.services, stream, writer, remote)
        self.services.live.add(session)
        if task is not None:
            self._tasks.add(task)
        try:
            greeting = (
                f"OK [CAPABILITY {capabilities(session)}] {self.settings.hostname} "
                "IMAP4rev1 MSSanté ready"
            )
            await session.run(greeting)
        except Exception:  # never let one connection's failure escape to the loop
            log.exception("%s: session with %s failed", self.name, remote)
        finally:
            self.services.live.discard(session)
            if task is not None:
                self._tasks.discard(task)
            left = counts.get(remote, 1) - 1
            if left > 0:
                counts[remote] = left
            else:
                counts.pop(remote, None)
            with contextlib.suppress(Exception):
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def stop(self, grace: float) -> None:
        """Stop accepting; say BYE to every session (RFC 3501 §7.1.5) and close them."""
        if self._server is None:
            return
        self._server.close()
        for session in list(self.services.live):
            if session.settings is self.settings:
                with contextlib.suppress(Exception):
                    session.writer.write(b"* BYE [UNAVAILABLE] server shutting down\r\n")
                    session.writer.close()
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(grace, 1.0))
            for task in pending:
                task.cancel()

"""What the processes of one ``mailserver serve`` tell each other (``server.processes`` > 1).

Each process of the server binds a Unix datagram socket, ``<pid>.sock``, in a directory the
supervisor made for this run (``$TMPDIR/mailserver-XXXXXXXX``, mode 0700: nobody else can
send a note) and sends every note to the sockets of the others. Notes are small JSON
arrays, ``[kind, ...]``, each handled by the function registered for its kind:

- ``folders``: folders changed (a delivery, an IMAP session): the IDLE and selected sessions
  of the other processes learn it at once, as their own process's would
  (storage.changes.ChangeBus; with PostgreSQL, other *nodes* learn it by LISTEN/NOTIFY);
- ``wake``: work was queued for a worker that runs in the first process only (relay queue,
  filing jobs);
- ``throttle``: an authentication failure or success, so that the limits per address and per
  account (directory.throttle) count every process's failures, not one process's.

Delivery is best effort, as on one process's change bus: a note lost (a full socket queue) is
made up for by the sessions' sync at their next command and by the workers' polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["Siblings"]

log = logging.getLogger("mailserver.siblings")

MAX_NOTE = 60_000  # bytes; a note is a few hundred at most
_RESCAN = 1.0  # seconds between listings of the directory (a sibling restarted)

Handler = Callable[..., None]


class Siblings:
    """This process's end: :meth:`send` to the others, handlers for what they send."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / f"{os.getpid()}.sock"
        self._sock: socket.socket | None = None
        self._handlers: dict[str, Handler] = {}
        self._peers: list[str] = []
        self._listed_at = 0.0

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def stop(self) -> None:
        if self._sock is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def send(self, kind: str, *args: object) -> None:
        """Tell every other process; never blocks, never raises."""
        if self._sock is None:
            return
        data = json.dumps([kind, *args]).encode()
        if len(data) > MAX_NOTE:
            log.warning("note %s of %d bytes not sent", kind, len(data))
            return
        for peer in self._current_peers():
            try:
                self._sock.sendto(data, peer)
            except (FileNotFoundError, ConnectionRefusedError):
                self._listed_at = 0.0  # that process is gone: list again next time
            except BlockingIOError:
                log.warning("note %s to %s dropped: its queue is full", kind, peer)
            except OSError as exc:
                log.warning("note %s to %s failed: %s", kind, peer, exc)

    def _current_peers(self) -> list[str]:
        now = time.monotonic()
        if now - self._listed_at > _RESCAN:
            own = self.path.name
            try:
                names = os.listdir(self.directory)
            except OSError:
                names = []
            self._peers = [
                str(self.directory / n) for n in sorted(names) if n.endswith(".sock") and n != own
            ]
            self._listed_at = now
        return self._peers

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(MAX_NOTE + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("reading notes: %s", exc)
                return
            self._handle(data)

    def _handle(self, data: bytes) -> None:
        try:
            note = json.loads(data)
            kind, args = note[0], note[1:]
            handler = self._handlers[kind]
        except (ValueError, TypeError, IndexError, KeyError):
            log.warning("unreadable note from a sibling process: %r", data[:80])
            return
        try:
            handler(*args)
        except Exception:
            log.exception("note %s failed", kind)

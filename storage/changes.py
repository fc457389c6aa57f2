"""Change notification: which folders changed, for the sessions watching them (IMAP IDLE).

In one process, :class:`ChangeBus` maps a folder id to the subscribers watching it; a
delivery (``MessageStore(on_delivered=bus.publish)``) or a change made by another IMAP session
(``MailStore(on_change=bus.publish)``) calls :meth:`ChangeBus.publish` after its commit, and
each subscriber's :meth:`Subscriber.folder_changed` runs at once (it only sets a flag and wakes
the session: no I/O on the publisher's path).

Beyond the process, each of the bus's ``relays`` forwards what was published: across nodes
sharing PostgreSQL, :class:`PostgresRelay` sends it with ``NOTIFY`` on one channel and
``LISTEN``\\ s for the other nodes' (architecture.md, storage model), so an IDLE on one node
wakes up for a delivery made by another; between the processes of one server
(``server.processes``), mailserver.siblings passes it on; both hand what they receive to
:meth:`ChangeBus.deliver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any, Protocol

__all__ = ["CHANNEL", "ChangeBus", "PostgresRelay", "Subscriber"]

log = logging.getLogger("storage.changes")

CHANNEL = "mailserver_folders"


class Subscriber(Protocol):
    def folder_changed(self, folder_id: int) -> None: ...


class ChangeBus:
    """folder id -> subscribers, in memory (one per process)."""

    def __init__(self) -> None:
        self._watchers: dict[int, set[Subscriber]] = {}
        self.relays: list[Callable[[list[int]], None]] = []  # to other processes or nodes

    def subscribe(self, folder_id: int, subscriber: Subscriber) -> None:
        self._watchers.setdefault(folder_id, set()).add(subscriber)

    def unsubscribe(self, folder_id: int, subscriber: Subscriber) -> None:
        watchers = self._watchers.get(folder_id)
        if watchers is not None:
            watchers.discard(subscriber)
            if not watchers:
                del self._watchers[folder_id]

    def watchers(self, folder_id: int) -> int:
        return len(self._watchers.get(folder_id, ()))

    def publish(self, folder_ids: Iterable[int]) -> None:
        """Folders changed (committed): wake this process's watchers, tell the others."""
        ids = sorted(set(folder_ids))
        self.deliver(ids)
        if ids:
            for relay in self.relays:
                relay(ids)

    def deliver(self, folder_ids: Iterable[int]) -> None:
        for folder_id in folder_ids:
            for subscriber in tuple(self._watchers.get(folder_id, ())):
                subscriber.folder_changed(folder_id)


class PostgresRelay:
    """LISTEN/NOTIFY between the nodes sharing one PostgreSQL database.

    A payload is ``<node> <folder id>,<folder id>...``; a node ignores its own notifications
    (its watchers were woken directly by :meth:`ChangeBus.publish`).
    """

    def __init__(self, bus: ChangeBus, dsn: str) -> None:
        self.bus = bus
        self.dsn = dsn
        self.node = f"{os.getpid()}-{id(self):x}"
        self._conn: Any = None
        self._pending: list[str] = []
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        import asyncpg

        self._conn = await asyncpg.connect(self.dsn)
        await self._conn.add_listener(CHANNEL, self._on_notify)
        self.bus.relays.append(self.forward)

    async def stop(self) -> None:
        if self.forward in self.bus.relays:
            self.bus.relays.remove(self.forward)
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    def forward(self, folder_ids: list[int]) -> None:
        self._pending.append(f"{self.node} {','.join(map(str, folder_ids))}")
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending and self._conn is not None:
            payload = self._pending.pop(0)
            try:
                await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
            except Exception as exc:  # the database went away: sessions still sync on NOOP
                log.warning("NOTIFY failed: %s", exc)
                self._pending.clear()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        node, _, ids = payload.partition(" ")
        if node == self.node:
            return
        try:
            folders = [int(part) for part in ids.split(",") if part]
        except ValueError:
            return
        self.bus.deliver(folders)

"""Failed-authentication throttling, per client address and per account.

Every door that checks credentials (SMTP submission, IMAP, webmail) counts failures here:
after the configured number of failures in the window, further attempts from that address, or
on that account, are refused without checking the proof until the window has passed, and each
failure is answered after a growing delay so guessing is slow even below the limit.

The counts live in memory. When the server runs several processes (``server.processes``),
``shared`` tells the others of each failure and success, and they :meth:`Throttle.apply` it,
so the limits count the failures of every process (mailserver.siblings).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Throttle"]


@dataclass
class _Window:
    failures: deque[float] = field(default_factory=deque)

    def count(self, now: float, window: float) -> int:
        while self.failures and now - self.failures[0] >= window:
            self.failures.popleft()
        return len(self.failures)


class Throttle:
    def __init__(
        self,
        *,
        per_address: int,
        per_account: int,
        window: float = 900.0,
        max_delay: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_address = per_address
        self.per_account = per_account
        self.window = window
        self.max_delay = max_delay
        self.clock = clock
        self._addresses: dict[str, _Window] = {}
        self._accounts: dict[str, _Window] = {}
        self.shared: Callable[..., None] | None = None  # the server's other processes

    def _count(self, table: dict[str, _Window], key: str) -> int:
        entry = table.get(key)
        if entry is None:
            return 0
        n = entry.count(self.clock(), self.window)
        if n == 0:
            del table[key]
        return n

    def blocked(self, remote: str, account: str | None = None) -> str | None:
        """Why attempts are refused right now, or None."""
        minutes = round(self.window / 60)
        if self._count(self._addresses, remote) >= self.per_address:
            return f"too many failed authentications from {remote}; try again in {minutes} min"
        if account and self._count(self._accounts, account.lower()) >= self.per_account:
            return f"too many failed authentications for this account; try again in {minutes} min"
        return None

    def failure(self, remote: str, account: str | None = None) -> float:
        """Record a failure; returns how long to wait before answering it (seconds)."""
        self._failed(remote, account)
        if self.shared is not None:
            self.shared("failure", remote, account)
        n = self._count(self._addresses, remote)
        return min(self.max_delay, 0.25 * (2 ** max(0, n - 1))) if n > 1 else 0.0

    def success(self, account: str) -> None:
        self._succeeded(account)
        if self.shared is not None:
            self.shared("success", account)

    def apply(self, event: str, *args: str | None) -> None:
        """A failure or success another process of the server recorded (``shared``)."""
        if event == "failure" and len(args) == 2 and isinstance(args[0], str):
            self._failed(args[0], args[1])
        elif event == "success" and len(args) == 1 and isinstance(args[0], str):
            self._succeeded(args[0])

    def _failed(self, remote: str, account: str | None) -> None:
        now = self.clock()
        self._addresses.setdefault(remote, _Window()).failures.append(now)
        if account:
            self._accounts.setdefault(account.lower(), _Window()).failures.append(now)

    def _succeeded(self, account: str) -> None:
        self._accounts.pop(account.lower(), None)

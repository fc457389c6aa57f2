"""``mailserver serve`` with ``server.processes`` > 1: one supervisor and its server processes.

One Python process runs one event loop on one CPU core; mail servers use every core with
several processes (Postfix's smtpd, Dovecot's imap). The supervisor checks the configuration
and binds every listener (a port in use is reported once, before anything starts), then
forks the processes: each runs :func:`mailserver.runtime.serve` on the inherited listening
sockets, and the kernel hands each new connection to one of them. Everything they share
lives in the database and the blob store; what must reach the others at once (IDLE
wake-ups, worker wake-ups, authentication failures) goes through mailserver.siblings, in
a directory of the supervisor's making that only the server's user can enter.

The supervisor logs ``ready`` once every process is serving, forwards SIGTERM and SIGINT to
them (each finishes its in-flight work within ``limits.shutdown_grace``), and returns when
they have all stopped. A process that dies is started again; one that dies during start-up
(the database is down) stops the server with its exit status. If the supervisor itself is
killed, its processes see their lifeline pipe close and stop cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from mailserver import runtime
from mailserver.config import Config, ConfigError
from mailserver.errors import CommandError

__all__ = ["supervise"]

log = logging.getLogger("mailserver")

_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
MAX_RESTARTS = 5  # within RESTART_WINDOW seconds, else the server stops
RESTART_WINDOW = 60.0


class _Supervisor:
    def __init__(self, cfg: Config, sockets: dict[str, socket.socket], directory: Path) -> None:
        self.cfg = cfg
        self.sockets = sockets
        self.directory = directory
        self.count = cfg.server.processes
        self.children: dict[int, int] = {}  # pid -> process index
        self.ready_r, self.ready_w = os.pipe()
        self.life_r, self.life_w = os.pipe()
        self.stopping = False
        self.restarts: list[float] = []

    def spawn(self, index: int) -> None:
        # Signals wait until the child has dropped the supervisor's handler: a SIGTERM
        # between fork() and that would run the handler in the child and be lost there.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:  # the server process: never returns
            os._exit(self._child(index))
        self.children[pid] = index
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)

    def _child(self, index: int) -> int:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)  # runtime.serve installs its own handlers
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # a pending one stops it
        os.close(self.ready_r)
        os.close(self.life_w)
        ready_w = self.ready_w

        def ready(doors: str) -> None:
            os.write(ready_w, f"{index} {doors}\n".encode())

        role = runtime.Role(index, self.count, self.directory, ready, self.life_r)
        try:
            import asyncio

            return asyncio.run(runtime.serve(self.cfg, role, dict(self.sockets)))
        except (ConfigError, CommandError) as exc:
            print(f"mailserver: {exc}", file=sys.stderr)
            return exc.status if isinstance(exc, CommandError) else 2
        except KeyboardInterrupt:
            return 130
        except BaseException:
            log.exception("server process %d failed", index)
            return 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()

    def forward(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def wait_ready(self) -> int:
        """Wait until every process said it serves; a non-zero status if one died first."""
        waiting = set(range(self.count))
        doors = ""
        buffered = b""
        while waiting:
            readable, _, _ = select.select([self.ready_r], [], [], 0.2)
            if readable:
                buffered += os.read(self.ready_r, 65536)
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    index, _, described = line.decode().partition(" ")
                    waiting.discard(int(index))
                    if index == "0":  # the first process also serves the admin door
                        doors = described
            status = self.reap(block=False)
            if status is not None:
                return status
            if self.stopping:  # SIGTERM/SIGINT during start-up: no "ready"
                return 0
        log.info(
            "ready %s (%d processes, database %s)",
            doors,
            self.count,
            self.cfg.database_url.split(":", 1)[0].split("+", 1)[0],
        )
        return 0

    def reap(self, *, block: bool) -> int | None:
        """Collect exited processes. A non-zero status when one died before it was ready
        or died too often (then the others are asked to stop); None otherwise."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            index = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                if code != 0:
                    log.warning("server process %d stopped with status %d", index, code)
                continue
            return self._died(index, pid, code, block)
        return None

    def _died(self, index: int, pid: int, code: int, started: bool) -> int | None:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW] + [now]
        if not started or len(self.restarts) > MAX_RESTARTS:
            why = "during start-up" if not started else f"{len(self.restarts)} times in a minute"
            log.error("server process %d (pid %d) exited %s: stopping", index, pid, why)
            self.forward(signal.SIGTERM, None)
            return code or 1
        log.error("server process %d (pid %d) exited with status %d: restarting", index, pid, code)
        self.spawn(index)
        return None

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.forward)
        for index in range(self.count):
            self.spawn(index)
        status = self.wait_ready()
        while self.children:
            died = self.reap(block=True)
            if died is not None:
                status = died
        return status

    def close(self) -> None:
        for fd in (self.ready_r, self.ready_w, self.life_r, self.life_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        for s in self.sockets.values():
            s.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _notes_directory() -> Path:
    """A new directory only this user can enter, for the processes' note sockets: short,
    since a Unix socket's path holds at most 107 octets (unix(7))."""
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="mailserver-", dir=base))  # mode 0700


def supervise(cfg: Config) -> int:
    """Run ``server.processes`` server processes until SIGTERM/SIGINT."""
    runtime.check_tls(cfg)
    sockets = runtime.bind_listeners(cfg)
    directory = _notes_directory()
    supervisor = _Supervisor(cfg, sockets, directory)
    try:
        status = supervisor.run()
    finally:
        supervisor.close()
    log.info("stopped")
    return status

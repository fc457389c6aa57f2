"""Running the server: binding listeners, starting doors and workers, stopping cleanly.

`serve()` binds every listener first (so a port in use is a configuration error reported
before anything starts), then starts the doors, logs "ready" with the addresses, and waits for
SIGTERM/SIGINT: then it stops accepting, lets in-flight work finish within
`limits.shutdown_grace` seconds, closes the database and returns 0. With `server.processes`
> 1 it runs in each process forked by mailserver.supervisor, on the listeners the supervisor
bound, in the `Role` it is given.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import errno
import logging
import signal
import socket
import ssl
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import uvicorn
from starlette.applications import Starlette

from certs.errors import CertsError
from certs.tls import server_context
from certs.truststore import TrustStore
from directory.throttle import Throttle
from mailserver.admin import build_admin_app
from mailserver.config import Config, ConfigError, ListenerSection
from mailserver.errors import CommandError
from mailserver.imapside import build_imap_side
from mailserver.mail import MailSide, build_mail_side, door_settings
from mailserver.metrics import Metrics
from mailserver.siblings import Siblings
from mailserver.webmailside import build_webmail_side
from smtp.server import SmtpDoor
from storage.changes import ChangeBus
from storage.db import Database, DatabaseError, open_database

log = logging.getLogger("mailserver")

# Doors this version serves; the others keep their configured ports for later versions.
IMPLEMENTED_DOORS = (
    "admin",
    "smtp_inbound",
    "submission",
    "submissions",
    "imap",
    "imaps",
    "webmail",
)
SMTP_DOORS = ("smtp_inbound", "submission", "submissions")


class Door(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self, grace: float) -> None: ...

    def describe(self) -> str: ...


def bind_listener(cfg: Config, name: str, listener: ListenerSection) -> socket.socket:
    """Bind and listen now; a port in use is a configuration error naming the key."""
    family = socket.AF_INET6 if ":" in listener.address else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto
    # says TCP, and accepted sockets inherit it; with proto 0 a reply written in two parts
    # (HTTP headers, then body) waited for the client's delayed ACK, 40 ms on Linux.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listener.address, listener.port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ConfigError(
            f"{cfg.source}: key 'listeners.{name}.port': cannot listen on "
            f"{listener.address}:{listener.port}: {why}"
        ) from None
    sock.setblocking(False)
    return sock


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class HttpDoor:
    """An ASGI application served by uvicorn on a socket we bound ourselves."""

    name: str
    app: Starlette
    sock: socket.socket
    scheme: str = "http"
    tls: ssl.SSLContext | None = None  # HTTPS with this context (the webmail)
    _server: _QuietServer | None = None
    _task: asyncio.Task[None] | None = None

    def describe(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"{self.name}={self.scheme}://{host}:{port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=None,
        )
        if self.tls is not None:
            config.load()  # then uvicorn serves our context instead of building its own
            config.ssl = self.tls
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self.sock]))
        while not self._server.started:
            if self._task.done():
                await self._task  # surface a start-up failure
                raise CommandError(f"{self.name}: HTTP listener stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self, grace: float) -> None:
        if self._server is None or self._task is None:
            return
        self._server.config.timeout_graceful_shutdown = int(grace) if grace else None
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=grace + 5)
        except TimeoutError:
            self._server.force_exit = True
            await self._task


@dataclass
class Runtime:
    cfg: Config
    db: Database
    trust: TrustStore
    metrics: Metrics = field(default_factory=Metrics)
    doors: list[Door] = field(default_factory=list)
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def crl_refresher(self, interval: float) -> None:
        """Re-read CRLs periodically; a bad refresh keeps the last good CRL (IGC-Santé)."""
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=interval)
            if self.stopping.is_set():
                return
            warnings = await asyncio.to_thread(self.trust.reload_crls)
            for w in warnings:
                log.warning("CRL refresh: %s", w)


def check_tls(cfg: Config) -> TrustStore:
    """Load the server certificate, key and trust store now, so bad files stop start-up."""
    roots = [cfg.path(p) for p in cfg.tls.roots]
    intermediates = [cfg.path(p) for p in cfg.tls.intermediates]
    try:
        server_context(cfg.path(cfg.tls.cert), cfg.path(cfg.tls.key), trust_files=roots)
        return TrustStore.from_paths(roots, intermediates, [cfg.path(p) for p in cfg.tls.crls])
    except CertsError as exc:
        raise ConfigError(f"{cfg.source}: {exc}") from None


# asyncio's TLS transport gives each connection a read buffer of SSLProtocol.max_size
# (256 KiB in Python 3.11): 10,000 IDLE sessions took 3 GB. A TLS record carries at most
# 16 KiB of plaintext (RFC 8446 §5.1), so a 16 KiB buffer loses nothing (640 MB measured).
TLS_READ_BUFFER = 16 * 1024


def bind_listeners(cfg: Config) -> dict[str, socket.socket]:
    """Every enabled door's socket, bound and listening; none left open on an error."""
    sockets: dict[str, socket.socket] = {}
    try:
        for name in IMPLEMENTED_DOORS:
            listener: ListenerSection = getattr(cfg.listeners, name)
            if listener.enabled:
                sockets[name] = bind_listener(cfg, name, listener)
    except ConfigError:
        for s in sockets.values():
            s.close()
        raise
    return sockets


@dataclass(frozen=True)
class Role:
    """Which process of the server this one is (``server.processes``; mailserver.supervisor).

    The first process (index 0) runs the queue workers and the admin door; every process
    serves the SMTP, IMAP and webmail doors on the shared listening sockets."""

    index: int = 0
    count: int = 1
    siblings: Path | None = None  # the directory of the processes' note sockets
    ready: Callable[[str], None] | None = None  # tells the supervisor, with the doors
    lifeline: int | None = None  # a pipe's read end: end of file when the supervisor is gone

    @property
    def primary(self) -> bool:
        return self.index == 0


def _join_siblings(
    role: Role, bus: ChangeBus, mail: MailSide, throttles: dict[str, Throttle]
) -> Siblings | None:
    """Wire this process to the others (mailserver.siblings): folder changes, wake-ups for
    the workers of the first process, and authentication failures."""
    if role.count == 1 or role.siblings is None:
        return None
    siblings = Siblings(role.siblings)
    bus.relays.append(lambda ids: siblings.send("folders", ids))
    siblings.on("folders", lambda ids: bus.deliver(int(i) for i in ids))
    for name, throttle in throttles.items():
        throttle.shared = lambda *args, name=name: siblings.send("throttle", name, *args)

    def throttled(name: str, event: str, *args: str | None) -> None:
        if name in throttles:
            throttles[name].apply(event, *args)

    siblings.on("throttle", throttled)
    if role.primary:
        filing = mail.store.on_patient_delivery or mail.filing.nudge
        wakes = {"relay": mail.worker.wake.set, "filing": filing}
        siblings.on("wake", lambda name: wakes[name]() if name in wakes else None)
    else:  # the workers run in the first process: wake them there
        mail.store.on_queued = lambda: siblings.send("wake", "relay")
        mail.store.on_patient_delivery = lambda: siblings.send("wake", "filing")
    siblings.start()
    return siblings


def _also_notify(mail: MailSide, notifications: asyncio.Event) -> None:
    """A delivery to a patient also wakes the notification worker (issue #6: the patient
    learns at once that a message arrived, not at its next poll)."""
    filing = mail.store.on_patient_delivery

    def delivered() -> None:
        if filing is not None:
            filing()
        notifications.set()

    mail.store.on_patient_delivery = delivered


def _watch_lifeline(role: Role, stopping: asyncio.Event) -> None:
    """Stop when the supervisor is gone (its end of the pipe closed), even after SIGKILL."""
    if role.lifeline is None:
        return
    loop = asyncio.get_running_loop()
    fd = role.lifeline

    def readable() -> None:
        loop.remove_reader(fd)
        log.warning("the supervisor process is gone: stopping")
        stopping.set()

    loop.add_reader(fd, readable)


async def serve(
    cfg: Config, role: Role | None = None, sockets: dict[str, socket.socket] | None = None
) -> int:
    """Serve until SIGTERM/SIGINT: on the listeners given (bound by the supervisor), or on
    listeners bound now."""
    role = role or Role()
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER
    trust = check_tls(cfg)
    if sockets is None:
        sockets = bind_listeners(cfg)
    if not role.primary and "admin" in sockets:
        sockets.pop("admin").close()  # the first process answers the admin door
    try:
        db = await open_database(cfg.database_url)
    except DatabaseError as exc:
        for s in sockets.values():
            s.close()
        raise CommandError(str(exc), status=2) from None

    if role.count > 1:
        db.share_writer_turns()
    rt = Runtime(cfg, db, trust)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, rt.stopping.set)
    _watch_lifeline(role, rt.stopping)
    siblings: Siblings | None = None
    try:
        bus = ChangeBus()  # deliveries and IMAP changes wake IDLE sessions
        mail = build_mail_side(cfg, db, trust, on_delivered=bus.publish)
        imap = build_imap_side(cfg, db, mail, bus)
        await imap.start()
        throttles: dict[str, Throttle] = {}
        if mail.services.authenticator is not None:
            throttles["mail"] = mail.services.authenticator.throttle
        if "admin" in sockets:
            rt.doors.append(HttpDoor("admin", build_admin_app(db, rt.metrics), sockets["admin"]))
        for name in SMTP_DOORS:
            if name in sockets:
                rt.doors.append(SmtpDoor(door_settings(cfg, name), mail.services, sockets[name]))
        rt.doors.extend(imap.doors(cfg, sockets))
        if "webmail" in sockets:  # issue #6: patients' webmail over HTTPS
            webmail = build_webmail_side(cfg, db, mail, bus.publish)
            https = HttpDoor("webmail", webmail.app, sockets["webmail"], "https", tls=webmail.tls)
            rt.doors.append(https)
            throttles["web"] = webmail.webmail.auth.throttle
            if role.primary:
                rt.workers.append(asyncio.create_task(webmail.worker.run(rt.stopping)))
                _also_notify(mail, webmail.worker.wake)
        siblings = _join_siblings(role, bus, mail, throttles)
        for door in rt.doors:
            await door.start()
        rt.workers.append(asyncio.create_task(rt.crl_refresher(cfg.tls.crl_refresh)))
        if role.primary:
            rt.workers.append(asyncio.create_task(mail.worker.run(rt.stopping)))
            rt.workers.append(asyncio.create_task(mail.filing.run(rt.stopping)))
        doors = " ".join(d.describe() for d in rt.doors)
        if role.ready is not None:
            role.ready(doors)
            log.debug("process %d ready", role.index)
        else:
            log.info("ready %s (database %s)", doors, db.dialect)
        await rt.stopping.wait()
        log.info("stopping: no new connections, finishing in-flight work")
        for door in rt.doors:
            await door.stop(cfg.limits.shutdown_grace)
        for w in rt.workers:
            w.cancel()
        await asyncio.gather(*rt.workers, return_exceptions=True)
        await imap.stop()
    finally:
        if siblings is not None:
            siblings.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await db.close()
    log.info("stopped")
    return 0

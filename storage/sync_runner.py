"""One database operation, several statements, one trip: the IMAP hot paths as plain functions.

On SQLite every statement run through the async engine costs several hand-offs between the
event loop and aiosqlite's thread (cursor, execute, fetch, close, and the rollback when the
connection goes back to the pool): with twenty sessions the event loop spent its time waking
up for them, and a writer held SQLite's write turn across all those loop iterations.
:class:`SyncRunner` runs a whole operation — a function of a SQLAlchemy :class:`Connection`
running prebuilt Core statements — in one go:

* SQLite (a file): in a worker thread, on a synchronous engine opened on the same file with
  the same pragmas (WAL, ``synchronous=FULL``, foreign keys, busy timeout); a write still
  takes this process's write turn (:meth:`storage.db.Database.write_turn`) first, so it
  never collides with the async engine's writers;
* PostgreSQL (or an in-memory SQLite database, which a second engine could not see): through
  :meth:`AsyncConnection.run_sync` on the async engine — the same function, its statements
  awaited through SQLAlchemy's greenlet bridge.

An operation the caller knows to be small (``quick=True``: a few rows by key, a flag change
on a handful of messages) runs at once on the caller's thread, the event loop, on a
connection of its own: under load a hand-off to the worker thread costs a turn of the event
loop each way (tens of milliseconds with twenty busy sessions), far more than the statements
(a tenth of a millisecond) and the commit's fsync. That connection never waits for SQLite's
lock (a zero busy timeout): should another process hold it, the operation is undone and run
in the worker thread instead, which may wait. Big reads (a folder's every UID, a FETCH of
``1:*``) stay in the worker thread, so one client cannot stall every other session.

A quick write may also say it need not wait for the disk (``durable=False``): a flag change,
an expunge, a \\Recent claim. Its commit then skips the fsync (``synchronous=NORMAL`` in WAL
mode): a crash of the process loses nothing, a crash of the machine may undo the last such
changes, never a message, and the next synced commit makes them durable with it, in order.
Dovecot's default ``mail_fsync = optimized`` makes the same choice. Messages (APPEND,
delivery) and anything carrying an audit record are always synced.

A write function returns ``(result, commit)``: with ``commit`` false nothing it did is kept
(a STORE that changed nothing leaves HIGHESTMODSEQ as it was). An exception rolls back. A
write whose caller is cancelled while the worker thread runs it keeps the write turn until
the thread is done (it may still commit), so no other writer of this process collides with it.

:meth:`SyncRunner.shared` gives the runner of a :class:`Database`, one per database for
every store that asks (the SMTP delivery path and its directory lookups share one).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

from storage.db import Database, sqlite_pragmas

__all__ = ["SyncRunner"]

T = TypeVar("T")

_THREADS = 2  # a writer (waiting on its fsync) and a reader at the same time
_SHARED = "_shared_sync_runner"  # SyncRunner.shared: the attribute on the Database


def _sqlite_file_engines(db: Database) -> tuple[Engine, Engine, Engine] | None:
    """The worker threads' engine and the event loop's two, synced and not (one connection
    each, no busy wait): two connections rather than one switching ``synchronous`` back and
    forth, which took a third of the statements of a busy IMAP server."""
    url = make_url(db.url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    url = url.set(drivername="sqlite+pysqlite")
    threads = create_engine(
        url,
        connect_args={"timeout": 30, "check_same_thread": False},
        pool_size=_THREADS,
        max_overflow=0,
    )
    event.listen(threads, "connect", sqlite_pragmas)
    synced, unsynced = (
        create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
        for _ in range(2)
    )
    event.listen(synced, "connect", _never_wait)
    event.listen(unsynced, "connect", _never_wait_nor_sync)
    return threads, synced, unsynced


def _never_wait(dbapi_conn: Any, record: Any) -> None:
    sqlite_pragmas(dbapi_conn, record)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=0")  # locked: SQLITE_BUSY at once (see _locked)
    cur.close()


def _never_wait_nor_sync(dbapi_conn: Any, record: Any) -> None:
    _never_wait(dbapi_conn, record)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL: commits without an fsync (durable=False)
    cur.close()


def _locked(exc: OperationalError) -> bool:
    """SQLite's lock is held by another connection (SQLITE_BUSY / SQLITE_LOCKED)."""
    return "locked" in str(exc.orig) or "busy" in str(exc.orig)


class SyncRunner:
    """Runs ``fn(connection)`` for the store: see the module's docstring."""

    @classmethod
    def shared(cls, db: Database) -> SyncRunner:
        """The runner of ``db``, made on first use and kept with it (a reference from the
        database itself, not a global table: both go away together)."""
        runner = vars(db).get(_SHARED)
        if not isinstance(runner, SyncRunner):
            runner = cls(db)
            setattr(db, _SHARED, runner)
        return runner

    def __init__(self, db: Database) -> None:
        self.db = db
        engines = _sqlite_file_engines(db)
        self._engine: Engine | None = engines[0] if engines is not None else None
        # The event loop's connections: (synced, unsynced).
        self._kept = (_Kept(engines[1]), _Kept(engines[2])) if engines is not None else None
        self._threads: ThreadPoolExecutor | None = None
        if engines is not None:
            self._threads = ThreadPoolExecutor(_THREADS, thread_name_prefix="mailstore-sqlite")
            self._finalizer = weakref.finalize(self, _shutdown, engines, self._threads)

    @property
    def threaded(self) -> bool:
        """True when operations run in worker threads (SQLite on a file)."""
        return self._engine is not None

    async def read(self, fn: Callable[[Connection], T], *, quick: bool = False) -> T:
        """``fn`` on a connection outside any write transaction (``quick``: the module's
        docstring)."""
        if self._engine is None:
            async with self.db.read() as conn:
                return await conn.run_sync(fn)
        if quick and self._kept is not None:
            try:
                return self._kept[0].run(lambda conn: (fn(conn), False))
            except OperationalError as exc:
                if not _locked(exc):
                    raise
        assert self._threads is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, _read, self._engine, fn)

    async def write(
        self,
        fn: Callable[[Connection], tuple[T, bool]],
        *,
        quick: bool = False,
        durable: bool = True,
    ) -> T:
        """``fn`` in a transaction, in this process's write turn; committed when it says so
        (``quick`` and ``durable``: the module's docstring)."""
        async with self.db.write_turn():
            if self._engine is None:
                async with self.db.read() as conn:
                    result, keep = await conn.run_sync(fn)
                    await (conn.commit() if keep else conn.rollback())
                    return result
            if quick and self._kept is not None:
                try:
                    return self._kept[0 if durable else 1].run(fn)
                except OperationalError as exc:
                    if not _locked(exc):
                        raise
            assert self._threads is not None
            loop = asyncio.get_running_loop()
            running = loop.run_in_executor(self._threads, _write, self._engine, fn)
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                # The thread cannot be stopped: the turn is held until it has finished.
                await asyncio.wait([running])
                raise

    def close(self) -> None:
        if self._engine is not None:
            self._finalizer()


class _Kept:
    """The event loop's connection (quick operations), kept open from one operation to the
    next: checking it out of a pool and resetting it cost more than the statements."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None

    def run(self, fn: Callable[[Connection], tuple[T, bool]]) -> T:
        """``fn``'s result; what it did is committed when it says so, else rolled back."""
        conn = self._conn if self._conn is not None else self._connect()
        try:
            result, keep = fn(conn)
            if keep:
                conn.commit()
            else:
                conn.rollback()
            return result
        except BaseException:
            try:
                conn.rollback()
            except Exception:  # the connection itself is broken: the next one is new
                self._conn = None
                conn.invalidate()
            raise

    def _connect(self) -> Connection:
        self._conn = self.engine.connect()
        return self._conn


def _read(engine: Engine, fn: Callable[[Connection], T]) -> T:
    with engine.connect() as conn:
        return fn(conn)


def _write(engine: Engine, fn: Callable[[Connection], tuple[T, bool]]) -> T:
    """Rolled back when ``fn`` raises or says not to keep what it did."""
    with engine.connect() as conn:
        result, keep = fn(conn)
        if keep:
            conn.commit()
        return result


def _shutdown(engines: tuple[Engine, ...], threads: ThreadPoolExecutor) -> None:
    threads.shutdown(wait=False)
    for engine in engines:
        engine.dispose()

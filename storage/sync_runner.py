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
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from storage.db import Database, sqlite_pragmas

__all__ = ["SyncRunner"]

T = TypeVar("T")

_THREADS = 2  # a writer (waiting on its fsync) and a reader at the same time
_SHARED = "_shared_sync_runner"  # SyncRunner.shared: the attribute on the Database


def _sqlite_file_engine(db: Database) -> Engine | None:
    url = make_url(db.url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    engine = create_engine(
        url.set(drivername="sqlite+pysqlite"),
        connect_args={"timeout": 30, "check_same_thread": False},
        pool_size=_THREADS,
        max_overflow=0,
    )
    event.listen(engine, "connect", sqlite_pragmas)
    return engine


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
        self._engine = _sqlite_file_engine(db)
        self._threads: ThreadPoolExecutor | None = None
        if self._engine is not None:
            self._threads = ThreadPoolExecutor(_THREADS, thread_name_prefix="mailstore-sqlite")
            self._finalizer = weakref.finalize(self, _shutdown, self._engine, self._threads)

    @property
    def threaded(self) -> bool:
        """True when operations run in worker threads (SQLite on a file)."""
        return self._engine is not None

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` on a connection outside any write transaction."""
        if self._engine is None:
            async with self.db.read() as conn:
                return await conn.run_sync(fn)
        assert self._threads is not None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._read, fn)

    async def write(self, fn: Callable[[Connection], tuple[T, bool]]) -> T:
        """``fn`` in a transaction, in this process's write turn; committed when it says so."""
        async with self.db.write_turn():
            if self._engine is None:
                async with self.db.read() as conn:
                    result, keep = await conn.run_sync(fn)
                    await (conn.commit() if keep else conn.rollback())
                    return result
            assert self._threads is not None
            loop = asyncio.get_running_loop()
            running = loop.run_in_executor(self._threads, self._write, fn)
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                # The thread cannot be stopped: the turn is held until it has finished.
                await asyncio.wait([running])
                raise

    def _read(self, fn: Callable[[Connection], T]) -> T:
        assert self._engine is not None
        with self._engine.connect() as conn:
            return fn(conn)

    def _write(self, fn: Callable[[Connection], tuple[T, bool]]) -> T:
        assert self._engine is not None
        with self._engine.connect() as conn:
            result, keep = fn(conn)
            if keep:
                conn.commit()
            else:
                conn.rollback()
            return result

    def close(self) -> None:
        if self._engine is not None:
            self._finalizer()


def _shutdown(engine: Engine, threads: ThreadPoolExecutor) -> None:
    threads.shutdown(wait=False)
    engine.dispose()

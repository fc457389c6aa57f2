"""Database engine, sessions and schema migrations (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Where a statement can run: an ORM session, or a Core connection on the hot paths (the
# delivery write skips the ORM's unit of work and result processing).
Executor = AsyncSession | AsyncConnection


def dialect_of(executor: Executor) -> str:
    """``sqlite`` or ``postgresql``."""
    if isinstance(executor, AsyncConnection):
        return executor.dialect.name
    return executor.get_bind().dialect.name


class DatabaseError(Exception):
    """The database cannot be used (bad URL, unreachable server, failed migration)."""


def normalize_url(url: str) -> str:
    """Accept `sqlite:///file` and `postgresql://...` and pick the async drivers we ship."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"invalid database URL {url!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise DatabaseError(f"unsupported database {backend!r} (use sqlite or postgresql)")


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer. synchronous=FULL: a committed transaction survives
    # a power loss, which "nothing accepted is lost" requires.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def create_engine(url: str) -> AsyncEngine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


class Database:
    """An engine plus a session factory; `open()` applies pending migrations."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.engine = create_engine(self.url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time: this process's writers queue here rather than
        # sleep in SQLite's busy handler, which turned concurrent deliveries into waits of
        # seconds. PostgreSQL locks rows, not the database: no lock there.
        self._writer = asyncio.Lock() if self.dialect == "sqlite" else None
        self._writer_file: int | None = None  # share_writer_turns

    def share_writer_turns(self) -> None:
        """Several server processes write this SQLite file (``server.processes``): their
        writers also take turns through an exclusive lock on ``<file>-writer.lock``, handed
        over by the kernel as soon as it is released, instead of SQLite's busy handler,
        which sleeps up to 100 ms between tries. Each process opens the file itself (a lock
        belongs to one open file, and a forked process would share its parent's)."""
        database = make_url(self.url).database
        if self.dialect != "sqlite" or not database or self._writer_file is not None:
            return
        self._writer_file = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to `revision` (a database made by an older version upgrades)."""
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(_upgrade, revision)
        except OSError as exc:
            raise DatabaseError(f"cannot reach database: {exc}") from None

    async def revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as s:
            yield s

    @asynccontextmanager
    async def write_turn(self) -> AsyncIterator[None]:
        """This process's turn to write, for code that ends its transaction itself: on
        SQLite (one writer at a time) writers queue here instead of colliding and sleeping
        in SQLite's busy handler; on PostgreSQL rows are locked, not the database: no wait."""
        async with self._writer or contextlib.nullcontext():
            if self._writer_file is None:
                yield
                return
            await _lock_file(self._writer_file)
            try:
                yield
            finally:
                fcntl.flock(self._writer_file, fcntl.LOCK_UN)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on exit (rolled back on error), in this
        process's turn to write (`write_turn`)."""
        async with self.write_turn(), self.sessions() as s, s.begin():
            yield s

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection for a short read on a hot path (no ORM session)."""
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """Like `write`, with a Core connection instead of an ORM session."""
        async with self.write_turn(), self.engine.begin() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()
        if self._writer_file is not None:
            os.close(self._writer_file)
            self._writer_file = None


async def _lock_file(fd: int) -> None:
    """An exclusive lock on ``fd``: at once when it is free, else waited for in a thread.
    Cancelled while waiting, the lock is released as soon as the thread gets it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    waiting = asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
    try:
        await asyncio.shield(waiting)
    except asyncio.CancelledError:
        waiting.add_done_callback(
            lambda f: None if f.cancelled() or f.exception() else fcntl.flock(fd, fcntl.LOCK_UN)
        )
        raise


async def open_database(url: str) -> Database:
    """Connect and migrate; raises DatabaseError with a one-line reason."""
    db = Database(url)
    try:
        await db.migrate()
    except DatabaseError:
        await db.close()
        raise
    except Exception as exc:  # driver errors vary by backend; report them on one line
        await db.close()
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatabaseError(f"cannot open database {make_url(db.url)!r}: {msg}") from None
    return db

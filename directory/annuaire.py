"""The annuaire cache: who is an active professional, which MSSanté boxes are published.

An import streams the extraction file into a staging table in batches (constant memory,
no index to maintain while loading), then in one transaction drops the old table, renames
the staging table into place and builds its indexes: readers see the old cache or the new
one, never a mix, and a refused or interrupted import leaves the previous cache in force.
A staging table left by a crash is dropped at the next import.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    MetaData,
    Table,
    except_,
    exists,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from directory.annuaire_file import (
    MAX_ERRORS_KEPT,
    AnnuaireFileError,
    AnnuaireKind,
    AnnuaireReader,
    LineError,
    open_annuaire,
    split_annuaire,
)
from directory.annuaire_load import LoadTask, sqlite_insert
from directory.errors import DirectoryError
from storage.db import Database
from storage.models import AnnuaireImport, AnnuaireMailbox, AnnuairePerson, utcnow

BATCH = 20_000
PARALLEL_FROM_BYTES = 32 * 1024 * 1024
Progress = Callable[[int, int, int], None]  # (bytes read, total bytes, lines read)

# Which table each file kind fills, and the key whose disappearance the import reports.
_TABLES: dict[AnnuaireKind, tuple[Table, str]] = {
    AnnuaireKind.PERSONNE_ACTIVITE: (AnnuairePerson.__table__, "national_id"),  # type: ignore[dict-item]
    AnnuaireKind.MSSANTE: (AnnuaireMailbox.__table__, "address"),  # type: ignore[dict-item]
}


@dataclass
class AnnuaireReport:
    file: Path
    kind: str
    records: int
    lines: int
    errors: list[LineError]
    error_count: int
    previous_records: int
    disappeared: list[str] = field(default_factory=list)
    disappeared_count: int = 0
    key: str = ""


def _staging(table: Table) -> Table:
    """The table's columns under another name, without indexes (built after the load)."""
    staging = table.to_metadata(MetaData(), name=f"{table.name}_import")
    staging.indexes.clear()
    staging.primary_key.name = f"pk_{staging.name}"  # constraint names are schema-wide in PG
    return staging


async def _insert_batch(
    conn: AsyncConnection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    if conn.dialect.name == "postgresql":
        # COPY is an order of magnitude faster than INSERT for millions of rows.
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
    else:
        await conn.exec_driver_sql(sqlite_insert(table.name, list(columns)), rows)


async def _drop_staging(db: Database, staging: Table) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda c: staging.drop(c, checkfirst=True))


def _swap_in(conn: Connection, table: Table, staging: Table) -> None:
    """Replace `table` by `staging` (inside the caller's transaction) and index it."""
    table.drop(conn)
    conn.exec_driver_sql(f"ALTER TABLE {staging.name} RENAME TO {table.name}")
    if conn.dialect.name == "postgresql":
        # Names PostgreSQL derived from the staging name must not collide with the next one.
        conn.exec_driver_sql(
            f"ALTER TABLE {table.name} RENAME CONSTRAINT pk_{staging.name} TO pk_{table.name}"
        )
        conn.exec_driver_sql(
            f"ALTER SEQUENCE IF EXISTS {staging.name}_id_seq RENAME TO {table.name}_id_seq"
        )
    for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
        index.create(conn)


async def _load_here(
    db: Database,
    reader: AnnuaireReader[Any],
    staging: Table,
    columns: Sequence[str],
    progress: Progress | None,
) -> int:
    """Parse in a thread while the previous batch is written; returns the record count."""
    records = 0
    batches: Iterator[list[tuple[str | None, ...]]] = reader.batches(BATCH)
    pending: asyncio.Task[None] | None = None
    async with db.engine.connect() as conn:
        try:
            while True:
                batch = await asyncio.to_thread(next, batches, None)
                if pending is not None:
                    await pending
                    await conn.commit()
                if batch is None:
                    return records
                records += len(batch)
                pending = asyncio.create_task(_insert_batch(conn, staging, columns, batch))
                if progress is not None:
                    progress(reader.bytes_read, reader.total_size, reader.lines_read)
        finally:
            # Never leave the connection with a write still running on it.
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending


def _location(db: Database) -> str:
    url = make_url(db.url)
    if db.dialect == "postgresql":
        return url.set(drivername="postgresql").render_as_string(hide_password=False)
    return str(url.database)


async def _load_in_parts(
    db: Database,
    path: Path,
    kind: AnnuaireKind,
    staging: Table,
    columns: Sequence[str],
    workers: int,
    progress: Progress | None,
) -> tuple[int, int, list[LineError], int]:
    """Parse and load the file in `workers` processes; (records, lines, errors, error count)."""
    parts = split_annuaire(path, workers)
    done_bytes = [0] * len(parts)
    lines_seen = [0] * len(parts)
    results: dict[int, list[Any]] = {}
    total = path.stat().st_size
    procs: list[asyncio.subprocess.Process] = []
    runner: asyncio.Future[list[None]] | None = None

    async def follow(i: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            message = json.loads(raw)
            if message[0] == "progress":
                done_bytes[i], lines_seen[i] = message[1], message[2]
            elif message[0] == "done":
                results[i] = message
            else:
                raise DirectoryError(
                    f"{path}: part {i + 1} could not be loaded: {message[1]}: "
                    "the previous cache stays in force"
                )
        if await proc.wait() != 0 or i not in results:
            assert proc.stderr is not None
            last = (await proc.stderr.read()).decode(errors="replace").strip().splitlines()
            raise DirectoryError(
                f"{path}: the import worker for part {i + 1} stopped (exit code "
                f"{proc.returncode}{': ' + last[-1] if last else ''}): the previous cache "
                "stays in force"
            )

    try:
        for start, end in parts:
            task = LoadTask(
                db.dialect,
                _location(db),
                staging.name,
                tuple(columns),
                str(path.resolve()),
                kind.value,
                start,
                end,
            )
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "directory.annuaire_load",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=64 * 1024 * 1024,  # the "done" line carries up to 1,000 line errors
            )
            assert proc.stdin is not None
            proc.stdin.write(task.to_json().encode())
            proc.stdin.close()
            procs.append(proc)
        runner = asyncio.ensure_future(asyncio.gather(*(follow(i, p) for i, p in enumerate(procs))))
        while not runner.done():
            await asyncio.wait({runner}, timeout=0.25)
            if progress is not None:  # called here, not in the readers: it may raise
                progress(parts[0][0] + sum(done_bytes), total, 1 + sum(lines_seen))
        runner.result()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if runner is not None and not runner.done():
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner
    # Each part numbers its lines as if its first line followed a header on line 1.
    records, lines, errors, error_count, offset = 0, 1, [], 0, 0
    for i in range(len(parts)):
        _, n, part_lines, part_errors, part_count = results[i]
        records += n
        error_count += part_count
        errors += [LineError(line + offset, msg) for line, msg in part_errors]
        offset += part_lines - 1
        lines += part_lines - 1
    return records, lines, errors[:MAX_ERRORS_KEPT], error_count


def default_workers(path: Path) -> int:
    """Several processes pay off for the national files (hundreds of MB), not small ones."""
    try:
        big = path.stat().st_size >= PARALLEL_FROM_BYTES
    except OSError:
        return 1
    return min(os.cpu_count() or 1, 4) if big else 1


async def import_annuaire(
    db: Database,
    path: Path,
    *,
    progress: Progress | None = None,
    report_limit: int = 50,
    workers: int | None = None,
) -> AnnuaireReport:
    """Import one extraction file (kind detected from its header).

    `workers` > 1 parses and loads the file in that many processes (default: one per core,
    up to 4, for files of at least 32 MB).
    """
    try:
        reader = open_annuaire(path)
    except AnnuaireFileError as exc:
        raise DirectoryError(str(exc)) from None
    kind = reader.kind
    table, key = _TABLES[kind]
    staging = _staging(table)
    columns = reader.record_type.FIELDS
    with reader:
        await _drop_staging(db, staging)  # left over by an interrupted import
        async with db.engine.begin() as conn:
            await conn.run_sync(staging.create)
        workers = default_workers(path) if workers is None else workers
        try:
            if workers > 1:
                records, lines, errors, error_count = await _load_in_parts(
                    db, path, kind, staging, columns, workers, progress
                )
            else:
                records = await _load_here(db, reader, staging, columns, progress)
                lines = reader.lines_read
                errors, error_count = list(reader.errors), reader.error_count
        except BaseException:
            await _drop_staging(db, staging)
            raise
        if records == 0:
            await _drop_staging(db, staging)
            raise DirectoryError(
                f"{path}: no valid line in the file ({error_count} refused): "
                "the previous cache stays in force"
            )

    # Keys of the old cache absent from the new one: one pass, counted while streamed (in
    # its own transaction: PostgreSQL will not drop a table a cursor is still reading).
    gone = except_(
        select(table.c[key]).where(table.c[key].is_not(None)),
        select(staging.c[key]),
    ).subquery()
    disappeared: list[str] = []
    disappeared_count = 0
    async with db.engine.connect() as conn:
        result = await conn.stream(select(gone.c[key]).order_by(gone.c[key]))
        async for (value,) in result:
            disappeared_count += 1
            if len(disappeared) < report_limit:
                disappeared.append(value)

    async with db.engine.begin() as conn:
        previous = (
            await conn.execute(
                select(AnnuaireImport.records).where(
                    AnnuaireImport.kind == kind.value, AnnuaireImport.active.is_(True)
                )
            )
        ).scalar()
        # The switch: old table out, new table in, indexes rebuilt, in one transaction.
        await conn.run_sync(_swap_in, table, staging)
        await conn.execute(
            update(AnnuaireImport)
            .where(AnnuaireImport.kind == kind.value, AnnuaireImport.active.is_(True))
            .values(active=False)
        )
        await conn.execute(
            insert(AnnuaireImport).values(
                kind=kind.value,
                file_name=str(path),
                imported_at=utcnow(),
                records=records,
                errors=error_count,
                active=True,
            )
        )
    if db.dialect == "postgresql":
        async with db.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"ANALYZE {table.name}"))
    return AnnuaireReport(
        file=path,
        kind=kind.value,
        records=records,
        lines=lines,
        errors=errors,
        error_count=error_count,
        previous_records=previous or 0,
        disappeared=disappeared,
        disappeared_count=disappeared_count,
        key=key,
    )


# --- lookups -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Professional:
    national_id: str
    last_name: str
    first_name: str
    civility: str
    professions: tuple[str, ...]
    specialties: tuple[str, ...]
    structures: tuple[str, ...]
    mailboxes: tuple[str, ...]


def in_annuaire(
    national_id: InstrumentedAttribute[str | None] | ColumnElement[str] | str,
) -> ColumnElement[bool]:
    """The national identifier is in the current annuaire cache (mssante.md §3): in the
    PS_LibreAcces cache, or in the MSSanté correspondence cache. A professional who has left
    both can no longer act as a professional. A condition, for whoever asks (one query)."""
    return exists().where(AnnuairePerson.national_id == national_id) | exists().where(
        AnnuaireMailbox.national_id == national_id
    )


async def is_active_professional(session: AsyncSession, national_id: str) -> bool:
    """True when the national identifier is in the current annuaire cache (``in_annuaire``)."""
    return bool(await session.scalar(select(in_annuaire(national_id))))


def _uniq(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


async def professional(session: AsyncSession, national_id: str) -> Professional | None:
    persons = (
        await session.scalars(
            select(AnnuairePerson)
            .where(
                AnnuairePerson.national_id == national_id,
            )
            .order_by(AnnuairePerson.id)
        )
    ).all()
    boxes = (
        await session.scalars(
            select(AnnuaireMailbox)
            .where(
                AnnuaireMailbox.national_id == national_id,
            )
            .order_by(AnnuaireMailbox.id)
        )
    ).all()
    if not persons and not boxes:
        return None
    first: AnnuairePerson | AnnuaireMailbox = persons[0] if persons else boxes[0]
    rows: list[AnnuairePerson | AnnuaireMailbox] = [*persons, *boxes]
    return Professional(
        national_id=national_id,
        last_name=first.last_name,
        first_name=first.first_name,
        civility=first.civility,
        professions=_uniq([p.profession_label for p in rows]),
        specialties=_uniq([p.specialty_label for p in rows]),
        structures=_uniq([p.structure_name for p in rows]),
        mailboxes=_uniq([b.address for b in boxes]),
    )


async def published_mailbox(session: AsyncSession, address: str) -> Sequence[AnnuaireMailbox]:
    stmt = (
        select(AnnuaireMailbox)
        .where(
            AnnuaireMailbox.address == address.strip().lower(),
        )
        .order_by(AnnuaireMailbox.id)
    )
    return (await session.scalars(stmt)).all()


async def import_status(session: AsyncSession) -> Sequence[AnnuaireImport]:
    stmt = (
        select(AnnuaireImport).where(AnnuaireImport.active.is_(True)).order_by(AnnuaireImport.kind)
    )
    return (await session.scalars(stmt)).all()

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
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
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from directory.annuaire_file import AnnuaireFileError, AnnuaireKind, LineError, open_annuaire
from directory.errors import DirectoryError
from storage.db import Database
from storage.models import AnnuaireImport, AnnuaireMailbox, AnnuairePerson, utcnow

BATCH = 20_000
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
        placeholders = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})"
        await conn.exec_driver_sql(sql, rows)


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


async def import_annuaire(
    db: Database, path: Path, *, progress: Progress | None = None, report_limit: int = 50
) -> AnnuaireReport:
    """Import one extraction file (kind detected from its header)."""
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
        records = 0
        batches: Iterator[list[tuple[str | None, ...]]] = reader.batches(BATCH)
        pending: asyncio.Task[None] | None = None
        try:
            async with db.engine.connect() as conn:
                try:
                    while True:
                        # Parse the next batch in a thread while the previous one is written.
                        batch = await asyncio.to_thread(next, batches, None)
                        if pending is not None:
                            await pending
                            await conn.commit()
                        if batch is None:
                            break
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
        except BaseException:
            await _drop_staging(db, staging)
            raise
        if records == 0:
            await _drop_staging(db, staging)
            raise DirectoryError(
                f"{path}: no valid line in the file ({reader.error_count} refused): "
                "the previous cache stays in force"
            )
        lines = reader.lines_read
        errors, error_count = list(reader.errors), reader.error_count

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


async def is_active_professional(session: AsyncSession, national_id: str) -> bool:
    """True when the national identifier is in the current annuaire cache (mssante.md §3).

    Present in the PS_LibreAcces cache, or in the MSSanté correspondence cache: a
    professional who has left both can no longer act as a professional.
    """
    in_persons = await session.scalar(
        select(
            exists().where(
                AnnuairePerson.national_id == national_id,
            )
        )
    )
    if in_persons:
        return True
    return bool(
        await session.scalar(
            select(
                exists().where(
                    AnnuaireMailbox.national_id == national_id,
                )
            )
        )
    )


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

"""The annuaire cache: who is an active professional, which MSSanté boxes are published.

An import streams the extraction file into a new *generation* of rows in batches (constant
memory), then switches the active generation and drops the old rows in one short
transaction: readers see the old cache or the new one, never a mix, and a failed import
leaves the previous cache in force. Rows of an import that died half-way are swept at the
next import.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, exists, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from directory.annuaire_file import (
    AnnuaireFileError,
    AnnuaireKind,
    LineError,
    open_annuaire,
)
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


async def _sweep_abandoned(db: Database, kind: AnnuaireKind) -> None:
    """Delete rows left by an import that never became active (crash, refused file)."""
    table, _ = _TABLES[kind]
    async with db.engine.begin() as conn:
        dead = (
            (
                await conn.execute(
                    select(AnnuaireImport.id).where(
                        AnnuaireImport.kind == kind.value, AnnuaireImport.active.is_(False)
                    )
                )
            )
            .scalars()
            .all()
        )
        for gen in dead:
            await conn.execute(delete(table).where(table.c.generation == gen))
        if dead:
            await conn.execute(delete(AnnuaireImport).where(AnnuaireImport.id.in_(dead)))


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
    columns = ("generation", *reader.record_type.FIELDS)
    with reader:
        await _sweep_abandoned(db, kind)
        async with db.engine.begin() as conn:
            gen = (
                await conn.execute(
                    insert(AnnuaireImport).returning(AnnuaireImport.id),
                    {
                        "kind": kind.value,
                        "file_name": str(path),
                        "imported_at": utcnow(),
                        "records": 0,
                        "errors": 0,
                        "active": False,
                    },
                )
            ).scalar_one()
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
                        rows = [(gen, *r) for r in batch]
                        records += len(rows)
                        pending = asyncio.create_task(_insert_batch(conn, table, columns, rows))
                        if progress is not None:
                            progress(reader.bytes_read, reader.total_size, reader.lines_read)
                finally:
                    # Never leave the connection with a write still running on it.
                    if pending is not None and not pending.done():
                        pending.cancel()
                        with contextlib.suppress(BaseException):
                            await pending
        except BaseException:
            await _sweep_abandoned(db, kind)
            raise
        if records == 0:
            await _sweep_abandoned(db, kind)
            raise DirectoryError(
                f"{path}: no valid line in the file ({reader.error_count} refused): "
                "the previous cache stays in force"
            )
        lines = reader.lines_read
        errors, error_count = list(reader.errors), reader.error_count

    async with db.engine.begin() as conn:
        old_gen = (
            await conn.execute(
                select(AnnuaireImport.id, AnnuaireImport.records).where(
                    AnnuaireImport.kind == kind.value, AnnuaireImport.active.is_(True)
                )
            )
        ).first()
        disappeared: list[str] = []
        disappeared_count = 0
        previous = 0
        if old_gen is not None:
            previous = old_gen.records
            col = table.c[key]
            newer = table.alias("newer")
            gone = (
                select(col)
                .distinct()
                .where(table.c.generation == old_gen.id, col.is_not(None))
                .where(~exists().where(newer.c.generation == gen, newer.c[key] == col))
            )
            disappeared_count = (
                await conn.execute(select(func.count()).select_from(gone.subquery()))
            ).scalar_one()
            disappeared = list(
                (await conn.execute(gone.order_by(col).limit(report_limit))).scalars().all()
            )
            await conn.execute(
                update(AnnuaireImport).where(AnnuaireImport.id == old_gen.id).values(active=False)
            )
        await conn.execute(
            update(AnnuaireImport)
            .where(AnnuaireImport.id == gen)
            .values(active=True, records=records, errors=error_count, imported_at=utcnow())
        )
    # The old generation is no longer read by anyone: drop it outside the switch.
    await _sweep_abandoned(db, kind)
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
        previous_records=previous,
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


def _active_gen(kind: AnnuaireKind) -> Any:
    return (
        select(AnnuaireImport.id)
        .where(AnnuaireImport.kind == kind.value, AnnuaireImport.active.is_(True))
        .scalar_subquery()
    )


async def is_active_professional(session: AsyncSession, national_id: str) -> bool:
    """True when the national identifier is in the current annuaire cache (mssante.md §3).

    Present in the PS_LibreAcces cache, or in the MSSanté correspondence cache: a
    professional who has left both can no longer act as a professional.
    """
    in_persons = await session.scalar(
        select(
            exists().where(
                AnnuairePerson.generation == _active_gen(AnnuaireKind.PERSONNE_ACTIVITE),
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
                    AnnuaireMailbox.generation == _active_gen(AnnuaireKind.MSSANTE),
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
                AnnuairePerson.generation == _active_gen(AnnuaireKind.PERSONNE_ACTIVITE),
                AnnuairePerson.national_id == national_id,
            )
            .order_by(AnnuairePerson.id)
        )
    ).all()
    boxes = (
        await session.scalars(
            select(AnnuaireMailbox)
            .where(
                AnnuaireMailbox.generation == _active_gen(AnnuaireKind.MSSANTE),
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
            AnnuaireMailbox.generation == _active_gen(AnnuaireKind.MSSANTE),
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

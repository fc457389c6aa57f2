"""Loading one part of an annuaire file into the staging table, in a worker process.

A large extraction is cut into parts at line boundaries and each part is parsed and written
by its own process, so that parsing (pure Python, one core each) and writing overlap across
cores. A worker is `python -m directory.annuaire_load`: it reads its task as one JSON object
on stdin (the database location stays out of the process list) and writes JSON lines on
stdout: ["progress", bytes done, lines read], then ["done", records, lines read, errors,
error count] or ["error", message]. It imports only the standard library, the file reader
and the database driver, so each worker stays small.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from directory.annuaire_file import AnnuaireKind, open_annuaire_part

BATCH = 20_000


@dataclass(frozen=True)
class LoadTask:
    dialect: str  # "sqlite" or "postgresql"
    location: str  # SQLite file path, or a PostgreSQL DSN
    table: str
    columns: tuple[str, ...]
    path: str
    kind: str
    start: int
    end: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def sqlite_insert(table: str, columns: tuple[str, ...] | list[str]) -> str:
    """The INSERT that loads rows in `columns` order (SQLite's executemany)."""
    placeholders = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"


def _sqlite(target: LoadTask, batches: Any, report: Any) -> None:
    conn = sqlite3.connect(target.location, timeout=60)
    try:
        conn.execute("PRAGMA busy_timeout=60000")  # the other parts write between our batches
        sql = sqlite_insert(target.table, target.columns)
        for batch in batches:
            with conn:
                conn.executemany(sql, batch)
            report()
    finally:
        conn.close()


async def _postgresql(target: LoadTask, batches: Any, report: Any) -> None:
    import asyncpg

    conn = await asyncpg.connect(target.location)
    try:
        for batch in batches:
            await conn.copy_records_to_table(
                target.table, records=batch, columns=list(target.columns)
            )
            report()
    finally:
        await conn.close()


def load_part(task: LoadTask, out: TextIO) -> None:
    """Parse bytes [start, end) of the file and insert its records into the staging table."""

    def send(*message: object) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    try:
        reader = open_annuaire_part(Path(task.path), AnnuaireKind(task.kind), task.start, task.end)
        with reader:
            records = 0

            def report() -> None:
                send("progress", reader.bytes_read - task.start, reader.lines_read)

            def batches() -> Any:
                nonlocal records
                for batch in reader.batches(BATCH):
                    records += len(batch)
                    yield batch

            if task.dialect == "postgresql":
                asyncio.run(_postgresql(task, batches(), report))
            else:
                _sqlite(task, batches(), report)
            errors = [(e.line_no, e.message) for e in reader.errors]
            send("done", records, reader.lines_read, errors, reader.error_count)
    except Exception as exc:  # reported to the importer, which refuses the whole file
        send("error", f"{type(exc).__name__}: {exc}".splitlines()[0])


def main() -> int:
    raw = json.loads(sys.stdin.read())
    task = LoadTask(**{**raw, "columns": tuple(raw["columns"])})
    load_part(task, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The schema: migrations match the models, and an older database upgrades in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, select, text

from storage.db import Database, head_revision, open_database
from storage.mailstore import create_default_folders, folders_of
from storage.models import Account, Base


async def test_migrations_build_exactly_the_models(db: Database) -> None:
    def diff(conn: Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await db.revision() == head_revision()


async def test_database_from_an_older_version_upgrades_in_place(db_url: str) -> None:
    old = Database(db_url)
    await old.migrate("0001")  # the first released schema: accounts but no mail store
    async with old.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO accounts (address, kind, display_name, state, created_at, updated_at)"
                " VALUES ('dr.old@demo.mssante.fr', 'PER', 'Dr Old', 'active',"
                " '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
            )
        )
    await old.close()

    db = await open_database(db_url)  # what `mailserver serve` does at start-up
    try:
        assert await db.revision() == head_revision()
        async with db.session() as s, s.begin():
            account = await s.scalar(select(Account).where(Account.address.like("dr.old@%")))
            assert account is not None and account.display_name == "Dr Old"
            await create_default_folders(s, account.id)  # the new tables work
        async with db.session() as s:
            names = [f.name for f in await folders_of(s, account.id)]
        assert names == ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]
    finally:
        await db.close()


async def test_timestamps_come_back_as_aware_utc(db: Database) -> None:
    paris = timezone(timedelta(hours=1))
    created = datetime(2026, 3, 1, 9, 30, tzinfo=paris)
    async with db.session() as s, s.begin():
        s.add(
            Account(address="a@demo.mssante.fr", kind="APP", created_at=created, updated_at=created)
        )
    async with db.session() as s:
        acc = await s.scalar(select(Account))
    assert acc is not None
    assert acc.created_at == created
    assert acc.created_at.tzinfo is not None
    assert acc.created_at.utcoffset() == timedelta(0)
    assert acc.created_at.astimezone(UTC).hour == 8


async def test_uidvalidity_strictly_increases(db: Database) -> None:
    async with db.session() as s, s.begin():
        acc = Account(address="b@demo.mssante.fr", kind="APP")
        s.add(acc)
        await s.flush()
        folders = await create_default_folders(s, acc.id)
    values = [f.uidvalidity for f in folders]
    assert values == sorted(set(values))  # RFC 3501 §2.3.1.1: never reused


async def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: object) -> None:
    db = await open_database(f"sqlite:///{tmp_path}/wal.db")
    try:
        async with db.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 2  # FULL
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await db.close()

"""Durable delivery with group commit: concurrent deliveries share transactions, each caller
returns only once its own message is committed, and one plan that cannot be stored fails
alone instead of taking the others of its group down with it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from directory import accounts, patients
from routing.pipeline import DeliveryPlan, LocalCopy, RelayCopy
from routing.rules import ContactUpdate
from storage.blobs import BlobStore
from storage.db import Database
from storage.delivery import MessageStore
from storage.models import AuditEvent, FilingJob, Folder, Message, PatientContact, QueueEntry

DOMAIN = "demo.mssante.fr"
INS = "146026322000196"


def _plan(
    n: int, *local: LocalCopy, relay: tuple[RelayCopy, ...] = (), **kw: object
) -> DeliveryPlan:
    data = f"From: a@{DOMAIN}\r\nSubject: n{n}\r\nMessage-ID: <{n}@test>\r\n\r\nbody {n}\r\n"
    fields: dict[str, object] = {
        "data": data.encode(),
        "sender": f"a@{DOMAIN}",
        "envid": None,
        "ret": None,
        "local": list(local),
        "relay": list(relay),
        "failed": [],
        "contacts": [],
        "actor": f"a@{DOMAIN}",
        "method": "EXTERNAL",
        "remote_address": "127.0.0.1",
    }
    fields.update(kw)
    return DeliveryPlan(**fields)  # type: ignore[arg-type]


async def _box(db: Database, name: str) -> LocalCopy:
    async with db.session() as s, s.begin():
        account = await accounts.add_account(
            s, address=f"{name}@{DOMAIN}", kind="ORG", operator_domains=[DOMAIN]
        )
        return LocalCopy(account.id, account.address, None, None, False)


def _record_groups(store: MessageStore) -> list[int]:
    """The size of each transaction the store commits (or tries to)."""
    sizes: list[int] = []
    commit = store._commit

    async def counting(group: list) -> None:  # type: ignore[type-arg]
        sizes.append(len(group))
        await commit(group)

    store._commit = counting  # type: ignore[method-assign]
    return sizes


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    store = BlobStore(tmp_path / "blobs")
    store.ensure()
    return store


async def test_concurrent_deliveries_are_all_committed_with_ascending_uids(
    db: Database, blobs: BlobStore
) -> None:
    boxes = [await _box(db, f"box{i}") for i in range(3)]
    delivered: list[list[int]] = []
    store = MessageStore(db, blobs, on_delivered=delivered.append)
    groups = _record_groups(store)
    plans = [_plan(n, boxes[n % 3]) for n in range(60)]
    await asyncio.gather(*(store.store(p) for p in plans))
    assert max(groups) > 1 and sum(groups) == 60  # they did share transactions
    async with db.session() as s:
        per_folder = (
            await s.execute(
                select(
                    Message.folder_id, func.count(), func.min(Message.uid), func.max(Message.uid)
                ).group_by(Message.folder_id)
            )
        ).all()
        folders = {f.id: f for f in (await s.scalars(select(Folder))).all()}
    assert sorted(n for _f, n, _lo, _hi in per_folder) == [20, 20, 20]
    for folder_id, count, low, high in per_folder:
        assert (low, high) == (1, count)  # RFC 3501 §2.3.1.1: no gaps, no duplicates
        assert folders[folder_id].uidnext == count + 1
        assert folders[folder_id].highestmodseq >= count
    assert len(delivered) == 60  # every caller learnt of its own delivery (IDLE wake-up)


async def test_a_plan_that_cannot_be_stored_fails_alone(db: Database, blobs: BlobStore) -> None:
    good = await _box(db, "good")
    ghost = LocalCopy(999_999, f"ghost@{DOMAIN}", None, None, False)  # no such account
    store = MessageStore(db, blobs)
    groups = _record_groups(store)
    results = await asyncio.gather(
        *(store.store(_plan(n, ghost if n == 5 else good)) for n in range(12)),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(results[5], LookupError)
    assert "without an INBOX" in str(results[5])
    assert max(groups) > 1  # the failing plan was first tried within a group
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Message)) == 11


async def test_patient_delivery_files_audits_opens_the_contact_and_queues_in_one_commit(
    db: Database, blobs: BlobStore
) -> None:
    async with db.session() as s, s.begin():
        patient = await patients.add_patient(s, INS, domain="patient.mssante.fr")
    copy = LocalCopy(patient.account_id, f"{INS}@patient.mssante.fr", "SUCCESS", None, True)
    relay = RelayCopy("dr@other.mssante.fr", None, None)
    contact = ContactUpdate(patient.account_id, f"a@{DOMAIN}", True)
    queued: list[int] = []
    store = MessageStore(db, blobs, on_queued=lambda: queued.append(1))
    await store.store(_plan(1, copy, relay=(relay,), contacts=[contact]))
    async with db.session() as s:
        job = (await s.scalars(select(FilingJob))).one()
        event = (await s.scalars(select(AuditEvent))).one()
        entries = (await s.scalars(select(QueueEntry).order_by(QueueEntry.state))).all()
        contact_row = (await s.scalars(select(PatientContact))).one()
    assert job.patient_id == patient.account_id and job.state == "queued"
    assert (event.action, event.patient_ins, event.actor) == ("message.deliver", INS, f"a@{DOMAIN}")
    assert [(e.state, e.recipient, e.action) for e in entries] == [
        ("queued", "dr@other.mssante.fr", None),
        ("report", copy.address, "delivered"),  # RFC 3461 NOTIFY=SUCCESS
    ]
    assert (contact_row.address, contact_row.state) == (f"a@{DOMAIN}", "open")
    assert queued == [1]  # the relay worker is woken, not left to its next poll

    # FIN from the same professional closes the exchange (mssante.md §4).
    closing = ContactUpdate(patient.account_id, f"a@{DOMAIN}", False)
    await store.store(_plan(2, copy, contacts=[closing]))
    async with db.session() as s:
        contact_row = (await s.scalars(select(PatientContact))).one()
    assert contact_row.state == "closed" and contact_row.closed_at is not None


async def test_local_delivery_without_reports_does_not_wake_the_relay_worker(
    db: Database, blobs: BlobStore
) -> None:
    box = await _box(db, "quiet")
    queued: list[int] = []
    store = MessageStore(db, blobs, on_queued=lambda: queued.append(1))
    await store.store(_plan(1, box))
    assert queued == []


async def test_a_plan_the_database_refuses_rolls_its_group_back_and_fails_alone(
    db: Database, blobs: BlobStore
) -> None:
    """The failure comes from the database itself, after the group's messages were written
    (a contact for a patient that does not exist: foreign key): the whole transaction is
    rolled back, UIDs included, and the plans are retried one by one: every other caller
    gets its delivery, the bad one its error, and no UID is lost or reused."""
    box = await _box(db, "shared")
    delivered: list[list[int]] = []
    store = MessageStore(db, blobs, on_delivered=delivered.append)
    groups = _record_groups(store)
    orphan = ContactUpdate(999_999, f"a@{DOMAIN}", True)  # no such patient
    results = await asyncio.gather(
        *(store.store(_plan(n, box, contacts=[orphan] if n == 7 else [])) for n in range(16)),
        return_exceptions=True,
    )
    assert [i for i, r in enumerate(results) if isinstance(r, BaseException)] == [7]
    assert isinstance(results[7], Exception) and not isinstance(results[7], LookupError)
    assert max(groups) > 1  # it was first tried within a group
    assert len(delivered) == 15  # IDLE wake-ups only for what was committed
    async with db.session() as s:
        uids = sorted((await s.scalars(select(Message.uid))).all())
        subjects = (await s.scalars(select(Message.message_id))).all()
        folder = (await s.scalars(select(Folder).where(Folder.id == _only_folder(delivered)))).one()
        assert await s.scalar(select(func.count()).select_from(PatientContact)) == 0
    assert uids == list(range(1, 16))  # RFC 3501 §2.3.1.1: the rolled-back UIDs are reused
    assert folder.uidnext == 16
    assert "<7@test>" not in subjects


def _only_folder(delivered: list[list[int]]) -> int:
    (folder,) = {f for folders in delivered for f in folders}
    return folder

"""The dossier store: filed once, replacements supersede, visibility, every read audited."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from directory import patients
from storage import audit, dossier
from storage.blobs import BlobRef
from storage.db import Database
from storage.delivery import record_blob
from storage.mailstore import folders_of
from storage.models import AuditEvent

INS = "146026322000196"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Author:
    national_id: str = "810000000017"
    name: str = "Camille Martin"
    institution: str = "Laboratoire de démonstration"
    specialty: str = "Biologie médicale"


@dataclass(frozen=True)
class Doc:
    unique_id: str
    mime_type: str = "text/xml"
    title: str = "Compte rendu de biologie"
    type_code: str = "11502-2"
    type_display: str = "CR d'examens biologiques"
    class_code: str = "11"
    format_code: str = "urn:asip:ci-sis:2010"
    confidentiality_code: str = "N"
    creation_time: datetime | None = NOW
    service_start_time: datetime | None = None
    author: Author = field(default_factory=Author)
    replaces: str | None = None
    visible_to_patient: bool = True
    entry_uuid: str = ""


async def _setup(db: Database) -> tuple[int, int]:
    async with db.session() as s, s.begin():
        patient = await patients.add_patient(s, INS, domain="patient.mssante.fr")
        inbox = next(f for f in await folders_of(s, patient.account_id) if f.name == "INBOX")
        return patient.account_id, inbox.id


def _ref(text: str) -> BlobRef:
    data = text.encode()
    return BlobRef(hashlib.sha256(data).hexdigest(), len(data))


async def _file(db: Database, patient_id: int, folder_id: int, *docs: Doc) -> dossier.FilingResult:
    prov = dossier.Provenance(
        message_id="<m1@lab>",
        folder_id=folder_id,
        uid=1,
        sender="laboratoire@demo.mssante.fr",
        actor="laboratoire@demo.mssante.fr",
        auth_method="EXTERNAL",
        ins=INS,
    )
    async with db.session() as s, s.begin():
        entries = []
        for d in docs:
            ref = _ref(d.unique_id)
            await record_blob(s, ref)
            entries.append((d, ref, None))
        return await dossier.file_documents(s, patient_id, entries, prov, NOW)


async def test_a_document_is_filed_once_with_its_provenance(db: Database) -> None:
    patient_id, inbox = await _setup(db)
    first = await _file(db, patient_id, inbox, Doc("1.2.250.1.999.1"))
    again = await _file(db, patient_id, inbox, Doc("1.2.250.1.999.1"))
    assert [d.unique_id for d in first.filed] == ["1.2.250.1.999.1"]
    assert again.filed == [] and again.already_filed == ["1.2.250.1.999.1"]
    async with db.session() as s:
        docs = await dossier.list_documents(s, patient_id, viewer="patient")
        filed_events = (
            await s.scalars(select(AuditEvent).where(AuditEvent.action == "document.file"))
        ).all()
    assert len(docs) == 1
    d = docs[0]
    assert (d.source_message_id, d.source_folder_id, d.source_uid) == ("<m1@lab>", inbox, 1)
    assert d.sender == "laboratoire@demo.mssante.fr" and d.author_name == "Camille Martin"
    assert len(filed_events) == 1 and filed_events[0].patient_ins == INS


async def test_a_replacement_supersedes_the_earlier_version_which_stays(db: Database) -> None:
    patient_id, inbox = await _setup(db)
    await _file(db, patient_id, inbox, Doc("1.2.3.1", entry_uuid="urn:uuid:aaaa"))
    by_uid = await _file(db, patient_id, inbox, Doc("1.2.3.2", replaces="1.2.3.1"))
    by_entry = await _file(db, patient_id, inbox, Doc("1.2.3.3", replaces="urn:uuid:nothere"))
    assert by_uid.superseded == ["1.2.3.1"]
    assert by_entry.superseded == [] and by_entry.unmatched_replacements == ["urn:uuid:nothere"]
    replaced_by_entry = await _file(db, patient_id, inbox, Doc("1.2.3.4", replaces="urn:uuid:aaaa"))
    assert replaced_by_entry.superseded == ["1.2.3.1"]
    async with db.session() as s:
        all_docs = await dossier.list_documents(s, patient_id, viewer="operator")
        current = await dossier.list_documents(
            s, patient_id, viewer="operator", include_superseded=False
        )
    assert len(all_docs) == 4
    assert "1.2.3.1" not in {d.unique_id for d in current}


async def test_visibility_hidden_from_professionals_and_invisible_to_the_patient(
    db: Database,
) -> None:
    patient_id, inbox = await _setup(db)
    result = await _file(db, patient_id, inbox, Doc("9.1"), Doc("9.2", visible_to_patient=False))
    shown, secret = result.filed
    me = audit.Actor(f"{INS}@patient.mssante.fr", "password+otp")
    async with db.session() as s, s.begin():
        assert await dossier.set_hidden(s, patient_id, shown.id, True, actor=me, ins=INS)
        # A patient cannot act on a document they must not see.
        assert await dossier.set_hidden(s, patient_id, secret.id, True, actor=me, ins=INS) is None
    async with db.session() as s:
        as_patient = {
            d.unique_id for d in await dossier.list_documents(s, patient_id, viewer="patient")
        }
        as_pro = {
            d.unique_id for d in await dossier.list_documents(s, patient_id, viewer="professional")
        }
    assert as_patient == {"9.1"}
    assert as_pro == {"9.2"}


async def test_every_read_and_refused_read_is_audited(db: Database) -> None:
    patient_id, inbox = await _setup(db)
    (doc,) = (await _file(db, patient_id, inbox, Doc("7.1", visible_to_patient=False))).filed
    pro = audit.Actor("camille.martin@demo.mssante.fr", "EXTERNAL", "192.0.2.1")
    me = audit.Actor(f"{INS}@patient.mssante.fr", "password+otp")
    async with db.session() as s, s.begin():
        got = await dossier.get_document(
            s, patient_id, doc.id, viewer="professional", actor=pro, ins=INS
        )
        refused = await dossier.get_document(
            s, patient_id, doc.id, viewer="patient", actor=me, ins=INS
        )
        other = await dossier.get_document(
            s, patient_id + 999, doc.id, viewer="operator", actor=pro, ins=INS
        )
    assert got is not None and refused is None and other is None
    async with db.session() as s:
        events = await audit.events_for_patient(s, INS)
    actions = [(e.action, e.actor) for e in events if e.action != "document.file"]
    assert ("document.read", pro.name) in actions
    assert ("document.refused", me.name) in actions
    assert sum(1 for a, _ in actions if a == "document.refused") == 2


async def test_documents_by_date_a_page_at_a_time_and_by_type(db: Database) -> None:
    """Newest first by document date, the filing date standing in for a missing one."""
    patient_id, inbox = await _setup(db)
    dated = [Doc(f"9.{day}", creation_time=NOW.replace(day=day)) for day in (3, 9, 5, 1)]
    imaging = Doc("9.undated", creation_time=None, type_code="18748-4", type_display="Imagerie")
    await _file(db, patient_id, inbox, *dated, imaging)  # filed at NOW, the 23rd
    newest_first = ["9.undated", "9.9", "9.5", "9.3", "9.1"]
    async with db.session() as s:
        pages = [
            [
                d.unique_id
                for d in await dossier.list_documents(
                    s, patient_id, viewer="patient", offset=offset, limit=2
                )
            ]
            for offset in (0, 2, 4, 6)
        ]
        assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:], []]
        assert await dossier.count_documents(s, patient_id, viewer="patient") == 5
        types = await dossier.document_types(s, patient_id, viewer="patient")
        assert types == {("11502-2", "CR d'examens biologiques"), ("18748-4", "Imagerie")}
        labs = {("11502-2", "CR d'examens biologiques")}
        listed = await dossier.list_documents(s, patient_id, viewer="patient", types=labs)
        assert [d.unique_id for d in listed] == newest_first[1:]
        assert await dossier.count_documents(s, patient_id, viewer="patient", types=set()) == 0

"""`mailserver dossier`: the documents filed into a patient's dossier (issue #4).

Operator access: every listing and read is written to the patient's audit log (mssante.md
§7), with the operator's login as the actor.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
from pathlib import Path
from typing import Any

from directory import patients
from mailserver.commands._common import SubParsers, add_config_arg, database, load
from mailserver.errors import CommandError
from storage import audit, dossier
from storage.blobs import BlobError, BlobStore
from storage.models import DossierDocument, Patient

# File name extension of an exported document, by stored MIME type.
EXTENSIONS = {
    "application/pdf": ".pdf",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/tiff": ".tif",
    "application/dicom": ".dcm",
    "text/xml": ".xml",
    "application/xml": ".xml",
}


def register(sub: SubParsers) -> None:
    p = sub.add_parser("dossier", help="documents filed into patients' dossiers")
    s = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    ls = s.add_parser("list", help="list a patient's documents")
    add_config_arg(ls)
    ls.add_argument("ins", metavar="INS")
    ls.set_defaults(func=_list)

    sh = s.add_parser("show", help="one document's metadata and provenance")
    add_config_arg(sh)
    sh.add_argument("ins", metavar="INS")
    sh.add_argument("doc", metavar="DOC", type=int, help="document id (from `dossier list`)")
    sh.set_defaults(func=_show)

    ex = s.add_parser(
        "export",
        help="write a patient's documents and a metadata.json into a directory",
        description="Writes each document (and its PDF rendition when there is one) into DIR, "
        "with metadata.json describing them all. DIR is created; existing files are kept.",
    )
    add_config_arg(ex)
    ex.add_argument("ins", metavar="INS")
    ex.add_argument("dir", metavar="DIR", type=Path)
    ex.set_defaults(func=_export)


def _operator() -> audit.Actor:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return audit.Actor(f"operator:{who}", "cli")


async def _patient(session: Any, ins: str) -> Patient:
    patient = await patients.get_patient(session, ins)
    if patient is None:
        raise CommandError(f"no patient box for INS {ins!r}")
    return patient


def metadata_of(doc: DossierDocument) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": doc.id,
        "unique_id": doc.unique_id,
        "entry_uuid": doc.entry_uuid,
        "title": doc.title,
        "mime_type": doc.mime_type,
        "size": doc.size,
        "type_code": doc.type_code,
        "type_display": doc.type_display,
        "class_code": doc.class_code,
        "format_code": doc.format_code,
        "confidentiality_code": doc.confidentiality_code,
        "creation_time": when(doc.creation_time),
        "service_start_time": when(doc.service_start_time),
        "author": {
            "national_id": doc.author_national_id,
            "name": doc.author_name,
            "institution": doc.author_institution,
            "specialty": doc.author_specialty,
        },
        "provenance": {
            "message_id": doc.source_message_id,
            "folder_id": doc.source_folder_id,
            "uid": doc.source_uid,
            "sender": doc.sender,
            "filed_at": when(doc.filed_at),
        },
        "superseded_by": doc.superseded_by_id,
        "hidden_from_professionals": doc.hidden_from_professionals,
        "visible_to_patient": doc.visible_to_patient,
        "has_rendition": doc.rendition_blob_sha256 is not None,
    }


async def _list(args: argparse.Namespace) -> int:
    cfg = load(args)
    async with database(cfg) as db, db.session() as session, session.begin():
        patient = await _patient(session, args.ins)
        docs = await dossier.list_documents(session, patient.account_id, viewer="operator")
        audit.record(
            session,
            _operator(),
            "dossier.list",
            object_type="dossier",
            object_id=patient.ins,
            patient_ins=patient.ins,
        )
    print(f"{'ID':>5} {'DATE':10} {'TYPE':8} {'STATE':10} {'MIME':16} TITLE / AUTHOR")
    for d in docs:
        date = (d.creation_time or d.filed_at).strftime("%Y-%m-%d")
        state = "superseded" if d.superseded_by_id else ("hidden" if d.hidden_from_professionals
                                                          else "filed")  # fmt: skip
        if not d.visible_to_patient:
            state = "pro-only"
        author = d.author_name or d.sender
        print(f"{d.id:>5} {date:10} {d.type_code or '-':8} {state:10} {d.mime_type:16} "
              f"{d.title} ({author})")  # fmt: skip
    print(f"{len(docs)} document(s)")
    return 0


async def _show(args: argparse.Namespace) -> int:
    cfg = load(args)
    async with database(cfg) as db, db.session() as session, session.begin():
        patient = await _patient(session, args.ins)
        doc = await dossier.get_document(
            session,
            patient.account_id,
            args.doc,
            viewer="operator",
            actor=_operator(),
            ins=patient.ins,
            purpose="show",
        )
        if doc is None:
            raise CommandError(f"patient {patient.ins} has no document {args.doc}")
        meta = metadata_of(doc)
    print(json.dumps(meta, ensure_ascii=False, indent=2))
    return 0


def _safe_name(doc: DossierDocument, suffix: str = "") -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", doc.title or "document").strip("._")[:60]
    ext = EXTENSIONS.get(doc.mime_type, ".bin")
    return f"{doc.id:05d}-{stem or 'document'}{suffix}{ext}"


async def _export(args: argparse.Namespace) -> int:
    cfg = load(args)
    target: Path = args.dir
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot create {target}: {exc.strerror or exc}") from None
    blobs = BlobStore(cfg.blob_dir)
    entries: list[dict[str, Any]] = []
    async with database(cfg) as db, db.session() as session, session.begin():
        patient = await _patient(session, args.ins)
        listed = await dossier.list_documents(session, patient.account_id, viewer="operator")
        for listed_doc in listed:
            doc = await dossier.get_document(
                session,
                patient.account_id,
                listed_doc.id,
                viewer="operator",
                actor=_operator(),
                ins=patient.ins,
                purpose="export",
            )
            assert doc is not None
            meta = metadata_of(doc)
            files = {"document": _safe_name(doc)}
            if doc.rendition_blob_sha256:
                files["rendition"] = _safe_name(doc, "-rendu").rsplit(".", 1)[0] + ".pdf"
            try:
                await _write(blobs, doc.blob_sha256, target / files["document"])
                if doc.rendition_blob_sha256:
                    await _write(blobs, doc.rendition_blob_sha256, target / files["rendition"])
            except (BlobError, OSError) as exc:
                raise CommandError(f"cannot export document {doc.id}: {exc}") from None
            entries.append({**meta, "files": files})
    index = {"ins": patient.ins, "documents": entries}
    (target / "metadata.json").write_text(
        json.dumps(index, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    print(f"exported {len(entries)} document(s) of {patient.ins} to {target}")
    return 0


async def _write(blobs: BlobStore, sha256: str, path: Path) -> None:
    data = await asyncio.to_thread(blobs.get, sha256)
    await asyncio.to_thread(path.write_bytes, data)

"""The dossier (mssante.md §7; issue #6 items 5 and 6): documents by date and type, reading
and downloading them, hiding them from professionals, saving an attachment that was not
filed automatically, and the page listing every access to the patient's data."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from directory.webauth import WebIdentity
from storage import dossier
from storage.models import DossierDocument
from storage.webmail_store import AccessEvent, Party, Reads
from webmail.context import webmail_of
from webmail.http import login_required, not_found, page, redirect
from webmail.labels import action_label, document_type_label, method_label
from webmail.mailbox import actor_of, party_for
from webmail.paging import requested_pager
from webmail.reading import attachment_payload, content_disposition, read_message, safe_filename

__all__ = ["routes"]

EXTENSIONS = {
    "application/pdf": ".pdf",
    "text/xml": ".xml",
    "application/xml": ".xml",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "application/zip": ".zip",
    "text/plain": ".txt",
}


@dataclass(frozen=True)
class Author:
    national_id: str = ""
    name: str = ""
    institution: str = ""
    specialty: str = ""


@dataclass(frozen=True)
class SavedAttachment:
    """An attachment the patient files (storage.dossier's document protocol)."""

    unique_id: str
    mime_type: str
    title: str
    author: Author
    creation_time: datetime | None
    type_code: str = ""
    type_display: str = "Pièce jointe enregistrée par vous"
    class_code: str = ""
    format_code: str = ""
    confidentiality_code: str = "N"
    service_start_time: datetime | None = None
    replaces: str | None = None
    visible_to_patient: bool = True
    entry_uuid: str = ""


Listed = DossierDocument | dossier.ListedDocument  # one document shown, or one of a list


@dataclass(frozen=True)
class DocumentItem:
    doc: Listed
    type_label: str
    date: datetime
    message_id: int | None  # the row id of the source message, when it is still there
    author: str  # the document's author, else who sent it (annuaire or account name)


async def _items(reads: Reads, who: WebIdentity, docs: Sequence[Listed]) -> list[DocumentItem]:
    """The patient's ``docs`` with their labels, source and author."""
    refs = {(d.source_folder_id, d.source_uid) for d in docs if d.source_folder_id and d.source_uid}
    ids = await reads.message_ids(who.account_id, refs)
    parties = await reads.parties(d.sender for d in docs if not d.author_name and d.sender)
    return [
        DocumentItem(
            d,
            document_type_label(d.type_code, d.type_display),
            d.creation_time or d.filed_at,
            ids.get((d.source_folder_id, d.source_uid or 0)) if d.source_folder_id else None,
            d.author_name or party_for(parties, d.sender, "").name if d.sender else d.author_name,
        )
        for d in docs
    ]


def _types_by_label(types: set[dossier.TypeKey]) -> dict[str, set[dossier.TypeKey]]:
    """The document types as the patient reads them: several codes may share a label."""
    labels: dict[str, set[dossier.TypeKey]] = {}
    for code, shown in types:
        labels.setdefault(document_type_label(code, shown), set()).add((code, shown))
    return labels


async def documents(request: Request, who: WebIdentity) -> Response:
    """The dossier by date, newest first, a page at a time, of one type when one is chosen."""
    webmail = webmail_of(request)
    chosen = request.query_params.get("type", "")
    pager = requested_pager(
        request, webmail.settings.page_size, (("type", chosen),) if chosen else ()
    )
    if pager is None:
        return not_found(request, who)
    async with webmail.store.reads() as reads:
        counts = await reads.document_types(who.account_id)
        labels = _types_by_label(set(counts))
        types = labels.get(chosen, set()) if chosen else None
        pager = pager.counted(sum(n for t, n in counts.items() if types is None or t in types))
        if not pager.exists:
            return not_found(request, who)
        found = await reads.documents(
            who.account_id, types=types, offset=pager.offset, limit=pager.size
        )
        items = await _items(reads, who, found)
    return page(
        request,
        "dossier.html",
        who,
        title="Mon dossier",
        section="dossier",
        items=items,
        types=sorted(labels),
        chosen=chosen,
        pager=pager,
    )


async def _document(request: Request, who: WebIdentity, purpose: str) -> DossierDocument | None:
    try:
        document_id = int(request.path_params["id"])
    except (KeyError, ValueError):
        return None
    return await webmail_of(request).store.document(
        who.account_id, document_id, actor=actor_of(request, who), ins=who.ins, purpose=purpose
    )


async def document(request: Request, who: WebIdentity) -> Response:
    doc = await _document(request, who, "read")
    if doc is None:
        return not_found(request, who)
    # Only this document is described: the page costs the same whatever the dossier's size.
    async with webmail_of(request).store.reads() as reads:
        (item,) = await _items(reads, who, [doc])
    return page(
        request,
        "document.html",
        who,
        title=doc.title or item.type_label,
        section="dossier",
        item=item,
        doc=doc,
        is_pdf=doc.mime_type == "application/pdf" or bool(doc.rendition_blob_sha256),
        changed=request.query_params.get("modifie"),
    )


def _filename(doc: DossierDocument, mime: str) -> str:
    name = safe_filename(doc.title or "document", doc.id)
    extension = EXTENSIONS.get(mime, "")
    return name if not extension or name.lower().endswith(extension) else name + extension


async def download(request: Request, who: WebIdentity) -> Response:
    """The document as filed, or (``/pdf``) its PDF rendition when it has one."""
    pdf = request.url.path.endswith("/pdf")
    doc = await _document(request, who, "download")
    if doc is None:
        return not_found(request, who)
    if pdf and doc.rendition_blob_sha256:
        sha, mime = doc.rendition_blob_sha256, "application/pdf"
    elif pdf and doc.mime_type != "application/pdf":
        return not_found(request, who)
    else:
        sha, mime = doc.blob_sha256, doc.mime_type
    data = await webmail_of(request).store.read_blob(sha)
    media = (
        mime
        if mime in ("application/pdf", "image/png", "image/jpeg")
        else ("application/octet-stream")
    )
    return Response(
        data,
        media_type=media,
        headers={
            "Content-Disposition": content_disposition(_filename(doc, mime)),
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


async def visibility(request: Request, who: WebIdentity) -> Response:
    """mssante.md §7: the patient hides a document from professionals, or shows it again."""
    hidden = request.state.form.get("masquer") == "1"
    try:
        document_id = int(request.path_params["id"])
    except (KeyError, ValueError):
        return not_found(request, who)
    done = await webmail_of(request).store.set_hidden(
        who.account_id, document_id, hidden, actor=actor_of(request, who), ins=who.ins
    )
    if not done:
        return not_found(request, who)
    return redirect(f"/dossier/{document_id}?modifie=1")


async def save_attachment(request: Request, who: WebIdentity) -> Response:
    """Issue #6: the patient keeps an attachment that was not filed automatically."""
    webmail = webmail_of(request)
    message_id = int(request.path_params["id"])
    stored = await webmail.store.message(
        who.account_id, message_id, actor=actor_of(request, who), ins=who.ins, purpose="file"
    )
    if stored is None:
        return not_found(request, who)
    found = await asyncio.to_thread(
        attachment_payload, stored.data, int(request.path_params["part"])
    )
    if found is None:
        return not_found(request, who)
    attachment, payload = found
    message = await asyncio.to_thread(read_message, stored.data)
    parties = await webmail.store.parties([message.from_address])
    sender = party_for(parties, message.from_address, message.from_name)
    saved = SavedAttachment(
        unique_id=f"webmail:{attachment.sha256}",
        mime_type=attachment.content_type,
        title=attachment.filename,
        author=Author(name=sender.name, institution=sender.organisation),
        creation_time=message.date.astimezone(UTC)
        if message.date and message.date.tzinfo
        else None,
    )
    provenance = dossier.Provenance(
        message_id=stored.message_id,
        folder_id=stored.folder_id,
        uid=stored.uid,
        sender=message.from_address,
        actor=who.address,
        auth_method=who.method,
        ins=who.ins,
    )
    await webmail.store.file_attachment(
        who.account_id, saved, payload, provenance, datetime.now(UTC)
    )
    return redirect(f"/messages/{message_id}?enregistre={attachment.index}")


@dataclass(frozen=True)
class AccessRow:
    at: datetime
    who: str
    organisation: str
    what: str
    how: str
    yourself: bool


async def access_log(request: Request, who: WebIdentity) -> Response:
    """Issue #6 item 6: who accessed the patient's messages and documents, when, and how
    they proved who they were (storage.audit), every access, a page at a time."""
    webmail = webmail_of(request)
    pager = requested_pager(request, webmail.settings.page_size)
    if pager is None:
        return not_found(request, who)
    async with webmail.store.reads() as reads:
        found = await reads.access_log(who.ins, offset=pager.offset, limit=pager.size)
        pager = pager.counted(found.total)
        if not pager.exists:
            return not_found(request, who)
        parties = await reads.parties(e.actor for e in found.events if "@" in e.actor)
    return page(
        request,
        "access.html",
        who,
        title="Qui a accédé à mes données",
        section="acces",
        rows=[_access_row(e, parties, who) for e in found.events],
        pager=pager,
    )


def _access_row(event: AccessEvent, parties: dict[str, Party], who: WebIdentity) -> AccessRow:
    yourself = event.actor == who.address
    party = party_for(parties, event.actor, "") if "@" in event.actor else None
    return AccessRow(
        at=event.at,
        who="Vous" if yourself else (party.name if party else event.actor),
        organisation=party.organisation if party and not yourself else "",
        what=action_label(event.action),
        how=method_label(event.auth_method),
        yourself=yourself,
    )


routes = [
    Route("/dossier", login_required(documents), methods=["GET"]),
    Route("/dossier/{id:int}", login_required(document), methods=["GET"]),
    Route("/dossier/{id:int}/fichier", login_required(download), methods=["GET"]),
    Route("/dossier/{id:int}/pdf", login_required(download), methods=["GET"]),
    Route("/dossier/{id:int}/visibilite", login_required(visibility), methods=["POST"]),
    Route(
        "/messages/{id:int}/pieces/{part:int}/dossier",
        login_required(save_attachment),
        methods=["POST"],
    ),
    Route("/acces", login_required(access_log), methods=["GET"]),
]

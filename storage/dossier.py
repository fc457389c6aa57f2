"""The patient's dossier: documents filed from messages, their provenance and visibility.

mssante.md §7: each document keeps which message it came from, which author, when it was
filed, its type and date, and a visibility state: the patient may hide a document from
professionals, and a document marked invisible to the patient is never shown to them. Every
read of a document is written to the audit log, in the transaction that serves it.

Documents arrive here already parsed and checked (filing/ decides what to file); this module
only stores them, once: (patient, uniqueId) is unique, so filing the same message twice, or a
laboratory re-sending the same result, files nothing new.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal, Protocol

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage import audit
from storage.blobs import BlobRef
from storage.db import Executor
from storage.models import AuditEvent, DossierDocument

Viewer = Literal["patient", "professional", "operator"]

__all__ = [
    "FilingResult",
    "ListedDocument",
    "Provenance",
    "TypeKey",
    "Viewer",
    "count_documents",
    "document_type_counts",
    "document_types",
    "file_documents",
    "find_document",
    "get_document",
    "list_document_rows",
    "list_documents",
    "read_event",
    "set_hidden",
]


class _Author(Protocol):
    @property
    def national_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def institution(self) -> str: ...
    @property
    def specialty(self) -> str: ...


class _Document(Protocol):
    """What a document to file must tell (filing.plan.Document satisfies it)."""

    @property
    def unique_id(self) -> str: ...
    @property
    def mime_type(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def type_code(self) -> str: ...
    @property
    def type_display(self) -> str: ...
    @property
    def class_code(self) -> str: ...
    @property
    def format_code(self) -> str: ...
    @property
    def confidentiality_code(self) -> str: ...
    @property
    def creation_time(self) -> datetime | None: ...
    @property
    def service_start_time(self) -> datetime | None: ...
    @property
    def author(self) -> _Author: ...
    @property
    def replaces(self) -> str | None: ...
    @property
    def visible_to_patient(self) -> bool: ...
    @property
    def entry_uuid(self) -> str: ...


@dataclass(frozen=True)
class Provenance:
    """The message a document came from and who sent it (mssante.md §7)."""

    message_id: str | None  # the Message-ID header
    folder_id: int
    uid: int
    sender: str  # envelope sender
    actor: str  # the authenticated identity that sent it (box, certificate, peer)
    auth_method: str
    ins: str  # the patient's INS, for the audit log


@dataclass
class FilingResult:
    filed: list[DossierDocument] = field(default_factory=list)
    already_filed: list[str] = field(default_factory=list)  # uniqueIds filed before
    superseded: list[str] = field(default_factory=list)  # uniqueIds replaced (RPLC)
    unmatched_replacements: list[str] = field(default_factory=list)  # RPLC targets not found


async def file_documents(
    session: AsyncSession,
    patient_id: int,
    documents: Sequence[tuple[_Document, BlobRef, BlobRef | None]],
    provenance: Provenance,
    now: datetime,
) -> FilingResult:
    """Add each (document, content blob, rendition blob) not filed yet; apply replacements.

    The blobs must already be durable (BlobStore.put) and their rows recorded by the caller
    in this transaction.
    """
    result = FilingResult()
    actor = audit.Actor(provenance.actor, provenance.auth_method)
    for doc, content, rendition in documents:
        existing = await session.scalar(
            select(DossierDocument.id).where(
                DossierDocument.patient_id == patient_id,
                DossierDocument.unique_id == doc.unique_id,
            )
        )
        if existing is not None:
            result.already_filed.append(doc.unique_id)
            continue
        row = DossierDocument(
            patient_id=patient_id,
            unique_id=doc.unique_id[:200],
            entry_uuid=doc.entry_uuid[:100] or None,
            type_code=doc.type_code[:40],
            type_display=doc.type_display[:300],
            class_code=doc.class_code[:40],
            format_code=doc.format_code[:200],
            confidentiality_code=doc.confidentiality_code[:10],
            title=doc.title,
            mime_type=doc.mime_type[:100],
            creation_time=doc.creation_time,
            service_start_time=doc.service_start_time,
            author_national_id=doc.author.national_id[:20],
            author_name=doc.author.name[:300],
            author_institution=doc.author.institution[:300],
            author_specialty=doc.author.specialty[:300],
            blob_sha256=content.sha256,
            rendition_blob_sha256=rendition.sha256 if rendition else None,
            size=content.size,
            source_message_id=provenance.message_id,
            source_folder_id=provenance.folder_id,
            source_uid=provenance.uid,
            sender=provenance.sender[:320],
            filed_at=now,
            hidden_from_professionals=False,
            visible_to_patient=doc.visible_to_patient,
        )
        session.add(row)
        await session.flush()
        result.filed.append(row)
        if doc.replaces:
            replaced = await _supersede(session, patient_id, doc.replaces, row.id)
            (result.superseded if replaced else result.unmatched_replacements).append(
                replaced or doc.replaces
            )
        audit.record(
            session,
            actor,
            "document.file",
            object_type="document",
            object_id=str(row.id),
            patient_ins=provenance.ins,
            detail={
                "unique_id": row.unique_id,
                "message_id": provenance.message_id,
                "sender": provenance.sender,
                "replaces": doc.replaces,
            },
            at=now,
        )
    return result


async def _supersede(
    session: AsyncSession, patient_id: int, target: str, new_id: int
) -> str | None:
    """IHE ITI TF-3 §4.2.2 RPLC: the earlier version stays, marked superseded by ``new_id``.
    The association may name the earlier entry by uniqueId or by entryUUID."""
    earlier = await session.scalar(
        select(DossierDocument).where(
            DossierDocument.patient_id == patient_id,
            DossierDocument.id != new_id,
            or_(DossierDocument.unique_id == target, DossierDocument.entry_uuid == target),
        )
    )
    if earlier is None:
        return None
    earlier.superseded_by_id = new_id
    return earlier.unique_id


def _visible_to(viewer: Viewer) -> list[ColumnElement[bool]]:
    if viewer == "patient":
        return [DossierDocument.visible_to_patient.is_(True)]
    if viewer == "professional":
        return [DossierDocument.hidden_from_professionals.is_(False)]
    return []


TypeKey = tuple[str, str]  # (typeCode, its display name) as filed


def _where(
    patient_id: int | BindParameter[int],
    viewer: Viewer,
    include_superseded: bool,
    types: Collection[TypeKey] | None,
) -> list[ColumnElement[bool]]:
    """The conditions selecting what ``list_documents`` and ``count_documents`` see."""
    where = [DossierDocument.patient_id == patient_id, *_visible_to(viewer)]
    if not include_superseded:
        where.append(DossierDocument.superseded_by_id.is_(None))
    if types is not None:
        where.append(
            or_(
                false(),
                *(
                    and_(DossierDocument.type_code == code, DossierDocument.type_display == shown)
                    for code, shown in types
                ),
            )
        )
    return where


@dataclass(frozen=True)
class ListedDocument:
    """What a list of documents shows of each one (``list_document_rows``)."""

    id: int
    title: str
    type_code: str
    type_display: str
    creation_time: datetime | None
    filed_at: datetime
    author_name: str
    author_institution: str
    sender: str
    source_folder_id: int | None
    source_uid: int | None
    hidden_from_professionals: bool
    superseded_by_id: int | None


_LISTED_COLUMNS = [getattr(DossierDocument, f.name) for f in fields(ListedDocument)]
# Newest first: by document date (the filing date when it has none), then filing date; the
# index ix_dossier_documents_patient_date holds a patient's documents in this order.
_NEWEST_FIRST = (
    func.coalesce(DossierDocument.creation_time, DossierDocument.filed_at).desc(),
    DossierDocument.filed_at.desc(),
    DossierDocument.id.desc(),
)


def _newest_first(
    stmt: Select[Any], where: list[ColumnElement[bool]], offset: int, limit: int | None
) -> Select[Any]:
    return stmt.where(*where).order_by(*_NEWEST_FIRST).offset(offset).limit(limit)


async def list_documents(
    session: AsyncSession,
    patient_id: int,
    *,
    viewer: Viewer,
    include_superseded: bool = True,
    types: Collection[TypeKey] | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> list[DossierDocument]:
    """The documents ``viewer`` may see, newest first (by document date, then filing), or
    one page of them; ``types`` keeps only those (typeCode, display) pairs."""
    where = _where(patient_id, viewer, include_superseded, types)
    stmt = _newest_first(select(DossierDocument), where, offset, limit)
    return list((await session.scalars(stmt)).all())


async def list_document_rows(
    executor: Executor,
    patient_id: int,
    *,
    viewer: Viewer,
    types: Collection[TypeKey] | None = None,
    offset: int,
    limit: int,
) -> list[ListedDocument]:
    """One page of what ``list_documents`` lists (superseded documents included), only the
    columns a list shows, without loading ORM entities (the webmail's dossier page)."""
    kinds = None if types is None else frozenset(types)
    params = {"patient": patient_id, "offset": offset, "limit": limit}
    rows = await executor.execute(_listed_rows(viewer, kinds), params)
    return [ListedDocument(*row) for row in rows]


# Each page view runs these: built once per (viewer, type filter), they keep their compiled
# form in SQLAlchemy's cache instead of being built and keyed again on every request.
@lru_cache(maxsize=256)
def _listed_rows(viewer: Viewer, types: frozenset[TypeKey] | None) -> Select[Any]:
    where = _where(bindparam("patient"), viewer, True, types)
    stmt = select(*_LISTED_COLUMNS).where(*where).order_by(*_NEWEST_FIRST)
    return stmt.offset(bindparam("offset")).limit(bindparam("limit"))


@lru_cache(maxsize=16)
def _type_counts(viewer: Viewer) -> Select[str, str, int]:
    where = _where(bindparam("patient"), viewer, True, None)
    columns = (DossierDocument.type_code, DossierDocument.type_display)
    return select(*columns, func.count()).where(*where).group_by(*columns)


async def count_documents(
    session: Executor,
    patient_id: int,
    *,
    viewer: Viewer,
    include_superseded: bool = True,
    types: Collection[TypeKey] | None = None,
) -> int:
    """How many documents ``list_documents`` lists without a limit."""
    stmt = select(func.count()).where(*_where(patient_id, viewer, include_superseded, types))
    return int(await session.scalar(stmt) or 0)


async def document_types(session: Executor, patient_id: int, *, viewer: Viewer) -> set[TypeKey]:
    """The (typeCode, display) pairs among the documents ``viewer`` may see."""
    rows = await session.execute(
        select(DossierDocument.type_code, DossierDocument.type_display)
        .where(*_where(patient_id, viewer, True, None))
        .distinct()
    )
    return {(code, shown) for code, shown in rows.all()}


async def document_type_counts(
    executor: Executor, patient_id: int, *, viewer: Viewer
) -> dict[TypeKey, int]:
    """How many documents ``viewer`` may see of each (typeCode, display) pair: the types and,
    summed, what ``count_documents`` counts (of all types or some), in one query."""
    rows = await executor.execute(_type_counts(viewer), {"patient": patient_id})
    return {(code, shown): count for code, shown, count in rows}


async def get_document(
    session: AsyncSession,
    patient_id: int,
    document_id: int,
    *,
    viewer: Viewer,
    actor: audit.Actor,
    ins: str,
    purpose: str = "read",
) -> DossierDocument | None:
    """One document ``viewer`` may see, the read written to the audit log (mssante.md §7).

    A document the viewer may not see is reported as absent, and the refused attempt is
    logged too.
    """
    doc = await find_document(session, patient_id, document_id, viewer=viewer)
    session.add(AuditEvent(**read_event(doc, document_id, viewer=viewer, actor=actor, ins=ins,
                                        purpose=purpose)))  # fmt: skip
    return doc


async def find_document(
    session: AsyncSession, patient_id: int, document_id: int, *, viewer: Viewer
) -> DossierDocument | None:
    """The document if ``viewer`` may see it; a caller shows it only with its
    :func:`read_event` recorded (``get_document`` does both in one transaction)."""
    return await session.scalar(
        select(DossierDocument).where(
            DossierDocument.patient_id == patient_id,
            DossierDocument.id == document_id,
            *_visible_to(viewer),
        )
    )


def read_event(
    doc: DossierDocument | None,
    document_id: int,
    *,
    viewer: Viewer,
    actor: audit.Actor,
    ins: str,
    purpose: str,
) -> dict[str, Any]:
    """The audit event of reading a document, or of a refused attempt (``doc`` None)."""
    return audit.event_values(
        actor,
        f"document.{purpose}" if doc is not None else "document.refused",
        object_type="document",
        object_id=str(document_id),
        patient_ins=ins,
        detail={"viewer": viewer} if doc is not None else {"viewer": viewer, "found": False},
    )


async def set_hidden(
    session: AsyncSession,
    patient_id: int,
    document_id: int,
    hidden: bool,
    *,
    actor: audit.Actor,
    ins: str,
) -> DossierDocument | None:
    """The patient hides (or shows again) a document from professionals (mssante.md §7)."""
    doc = await session.scalar(
        select(DossierDocument).where(
            DossierDocument.patient_id == patient_id,
            DossierDocument.id == document_id,
            DossierDocument.visible_to_patient.is_(True),
        )
    )
    if doc is None:
        return None
    doc.hidden_from_professionals = hidden
    audit.record(
        session,
        actor,
        "document.hide" if hidden else "document.show",
        object_type="document",
        object_id=str(document_id),
        patient_ins=ins,
    )
    return doc

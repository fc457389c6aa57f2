"""The descriptive metadata of a document, from XDS metadata and/or its CDA header.

A :class:`Description` is the part of a :class:`~filing.model.Document` that says what the
document is (title, type, dates, author...). XDS metadata wins; the CDA header fills what a
thin METADATA.XML leaves empty (:func:`merged` says which fields it filled), and alone
describes a CDA sent outside XDM.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime

from filing.cda import CdaHeader
from filing.metadata import DocumentEntry
from filing.model import Author, Document

__all__ = ["Description", "from_cda", "from_entry", "merged", "to_document"]


@dataclass(frozen=True)
class Description:
    unique_id: str = ""
    title: str = ""
    type_code: str = ""
    type_display: str = ""
    class_code: str = ""
    format_code: str = ""
    confidentiality_code: str = ""
    creation_time: datetime | None = None
    service_start_time: datetime | None = None
    author: Author = field(default_factory=Author)
    replaces: str | None = None


def from_entry(entry: DocumentEntry) -> Description:
    """ITI TF-3 §4.2.3.2: the DocumentEntry attributes filing keeps."""
    return Description(
        unique_id=entry.unique_id,
        title=entry.title,
        type_code=entry.type_code.code if entry.type_code else "",
        type_display=entry.type_code.display if entry.type_code else "",
        class_code=entry.class_code.code if entry.class_code else "",
        format_code=entry.format_code.code if entry.format_code else "",
        confidentiality_code=entry.confidentiality_code,
        creation_time=entry.creation_time,
        service_start_time=entry.service_start_time,
        author=entry.author,
    )


def from_cda(header: CdaHeader) -> Description:
    """The CDA R2 header's counterparts (CI-SIS maps them to the XDS attributes)."""
    return Description(
        unique_id=header.document_id,
        title=header.title,
        type_code=header.code,
        type_display=header.code_display,
        confidentiality_code=header.confidentiality_code,
        creation_time=header.effective_time,
        service_start_time=header.service_start_time,
        author=header.author,
        replaces=header.replaces,
    )


def _merge_author(primary: Author, fallback: Author) -> tuple[Author, list[str]]:
    filled = {
        f.name: getattr(fallback, f.name)
        for f in fields(Author)
        if not getattr(primary, f.name) and getattr(fallback, f.name)
    }
    return replace(primary, **filled), [f"author {name}" for name in filled]


def merged(primary: Description, fallback: Description) -> tuple[Description, list[str]]:
    """``primary`` with its empty fields taken from ``fallback``; and the names filled."""
    filled: dict[str, object] = {}
    names: list[str] = []
    for item in fields(Description):
        if item.name == "author":
            author, author_names = _merge_author(primary.author, fallback.author)
            if author_names:
                filled["author"] = author
                names.extend(author_names)
            continue
        mine, theirs = getattr(primary, item.name), getattr(fallback, item.name)
        if mine in ("", None) and theirs not in ("", None):
            filled[item.name] = theirs
            names.append(item.name)
    return replace(primary, **filled), names  # type: ignore[arg-type]


def to_document(
    description: Description,
    *,
    content: bytes,
    mime_type: str,
    source: str,
    file_name: str,
    rendition: bytes | None = None,
    patient_id: str = "",
    visible_to_patient: bool = True,
    confidentiality_codes: tuple[str, ...] = (),
    entry_uuid: str = "",
) -> Document:
    """The Document to file: a description plus the bytes and where they came from."""
    return Document(
        unique_id=description.unique_id,
        content=content,
        mime_type=mime_type,
        title=description.title,
        source=source,
        file_name=file_name,
        rendition=rendition,
        type_code=description.type_code,
        type_display=description.type_display,
        class_code=description.class_code,
        format_code=description.format_code,
        confidentiality_code=description.confidentiality_code,
        creation_time=description.creation_time,
        service_start_time=description.service_start_time,
        author=description.author,
        replaces=description.replaces,
        patient_id=patient_id,
        visible_to_patient=visible_to_patient,
        confidentiality_codes=confidentiality_codes,
        entry_uuid=entry_uuid,
    )

"""The data a filing plan is made of, and the one exception the readers raise.

Pure data, no behaviour: :mod:`filing.plan` builds these from a message, the filing worker
stores them. Every value is immutable so a plan can be handed between threads as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

__all__ = [
    "DEFAULT_FILED_TYPES",
    "Author",
    "Document",
    "FilingPlan",
    "FilingSettings",
    "Refusal",
    "Refused",
]

# The plain attachment types filed by default, by *detected* type (docs/mssante.md §7).
DEFAULT_FILED_TYPES: Final = frozenset(
    {"application/pdf", "image/jpeg", "image/png", "image/tiff", "application/dicom"}
)


@dataclass(frozen=True)
class FilingSettings:
    """Bounds and switches of the filing plan; the defaults suit the patient domain."""

    filed_types: frozenset[str] = DEFAULT_FILED_TYPES  # plain attachments filed (detected type)
    max_entries: int = 100  # entries in one ZIP
    max_total_size: int = 200 * 1024 * 1024  # total uncompressed bytes of one archive
    max_ratio: int = 100  # uncompressed/compressed per entry and overall
    max_nesting: int = 1  # ZIP inside ZIP allowed this many levels (then refused)
    max_xml_size: int = 20 * 1024 * 1024
    allow_test_ins: bool = False  # accept the test (…4.10) and demo (…4.11) INS OIDs
    # Our choice: the ratio of an entry is only judged from this many uncompressed bytes up
    # (and the overall ratio from this many in total), since a few hundred bytes of blank
    # HTML legitimately compress more than 100:1 and say nothing about a bomb.
    ratio_floor: int = 64 * 1024
    # Our choice: MIME parts looked at in one message; the rest is ignored (with a note).
    max_parts: int = 500


@dataclass(frozen=True)
class Author:
    """Who wrote a document (XDS author, CDA ``author/assignedAuthor``)."""

    national_id: str = ""  # RPPS/ADELI national identifier (docs/mssante.md §3)
    name: str = ""  # "given family"
    institution: str = ""
    specialty: str = ""  # the display name when given, else the code


@dataclass(frozen=True)
class Document:
    """One document to file in the recipient's dossier (docs/mssante.md §7)."""

    unique_id: str  # XDM uniqueId; for plain attachments "sha256:<hex of content>"
    content: bytes  # the CDA XML, or the plain file
    mime_type: str  # detected from content, never trusted from the declaration
    title: str
    source: str  # "xdm" | "attachment"
    file_name: str  # name inside the archive / attachment file name
    rendition: bytes | None = None  # PDF next to the CDA, or the PDF embedded in an N1 CDA
    type_code: str = ""
    type_display: str = ""
    class_code: str = ""
    format_code: str = ""
    confidentiality_code: str = ""
    creation_time: datetime | None = None  # timezone-aware UTC
    service_start_time: datetime | None = None
    author: Author = Author()
    replaces: str | None = None  # uniqueId (or raw id, see filing.xdm) of the replaced document
    patient_id: str = ""  # INS as found (documents from XDM)
    visible_to_patient: bool = True  # False for confidentialityCode INVISIBLE_PATIENT
    # Every confidentiality code found (XDS allows several, e.g. "N" and "MASQUE_PS").
    confidentiality_codes: tuple[str, ...] = ()
    # IHE XDS entryUUID of the DocumentEntry (the ExtrinsicObject id): a later RPLC
    # association may name the replaced document by it.
    entry_uuid: str = ""


@dataclass(frozen=True)
class Refusal:
    """Why an attachment (or all of an archive) is not filed."""

    code: str  # "903"/"904"/"905" (docs/mssante.md §5) or a slug, see filing/plan.py
    reason: str  # plain English sentence naming what was wrong
    attachment: str  # the attachment's file name ("part N" when it has none)


@dataclass(frozen=True)
class FilingPlan:
    """What to file from one message for one patient, and what was refused."""

    documents: tuple[Document, ...]
    refusals: tuple[Refusal, ...]
    codes_declared: tuple[str, ...] = ()  # X-MSS-CODECDA values (docs/mssante.md §5)
    # Cross-check findings that are not refusals (a CODECDA no document carries, a
    # thin METADATA.XML completed from the CDA header, a type not filed...).
    notes: tuple[str, ...] = ()
    ins_declared: str = ""  # X-MSS-INS as sent ("O", "N" or "")


class Refused(Exception):
    """Raised by the readers (archive, XML, XDM) when input must be refused.

    The caller turns it into a :class:`Refusal` naming the attachment.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason

    def refusal(self, attachment: str) -> Refusal:
        return Refusal(code=self.code, reason=self.reason, attachment=attachment)

"""From a checked IHE_XDM.ZIP to the documents it files (docs/mssante.md §6).

IHE ITI TF-1 §16 / ITI TF-2 §3.32 (XDM, Distribute Document Set on Media): an archive holds
``IHE_XDM/<subset>/METADATA.XML`` per submission set, next to the documents its
DocumentEntries name by ``URI``. All or nothing: any problem in any subset raises
:class:`~filing.model.Refused` and nothing of the archive is filed.

Checks, per DocumentEntry (after :meth:`~filing.archive.SafeArchive.verify_contents`):

* ``patientId`` (else the ``sourcePatientId`` slot) is the recipient's INS (903/904/905,
  :mod:`filing.ins`); so are a ``sourcePatientId`` issued under an INS authority, the
  SubmissionSet's ``patientId`` and the INS of the CDA's recordTarget;
* the file named by ``URI`` exists in the subset (``xdm-missing-file``), has the declared
  ``size`` (``size-mismatch``) and SHA-1 ``hash`` (``hash-mismatch``), and a content that
  does not contradict ``mimeType`` (``type-mismatch``);
* uniqueIds are unique in the archive (``xdm-invalid``).

Choices (ours):

* ``replaces``: the target of an RPLC (or XFRM_RPLC) association whose source is the entry.
  In XDM the target is usually the entryUUID of a document sent earlier: the target's
  uniqueId when the target is an entry of this archive; else the target itself when it is
  a uniqueId of this archive; else the CDA's ``relatedDocument[@typeCode='RPLC']/
  parentDocument/id`` (uniqueId form, ``root^ext``), the same document named by its
  uniqueId; else the raw target id (the dossier also matches it against the ``entry_uuid``
  it keeps for every XDM document). A CDA RPLC without any association is honoured too
  (with a note).
* ``entry_uuid``: the ExtrinsicObject id when it is a ``urn:uuid:`` (a symbolic id such as
  ``Document01`` is only meaningful inside its submission).
* Rendition: the PDF embedded in an N1 CDA; else ``DOCxxxx.PDF`` next to ``DOCxxxx.XML``
  when no DocumentEntry names that PDF itself.
* A DocumentEntry without ``size`` or ``hash`` is filed with a note saying what could not
  be verified; one whose detected type is neither CDA nor one of ``filed_types`` is
  skipped with a note (like a plain attachment of such a type).
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass, field, replace
from typing import Final

from filing.archive import SafeArchive
from filing.cda import TYPE_MISMATCH, CdaHeader, read_cda
from filing.describe import from_cda, from_entry, merged, to_document
from filing.detect import PDF_TYPE, XML_TYPE, contradicts, detect_type
from filing.hl7 import parse_cx
from filing.ins import INS_ABSENT, INS_OIDS, check_cda_patient, check_patient_id
from filing.metadata import DocumentEntry, SubmissionMetadata, read_metadata
from filing.model import Document, FilingSettings, Refused

__all__ = [
    "HASH_MISMATCH",
    "SIZE_MISMATCH",
    "XDM_INVALID",
    "XDM_MISSING_FILE",
    "XdmOutcome",
    "metadata_paths",
    "plan_xdm",
]

HASH_MISMATCH: Final = "hash-mismatch"
SIZE_MISMATCH: Final = "size-mismatch"
XDM_INVALID: Final = "xdm-invalid"
XDM_MISSING_FILE: Final = "xdm-missing-file"

_ROOT: Final = "ihe_xdm"
_METADATA: Final = "metadata.xml"


@dataclass
class XdmOutcome:
    """What one archive files, the notes it leaves, and how many CDA carried an INS."""

    documents: list[Document] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cda_count: int = 0
    cda_with_ins: int = 0


def metadata_paths(archive: SafeArchive) -> list[str]:
    """``IHE_XDM/<subset>/METADATA.XML`` entries (ITI TF-2 §3.32), case-insensitively."""
    found = []
    for name in archive.names:
        parts = name.split("/")
        if len(parts) == 3 and parts[0].casefold() == _ROOT and parts[2].casefold() == _METADATA:
            found.append(name)
    return sorted(found)


@dataclass(frozen=True)
class _Context:
    archive: SafeArchive
    recipient_ins: str
    settings: FilingSettings
    subset: str  # "IHE_XDM/SUBSET01"
    metadata: SubmissionMetadata


def plan_xdm(archive: SafeArchive, recipient_ins: str, settings: FilingSettings) -> XdmOutcome:
    """Plan an XDM archive whose :func:`metadata_paths` is not empty; raises Refused."""
    archive.verify_contents()
    outcome = XdmOutcome()
    seen: set[str] = set()
    for path in metadata_paths(archive):
        where = f"{archive.label}: {path}"
        metadata = read_metadata(archive.read(path), where, settings.max_xml_size)
        if not metadata.entries:
            raise Refused(XDM_INVALID, f"{where} declares no DocumentEntry")
        context = _Context(archive, recipient_ins, settings, posixpath.dirname(path), metadata)
        named = {_resolve(context, e.uri) for e in metadata.entries if e.uri}
        for entry in metadata.entries:
            document = _plan_entry(context, entry, named, outcome)
            if document is None:
                continue
            if document.unique_id in seen:
                raise Refused(
                    XDM_INVALID,
                    f"{archive.label}: uniqueId {document.unique_id} is used by two documents",
                )
            seen.add(document.unique_id)
            outcome.documents.append(document)
        if metadata.submission_patient_id:  # ITI TF-3 §4.2.3.3, after the documents' own
            check_patient_id(
                metadata.submission_patient_id,
                recipient_ins,
                settings,
                f"{archive.label}: the SubmissionSet patientId in {path}",
            )
    return outcome


def _resolve(context: _Context, uri: str) -> str | None:
    """The archive entry a URI (relative to the subset) names, if it exists."""
    return context.archive.find(f"{context.subset}/{uri}")


def _check_patient(context: _Context, entry: DocumentEntry, document: str) -> str:
    """ITI TF-3 §4.2.3.2 DocumentEntry.patientId and .sourcePatientId (docs/mssante.md §6)."""
    settings, recipient = context.settings, context.recipient_ins
    if not entry.patient_id and not entry.source_patient_id:
        raise Refused(INS_ABSENT, f"{context.archive.label}: {document} has no patientId")
    patient = entry.patient_id or entry.source_patient_id
    where = f"{context.archive.label}: the %s of {document}"
    ins = check_patient_id(patient, recipient, settings, where % "patientId")
    source = parse_cx(entry.source_patient_id)
    if entry.patient_id and source.authority_oid in INS_OIDS:
        check_patient_id(entry.source_patient_id, recipient, settings, where % "sourcePatientId")
    return ins


def _check_file(entry: DocumentEntry, content: bytes, where: str) -> str | None:
    """ITI TF-3 §4.2.3.2 DocumentEntry.size and .hash (SHA-1, hex); a note when unchecked."""
    if entry.size is not None and entry.size != len(content):
        declared = "not a number" if entry.size < 0 else f"{entry.size} bytes"
        raise Refused(
            SIZE_MISMATCH,
            f"{where} is {len(content)} bytes but METADATA.XML declares {declared}",
        )
    if entry.hash:
        actual = hashlib.sha1(content, usedforsecurity=False).hexdigest()
        if actual != entry.hash:
            raise Refused(
                HASH_MISMATCH,
                f"{where} has SHA-1 {actual} but METADATA.XML declares {entry.hash}",
            )
    missing = [
        name for name, absent in (("size", entry.size is None), ("hash", not entry.hash)) if absent
    ]
    return (
        f"{where}: METADATA.XML gives no {' and no '.join(missing)}, not verified"
        if missing
        else None
    )


def _plan_entry(
    context: _Context, entry: DocumentEntry, named: set[str | None], outcome: XdmOutcome
) -> Document | None:
    archive, settings = context.archive, context.settings
    if not entry.uri:
        raise Refused(XDM_INVALID, f"{archive.label}: DocumentEntry {entry.entry_id!r} has no URI")
    path = _resolve(context, entry.uri)
    document = f"{context.subset}/{entry.uri}"
    where = f"{archive.label}: {document}"
    if path is None:
        raise Refused(XDM_MISSING_FILE, f"{where} is named by METADATA.XML but not in the archive")
    ins = _check_patient(context, entry, document)
    content = archive.read(path)
    note = _check_file(entry, content, where)
    if note:
        outcome.notes.append(note)
    detected = detect_type(content)
    if entry.mime_type and contradicts(entry.mime_type, detected):
        raise Refused(
            TYPE_MISMATCH, f"{where} is declared {entry.mime_type} but its content is {detected}"
        )
    header = read_cda(content, where, settings.max_xml_size) if detected == XML_TYPE else None
    if header is None and detected not in settings.filed_types:
        outcome.notes.append(f"{where}: not filed, its type {detected} is not one filed")
        return None
    description = from_entry(entry)
    rendition = None
    if header is not None:
        outcome.cda_count += 1
        if check_cda_patient(
            header.patient_ids,
            context.recipient_ins,
            settings,
            f"{archive.label}: the recordTarget INS of {document}",
        ):
            outcome.cda_with_ins += 1
        _compare(entry, header, where, outcome.notes)
        # the CDA fills the gaps of a thin METADATA.XML; "replaces" is decided below
        description, filled = merged(description, replace(from_cda(header), replaces=None))
        if filled:
            outcome.notes.append(
                f"{where}: {', '.join(filled)} taken from the CDA header (absent from METADATA.XML)"
            )
        rendition = header.rendition or _sibling_pdf(archive, path, named)
    if not description.unique_id:
        # our choice: a document without any uniqueId is still filed, by content hash
        unique_id = "sha256:" + hashlib.sha256(content).hexdigest()
        outcome.notes.append(f"{where}: no uniqueId in METADATA.XML nor CDA, using {unique_id}")
        description = replace(description, unique_id=unique_id)
    description = replace(
        description, replaces=_replaced(context, entry, header, where, outcome.notes)
    )
    return to_document(
        description,
        content=content,
        mime_type=XML_TYPE if header is not None else detected,
        source="xdm",
        file_name=path,
        rendition=rendition,
        patient_id=ins,
        visible_to_patient=entry.visible_to_patient,
        confidentiality_codes=tuple(coded.code for coded in entry.confidentiality),
        # ITI TF-3 §4.2.3.2 entryUUID; a symbolic id ("Document01") means nothing later
        entry_uuid=entry.entry_id if entry.entry_id.startswith("urn:uuid:") else "",
    )


def _compare(entry: DocumentEntry, header: CdaHeader, where: str, notes: list[str]) -> None:
    """Cross-check METADATA.XML against the CDA header; disagreements are notes."""
    if entry.type_code and header.code and entry.type_code.code != header.code:
        notes.append(
            f"{where}: METADATA.XML typeCode {entry.type_code.code} differs from the CDA "
            f"code {header.code}"
        )
    if entry.unique_id and header.document_id and entry.unique_id != header.document_id:
        notes.append(
            f"{where}: METADATA.XML uniqueId {entry.unique_id} differs from the CDA id "
            f"{header.document_id}"
        )


def _sibling_pdf(archive: SafeArchive, path: str, named: set[str | None]) -> bytes | None:
    """``DOC0001.PDF`` next to ``DOC0001.XML`` (docs/mssante.md §6), unless it is an entry."""
    sibling = archive.find(posixpath.splitext(path)[0] + ".PDF")
    if sibling is None or sibling in named:
        return None
    pdf = archive.read(sibling)
    detected = detect_type(pdf)
    if detected != PDF_TYPE:
        raise Refused(
            TYPE_MISMATCH,
            f"{archive.label}: {sibling} should be the PDF rendition but is {detected}",
        )
    return pdf


def _replaced(
    context: _Context,
    entry: DocumentEntry,
    header: CdaHeader | None,
    where: str,
    notes: list[str],
) -> str | None:
    """ITI TF-3 §4.2.2.2 RPLC: what ``entry`` replaces (see the module's choices)."""
    metadata = context.metadata
    cda_target = header.replaces if header is not None else None
    targets = [
        association.target
        for association in metadata.associations
        if association.replaces and association.source in (entry.entry_id, entry.unique_id)
    ]
    if not targets:
        if cda_target:
            notes.append(
                f"{where}: replaces {cda_target} (CDA relatedDocument RPLC, no RPLC association)"
            )
        return cda_target
    target = targets[0]
    by_entry_id = {other.entry_id: other.unique_id for other in metadata.entries}
    if by_entry_id.get(target):
        return by_entry_id[target]
    if target in by_entry_id.values():
        return target
    return cda_target or target

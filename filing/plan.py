"""The filing plan of one message delivered to one patient (issue #4, docs/mssante.md §6-§7).

:func:`plan_filing` turns the raw message into the documents to file in the recipient's
dossier and the refusals to report to the sender. It is pure: no file system, no clock, no
network, deterministic for given bytes and settings, and it never raises on bad input (a
broken part is a refusal or a note). The worker runs it in a thread.

Each attachment is typed by its content (:mod:`filing.detect`); a declaration that
contradicts the content is refused (``type-mismatch``). Then:

* an XDM archive (a ZIP holding ``IHE_XDM/<subset>/METADATA.XML``, whatever its name) is
  checked (:mod:`filing.archive`) and planned (:mod:`filing.xdm`), all or nothing;
* a CDA R2 document sent alone is filed with its header's metadata (type text/xml);
* a plain file whose detected type is in ``settings.filed_types`` is filed as is;
* anything else is not filed, and not refused either (a note says so).

Refusal codes (:class:`~filing.model.Refusal`; a refused archive files nothing of itself,
the other attachments of the message are still planned):

===========================  ===============================================================
``903``                      INS absent: no patientId, not an INS authority, or a test/demo
                             INS while ``allow_test_ins`` is off (docs/mssante.md §5)
``904``                      INS mismatch: a patientId, sourcePatientId, SubmissionSet
                             patientId or CDA recordTarget INS is another patient's
``905``                      incomplete INS: wrong length, characters or key
``archive-too-many-entries`` more entries than ``max_entries``
``archive-too-large``        declared uncompressed total above ``max_total_size``
``archive-bomb``             ratio above ``max_ratio``, overlapping entries, or an entry
                             inflating beyond its declared size
``archive-path``             absolute name, drive letter, ``..``, backslash, control chars
``archive-duplicate``        two entries with the same name (case-insensitive)
``archive-encrypted``        an encrypted entry
``archive-nested``           a ZIP nested deeper than ``max_nesting``
``archive-unsupported``      a compression method other than stored or deflate
``archive-corrupt``          unreadable ZIP, truncated data, CRC or size error
``xdm-invalid``              METADATA.XML without DocumentEntry, entry without URI,
                             duplicate uniqueId, or an IHE_XDM.ZIP without METADATA.XML
``xdm-missing-file``         a URI naming a file absent from the subset
``size-mismatch``            the file's size differs from the DocumentEntry ``size``
``hash-mismatch``            the file's SHA-1 differs from the DocumentEntry ``hash``
``type-mismatch``            declared type (MIME part, ``mimeType``, CDA ``mediaType``,
                             rendition) contradicted by the content
``xml-forbidden``            DOCTYPE, entity declaration or external reference
``xml-invalid``              malformed XML, wrong root, bad base64 in an N1 body
``xml-too-large``            XML above ``max_xml_size``
``mime-broken``              the message or a part cannot be decoded (truncated base64)
``unreadable``               last resort: an unexpected error reading one attachment
===========================  ===============================================================
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Final

from filing.archive import open_archive
from filing.cda import TYPE_MISMATCH, read_cda
from filing.describe import Description, from_cda, to_document
from filing.detect import XML_TYPE, ZIP_TYPE, contradicts, detect_type, looks_like_cda
from filing.ins import check_cda_patient
from filing.message import Attachment, MessageParts, read_message, strip_prefix
from filing.model import Author, Document, FilingPlan, FilingSettings, Refusal, Refused
from filing.xdm import XDM_INVALID, XdmOutcome, metadata_paths, plan_xdm

__all__ = [
    "MIME_BROKEN",
    "UNREADABLE",
    "Author",
    "Document",
    "FilingPlan",
    "FilingSettings",
    "Refusal",
    "plan_filing",
]

MIME_BROKEN: Final = "mime-broken"  # the message or a part cannot be decoded
UNREADABLE: Final = "unreadable"  # last resort: an unexpected error while reading a part
_XDM_NAME: Final = "ihe_xdm.zip"
_TYPE_LABELS: Final = {
    "application/pdf": "PDF document",
    "image/jpeg": "JPEG image",
    "image/png": "PNG image",
    "image/tiff": "TIFF image",
    "application/dicom": "DICOM image",
}


@dataclass
class _Context:
    recipient_ins: str
    settings: FilingSettings
    subject: str
    subject_fallback: bool


def plan_filing(
    message: bytes,
    recipient_ins: str,
    settings: FilingSettings = FilingSettings(),  # noqa: B008 - frozen, shared safely
    *,
    subject_fallback: bool = True,
) -> FilingPlan:
    """Plan the filing of ``message`` into the dossier of the patient ``recipient_ins``.

    ``recipient_ins`` is the 15-character INS of the mailbox (``<INS>@patient.mssante.fr``).
    With ``subject_fallback``, a plain attachment without a file name is titled from the
    Subject (its ``XDM/1.0/DDM+`` prefix removed).
    """
    parts = read_message(message, settings.max_parts)
    if parts.unreadable:
        reason = f"the message cannot be read as MIME ({parts.unreadable})"
        return FilingPlan((), (Refusal(MIME_BROKEN, reason, "message"),))
    context = _Context(recipient_ins, settings, parts.subject, subject_fallback)
    outcome = XdmOutcome(notes=list(parts.notes))
    refusals: list[Refusal] = []
    for attachment in parts.attachments:
        try:
            _plan_attachment(attachment, context, outcome)
        except Refused as refused:
            refusals.append(refused.refusal(attachment.label))
        except Exception as error:  # a bug must not stop the other attachments
            reason = f"{attachment.label} could not be read ({type(error).__name__})"
            refusals.append(Refusal(UNREADABLE, reason, attachment.label))
    documents = _unique(outcome)
    return FilingPlan(
        documents=tuple(documents),
        refusals=tuple(refusals),
        codes_declared=parts.codes_declared,
        # the header cross-checks say nothing useful about content that was refused
        notes=tuple(outcome.notes + ([] if refusals else _cross_checks(parts, documents, outcome))),
        ins_declared=parts.ins_declared,
    )


def _plan_attachment(attachment: Attachment, context: _Context, outcome: XdmOutcome) -> None:
    """File ``attachment`` into ``outcome`` (all of it or nothing), or raise Refused."""
    label, settings = attachment.label, context.settings
    if attachment.broken:
        raise Refused(MIME_BROKEN, f"{label}: {attachment.broken}")
    content = attachment.content
    detected = detect_type(content)
    if contradicts(attachment.declared_type, detected):
        raise Refused(
            TYPE_MISMATCH,
            f"{label} is declared {attachment.declared_type} but its content is {detected}",
        )
    if detected == ZIP_TYPE:
        _plan_zip(attachment, context, outcome)
    elif detected == XML_TYPE and looks_like_cda(content):
        _plan_cda(attachment, context, outcome)
    elif detected in settings.filed_types:
        outcome.documents.append(
            to_document(
                Description(
                    unique_id=_content_id(content), title=_title(attachment, context, detected)
                ),
                content=content,
                mime_type=detected,
                source="attachment",
                file_name=attachment.file_name,
            )
        )
    else:
        outcome.notes.append(f"{label}: not filed, its type {detected} is not one filed")


def _plan_zip(attachment: Attachment, context: _Context, outcome: XdmOutcome) -> None:
    # Every ZIP passes the central-directory checks, XDM or not: a bomb is reported.
    archive = open_archive(attachment.content, attachment.label, context.settings)
    if metadata_paths(archive):
        planned = plan_xdm(archive, context.recipient_ins, context.settings)
        outcome.documents.extend(planned.documents)
        outcome.notes.extend(planned.notes)
        outcome.cda_count += planned.cda_count
        outcome.cda_with_ins += planned.cda_with_ins
    elif attachment.file_name.casefold() == _XDM_NAME:
        raise Refused(
            XDM_INVALID, f"{attachment.label} has no IHE_XDM/<subset>/METADATA.XML (not XDM)"
        )
    else:
        outcome.notes.append(f"{attachment.label}: a ZIP archive that is not XDM, not filed")


def _plan_cda(attachment: Attachment, context: _Context, outcome: XdmOutcome) -> None:
    """A CDA R2 document attached alone (outside XDM): filed with its header metadata."""
    label = attachment.label
    header = read_cda(attachment.content, label, context.settings.max_xml_size)
    if header is None:  # the sniff was wrong: XML, but not a ClinicalDocument
        outcome.notes.append(f"{label}: not filed, XML that is not a CDA document")
        return
    outcome.cda_count += 1
    ins = check_cda_patient(
        header.patient_ids,
        context.recipient_ins,
        context.settings,
        f"{label}: the recordTarget INS",
    )
    if ins:
        outcome.cda_with_ins += 1
    else:
        outcome.notes.append(f"{label}: the CDA carries no INS, filed on the recipient's address")
    description = from_cda(header)
    outcome.documents.append(
        to_document(
            # our choice: like every attachment, identified by its content hash
            replace(
                description,
                unique_id=_content_id(attachment.content),
                title=description.title or _title(attachment, context, XML_TYPE),
            ),
            content=attachment.content,
            mime_type=XML_TYPE,
            source="attachment",
            file_name=attachment.file_name,
            rendition=header.rendition,
            patient_id=ins,
        )
    )


def _content_id(content: bytes) -> str:
    """The uniqueId of an attachment: ``sha256:<hex>`` of its content."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _title(attachment: Attachment, context: _Context, detected: str) -> str:
    """The file name; else the Subject without ``XDM/1.0/DDM+``; else the type's name."""
    if attachment.file_name:
        return attachment.file_name
    subject = strip_prefix(context.subject) if context.subject_fallback else ""
    return subject or _TYPE_LABELS.get(detected, "Document")


def _unique(outcome: XdmOutcome) -> list[Document]:
    """One document per uniqueId (the same file attached twice is filed once)."""
    documents: dict[str, Document] = {}
    for document in outcome.documents:
        if document.unique_id in documents:
            outcome.notes.append(
                f"{document.file_name or document.title}: same document as "
                f"{documents[document.unique_id].file_name or document.unique_id}, filed once"
            )
            continue
        documents[document.unique_id] = document
    return list(documents.values())


def _cross_checks(parts: MessageParts, documents: list[Document], outcome: XdmOutcome) -> list[str]:
    """docs/mssante.md §5: X-MSS-CODECDA and X-MSS-INS against what the message holds.

    Disagreements are notes, never refusals: the documents themselves were checked.
    """
    notes: list[str] = []
    cda_codes = {d.type_code for d in documents if d.mime_type == XML_TYPE and d.type_code}
    for code in parts.codes_declared:
        if code not in cda_codes:
            notes.append(f"X-MSS-CODECDA lists {code} but no document filed has that type code")
    if parts.codes_declared:
        for code in sorted(cda_codes - set(parts.codes_declared)):
            notes.append(f"a document of type {code} is not listed in X-MSS-CODECDA")
    elif outcome.cda_count:
        notes.append("the message carries CDA documents but no X-MSS-CODECDA header")
    flag = parts.ins_declared
    if flag == "O" and outcome.cda_with_ins == 0:
        notes.append("X-MSS-INS is O but no CDA document carries an INS")
    elif flag == "N" and outcome.cda_with_ins:
        notes.append("X-MSS-INS is N but a CDA document carries an INS")
    elif flag not in ("", "O", "N"):
        notes.append(f"X-MSS-INS has the value {flag!r}, expected O or N")
    return notes

"""The header of a CDA R2 document, and the PDF an N1 document embeds.

HL7 CDA R2 (namespace ``urn:hl7-org:v3``), as profiled by the ANS CI-SIS for documents sent
by MSSanté (docs/mssante.md §6). Read from the header: ``code`` (document type, LOINC),
``title``, ``effectiveTime``, ``confidentialityCode``, ``recordTarget/patientRole/id`` (the
INS among the patient's identifiers), the first ``author/assignedAuthor``,
``documentationOf/serviceEvent/effectiveTime/low`` and ``relatedDocument[@typeCode='RPLC']``
(HL7 CDA R2 relatedDocument: this document replaces its parentDocument). A level-N1 document has a
``component/nonXMLBody/text`` with ``mediaType="application/pdf"`` and
``representation="B64"``: that PDF is the document's rendition.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from filing.detect import PDF_TYPE, detect_type
from filing.hl7 import parse_time
from filing.model import Author, Refused
from filing.xmlsafe import XML_INVALID, parse_xml

__all__ = ["CDA_NAMESPACE", "TYPE_MISMATCH", "CdaHeader", "PatientIdentifier", "read_cda"]

CDA_NAMESPACE: Final = "urn:hl7-org:v3"
TYPE_MISMATCH: Final = "type-mismatch"
_V3: Final = {"v3": CDA_NAMESPACE}
_ROOT_TAG: Final = f"{{{CDA_NAMESPACE}}}ClinicalDocument"
_NATIONAL_ID_OID: Final = "1.2.250.1.71.4.2.1"  # docs/mssante.md §3


@dataclass(frozen=True)
class PatientIdentifier:
    """One ``recordTarget/patientRole/id``: ``extension`` issued under ``root``."""

    extension: str
    root: str


@dataclass(frozen=True)
class CdaHeader:
    """What filing uses of a CDA R2 header."""

    document_id: str  # XDS uniqueId form: "root^extension", or "root" alone
    code: str
    code_display: str
    title: str
    effective_time: datetime | None
    confidentiality_code: str
    patient_ids: tuple[PatientIdentifier, ...]
    author: Author
    service_start_time: datetime | None
    replaces: str | None  # relatedDocument[@typeCode='RPLC']/parentDocument/id, uniqueId form
    rendition: bytes | None  # the PDF of an N1 nonXMLBody


def _text(element: ET.Element | None) -> str:
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def _attr(root: ET.Element, path: str, name: str) -> str:
    element = root.find(path, _V3)
    return (element.get(name) or "").strip() if element is not None else ""


def _unique_id(element: ET.Element | None) -> str:
    """CI-SIS: an XDS uniqueId is ``root^extension`` (``root`` alone without extension)."""
    if element is None:
        return ""
    root = (element.get("root") or "").strip()
    extension = (element.get("extension") or "").strip()
    return f"{root}^{extension}" if root and extension else root


def _person_name(name: ET.Element | None) -> str:
    if name is None:
        return ""
    given = [_text(part) for part in name.findall("v3:given", _V3)]
    family = [_text(part) for part in name.findall("v3:family", _V3)]
    parts = [part for part in (*given, *family) if part]
    return " ".join(parts) if parts else _text(name)


def _author(root: ET.Element) -> Author:
    assigned = root.find("v3:author/v3:assignedAuthor", _V3)
    if assigned is None:
        return Author()
    ids = assigned.findall("v3:id", _V3)
    national = next((i for i in ids if i.get("root") == _NATIONAL_ID_OID), ids[0] if ids else None)
    code = assigned.find("v3:code", _V3)
    specialty = ""
    if code is not None:
        specialty = (code.get("displayName") or code.get("code") or "").strip()
    return Author(
        national_id=(national.get("extension") or "").strip() if national is not None else "",
        name=_person_name(assigned.find("v3:assignedPerson/v3:name", _V3)),
        institution=_text(assigned.find("v3:representedOrganization/v3:name", _V3)),
        specialty=specialty,
    )


def _replaced(root: ET.Element) -> str | None:
    for related in root.findall("v3:relatedDocument", _V3):
        if (related.get("typeCode") or "").upper() == "RPLC":
            return _unique_id(related.find("v3:parentDocument/v3:id", _V3)) or None
    return None


def _rendition(root: ET.Element, name: str) -> bytes | None:
    """The PDF of an N1 document: nonXMLBody/text, mediaType application/pdf, B64."""
    text = root.find("v3:component/v3:nonXMLBody/v3:text", _V3)
    if text is None or (text.get("mediaType") or "").strip().lower() != PDF_TYPE:
        return None
    if (text.get("representation") or "").strip().upper() != "B64":
        raise Refused(XML_INVALID, f"{name}: the embedded PDF is not base64 (representation B64)")
    encoded = "".join((text.text or "").split())
    try:
        pdf = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(XML_INVALID, f"{name}: the embedded PDF is not valid base64") from None
    if detect_type(pdf) != PDF_TYPE:
        raise Refused(
            TYPE_MISMATCH,
            f"{name}: the embedded document declared application/pdf is {detect_type(pdf)}",
        )
    return pdf


def read_cda(data: bytes, name: str, max_size: int) -> CdaHeader | None:
    """Parse ``data`` safely and read its CDA header; ``None`` when it is XML but not CDA.

    Raises :class:`Refused` for forbidden or malformed XML (:func:`filing.xmlsafe.parse_xml`),
    a damaged embedded PDF (``xml-invalid``) or an embedded "PDF" that is not one
    (``type-mismatch``).
    """
    root = parse_xml(data, name, max_size)
    if root.tag != _ROOT_TAG:
        return None
    record = "v3:recordTarget/v3:patientRole/v3:id"
    patient_ids = tuple(
        PatientIdentifier(
            extension=(element.get("extension") or "").strip(),
            root=(element.get("root") or "").strip(),
        )
        for element in root.findall(record, _V3)
    )
    return CdaHeader(
        document_id=_unique_id(root.find("v3:id", _V3)),
        code=_attr(root, "v3:code", "code"),
        code_display=_attr(root, "v3:code", "displayName"),
        title=_text(root.find("v3:title", _V3)),
        effective_time=parse_time(_attr(root, "v3:effectiveTime", "value")),
        confidentiality_code=_attr(root, "v3:confidentialityCode", "code"),
        patient_ids=patient_ids,
        author=_author(root),
        service_start_time=parse_time(
            _attr(root, "v3:documentationOf/v3:serviceEvent/v3:effectiveTime/v3:low", "value")
        ),
        replaces=_replaced(root),
        rendition=_rendition(root, name),
    )

"""METADATA.XML of an XDM subset: the XDS metadata as an ebRIM 3.0 SubmitObjectsRequest.

IHE ITI TF-3 §4.2.3 (metadata attributes) and §4.2.2 (associations), ebRIM 3.0 encoding
(ITI TF-3 §4.2.3.2 for DocumentEntry, §4.2.3.3 for SubmissionSet). Each DocumentEntry is an
``rim:ExtrinsicObject`` with ``objectType`` the stable-document UUID; its attributes are
``rim:Slot`` (name + values), ``rim:Classification`` (coded values: ``nodeRepresentation``
is the code, the ``codingScheme`` slot its scheme, ``rim:Name`` its display name) and
``rim:ExternalIdentifier`` (patientId, uniqueId). Classifications and external identifiers
may be nested in the object or stand alone in the RegistryObjectList pointing at it; both
are read. An ExtrinsicObject without ``objectType`` is taken as a DocumentEntry (our choice:
the attribute is optional in ebRIM). This module only reads: the checks are in
:mod:`filing.xdm`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from filing.hl7 import parse_time, parse_xcn, parse_xon
from filing.model import Author, Refused
from filing.xmlsafe import XML_INVALID, local_name, parse_xml

__all__ = [
    "INVISIBLE_PATIENT",
    "Association",
    "Coded",
    "DocumentEntry",
    "SubmissionMetadata",
    "read_metadata",
]

RIM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
_NS: Final = {"rim": RIM}

# ITI TF-3 §4.2.3: the ebRIM identifiers (UUIDs) of the XDS attributes
DOCUMENT_ENTRY_TYPE: Final = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"  # stable
_ON_DEMAND_TYPE: Final = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"
_DE_PATIENT_ID: Final = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
_DE_UNIQUE_ID: Final = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
_DE_TYPE_CODE: Final = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
_DE_CLASS_CODE: Final = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
_DE_FORMAT_CODE: Final = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
_DE_CONFIDENTIALITY: Final = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
_DE_AUTHOR: Final = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
_SS_NODE: Final = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
_SS_PATIENT_ID: Final = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
_SS_UNIQUE_ID: Final = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
_SS_CONTENT_TYPE: Final = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
# ITI TF-3 §4.2.2.2: relationship associations meaning "this document replaces that one".
_REPLACING_ASSOCIATIONS: Final = frozenset(
    {"urn:ihe:iti:2007:AssociationType:RPLC", "urn:ihe:iti:2007:AssociationType:XFRM_RPLC"}
)
# ANS DMP metadata: confidentialityCode INVISIBLE_PATIENT (codingScheme
# 1.2.250.1.213.1.1.4.13) keeps a document out of the patient's sight (docs/mssante.md §7).
INVISIBLE_PATIENT: Final = "INVISIBLE_PATIENT"
_DMP_CONFIDENTIALITY_SCHEME: Final = "1.2.250.1.213.1.1.4.13"
_HL7_CONFIDENTIALITY_SCHEME: Final = "2.16.840.1.113883.5.25"


@dataclass(frozen=True)
class Coded:
    """A coded value (XDS Classification): code, its scheme, its display name."""

    code: str
    scheme: str = ""
    display: str = ""


@dataclass(frozen=True)
class DocumentEntry:
    """One XDS DocumentEntry, as METADATA.XML declares it (ITI TF-3 §4.2.3.2)."""

    entry_id: str  # the ExtrinsicObject id (entryUUID or a symbolic id)
    unique_id: str
    patient_id: str  # the CX value, "" when absent
    source_patient_id: str
    mime_type: str
    uri: str
    size: int | None  # None when absent; -1 when present but not a number
    hash: str  # SHA-1, lower-case hex
    title: str
    type_code: Coded | None
    class_code: Coded | None
    format_code: Coded | None
    confidentiality: tuple[Coded, ...]
    creation_time: datetime | None
    service_start_time: datetime | None
    author: Author

    @property
    def visible_to_patient(self) -> bool:
        return not any(
            coded.code == INVISIBLE_PATIENT and coded.scheme in ("", _DMP_CONFIDENTIALITY_SCHEME)
            for coded in self.confidentiality
        )

    @property
    def confidentiality_code(self) -> str:
        """The HL7 confidentiality code (N, R, V...) when there is one, else the first code."""
        for coded in self.confidentiality:
            if coded.scheme == _HL7_CONFIDENTIALITY_SCHEME:
                return coded.code
        return self.confidentiality[0].code if self.confidentiality else ""


@dataclass(frozen=True)
class Association:
    """An ebRIM Association (ITI TF-3 §4.2.2): ``source`` relates to ``target``."""

    kind: str  # associationType
    source: str
    target: str
    slots: dict[str, tuple[str, ...]]

    @property
    def replaces(self) -> bool:
        return self.kind in _REPLACING_ASSOCIATIONS


@dataclass(frozen=True)
class SubmissionMetadata:
    """Everything read from one METADATA.XML."""

    entries: tuple[DocumentEntry, ...]
    associations: tuple[Association, ...]
    submission_patient_id: str  # SubmissionSet patientId (ITI TF-3 §4.2.3.3), "" if absent
    submission_unique_id: str
    content_type: Coded | None
    submission_time: datetime | None


def _slots(element: ET.Element) -> dict[str, tuple[str, ...]]:
    slots: dict[str, tuple[str, ...]] = {}
    for slot in element.findall("rim:Slot", _NS):
        values = tuple((v.text or "").strip() for v in slot.findall("rim:ValueList/rim:Value", _NS))
        slots.setdefault(slot.get("name") or "", values)
    return slots


def _first(slots: dict[str, tuple[str, ...]], name: str) -> str:
    values = slots.get(name, ())
    return values[0] if values else ""


def _name(element: ET.Element) -> str:
    """``rim:Name/rim:LocalizedString/@value`` (the first one)."""
    localized = element.find("rim:Name/rim:LocalizedString", _NS)
    return (localized.get("value") or "").strip() if localized is not None else ""


class _Links:
    """Classifications and ExternalIdentifiers by the object they describe."""

    def __init__(self, root: ET.Element) -> None:
        self.classifications: dict[str, list[ET.Element]] = defaultdict(list)
        self.identifiers: dict[str, list[ET.Element]] = defaultdict(list)
        for element in root.iter(f"{{{RIM}}}Classification"):
            self.classifications[element.get("classifiedObject") or ""].append(element)
        for element in root.iter(f"{{{RIM}}}ExternalIdentifier"):
            self.identifiers[element.get("registryObject") or ""].append(element)

    def classified(self, owner: ET.Element, scheme: str) -> list[ET.Element]:
        """Classifications of ``owner`` in ``scheme``: nested ones, or pointing at it."""
        nested = owner.findall("rim:Classification", _NS)
        pointing = self.classifications.get(owner.get("id") or "", [])
        found = nested + [c for c in pointing if c not in nested]
        return [c for c in found if c.get("classificationScheme") == scheme]

    def identifier(self, owner: ET.Element, scheme: str) -> str:
        nested = owner.findall("rim:ExternalIdentifier", _NS)
        pointing = self.identifiers.get(owner.get("id") or "", [])
        for element in nested + pointing:
            if element.get("identificationScheme") == scheme:
                return (element.get("value") or "").strip()
        return ""

    def is_submission_set(self, package: ET.Element) -> bool:
        identifier = package.get("id") or ""
        nodes = package.findall("rim:Classification", _NS) + self.classifications.get(
            identifier, []
        )
        return any(node.get("classificationNode") == _SS_NODE for node in nodes)


def _coded(classification: ET.Element) -> Coded:
    return Coded(
        code=(classification.get("nodeRepresentation") or "").strip(),
        scheme=_first(_slots(classification), "codingScheme"),
        display=_name(classification),
    )


def _one_coded(links: _Links, owner: ET.Element, scheme: str) -> Coded | None:
    found = links.classified(owner, scheme)
    return _coded(found[0]) if found else None


def _author(links: _Links, owner: ET.Element) -> Author:
    """ITI TF-3 §4.2.3.2 DocumentEntry.author: authorPerson (XCN), authorInstitution (XON)..."""
    for classification in links.classified(owner, _DE_AUTHOR):
        slots = _slots(classification)
        person = parse_xcn(_first(slots, "authorPerson"))
        specialty = _first(slots, "authorSpecialty")
        display = specialty.split("^")
        return Author(
            national_id=person.id,
            name=person.display_name,
            institution=parse_xon(_first(slots, "authorInstitution")),
            # CWE "code^display^scheme": keep the display when given
            specialty=(display[1] if len(display) > 1 and display[1] else display[0]).strip(),
        )
    return Author()


def _size(text: str) -> int | None:
    if not text:
        return None
    return int(text) if text.isascii() and text.isdigit() else -1


def _entry(links: _Links, element: ET.Element) -> DocumentEntry:
    slots = _slots(element)
    return DocumentEntry(
        entry_id=(element.get("id") or "").strip(),
        unique_id=links.identifier(element, _DE_UNIQUE_ID),
        patient_id=links.identifier(element, _DE_PATIENT_ID),
        source_patient_id=_first(slots, "sourcePatientId"),
        mime_type=(element.get("mimeType") or "").strip(),
        uri=_first(slots, "URI"),
        size=_size(_first(slots, "size")),
        hash=_first(slots, "hash").lower(),
        title=_name(element),
        type_code=_one_coded(links, element, _DE_TYPE_CODE),
        class_code=_one_coded(links, element, _DE_CLASS_CODE),
        format_code=_one_coded(links, element, _DE_FORMAT_CODE),
        confidentiality=tuple(_coded(c) for c in links.classified(element, _DE_CONFIDENTIALITY)),
        creation_time=parse_time(_first(slots, "creationTime")),
        service_start_time=parse_time(_first(slots, "serviceStartTime")),
        author=_author(links, element),
    )


def read_metadata(data: bytes, name: str, max_size: int) -> SubmissionMetadata:
    """Parse METADATA.XML (``name`` in reasons) safely and read its objects.

    Raises :class:`Refused`: ``xml-forbidden`` / ``xml-invalid`` / ``xml-too-large`` from
    :func:`filing.xmlsafe.parse_xml`, ``xml-invalid`` when the root is not a
    SubmitObjectsRequest.
    """
    root = parse_xml(data, name, max_size)
    if root.tag != f"{{{LCM}}}SubmitObjectsRequest":
        raise Refused(
            XML_INVALID,
            f"{name} is not an ebRIM SubmitObjectsRequest (root element {local_name(root.tag)!r})",
        )
    links = _Links(root)
    entries = tuple(
        _entry(links, element)
        for element in root.iter(f"{{{RIM}}}ExtrinsicObject")
        if (element.get("objectType") or DOCUMENT_ENTRY_TYPE)
        in (DOCUMENT_ENTRY_TYPE, _ON_DEMAND_TYPE)
    )
    associations = tuple(
        Association(
            kind=(element.get("associationType") or "").strip(),
            source=(element.get("sourceObject") or "").strip(),
            target=(element.get("targetObject") or "").strip(),
            slots=_slots(element),
        )
        for element in root.iter(f"{{{RIM}}}Association")
    )
    package = next(
        (p for p in root.iter(f"{{{RIM}}}RegistryPackage") if links.is_submission_set(p)), None
    )
    if package is None:
        return SubmissionMetadata(entries, associations, "", "", None, None)
    return SubmissionMetadata(
        entries=entries,
        associations=associations,
        submission_patient_id=links.identifier(package, _SS_PATIENT_ID),
        submission_unique_id=links.identifier(package, _SS_UNIQUE_ID),
        content_type=_one_coded(links, package, _SS_CONTENT_TYPE),
        submission_time=parse_time(_first(_slots(package), "submissionTime")),
    )

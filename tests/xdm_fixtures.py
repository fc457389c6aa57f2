"""Realistic MSSanté filing data built in code: CDA documents, XDM archives, whole messages.

Importable by any test or benchmark (it does not import pytest). Everything is built here,
deterministically, from the public formats:

* files: :func:`pdf_bytes` (a valid one-page PDF padded to any size), :func:`png_bytes`,
  :func:`jpeg_bytes`, :func:`tiff_bytes`, :func:`dicom_bytes`, :func:`elf_bytes`;
* identities: :func:`make_ins` (key computed), :data:`PATIENT_INS`, :data:`OTHER_INS`,
  :func:`patient_cx`, :data:`DOCTOR_ID`;
* CDA R2 (CI-SIS flavoured): :func:`cda_discharge_summary` (N1, LOINC 34112-3, embedded
  PDF), :func:`cda_lab_report` (N3, LOINC 11502-2, coded results);
* XDM: :class:`DocSpec` + :func:`metadata_xml` (ebRIM SubmitObjectsRequest with
  SubmissionSet, optional RPLC association), :func:`xdm_zip` (IHE_XDM.ZIP with INDEX.HTM and
  README.TXT), :func:`lab_docs`, :func:`discharge_docs`;
* messages: :class:`Part` + :func:`mime_message`, :func:`xdm_message` (a lab's APP box to
  ``<INS>@patient.mssante.fr``);
* hostile input: :func:`raw_zip`, :func:`zip_with_names`, :func:`too_many_entries_zip`,
  :func:`deflate_bomb_zip` (1 GB from ~1 MB, honest or lying sizes), :func:`encrypted_zip`,
  :func:`nested_zip`, :func:`billion_laughs`, :func:`external_entity`, and every case as a
  whole message with its expected refusal code: :func:`hostile_messages`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import uuid
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.policy import SMTP
from functools import lru_cache
from xml.sax.saxutils import escape, quoteattr

from routing.identifiers import ins_key, rpps_with_key

# --------------------------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------------------------

NIR_OID = "1.2.250.1.213.1.4.8"
NIA_OID = "1.2.250.1.213.1.4.9"
TEST_INS_OID = "1.2.250.1.213.1.4.10"
DEMO_INS_OID = "1.2.250.1.213.1.4.11"
NATIONAL_ID_OID = "1.2.250.1.71.4.2.1"
STRUCTURE_OID = "1.2.250.1.71.4.2.2"
LOINC = "2.16.840.1.113883.6.1"
HL7_CONFIDENTIALITY = "2.16.840.1.113883.5.25"
DMP_CONFIDENTIALITY = "1.2.250.1.213.1.1.4.13"
PATIENT_DOMAIN = "patient.mssante.fr"


def make_ins(number13: str) -> str:
    """A 15-character INS: the 13-character NIR/NIA and its key (docs/mssante.md §4)."""
    return number13 + ins_key(number13)


PATIENT_INS = make_ins("2850775123456")  # a woman born July 1985 in Paris
OTHER_INS = make_ins("1920133123789")
CORSICAN_INS = make_ins("179052A012345")
DOCTOR_ID = "8" + rpps_with_key("1000123456")  # national identifier: 8 + RPPS
LAB_ID = "8" + rpps_with_key("1000987654")


def patient_cx(ins: str = PATIENT_INS, oid: str = NIR_OID) -> str:
    """The XDS patientId of an INS: ``<INS>^^^&<oid>&ISO^NH``."""
    return f"{ins}^^^&{oid}&ISO^NH"


def deterministic_uuid(name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'mssante-test:' + name)}"


# --------------------------------------------------------------------------------------------
# Plain files
# --------------------------------------------------------------------------------------------


def _pdf_string(text: str) -> bytes:
    raw = text.encode("latin-1", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _pdf_assemble(objects: list[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _pdf_stream(data: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def pdf_bytes(text: str = "Compte rendu", size: int = 0) -> bytes:
    """A valid one-page PDF showing ``text``, padded to exactly ``size`` bytes when larger.

    The padding is an unreferenced stream object, so viewers ignore it.
    """
    page = b"BT /F1 14 Tf 72 770 Td " + _pdf_string(text) + b" Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        _pdf_stream(page),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    plain = _pdf_assemble(objects)
    if size <= len(plain):
        return plain
    filler = 0
    for _ in range(4):  # the digits of the lengths and offsets settle in a pass or two
        padded = _pdf_assemble([*objects, _pdf_stream(b"%" * filler)])
        filler += size - len(padded)
    padded = _pdf_assemble([*objects, _pdf_stream(b"%" * max(filler, 0))])
    assert len(padded) == size, (len(padded), size)
    return padded


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int = 4, height: int = 4) -> bytes:
    """A valid 8-bit greyscale PNG (PNG spec §5, §11.2.2)."""
    rows = b"".join(b"\x00" + bytes((x * 40) % 256 for x in range(width)) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def jpeg_bytes() -> bytes:
    """A valid 8x8 mid-grey baseline JPEG (ITU T.81), hand-encoded.

    One block: DC difference category 0 and an immediate end-of-block, each coded by a
    one-symbol Huffman table (code ``0``), so the scan is the bits ``00`` padded with ones.
    """
    one_code = bytes([1] + [0] * 15)  # BITS: one code of length 1
    return (
        b"\xff\xd8"
        + _jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + _jpeg_segment(0xDB, b"\x00" + bytes([1] * 64))
        + _jpeg_segment(0xC0, struct.pack(">BHHB", 8, 8, 8, 1) + b"\x01\x11\x00")
        + _jpeg_segment(0xC4, b"\x00" + one_code + b"\x00")  # DC table 0: category 0
        + _jpeg_segment(0xC4, b"\x10" + one_code + b"\x00")  # AC table 0: EOB
        + _jpeg_segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + b"\x3f"
        + b"\xff\xd9"
    )


def tiff_bytes() -> bytes:
    """A valid 1x1 8-bit greyscale little-endian TIFF (TIFF 6.0 baseline)."""
    entries = [  # tag, type (3 SHORT, 4 LONG), count, value
        (256, 3, 1, 1),  # ImageWidth
        (257, 3, 1, 1),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # PhotometricInterpretation: BlackIsZero
        (273, 4, 1, 8 + 2 + 12 * 8 + 4),  # StripOffsets: right after the IFD
        (278, 3, 1, 1),  # RowsPerStrip
        (279, 4, 1, 1),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\x80"


def _dicom_element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\x00" if vr in (b"UI", b"OB") else b" "
    if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
        return struct.pack("<HH2sHI", group, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def dicom_bytes(patient_name: str = "MARTIN^Marie") -> bytes:
    """A DICOM PS3.10 file: preamble, ``DICM``, file meta group, a patient name."""
    meta = (
        _dicom_element(0x0002, 0x0001, b"OB", b"\x00\x01")
        + _dicom_element(0x0002, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.7")
        + _dicom_element(0x0002, 0x0003, b"UI", b"1.2.250.1.999.2.1.1")
        + _dicom_element(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1")
    )
    group_length = _dicom_element(0x0002, 0x0000, b"UL", struct.pack("<I", len(meta)))
    dataset = _dicom_element(0x0010, 0x0010, b"PN", patient_name.encode("ascii"))
    return bytes(128) + b"DICM" + group_length + meta + dataset


def elf_bytes() -> bytes:
    """The header of an x86-64 ELF executable (what a "PDF" must never be)."""
    ident = b"\x7fELF\x02\x01\x01\x00" + bytes(8)
    header = struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x401000, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    return ident + header + bytes(56)


# --------------------------------------------------------------------------------------------
# CDA R2 documents
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabResult:
    """One coded laboratory observation of the N3 report."""

    loinc: str
    label: str
    value: str
    unit: str
    low: str
    high: str


DEFAULT_RESULTS: tuple[LabResult, ...] = (
    LabResult("2345-7", "Glucose [Masse/Volume] Sérum/Plasma", "0.95", "g/L", "0.70", "1.10"),
    LabResult("718-7", "Hémoglobine [Masse/Volume] Sang", "13.5", "g/dL", "12.0", "16.0"),
    LabResult("6690-2", "Leucocytes [Nombre/Volume] Sang", "7.2", "10*9/L", "4.0", "10.0"),
    LabResult("2160-0", "Créatinine [Masse/Volume] Sérum/Plasma", "8.1", "mg/L", "5.0", "10.0"),
)


def _a(value: str) -> str:
    return quoteattr(value)


def _cda_header(
    *,
    document_id: tuple[str, str],
    code: str,
    display: str,
    title: str,
    effective_time: str,
    ins: str | None,
    ins_oid: str,
    author_name: tuple[str, str],
    author_id: str,
    organisation: str,
    specialty: tuple[str, str],
    service_start: str,
    replaces: tuple[str, str] | None,
    confidentiality: str,
) -> str:
    patient_ids = '<id root="1.2.250.1.999.1.1.1" extension="IPP-0042"/>'
    if ins is not None:
        patient_ids = f"<id root={_a(ins_oid)} extension={_a(ins)}/>" + patient_ids
    related = ""
    if replaces is not None:
        related = (
            '<relatedDocument typeCode="RPLC"><parentDocument>'
            f"<id root={_a(replaces[0])} extension={_a(replaces[1])}/>"
            "</parentDocument></relatedDocument>"
        )
    given, family = author_name
    return f"""<realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  <id root={_a(document_id[0])} extension={_a(document_id[1])}/>
  <code code={_a(code)} codeSystem="{LOINC}" codeSystemName="LOINC" displayName={_a(display)}/>
  <title>{escape(title)}</title>
  <effectiveTime value={_a(effective_time)}/>
  <confidentialityCode code={_a(confidentiality)} codeSystem="{HL7_CONFIDENTIALITY}"/>
  <languageCode code="fr-FR"/>
  <setId root={_a(document_id[0])} extension={_a(document_id[1] + "-set")}/>
  <versionNumber value="{2 if replaces else 1}"/>
  <recordTarget>
    <patientRole>
      {patient_ids}
      <patient>
        <name><given>Marie</given><family qualifier="BR">MARTIN</family></name>
        <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
        <birthTime value="19850712"/>
      </patient>
    </patientRole>
  </recordTarget>
  <author>
    <time value={_a(effective_time)}/>
    <assignedAuthor>
      <id root="{NATIONAL_ID_OID}" extension={_a(author_id)}/>
      <code code={_a(specialty[0])} displayName={_a(specialty[1])}
            codeSystem="1.2.250.1.213.1.1.4.5"/>
      <assignedPerson>
        <name><prefix>Dr</prefix><given>{escape(given)}</given><family>{escape(family)}</family></name>
      </assignedPerson>
      <representedOrganization>
        <id root="{STRUCTURE_OID}" extension="1750000000"/>
        <name>{escape(organisation)}</name>
      </representedOrganization>
    </assignedAuthor>
  </author>
  <custodian>
    <assignedCustodian><representedCustodianOrganization>
      <id root="{STRUCTURE_OID}" extension="1750000000"/>
      <name>{escape(organisation)}</name>
    </representedCustodianOrganization></assignedCustodian>
  </custodian>
  <documentationOf>
    <serviceEvent>
      <effectiveTime>
        <low value={_a(service_start)}/><high value={_a(effective_time)}/>
      </effectiveTime>
    </serviceEvent>
  </documentationOf>
  {related}"""


def cda_discharge_summary(
    *,
    ins: str | None = PATIENT_INS,
    ins_oid: str = NIR_OID,
    pdf: bytes | None = None,
    document_id: tuple[str, str] = ("1.2.250.1.999.1.1.7", "CRH-2024-0001"),
    replaces: tuple[str, str] | None = None,
    pdf_base64: str | None = None,
) -> bytes:
    """CDA R2 level N1 hospital discharge summary (LOINC 34112-3) embedding a PDF.

    ``pdf_base64`` replaces the encoded PDF text as is (to build broken variants).
    """
    pdf = pdf if pdf is not None else pdf_bytes("Compte rendu d'hospitalisation", 20_000)
    encoded = pdf_base64 if pdf_base64 is not None else base64.encodebytes(pdf).decode("ascii")
    header = _cda_header(
        document_id=document_id,
        code="34112-3",
        display="Compte rendu d'hospitalisation",
        title="Compte rendu d'hospitalisation",
        effective_time="20240315103000+0100",
        ins=ins,
        ins_oid=ins_oid,
        author_name=("Jean", "DUPONT"),
        author_id=DOCTOR_ID,
        organisation="Centre hospitalier de Saint-Martin",
        specialty=("SM26", "Qualifié en médecine générale (SM)"),
        service_start="20240310",
        replaces=replaces,
        confidentiality="N",
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  {header}
  <component>
    <nonXMLBody>
      <text mediaType="application/pdf" representation="B64">{encoded}</text>
    </nonXMLBody>
  </component>
</ClinicalDocument>
""".encode()


def _observation(result: LabResult) -> str:
    return f"""<component>
              <observation classCode="OBS" moodCode="EVN">
                <templateId root="1.3.6.1.4.1.19376.1.3.1.6"/>
                <code code={_a(result.loinc)} codeSystem="{LOINC}" displayName={_a(result.label)}/>
                <statusCode code="completed"/>
                <effectiveTime value="20240315073000+0100"/>
                <value xsi:type="PQ" value={_a(result.value)} unit={_a(result.unit)}/>
                <interpretationCode code="N" codeSystem="2.16.840.1.113883.5.83"/>
                <referenceRange><observationRange><value xsi:type="IVL_PQ">
                  <low value={_a(result.low)} unit={_a(result.unit)}/>
                  <high value={_a(result.high)} unit={_a(result.unit)}/>
                </value></observationRange></referenceRange>
              </observation>
            </component>"""


def cda_lab_report(
    *,
    ins: str | None = PATIENT_INS,
    ins_oid: str = NIR_OID,
    results: Sequence[LabResult] = DEFAULT_RESULTS,
    document_id: tuple[str, str] = ("1.2.250.1.999.1.1.9", "CRBIO-2024-0042"),
    replaces: tuple[str, str] | None = None,
) -> bytes:
    """CDA R2 level N3 laboratory report (LOINC 11502-2) with LOINC-coded results."""
    header = _cda_header(
        document_id=document_id,
        code="11502-2",
        display="CR d'examens biologiques",
        title="Compte rendu d'examens biologiques",
        effective_time="20240315120000+0100",
        ins=ins,
        ins_oid=ins_oid,
        author_name=("Claire", "BERNARD"),
        author_id=LAB_ID,
        organisation="Laboratoire de biologie médicale des Lilas",
        specialty=("SM05", "Biologie médicale (SM)"),
        service_start="20240315073000+0100",
        replaces=replaces,
        confidentiality="N",
    )
    rows = "".join(
        f"<tr><td>{escape(r.label)}</td><td>{r.value} {escape(r.unit)}</td>"
        f"<td>{r.low} - {r.high}</td></tr>"
        for r in results
    )
    observations = "".join(_observation(r) for r in results)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  {header}
  <component>
    <structuredBody>
      <component>
        <section>
          <templateId root="1.3.6.1.4.1.19376.1.3.3.2.1"/>
          <code code="18719-5" codeSystem="{LOINC}" displayName="Chimie"/>
          <title>Résultats</title>
          <text><table>
            <thead><tr><th>Examen</th><th>Résultat</th><th>Valeurs de référence</th></tr></thead>
            <tbody>{rows}</tbody></table></text>
          <entry typeCode="DRIV">
            <act classCode="ACT" moodCode="EVN">
              <templateId root="1.3.6.1.4.1.19376.1.3.1"/>
              <code code="18719-5" codeSystem="{LOINC}" displayName="Chimie"/>
              <statusCode code="completed"/>
              <entryRelationship typeCode="COMP">
                <organizer classCode="BATTERY" moodCode="EVN">
                  <statusCode code="completed"/>
                  <effectiveTime value="20240315073000+0100"/>
                  {observations}
                </organizer>
              </entryRelationship>
            </act>
          </entry>
        </section>
      </component>
    </structuredBody>
  </component>
</ClinicalDocument>
""".encode()


# --------------------------------------------------------------------------------------------
# XDM: METADATA.XML and IHE_XDM.ZIP
# --------------------------------------------------------------------------------------------

RIM_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"


@dataclass(frozen=True)
class DocSpec:
    """One document of an XDM subset and the DocumentEntry describing it.

    ``size``/``hash`` default to the true values of ``content``; ``omit`` drops attributes
    from the DocumentEntry (any of: title, typeCode, classCode, formatCode,
    confidentialityCode, author, creationTime, serviceStartTime, size, hash, uniqueId,
    patientId, mimeType) to build thin metadata.
    """

    uri: str
    content: bytes
    unique_id: str
    entry_id: str = ""
    mime_type: str = "text/xml"
    title: str = "Compte rendu d'examens biologiques"
    type_code: tuple[str, str] = ("11502-2", "CR d'examens biologiques")
    class_code: tuple[str, str] = ("11", "Compte rendu")
    format_code: tuple[str, str] = ("urn:ihe:lab:xd-lab:2008", "CR de biologie")
    confidentiality: tuple[tuple[str, str, str], ...] = (("N", HL7_CONFIDENTIALITY, "Normal"),)
    creation_time: str = "20240315110000"
    service_start_time: str = "20240315063000"
    patient_id: str = field(default_factory=patient_cx)
    source_patient_id: str = ""
    author_person: str = f"{LAB_ID}^BERNARD^Claire^^^^^^&{NATIONAL_ID_OID}&ISO^D^^^IDNPS"
    author_institution: str = (
        f"Laboratoire de biologie médicale des Lilas^^^^^&{STRUCTURE_OID}&ISO^IDNST^^^31750000001"
    )
    author_specialty: str = "SM05^Biologie médicale (SM)^1.2.250.1.213.1.1.4.5"
    size: int | None = None
    hash: str | None = None
    omit: frozenset[str] = frozenset()

    @property
    def entry(self) -> str:
        return self.entry_id or deterministic_uuid("entry:" + self.unique_id)


def _slot(name: str, *values: str) -> str:
    inner = "".join(f"<rim:Value>{escape(v)}</rim:Value>" for v in values)
    return f'<rim:Slot name="{name}"><rim:ValueList>{inner}</rim:ValueList></rim:Slot>'


def _name(value: str) -> str:
    return f"<rim:Name><rim:LocalizedString value={_a(value)}/></rim:Name>"


def _classification(scheme: str, owner: str, code: str, coding: str, display: str) -> str:
    return (
        f'<rim:Classification classificationScheme="{scheme}" classifiedObject="{owner}" '
        f'id="{deterministic_uuid(owner + scheme + code)}" nodeRepresentation={_a(code)}>'
        f"{_slot('codingScheme', coding)}{_name(display)}</rim:Classification>"
    )


def _external(scheme: str, owner: str, value: str, label: str) -> str:
    return (
        f'<rim:ExternalIdentifier identificationScheme="{scheme}" registryObject="{owner}" '
        f'id="{deterministic_uuid(owner + scheme)}" value={_a(value)}>{_name(label)}'
        "</rim:ExternalIdentifier>"
    )


def _extrinsic(doc: DocSpec) -> str:
    owner, omit = doc.entry, doc.omit
    size = doc.size if doc.size is not None else len(doc.content)
    digest = doc.hash if doc.hash is not None else hashlib.sha1(doc.content).hexdigest()
    slots = [
        ("creationTime", _slot("creationTime", doc.creation_time)),
        ("serviceStartTime", _slot("serviceStartTime", doc.service_start_time)),
        ("size", _slot("size", str(size))),
        ("hash", _slot("hash", digest)),
        ("languageCode", _slot("languageCode", "fr-FR")),
        ("URI", _slot("URI", doc.uri)),
    ]
    if doc.source_patient_id:
        slots.append(("sourcePatientId", _slot("sourcePatientId", doc.source_patient_id)))
    parts = [body for key, body in slots if key not in omit]
    if "title" not in omit:
        parts.append(_name(doc.title))
    if "author" not in omit:
        parts.append(
            '<rim:Classification classificationScheme="urn:uuid:93606bcf-9494-43ec-9b4e-'
            f'a7748d1a838d" classifiedObject="{owner}" id="{deterministic_uuid(owner + "a")}" '
            'nodeRepresentation="">'
            + _slot("authorPerson", doc.author_person)
            + _slot("authorInstitution", doc.author_institution)
            + _slot("authorRole", "Biologiste")
            + _slot("authorSpecialty", doc.author_specialty)
            + "</rim:Classification>"
        )
    coded = [
        (
            "classCode",
            "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a",
            doc.class_code,
            "1.2.250.1.213.1.1.4.1",
        ),
        ("typeCode", "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983", doc.type_code, LOINC),
        (
            "formatCode",
            "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
            doc.format_code,
            "1.3.6.1.4.1.19376.1.2.3",
        ),
    ]
    for key, scheme, (code, display), coding in coded:
        if key not in omit:
            parts.append(_classification(scheme, owner, code, coding, display))
    if "confidentialityCode" not in omit:
        for code, coding, display in doc.confidentiality:
            parts.append(
                _classification(
                    "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f", owner, code, coding, display
                )
            )
    if "patientId" not in omit:
        parts.append(
            _external(
                "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427",
                owner,
                doc.patient_id,
                "XDSDocumentEntry.patientId",
            )
        )
    if "uniqueId" not in omit:
        parts.append(
            _external(
                "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab",
                owner,
                doc.unique_id,
                "XDSDocumentEntry.uniqueId",
            )
        )
    mime = "" if "mimeType" in omit else f" mimeType={_a(doc.mime_type)}"
    return (
        f'<rim:ExtrinsicObject id="{owner}"{mime} status="urn:oasis:names:tc:ebxml-regrep:'
        'StatusType:Approved" objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">'
        + "".join(parts)
        + "</rim:ExtrinsicObject>"
    )


def metadata_xml(
    docs: Sequence[DocSpec],
    *,
    submission_patient_id: str | None = None,
    replaces: Sequence[tuple[str, str]] = (),
    content_type: tuple[str, str] = ("11502-2", "CR d'examens biologiques"),
    prolog: str = "",
) -> bytes:
    """An ebRIM 3.0 SubmitObjectsRequest: the DocumentEntries, the SubmissionSet, its
    HasMember associations and one RPLC association per ``(source entry id, target id)``
    of ``replaces``. ``prolog`` goes between the XML declaration and the root element (to
    build hostile variants: DOCTYPE, entities).
    """
    package = deterministic_uuid("submission:" + "".join(d.unique_id for d in docs))
    if submission_patient_id is None:  # the patient of the documents, as a sender would
        submission_patient_id = docs[0].patient_id if docs else patient_cx()
    patient = submission_patient_id
    objects = [_extrinsic(doc) for doc in docs]
    objects.append(
        f'<rim:RegistryPackage id="{package}" objectType="urn:oasis:names:tc:ebxml-regrep:'
        'ObjectType:RegistryObject">'
        + _slot("submissionTime", "20240315110500")
        + _slot("intendedRecipient", f"^^^^^^^^^{PATIENT_INS}@{PATIENT_DOMAIN}")
        + _name("Envoi de documents")
        + '<rim:Classification classificationScheme="urn:uuid:a7058bb9-b4e4-4316-ba5b-'
        f'37a7ab7e9a8a" classifiedObject="{package}" id="{deterministic_uuid(package + "a")}" '
        'nodeRepresentation="">'
        + _slot("authorPerson", docs[0].author_person if docs else "")
        + "</rim:Classification>"
        + _classification(
            "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500",
            package,
            content_type[0],
            LOINC,
            content_type[1],
        )
        + (
            _external(
                "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446",
                package,
                patient,
                "XDSSubmissionSet.patientId",
            )
            if patient
            else ""
        )
        + _external(
            "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8",
            package,
            "1.2.250.1.999.1.1.3.20240315110500",
            "XDSSubmissionSet.uniqueId",
        )
        + _external(
            "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832",
            package,
            "1.2.250.1.999.1.1",
            "XDSSubmissionSet.sourceId",
        )
        + "</rim:RegistryPackage>"
    )
    objects.append(
        f'<rim:Classification classifiedObject="{package}" '
        'classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd" '
        f'id="{deterministic_uuid(package + "node")}"/>'
    )
    for doc in docs:
        objects.append(
            '<rim:Association associationType="urn:oasis:names:tc:ebxml-regrep:'
            f'AssociationType:HasMember" sourceObject="{package}" targetObject="{doc.entry}" '
            f'id="{deterministic_uuid(package + doc.entry)}">'
            + _slot("SubmissionSetStatus", "Original")
            + "</rim:Association>"
        )
    for source, target in replaces:
        objects.append(
            f'<rim:Association associationType="{RPLC}" sourceObject="{source}" '
            f'targetObject="{target}" id="{deterministic_uuid(source + target)}"/>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + prolog
        + f'<lcm:SubmitObjectsRequest xmlns:lcm="{LCM_NS}" xmlns:rim="{RIM_NS}">'
        + "<rim:RegistryObjectList>"
        + "".join(objects)
        + "</rim:RegistryObjectList></lcm:SubmitObjectsRequest>\n"
    ).encode()


INDEX_HTM = (
    b"<html><head><title>IHE XDM</title></head><body><h1>Documents</h1>"
    b'<p><a href="IHE_XDM/SUBSET01/DOC0001.XML">DOC0001.XML</a></p></body></html>\n'
)
README_TXT = (
    b"Ce support contient des documents de sante au format IHE XDM.\r\n"
    b"Editeur: Laboratoire des Lilas - logiciel LabSend 4.2\r\n"
)


def lab_docs(**changes: object) -> list[DocSpec]:
    """The N3 lab report as the one document of a subset (``changes`` apply to its DocSpec)."""
    doc = DocSpec(
        uri="DOC0001.XML", content=cda_lab_report(), unique_id="1.2.250.1.999.1.1.9^CRBIO-2024-0042"
    )
    return [replace(doc, **changes)]  # type: ignore[arg-type]


def discharge_docs(**changes: object) -> list[DocSpec]:
    """The N1 discharge summary as the one document of a subset."""
    doc = DocSpec(
        uri="DOC0001.XML",
        content=cda_discharge_summary(),
        unique_id="1.2.250.1.999.1.1.7^CRH-2024-0001",
        title="Compte rendu d'hospitalisation",
        type_code=("34112-3", "Compte rendu d'hospitalisation"),
        class_code=("10", "Synthèse"),
        format_code=("urn:ihe:iti:xds-sd:pdf:2008", "Document à corps non structuré en PDF"),
        author_person=f"{DOCTOR_ID}^DUPONT^Jean^^^Dr^^^&{NATIONAL_ID_OID}&ISO^D^^^IDNPS",
        author_institution=(
            f"Centre hospitalier de Saint-Martin^^^^^&{STRUCTURE_OID}&ISO^IDNST^^^11750000001"
        ),
        author_specialty="SM26^Qualifié en médecine générale (SM)^1.2.250.1.213.1.1.4.5",
    )
    return [replace(doc, **changes)]  # type: ignore[arg-type]


def xdm_zip(
    docs: Sequence[DocSpec] = (),
    *,
    metadata: bytes | None = None,
    extra: Mapping[str, bytes] | None = None,
    subset: str = "IHE_XDM/SUBSET01",
    replaces: Sequence[tuple[str, str]] = (),
) -> bytes:
    """An IHE_XDM.ZIP (ITI TF-2 §3.32): INDEX.HTM, README.TXT, the subset's METADATA.XML
    (``metadata`` or built from ``docs``), each document at its URI, then ``extra`` files
    (archive path -> bytes, e.g. a DOC0001.PDF rendition).
    """
    docs = list(docs) if docs else ([] if metadata is not None else lab_docs())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("INDEX.HTM", INDEX_HTM)
        archive.writestr("README.TXT", README_TXT)
        archive.writestr(
            f"{subset}/METADATA.XML",
            metadata if metadata is not None else metadata_xml(docs, replaces=replaces),
        )
        for doc in docs:
            archive.writestr(f"{subset}/{doc.uri}", doc.content)
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One attachment of :func:`mime_message`; ``content_type`` is what the sender declares."""

    content: bytes
    filename: str | None = "IHE_XDM.ZIP"
    content_type: str = "application/zip"


def mime_message(
    parts: Sequence[Part],
    *,
    recipient_ins: str = PATIENT_INS,
    sender: str = "labo-lilas@labo-lilas.mssante.fr",
    subject: str = "XDM/1.0/DDM+CR de biologie MARTIN Marie 12/07/1985",
    codes: str | None = "11502-2",
    ins_flag: str | None = "O",
    text: str = "Veuillez trouver ci-joint le compte rendu de vos examens biologiques.\n",
) -> bytes:
    """A whole message as a lab's APP box sends it to ``<INS>@patient.mssante.fr``.

    docs/mssante.md §5: X-MSS-NIL, X-MSS-CODECDA (``codes``, omitted when None), X-MSS-INS
    (``ins_flag``), the ``XDM/1.0/DDM+`` subject, a UTF-8 text part, then the attachments.
    """
    message = EmailMessage(policy=SMTP)
    message["From"] = f"Laboratoire des Lilas <{sender}>"
    message["To"] = f"{recipient_ins}@{PATIENT_DOMAIN}"
    message["Subject"] = subject
    message["Date"] = "Fri, 15 Mar 2024 11:05:00 +0100"
    message["Message-ID"] = "<20240315110500.42@labo-lilas.mssante.fr>"
    message["X-MSS-NIL"] = "LabSend 4.2"
    if codes is not None:
        message["X-MSS-CODECDA"] = codes
    if ins_flag is not None:
        message["X-MSS-INS"] = ins_flag
    message.set_content(text, charset="utf-8")
    for part in parts:
        # bytes are always sent base64, text/* included: the file arrives byte for byte
        maintype, _, subtype = part.content_type.partition("/")
        message.add_attachment(
            part.content, maintype=maintype, subtype=subtype, filename=part.filename
        )
    return message.as_bytes()


def xdm_message(archive: bytes | None = None, **headers: str | None) -> bytes:
    """The typical message: text part + IHE_XDM.ZIP (default: the N3 lab report)."""
    return mime_message([Part(archive if archive is not None else xdm_zip())], **headers)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Hostile archives and XML
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawEntry:
    """One entry written byte by byte by :func:`raw_zip` (sizes and flags as given)."""

    name: str
    data: bytes  # already compressed when method is 8
    crc: int
    file_size: int
    method: int = zipfile.ZIP_DEFLATED
    flags: int = 0


def raw_zip(entries: Sequence[RawEntry]) -> bytes:
    """A ZIP written field by field (APPNOTE.TXT §4.3), trusting every value given."""
    out = bytearray()
    central = bytearray()
    for entry in entries:
        name = entry.name.encode("utf-8")
        flags = entry.flags | 0x0800  # bit 11: UTF-8 names
        fields = (20, flags, entry.method, 0, 0x5865, entry.crc, len(entry.data), entry.file_size)
        central += (
            struct.pack(
                "<4s6H3L5H2L", b"PK\x01\x02", 20, *fields, len(name), 0, 0, 0, 0, 0, len(out)
            )
            + name
        )
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields, len(name), 0) + name + entry.data
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(out), 0
    )
    return bytes(out + central + end)


def deflated_entry(name: str, content: bytes, **changes: object) -> RawEntry:
    """A RawEntry holding ``content`` deflated, true sizes unless ``changes`` say otherwise."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = compressor.compress(content) + compressor.flush()
    entry = RawEntry(name, data, zlib.crc32(content), len(content))
    return replace(entry, **changes)  # type: ignore[arg-type]


def zip_with_names(names: Sequence[str], content: bytes = b"x") -> bytes:
    """An XDM-shaped archive (valid METADATA.XML) plus entries with the given names."""
    docs = lab_docs()
    entries = [
        deflated_entry("IHE_XDM/SUBSET01/METADATA.XML", metadata_xml(docs)),
        deflated_entry("IHE_XDM/SUBSET01/DOC0001.XML", docs[0].content),
    ]
    return raw_zip(entries + [deflated_entry(name, content) for name in names])


def too_many_entries_zip(count: int = 101) -> bytes:
    """An XDM archive with ``count`` entries in all (the default bound is 100)."""
    # INDEX.HTM, README.TXT, METADATA.XML and DOC0001.XML, then empty extra files
    extra = {f"IHE_XDM/SUBSET01/EXTRA{i:05d}.TXT": b"" for i in range(count - 4)}
    return xdm_zip(extra=extra)


@lru_cache(maxsize=4)
def _zeros_deflated(size: int) -> tuple[bytes, int]:
    """Raw deflate of ``size`` zero bytes (a multiple of 1 MiB) and their CRC-32, built from
    one full-flushed block repeated (each 1 MiB of zeros compresses to the same bytes), so
    that 1 GB costs ~1 MB and never exists in memory."""
    chunk = bytes(1 << 20)
    assert size % len(chunk) == 0, "size must be a multiple of 1 MiB"
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == again
    crc = 0
    for _ in range(size // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    return block * (size // len(chunk)) + compressor.flush(zlib.Z_FINISH), crc


def deflate_bomb_zip(expanded: int = 1 << 30, *, declared: int | None = None) -> bytes:
    """An XDM archive whose DOC0001.XML inflates to ``expanded`` zero bytes (1 GiB from about
    1 MB by default). ``declared`` makes the headers lie about the size (e.g. 2000: every
    bound passes before decompression, the inflate must stop at the first byte beyond)."""
    data, crc = _zeros_deflated(expanded)
    docs = lab_docs()
    return raw_zip(
        [
            deflated_entry("IHE_XDM/SUBSET01/METADATA.XML", metadata_xml(docs)),
            RawEntry(
                "IHE_XDM/SUBSET01/DOC0001.XML",
                data,
                crc,
                expanded if declared is None else declared,
            ),
        ]
    )


def encrypted_zip() -> bytes:
    """An XDM archive whose document has the "encrypted" flag (APPNOTE §4.4.4 bit 0)."""
    docs = lab_docs()
    return raw_zip(
        [
            deflated_entry("IHE_XDM/SUBSET01/METADATA.XML", metadata_xml(docs)),
            deflated_entry("IHE_XDM/SUBSET01/DOC0001.XML", docs[0].content, flags=0x1),
        ]
    )


def nested_zip(levels: int = 2) -> bytes:
    """An XDM archive holding ANNEXES.ZIP, ``levels`` ZIP levels deep below the XDM: 1 is
    ANNEXES.ZIP with a PDF inside, 2 puts LEVEL2.ZIP (with the PDF) inside ANNEXES.ZIP..."""
    inner = b""
    for level in range(levels, 0, -1):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("ANNEXE.PDF", pdf_bytes("Annexe"))
            if inner:
                archive.writestr(f"LEVEL{level + 1}.ZIP", inner)
        inner = buffer.getvalue()
    return xdm_zip(extra={"IHE_XDM/SUBSET01/ANNEXES.ZIP": inner})


def billion_laughs() -> bytes:
    """METADATA.XML with an exponential entity expansion (10^9 "lol") in its DOCTYPE."""
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    return metadata_xml(
        lab_docs(), prolog=f"<!DOCTYPE lcm:SubmitObjectsRequest [{entities}]>\n"
    ).replace(b"Envoi de documents", b"&lol9;", 1)


def external_entity(system_id: str = "file:///etc/passwd") -> bytes:
    """METADATA.XML reading a local file through an external entity (XXE)."""
    return metadata_xml(
        lab_docs(),
        prolog=f'<!DOCTYPE lcm:SubmitObjectsRequest [<!ENTITY xxe SYSTEM "{system_id}">]>\n',
    ).replace(b"Envoi de documents", b"&xxe;", 1)


def hostile_messages() -> dict[str, tuple[bytes, str]]:
    """Every hostile or inconsistent case as a whole message to the patient, with the
    refusal code planning it must give (for end-to-end tests and benchmarks)."""
    lab = lab_docs
    cda = {"IHE_XDM/SUBSET01/DOC0001.XML": cda_lab_report()}
    cases: dict[str, tuple[bytes, str]] = {
        "too-many-entries": (xdm_message(too_many_entries_zip()), "archive-too-many-entries"),
        "zip-bomb": (xdm_message(deflate_bomb_zip()), "archive-bomb"),
        "zip-bomb-lying-sizes": (xdm_message(deflate_bomb_zip(declared=2000)), "archive-bomb"),
        "dot-dot-path": (xdm_message(zip_with_names(["../../etc/passwd"])), "archive-path"),
        "absolute-path": (xdm_message(zip_with_names(["/etc/passwd"])), "archive-path"),
        "encrypted": (xdm_message(encrypted_zip()), "archive-encrypted"),
        "nested-zips": (xdm_message(nested_zip(2)), "archive-nested"),
        "billion-laughs": (
            xdm_message(xdm_zip(metadata=billion_laughs(), extra=cda)),
            "xml-forbidden",
        ),
        "external-entity": (
            xdm_message(xdm_zip(metadata=external_entity(), extra=cda)),
            "xml-forbidden",
        ),
        "wrong-hash": (xdm_message(xdm_zip(lab(hash="0" * 40))), "hash-mismatch"),
        "wrong-size": (xdm_message(xdm_zip(lab(size=12))), "size-mismatch"),
        "other-patient": (
            xdm_message(xdm_zip(lab(patient_id=patient_cx(OTHER_INS)))),
            "904",
        ),
        "missing-ins": (xdm_message(xdm_zip(lab(omit=frozenset({"patientId"})))), "903"),
        "test-oid-ins": (
            xdm_message(xdm_zip(lab(patient_id=patient_cx(oid=TEST_INS_OID)))),
            "903",
        ),
        "wrong-ins-key": (
            xdm_message(xdm_zip(lab(patient_id=patient_cx(PATIENT_INS[:-2] + "00")))),
            "905",
        ),
        "pdf-that-is-elf": (
            mime_message([Part(elf_bytes(), "cr.pdf", "application/pdf")]),
            "type-mismatch",
        ),
        "pdf-that-is-png": (
            mime_message([Part(png_bytes(), "cr.pdf", "application/pdf")]),
            "type-mismatch",
        ),
    }
    return cases

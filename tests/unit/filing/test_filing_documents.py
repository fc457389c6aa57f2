"""filing.cda and filing.metadata: reading CDA R2 headers and ebRIM METADATA.XML."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from filing.cda import PatientIdentifier, read_cda
from filing.metadata import read_metadata
from filing.model import Author, Refused
from tests import xdm_fixtures as fx

MAX = 1 << 22

# -- CDA R2 header -----------------------------------------------------------------------------


def test_n1_discharge_summary_header_and_embedded_pdf() -> None:
    pdf = fx.pdf_bytes("CRH de Marie MARTIN", size=30_000)
    header = read_cda(fx.cda_discharge_summary(pdf=pdf), "DOC0001.XML", MAX)
    assert header is not None
    assert header.document_id == "1.2.250.1.999.1.1.7^CRH-2024-0001"
    assert (header.code, header.code_display) == ("34112-3", "Compte rendu d'hospitalisation")
    assert header.title == "Compte rendu d'hospitalisation"
    assert header.effective_time == datetime(2024, 3, 15, 9, 30, tzinfo=UTC)
    assert header.service_start_time == datetime(2024, 3, 10, tzinfo=UTC)
    assert header.confidentiality_code == "N"
    assert header.patient_ids[0] == PatientIdentifier(fx.PATIENT_INS, fx.NIR_OID)
    assert header.author == Author(
        national_id=fx.DOCTOR_ID,
        name="Jean DUPONT",
        institution="Centre hospitalier de Saint-Martin",
        specialty="Qualifié en médecine générale (SM)",
    )
    assert header.rendition == pdf
    assert header.replaces is None


def test_n3_lab_report_header_has_no_rendition() -> None:
    header = read_cda(fx.cda_lab_report(), "DOC0001.XML", MAX)
    assert header is not None
    assert (header.code, header.title) == ("11502-2", "Compte rendu d'examens biologiques")
    assert header.author.national_id == fx.LAB_ID
    assert header.rendition is None


def test_relateddocument_rplc() -> None:
    data = fx.cda_lab_report(replaces=("1.2.250.1.999.1.1.9", "CRBIO-2024-0041"))
    header = read_cda(data, "DOC0001.XML", MAX)
    assert header is not None and header.replaces == "1.2.250.1.999.1.1.9^CRBIO-2024-0041"


def test_xml_that_is_not_cda_gives_none() -> None:
    assert read_cda(b"<ClinicalDocument/>", "x.xml", MAX) is None


def test_embedded_pdf_with_bad_base64_is_invalid() -> None:
    with pytest.raises(Refused) as info:
        read_cda(fx.cda_discharge_summary(pdf_base64="JVBERi0x*not base64*"), "DOC0001.XML", MAX)
    assert info.value.code == "xml-invalid"
    assert info.value.reason == "DOC0001.XML: the embedded PDF is not valid base64"


def test_embedded_pdf_that_is_an_executable_is_a_type_mismatch() -> None:
    encoded = base64.b64encode(fx.elf_bytes()).decode()
    with pytest.raises(Refused) as info:
        read_cda(fx.cda_discharge_summary(pdf_base64=encoded), "DOC0001.XML", MAX)
    assert info.value.code == "type-mismatch"
    assert "application/x-executable" in info.value.reason


# -- METADATA.XML (ITI TF-3 §4.2.3, ebRIM 3.0) --------------------------------------------------


def test_document_entry_attributes() -> None:
    doc = fx.lab_docs()[0]
    metadata = read_metadata(fx.metadata_xml([doc]), "METADATA.XML", MAX)
    (entry,) = metadata.entries
    assert entry.entry_id == doc.entry
    assert entry.unique_id == "1.2.250.1.999.1.1.9^CRBIO-2024-0042"
    assert entry.patient_id == fx.patient_cx()
    assert entry.mime_type == "text/xml"
    assert entry.uri == "DOC0001.XML"
    assert entry.size == len(doc.content)
    assert len(entry.hash) == 40
    assert entry.title == "Compte rendu d'examens biologiques"
    assert entry.type_code is not None
    assert (entry.type_code.code, entry.type_code.scheme) == ("11502-2", fx.LOINC)
    assert entry.type_code.display == "CR d'examens biologiques"
    assert entry.class_code is not None and entry.class_code.code == "11"
    assert entry.format_code is not None and entry.format_code.code == "urn:ihe:lab:xd-lab:2008"
    assert entry.confidentiality_code == "N"
    assert entry.visible_to_patient
    assert entry.creation_time == datetime(2024, 3, 15, 11, 0, tzinfo=UTC)
    assert entry.service_start_time == datetime(2024, 3, 15, 6, 30, tzinfo=UTC)
    assert entry.author == Author(
        national_id=fx.LAB_ID,
        name="Claire BERNARD",
        institution="Laboratoire de biologie médicale des Lilas",
        specialty="Biologie médicale (SM)",
    )
    assert metadata.submission_patient_id == fx.patient_cx()
    assert metadata.submission_unique_id == "1.2.250.1.999.1.1.3.20240315110500"
    assert metadata.content_type is not None and metadata.content_type.code == "11502-2"
    assert metadata.submission_time == datetime(2024, 3, 15, 11, 5, tzinfo=UTC)
    assert [a.kind.rsplit(":", 1)[-1] for a in metadata.associations] == ["HasMember"]


def test_several_confidentiality_codes_and_invisible_patient() -> None:
    doc = fx.lab_docs(
        confidentiality=(
            ("INVISIBLE_PATIENT", fx.DMP_CONFIDENTIALITY, "Document non visible par le patient"),
            ("N", fx.HL7_CONFIDENTIALITY, "Normal"),
        )
    )[0]
    (entry,) = read_metadata(fx.metadata_xml([doc]), "METADATA.XML", MAX).entries
    assert not entry.visible_to_patient
    assert entry.confidentiality_code == "N"  # the HL7 code wins over the DMP one
    assert [c.code for c in entry.confidentiality] == ["INVISIBLE_PATIENT", "N"]


def test_rplc_association_is_read() -> None:
    doc = fx.lab_docs()[0]
    target = "urn:uuid:0b7a9f02-5ad4-4a3b-9f55-33d1e5d3c0aa"
    metadata = read_metadata(
        fx.metadata_xml([doc], replaces=[(doc.entry, target)]), "METADATA.XML", MAX
    )
    (rplc,) = [a for a in metadata.associations if a.replaces]
    assert (rplc.source, rplc.target) == (doc.entry, target)


def test_classifications_outside_their_object_are_found() -> None:
    # ebRIM allows Classifications as siblings pointing at the object by classifiedObject
    data = fx.metadata_xml(fx.lab_docs()).decode()
    start = data.index('<rim:Classification classificationScheme="urn:uuid:f0306f51')
    end = data.index("</rim:Classification>", start) + len("</rim:Classification>")
    moved = data[:start] + data[end:]
    moved = moved.replace(
        "</rim:RegistryObjectList>", data[start:end] + "</rim:RegistryObjectList>"
    )
    (entry,) = read_metadata(moved.encode(), "METADATA.XML", MAX).entries
    assert entry.type_code is not None and entry.type_code.code == "11502-2"


def test_thin_metadata_reads_as_empty_fields() -> None:
    omit = frozenset({"title", "typeCode", "author", "size", "hash", "creationTime"})
    (entry,) = read_metadata(fx.metadata_xml(fx.lab_docs(omit=omit)), "METADATA.XML", MAX).entries
    assert (entry.title, entry.type_code, entry.size, entry.hash) == ("", None, None, "")
    assert entry.author == Author() and entry.creation_time is None


def test_metadata_root_must_be_a_submit_objects_request() -> None:
    with pytest.raises(Refused) as info:
        read_metadata(fx.cda_lab_report(), "METADATA.XML", MAX)
    assert info.value.code == "xml-invalid"
    assert "not an ebRIM SubmitObjectsRequest" in info.value.reason

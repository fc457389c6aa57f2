"""filing.xmlsafe, filing.hl7, filing.detect: the small readers under the filing plan."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from filing.detect import contradicts, detect_type, looks_like_cda, normalise_type
from filing.hl7 import parse_cx, parse_time, parse_xcn, parse_xon
from filing.model import Refused
from filing.xmlsafe import parse_xml
from tests import xdm_fixtures as fx

# -- XML safety (docs/mssante.md §6) ---------------------------------------------------------


def _xml_refusal(data: bytes, max_size: int = 1 << 20) -> Refused:
    with pytest.raises(Refused) as info:
        parse_xml(data, "METADATA.XML", max_size)
    return info.value


def test_well_formed_xml_parses() -> None:
    root = parse_xml(fx.metadata_xml(fx.lab_docs()), "METADATA.XML", 1 << 20)
    assert root.tag == "{urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0}SubmitObjectsRequest"


def test_billion_laughs_is_refused_without_expanding() -> None:
    refused = _xml_refusal(fx.billion_laughs())
    assert refused.code == "xml-forbidden"
    assert refused.reason.startswith("METADATA.XML declares a DOCTYPE")


def test_external_entity_is_refused() -> None:
    refused = _xml_refusal(fx.external_entity())
    assert refused.code == "xml-forbidden"
    assert "METADATA.XML" in refused.reason


def test_any_doctype_is_refused_even_harmless() -> None:
    refused = _xml_refusal(b'<!DOCTYPE a SYSTEM "http://example.org/a.dtd"><a/>')
    assert refused.code == "xml-forbidden"
    assert "referring to 'http://example.org/a.dtd'" in refused.reason


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<a>",
        b"<a></b>",
        b"not xml",
        b'<?xml version="1.0" encoding="nope"?><a/>',
        b"\xff\xfe<",
    ],
)
def test_malformed_xml_is_invalid(data: bytes) -> None:
    refused = _xml_refusal(data)
    assert refused.code == "xml-invalid"
    assert refused.reason.startswith("METADATA.XML ")


def test_xml_size_is_bounded_before_parsing() -> None:
    refused = _xml_refusal(b"<a>" + b" " * 100 + b"</a>", max_size=50)
    assert refused.code == "xml-too-large"
    assert "107 bytes" in refused.reason and "50 allowed" in refused.reason


# -- HL7 v2 data types and times (ITI TF-3 §4.2.3.1) -----------------------------------------


def test_cx_patient_id() -> None:
    cx = parse_cx(fx.patient_cx())
    assert (cx.id, cx.authority_oid) == (fx.PATIENT_INS, "1.2.250.1.213.1.4.8")
    assert parse_cx("12345").authority_oid == ""
    assert parse_cx("").id == ""


def test_xcn_and_xon() -> None:
    person = parse_xcn(f"{fx.DOCTOR_ID}^DUPONT^Jean^^^Dr^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS")
    assert (person.id, person.display_name, person.prefix) == (fx.DOCTOR_ID, "Jean DUPONT", "Dr")
    assert parse_xon("Labo \\T\\ fils^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1") == "Labo & fils"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240315103000", datetime(2024, 3, 15, 10, 30, tzinfo=UTC)),
        ("20240315103000+0100", datetime(2024, 3, 15, 9, 30, tzinfo=UTC)),
        ("20240315103000.123-0230", datetime(2024, 3, 15, 13, 0, 0, 123000, tzinfo=UTC)),
        ("20240315", datetime(2024, 3, 15, tzinfo=UTC)),
        ("2024", datetime(2024, 1, 1, tzinfo=UTC)),
        ("20241315", None),
        ("2024-03-15", None),
        ("", None),
        ("20240315103000+9999", None),
    ],
)
def test_times(value: str, expected: datetime | None) -> None:
    assert parse_time(value) == expected


# -- Content detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (fx.pdf_bytes(), "application/pdf"),
        (fx.png_bytes(), "image/png"),
        (fx.jpeg_bytes(), "image/jpeg"),
        (fx.tiff_bytes(), "image/tiff"),
        (fx.dicom_bytes(), "application/dicom"),
        (fx.xdm_zip(), "application/zip"),
        (fx.cda_lab_report(), "text/xml"),
        (fx.metadata_xml(fx.lab_docs()), "text/xml"),
        (fx.elf_bytes(), "application/x-executable"),
        (b"Bonjour\n", "text/plain"),
    ],
)
def test_types_come_from_content(data: bytes, expected: str) -> None:
    assert detect_type(data) == expected


def test_cda_sniff() -> None:
    assert looks_like_cda(fx.cda_discharge_summary())
    assert looks_like_cda(b'<!-- x --><v3:ClinicalDocument xmlns:v3="urn:hl7-org:v3"/>')
    assert looks_like_cda(
        b'<!DOCTYPE x [<!ENTITY a "b">]><ClinicalDocument xmlns="urn:hl7-org:v3"/>'
    )
    assert not looks_like_cda(b"<ClinicalDocument/>")  # not in the HL7 v3 namespace
    assert not looks_like_cda(fx.metadata_xml(fx.lab_docs()))


@pytest.mark.parametrize(
    ("declared", "detected", "contradiction"),
    [
        ("application/pdf", "application/pdf", False),
        ("application/octet-stream", "application/x-executable", False),
        ("", "application/pdf", False),
        ("image/jpg", "image/jpeg", False),
        ("application/x-zip-compressed", "application/zip", False),
        ("application/xml", "text/xml", False),
        ("application/hl7-v3+xml", "text/xml", False),
        ("text/xml", "text/plain", False),
        ("text/plain", "text/x-c", False),
        ("application/msword", "application/vnd.ms-excel", False),
        ("application/pdf", "image/png", True),
        ("application/pdf", "application/x-executable", True),
        ("image/png", "application/pdf", True),
        ("text/plain", "application/pdf", True),
        ("application/zip", "application/pdf", True),
    ],
)
def test_declared_against_detected(declared: str, detected: str, contradiction: bool) -> None:
    assert contradicts(declared, detected) is contradiction


def test_normalise_type() -> None:
    assert normalise_type("Application/PDF; name=x.pdf") == "application/pdf"
    assert normalise_type("image/pjpeg") == "image/jpeg"

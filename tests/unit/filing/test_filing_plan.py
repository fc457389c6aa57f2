"""filing.plan.plan_filing: from a whole message to documents and refusals (issue #4)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from filing.plan import Author, Document, FilingPlan, FilingSettings, Refusal, plan_filing
from tests import xdm_fixtures as fx


def _plan(message: bytes, **kwargs: object) -> FilingPlan:
    return plan_filing(message, fx.PATIENT_INS, **kwargs)  # type: ignore[arg-type]


def _xdm(docs: list[fx.DocSpec] | None = None, **zip_args: object) -> FilingPlan:
    return _plan(fx.xdm_message(fx.xdm_zip(docs or fx.lab_docs(), **zip_args)))  # type: ignore[arg-type]


def _only_refusal(plan: FilingPlan) -> Refusal:
    assert plan.documents == ()
    (refusal,) = plan.refusals
    return refusal


# -- XDM: what is filed -------------------------------------------------------------------------


def test_n3_lab_report_is_filed_with_its_metadata() -> None:
    plan = _plan(fx.xdm_message())
    assert plan.refusals == () and plan.notes == ()
    assert plan.codes_declared == ("11502-2",) and plan.ins_declared == "O"
    (doc,) = plan.documents
    spec = fx.lab_docs()[0]
    assert doc == Document(
        unique_id="1.2.250.1.999.1.1.9^CRBIO-2024-0042",
        content=spec.content,
        mime_type="text/xml",
        title="Compte rendu d'examens biologiques",
        source="xdm",
        file_name="IHE_XDM/SUBSET01/DOC0001.XML",
        rendition=None,
        type_code="11502-2",
        type_display="CR d'examens biologiques",
        class_code="11",
        format_code="urn:ihe:lab:xd-lab:2008",
        confidentiality_code="N",
        creation_time=datetime(2024, 3, 15, 11, 0, tzinfo=UTC),
        service_start_time=datetime(2024, 3, 15, 6, 30, tzinfo=UTC),
        author=Author(
            national_id=fx.LAB_ID,
            name="Claire BERNARD",
            institution="Laboratoire de biologie médicale des Lilas",
            specialty="Biologie médicale (SM)",
        ),
        replaces=None,
        patient_id=fx.PATIENT_INS,
        visible_to_patient=True,
        confidentiality_codes=("N",),
        entry_uuid=spec.entry,
    )


def test_n1_discharge_summary_carries_its_embedded_pdf_as_rendition() -> None:
    pdf = fx.pdf_bytes("CRH", size=100_000)
    docs = fx.discharge_docs(content=fx.cda_discharge_summary(pdf=pdf))
    plan = _plan(fx.xdm_message(fx.xdm_zip(docs), codes="34112-3"))
    (doc,) = plan.documents
    assert doc.rendition == pdf
    assert (doc.type_code, doc.class_code, doc.author.name) == ("34112-3", "10", "Jean DUPONT")
    assert plan.notes == ()


def test_a_pdf_next_to_the_cda_is_its_rendition() -> None:
    pdf = fx.pdf_bytes("Rendu", size=5000)
    plan = _xdm(extra={"IHE_XDM/SUBSET01/DOC0001.PDF": pdf})
    assert plan.documents[0].rendition == pdf


def test_a_rendition_that_is_not_a_pdf_refuses_the_archive() -> None:
    refusal = _only_refusal(_xdm(extra={"IHE_XDM/SUBSET01/DOC0001.PDF": fx.png_bytes()}))
    assert refusal.code == "type-mismatch"
    assert "DOC0001.PDF should be the PDF rendition but is image/png" in refusal.reason


def test_two_documents_and_two_subsets() -> None:
    lab, discharge = fx.lab_docs()[0], fx.discharge_docs(uri="DOC0002.XML")[0]
    plan = _plan(fx.xdm_message(fx.xdm_zip([lab, discharge]), codes="11502-2,34112-3"))
    assert [d.type_code for d in plan.documents] == ["11502-2", "34112-3"]
    assert plan.notes == ()
    second = fx.metadata_xml([discharge])
    archive = fx.xdm_zip(
        [lab],
        extra={
            "IHE_XDM/SUBSET02/METADATA.XML": second,
            "IHE_XDM/SUBSET02/DOC0002.XML": discharge.content,
        },
    )
    plan = _plan(fx.xdm_message(archive, codes="11502-2, 34112-3"))
    assert [d.file_name for d in plan.documents] == [
        "IHE_XDM/SUBSET01/DOC0001.XML",
        "IHE_XDM/SUBSET02/DOC0002.XML",
    ]


def test_xdm_is_recognised_by_content_whatever_its_name() -> None:
    message = fx.mime_message([fx.Part(fx.xdm_zip(), "envoi.bin", "application/octet-stream")])
    assert len(_plan(message).documents) == 1


def test_invisible_to_the_patient() -> None:
    confidentiality = (
        ("N", fx.HL7_CONFIDENTIALITY, "Normal"),
        ("INVISIBLE_PATIENT", fx.DMP_CONFIDENTIALITY, "Non visible par le patient"),
    )
    (doc,) = _xdm(fx.lab_docs(confidentiality=confidentiality)).documents
    assert not doc.visible_to_patient
    assert doc.confidentiality_code == "N"
    assert doc.confidentiality_codes == ("N", "INVISIBLE_PATIENT")


def test_thin_metadata_is_completed_from_the_cda_header() -> None:
    omit = frozenset({"title", "typeCode", "author", "creationTime", "serviceStartTime"})
    plan = _xdm(fx.lab_docs(omit=omit | {"size", "hash", "uniqueId"}))
    (doc,) = plan.documents
    assert doc.title == "Compte rendu d'examens biologiques"
    assert (doc.type_code, doc.type_display) == ("11502-2", "CR d'examens biologiques")
    assert doc.unique_id == "1.2.250.1.999.1.1.9^CRBIO-2024-0042"
    assert doc.creation_time == datetime(2024, 3, 15, 11, 0, tzinfo=UTC)
    assert doc.author.name == "Claire BERNARD" and doc.author.national_id == fx.LAB_ID
    assert doc.class_code == "11"  # kept from METADATA.XML
    assert any("gives no size and no hash, not verified" in note for note in plan.notes)
    assert any(
        "title, type_code" in note and "taken from the CDA header" in note for note in plan.notes
    )


def test_metadata_and_cda_disagreeing_is_a_note() -> None:
    plan = _xdm(fx.lab_docs(type_code=("34112-3", "CRH")))
    assert plan.documents[0].type_code == "34112-3"  # METADATA.XML wins
    assert any("typeCode 34112-3 differs from the CDA code 11502-2" in n for n in plan.notes)


def test_an_entry_of_a_type_not_filed_is_skipped_with_a_note() -> None:
    text = fx.DocSpec(
        uri="NOTE.TXT", content=b"Bonjour\n", unique_id="1.2.3", mime_type="text/plain"
    )
    plan = _xdm([*fx.lab_docs(), text])
    assert [d.file_name for d in plan.documents] == ["IHE_XDM/SUBSET01/DOC0001.XML"]
    assert any("NOTE.TXT: not filed, its type text/plain" in n for n in plan.notes)


def test_a_pdf_document_entry_is_filed_as_pdf() -> None:
    pdf = fx.pdf_bytes("Ordonnance")
    spec = fx.DocSpec(
        uri="DOC0002.PDF", content=pdf, unique_id="1.2.3.4", mime_type="application/pdf"
    )
    plan = _xdm([*fx.lab_docs(), spec])
    assert [(d.mime_type, d.unique_id) for d in plan.documents][1] == ("application/pdf", "1.2.3.4")
    assert plan.documents[0].rendition is None  # an entry of its own is not a rendition


# -- RPLC (ITI TF-3 §4.2.2.2) -------------------------------------------------------------------


def test_rplc_to_an_earlier_entry_uuid_resolves_through_the_cda() -> None:
    content = fx.cda_lab_report(replaces=("1.2.250.1.999.1.1.9", "CRBIO-2024-0041"))
    docs = fx.lab_docs(content=content)
    old_entry = "urn:uuid:0b7a9f02-5ad4-4a3b-9f55-33d1e5d3c0aa"
    (doc,) = _xdm(docs, replaces=[(docs[0].entry, old_entry)]).documents
    assert doc.replaces == "1.2.250.1.999.1.1.9^CRBIO-2024-0041"


def test_rplc_without_cda_keeps_the_raw_target() -> None:
    docs = fx.lab_docs()
    old_entry = "urn:uuid:0b7a9f02-5ad4-4a3b-9f55-33d1e5d3c0aa"
    (doc,) = _xdm(docs, replaces=[(docs[0].entry, old_entry)]).documents
    assert doc.replaces == old_entry


def test_rplc_to_an_entry_of_the_same_archive_gives_its_unique_id() -> None:
    old = fx.discharge_docs(uri="DOC0002.XML")[0]
    new = fx.lab_docs()[0]
    plan = _xdm([new, old], replaces=[(new.entry, old.entry)])
    assert plan.documents[0].replaces == old.unique_id
    plan = _xdm([new, old], replaces=[(new.entry, old.unique_id)])
    assert plan.documents[0].replaces == old.unique_id


def test_cda_rplc_without_association_is_kept_with_a_note() -> None:
    content = fx.cda_lab_report(replaces=("1.2.250.1.999.1.1.9", "CRBIO-2024-0041"))
    plan = _xdm(fx.lab_docs(content=content))
    assert plan.documents[0].replaces == "1.2.250.1.999.1.1.9^CRBIO-2024-0041"
    assert any("no RPLC association" in note for note in plan.notes)


# -- XDM: INS checks (docs/mssante.md §5: 903, 904, 905) ---------------------------------------


@pytest.mark.parametrize(
    ("patient_id", "code", "says"),
    [
        (fx.patient_cx(fx.OTHER_INS), "904", f"is the INS {fx.OTHER_INS}, not the recipient's"),
        (fx.patient_cx(fx.PATIENT_INS[:-2] + "00"), "905", "incomplete INS"),
        (fx.patient_cx(fx.PATIENT_INS[:-1]), "905", "must be 15 characters"),
        (fx.patient_cx(oid="1.2.250.1.999.1.1.1"), "903", "is not an INS (authority 1.2.250"),
        (fx.PATIENT_INS, "903", "no assigning authority"),
        (fx.patient_cx(oid=fx.TEST_INS_OID), "903", "test or demo INS"),
        (fx.patient_cx(oid=fx.DEMO_INS_OID), "903", "test or demo INS"),
    ],
)
def test_patient_id_refusals(patient_id: str, code: str, says: str) -> None:
    refusal = _only_refusal(_xdm(fx.lab_docs(patient_id=patient_id)))
    assert refusal.code == code and refusal.attachment == "IHE_XDM.ZIP"
    assert says in refusal.reason
    assert "patientId of IHE_XDM/SUBSET01/DOC0001.XML" in refusal.reason


def test_missing_patient_id_is_903() -> None:
    refusal = _only_refusal(_xdm(fx.lab_docs(omit=frozenset({"patientId"}))))
    assert refusal.code == "903"
    assert refusal.reason == "IHE_XDM.ZIP: IHE_XDM/SUBSET01/DOC0001.XML has no patientId"


def test_source_patient_id_stands_in_for_a_missing_patient_id() -> None:
    docs = fx.lab_docs(omit=frozenset({"patientId"}), source_patient_id=fx.patient_cx())
    assert len(_xdm(docs).documents) == 1
    other = fx.lab_docs(source_patient_id=fx.patient_cx(fx.OTHER_INS))
    assert _only_refusal(_xdm(other)).code == "904"


def test_test_ins_is_accepted_when_allowed() -> None:
    docs = fx.lab_docs(patient_id=fx.patient_cx(oid=fx.TEST_INS_OID))
    message = fx.xdm_message(fx.xdm_zip(docs))
    plan = _plan(message, settings=FilingSettings(allow_test_ins=True))
    assert plan.documents[0].patient_id == fx.PATIENT_INS


def test_submission_set_patient_id_must_match_too() -> None:
    metadata = fx.metadata_xml(fx.lab_docs(), submission_patient_id=fx.patient_cx(fx.OTHER_INS))
    extra = {"IHE_XDM/SUBSET01/DOC0001.XML": fx.cda_lab_report()}
    refusal = _only_refusal(_plan(fx.xdm_message(fx.xdm_zip(metadata=metadata, extra=extra))))
    assert refusal.code == "904" and "SubmissionSet patientId" in refusal.reason


def test_cda_record_target_contradicting_the_recipient_is_904() -> None:
    docs = fx.lab_docs(content=fx.cda_lab_report(ins=fx.OTHER_INS))
    refusal = _only_refusal(_xdm(docs))
    assert refusal.code == "904" and "recordTarget INS" in refusal.reason


def test_one_bad_document_files_nothing_of_its_archive() -> None:
    good = fx.lab_docs()[0]
    bad = fx.discharge_docs(uri="DOC0002.XML", patient_id=fx.patient_cx(fx.OTHER_INS))[0]
    assert _only_refusal(_xdm([good, bad])).code == "904"


def test_corsican_ins_in_lower_case_matches() -> None:
    lower = fx.CORSICAN_INS[:5] + fx.CORSICAN_INS[5:7].lower() + fx.CORSICAN_INS[7:]
    docs = fx.lab_docs(patient_id=fx.patient_cx(lower), content=fx.cda_lab_report(ins=None))
    message = fx.xdm_message(fx.xdm_zip(docs), recipient_ins=fx.CORSICAN_INS, ins_flag="N")
    plan = plan_filing(message, fx.CORSICAN_INS)
    assert plan.refusals == ()
    assert plan.documents[0].patient_id == fx.CORSICAN_INS


# -- XDM: integrity ------------------------------------------------------------------------------


def test_wrong_hash() -> None:
    refusal = _only_refusal(_xdm(fx.lab_docs(hash="0" * 40)))
    assert refusal.code == "hash-mismatch"
    actual = hashlib.sha1(fx.lab_docs()[0].content).hexdigest()
    assert refusal.reason == (
        f"IHE_XDM.ZIP: IHE_XDM/SUBSET01/DOC0001.XML has SHA-1 {actual} but METADATA.XML "
        f"declares {'0' * 40}"
    )


def test_wrong_size() -> None:
    refusal = _only_refusal(_xdm(fx.lab_docs(size=12)))
    assert refusal.code == "size-mismatch"
    assert "METADATA.XML declares 12 bytes" in refusal.reason


def test_a_document_missing_from_the_archive() -> None:
    docs = fx.lab_docs()
    metadata = fx.metadata_xml(docs)
    refusal = _only_refusal(_plan(fx.xdm_message(fx.xdm_zip(metadata=metadata))))
    assert refusal.code == "xdm-missing-file"
    assert "DOC0001.XML is named by METADATA.XML but not in the archive" in refusal.reason


def test_a_declared_mime_type_contradicted_by_content() -> None:
    refusal = _only_refusal(_xdm(fx.lab_docs(mime_type="application/pdf")))
    assert refusal.code == "type-mismatch"
    assert "declared application/pdf but its content is text/xml" in refusal.reason


def test_metadata_without_documents_and_duplicate_unique_ids() -> None:
    empty = fx.xdm_zip(metadata=fx.metadata_xml([]))
    assert _only_refusal(_plan(fx.xdm_message(empty))).code == "xdm-invalid"
    lab = fx.lab_docs()[0]
    twin = replace(lab, uri="DOC0002.XML", entry_id="urn:uuid:1-2")
    refusal = _only_refusal(_xdm([lab, twin]))
    assert refusal.code == "xdm-invalid" and "used by two documents" in refusal.reason


def test_a_zip_named_ihe_xdm_without_metadata() -> None:
    refusal = _only_refusal(_plan(fx.xdm_message(fx.raw_zip([fx.deflated_entry("A.TXT", b"a")]))))
    assert (
        refusal.code == "xdm-invalid" and "has no IHE_XDM/<subset>/METADATA.XML" in refusal.reason
    )


def test_a_zip_that_is_not_xdm_is_only_noted() -> None:
    part = fx.Part(fx.raw_zip([fx.deflated_entry("A.TXT", b"a")]), "photos.zip")
    plan = _plan(fx.mime_message([part], codes=None, ins_flag=None))
    assert plan.documents == () and plan.refusals == ()
    assert plan.notes == ("photos.zip: a ZIP archive that is not XDM, not filed",)


@pytest.mark.parametrize(("case", "expected"), sorted(fx.hostile_messages().items()))
def test_hostile_messages_are_refused(case: str, expected: tuple[bytes, str]) -> None:
    message, code = expected
    refusal = _only_refusal(_plan(message))
    assert refusal.code == code, case
    assert refusal.attachment in ("IHE_XDM.ZIP", "cr.pdf")
    assert refusal.reason.startswith(refusal.attachment)


def test_path_refusal_reason_names_the_entry() -> None:
    refusal = _only_refusal(_plan(fx.xdm_message(fx.zip_with_names(["../../etc/passwd"]))))
    assert refusal.reason.startswith(
        "IHE_XDM.ZIP: entry '../../etc/passwd' has a path outside the archive"
    )


@pytest.mark.parametrize("metadata", [fx.billion_laughs(), fx.external_entity()])
def test_hostile_metadata_is_forbidden(metadata: bytes) -> None:
    extra = {"IHE_XDM/SUBSET01/DOC0001.XML": fx.cda_lab_report()}
    refusal = _only_refusal(_plan(fx.xdm_message(fx.xdm_zip(metadata=metadata, extra=extra))))
    assert refusal.code == "xml-forbidden"
    assert "IHE_XDM/SUBSET01/METADATA.XML declares a DOCTYPE" in refusal.reason


def test_hostile_cda_is_forbidden() -> None:
    cda = fx.cda_lab_report().replace(
        b"<ClinicalDocument", b'<!DOCTYPE ClinicalDocument [<!ENTITY x "y">]>\n<ClinicalDocument', 1
    )
    refusal = _only_refusal(_xdm(fx.lab_docs(content=cda)))
    assert refusal.code == "xml-forbidden" and "DOC0001.XML" in refusal.reason


def test_broken_cda_is_invalid() -> None:
    refusal = _only_refusal(_xdm(fx.lab_docs(content=b'<?xml version="1.0"?><ClinicalDocument')))
    assert refusal.code == "xml-invalid" and "DOC0001.XML is not well-formed XML" in refusal.reason


def test_a_refused_archive_does_not_stop_the_other_attachments() -> None:
    pdf = fx.pdf_bytes("Ordonnance")
    message = fx.mime_message(
        [fx.Part(fx.encrypted_zip()), fx.Part(pdf, "ordonnance.pdf", "application/pdf")]
    )
    plan = _plan(message)
    assert [d.file_name for d in plan.documents] == ["ordonnance.pdf"]
    assert [r.code for r in plan.refusals] == ["archive-encrypted"]


# -- Plain attachments ---------------------------------------------------------------------------


def test_plain_attachments_are_typed_by_content() -> None:
    pdf, jpeg, png = fx.pdf_bytes(size=100_000), fx.jpeg_bytes(), fx.png_bytes()
    tiff, dicom = fx.tiff_bytes(), fx.dicom_bytes()
    message = fx.mime_message(
        [
            fx.Part(pdf, "résultats bio.pdf", "application/pdf"),
            fx.Part(jpeg, "photo.jpg", "application/octet-stream"),
            fx.Part(png, "schema.png", "image/png"),
            fx.Part(tiff, "scan.tif", "image/tiff"),
            fx.Part(dicom, "irm.dcm", "application/dicom"),
            fx.Part(b"Bonjour", "mot.txt", "text/plain"),
            fx.Part(b"\x00\x01\x02binary", "data.bin", "application/octet-stream"),
        ],
        codes=None,
        ins_flag=None,
    )
    plan = _plan(message)
    assert plan.refusals == ()
    assert [(d.file_name, d.mime_type, d.source) for d in plan.documents] == [
        ("résultats bio.pdf", "application/pdf", "attachment"),
        ("photo.jpg", "image/jpeg", "attachment"),
        ("schema.png", "image/png", "attachment"),
        ("scan.tif", "image/tiff", "attachment"),
        ("irm.dcm", "application/dicom", "attachment"),
    ]
    first = plan.documents[0]
    assert first.unique_id == "sha256:" + hashlib.sha256(pdf).hexdigest()
    assert first.title == "résultats bio.pdf" and first.content == pdf
    assert any(n.startswith("mot.txt: not filed") for n in plan.notes)
    assert any(n.startswith("data.bin: not filed") for n in plan.notes)


def test_filed_types_are_configurable() -> None:
    message = fx.mime_message([fx.Part(fx.png_bytes(), "a.png", "image/png")], codes=None)
    plan = _plan(message, settings=FilingSettings(filed_types=frozenset({"application/pdf"})))
    assert plan.documents == () and plan.refusals == ()


def test_rfc2047_and_rfc2231_file_names_are_decoded() -> None:
    pdf = fx.pdf_bytes()
    message = fx.mime_message([fx.Part(pdf, "compte rendu é.pdf", "application/pdf")])
    assert b"filename*=utf-8''compte%20rendu%20%C3%A9.pdf" in message  # RFC 2231
    assert _plan(message).documents[0].title == "compte rendu é.pdf"
    raw = (
        b"From: a@labo.mssante.fr\r\nTo: x@patient.mssante.fr\r\nSubject: s\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b'Content-Type: application/pdf; name="=?utf-8?q?r=C3=A9sultat.pdf?="\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(pdf).replace(b"\n", b"\r\n")
        + b"--B--\r\n"
    )
    assert _plan(raw).documents[0].title == "résultat.pdf"  # RFC 2047 in the name parameter


def test_title_falls_back_to_the_subject_without_its_prefix() -> None:
    message = fx.mime_message([fx.Part(fx.jpeg_bytes(), None, "image/jpeg")], codes=None)
    plan = _plan(message)
    assert plan.documents[0].title == "CR de biologie MARTIN Marie 12/07/1985"
    assert plan.documents[0].file_name == ""
    plan = _plan(message, subject_fallback=False)
    assert plan.documents[0].title == "JPEG image"


@pytest.mark.parametrize(
    ("content", "declared", "detected"),
    [
        (fx.elf_bytes(), "application/pdf", "application/x-executable"),
        (fx.png_bytes(), "application/pdf", "image/png"),
        (fx.pdf_bytes(), "image/jpeg", "application/pdf"),
        (fx.pdf_bytes(), "text/plain", "application/pdf"),
    ],
)
def test_declared_type_contradicting_content(content: bytes, declared: str, detected: str) -> None:
    message = fx.mime_message([fx.Part(content, "cr.pdf", declared)], codes=None)
    refusal = _only_refusal(_plan(message))
    assert refusal == Refusal(
        "type-mismatch", f"cr.pdf is declared {declared} but its content is {detected}", "cr.pdf"
    )


def test_the_same_file_attached_twice_is_filed_once() -> None:
    pdf = fx.pdf_bytes()
    message = fx.mime_message(
        [fx.Part(pdf, "a.pdf", "application/pdf"), fx.Part(pdf, "b.pdf", "application/pdf")]
    )
    plan = _plan(message)
    assert [d.file_name for d in plan.documents] == ["a.pdf"]
    assert any("b.pdf: same document as a.pdf" in note for note in plan.notes)


def test_a_cda_attached_alone_is_filed_with_its_header() -> None:
    cda = fx.cda_discharge_summary()
    message = fx.mime_message([fx.Part(cda, "CRH.xml", "text/xml")], codes="34112-3")
    plan = _plan(message)
    assert plan.refusals == () and plan.notes == ()
    (doc,) = plan.documents
    assert doc.unique_id == "sha256:" + hashlib.sha256(cda).hexdigest()
    assert (doc.mime_type, doc.source, doc.file_name) == ("text/xml", "attachment", "CRH.xml")
    assert (doc.title, doc.type_code) == ("Compte rendu d'hospitalisation", "34112-3")
    assert doc.author.national_id == fx.DOCTOR_ID
    assert doc.patient_id == fx.PATIENT_INS
    assert doc.rendition is not None and doc.rendition.startswith(b"%PDF")


def test_a_cda_attached_alone_for_another_patient_is_904() -> None:
    cda = fx.cda_lab_report(ins=fx.OTHER_INS)
    refusal = _only_refusal(_plan(fx.mime_message([fx.Part(cda, "cr.xml", "application/xml")])))
    assert refusal.code == "904" and refusal.attachment == "cr.xml"
    assert refusal.reason.startswith("cr.xml: the recordTarget INS is the INS")


def test_the_message_text_is_never_filed() -> None:
    message = fx.mime_message([], codes=None, ins_flag=None)
    assert _plan(message) == FilingPlan((), (), (), (), "")


# -- Header cross-checks (docs/mssante.md §5) -----------------------------------------------------


def test_codecda_listing_a_code_no_document_has_is_a_note_not_a_refusal() -> None:
    plan = _plan(fx.xdm_message(codes="11502-2,18748-4"))
    assert len(plan.documents) == 1 and plan.refusals == ()
    assert plan.codes_declared == ("11502-2", "18748-4")
    assert plan.notes == ("X-MSS-CODECDA lists 18748-4 but no document filed has that type code",)


def test_codecda_missing_a_code_and_missing_header() -> None:
    plan = _plan(fx.xdm_message(codes="34112-3"))
    assert "a document of type 11502-2 is not listed in X-MSS-CODECDA" in plan.notes
    plan = _plan(fx.xdm_message(codes=None))
    assert plan.notes == ("the message carries CDA documents but no X-MSS-CODECDA header",)


def test_x_mss_ins_cross_check() -> None:
    no_ins = fx.xdm_zip(fx.lab_docs(content=fx.cda_lab_report(ins=None)))
    assert _plan(fx.xdm_message(no_ins, ins_flag="N")).notes == ()
    plan = _plan(fx.xdm_message(no_ins, ins_flag="O"))
    assert plan.notes == ("X-MSS-INS is O but no CDA document carries an INS",)
    plan = _plan(fx.xdm_message(ins_flag="N"))
    assert plan.notes == ("X-MSS-INS is N but a CDA document carries an INS",)
    plan = _plan(fx.xdm_message(ins_flag="peut-être"))
    assert plan.ins_declared == "PEUT-ÊTRE"
    assert any("expected O or N" in note for note in plan.notes)


# -- Broken MIME ----------------------------------------------------------------------------------


def test_truncated_base64_is_refused_not_raised() -> None:
    raw = (
        b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: application/pdf; name=cr.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKx\r\n--B--\r\n"
    )
    refusal = _only_refusal(_plan(raw))
    assert refusal.code == "mime-broken" and refusal.attachment == "cr.pdf"
    assert "base64" in refusal.reason


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff" * 100,
        b"Content-Type: multipart/mixed\r\n\r\nno boundary at all",
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n--B\r\n--B",
        b"Content-Type: application/pdf; name*0*=bad''%ZZ; name*1=x\r\n\r\n%PDF",
        b"Content-Type: text/plain; charset=unknown-8bit\r\nContent-Disposition: attachment;"
        b" filename==?bad?Q?=\r\n\r\n\xff\xfe",
        b"Content-Type: multipart/mixed; boundary=A\r\n\r\n"
        + b"--A\r\nContent-Type: multipart/mixed; boundary=A\r\n\r\n" * 300,
        b"Content-Transfer-Encoding: base64\r\nContent-Type: image/png\r\n\r\n!!!!",
    ],
)
def test_broken_mime_never_raises(raw: bytes) -> None:
    plan = _plan(raw)
    assert isinstance(plan, FilingPlan)
    assert all(r.code != "unreadable" for r in plan.refusals)


def test_the_images_of_an_html_body_are_not_attachments() -> None:
    message = EmailMessage()
    message["Subject"] = "Résultats"
    message.set_content("Bonjour")
    message.add_alternative('<p>Bonjour</p><img src="cid:logo">', subtype="html")
    html = next(part for part in message.walk() if part.get_content_type() == "text/html")
    assert isinstance(html, EmailMessage)
    html.add_related(
        fx.png_bytes(), "image", "png", cid="<logo>", filename="logo.png", disposition="inline"
    )
    message.add_attachment(fx.pdf_bytes(), "application", "pdf", filename="cr.pdf")
    plan = _plan(message.as_bytes())
    assert [d.file_name for d in plan.documents] == ["cr.pdf"]


def test_attached_messages_are_not_looked_into() -> None:
    inner = fx.mime_message([fx.Part(fx.pdf_bytes(), "inner.pdf", "application/pdf")])
    raw = (
        b"Subject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=OUT\r\n\r\n"
        b"--OUT\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
        b"--OUT\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--OUT--\r\n"
    )
    plan = _plan(raw)
    assert plan.documents == ()
    assert plan.notes == ("part 2: attached message not looked into",)


def test_planning_is_deterministic() -> None:
    message = fx.xdm_message(fx.xdm_zip(fx.discharge_docs()))
    assert _plan(message) == _plan(message)

"""Filing end to end (issue #4, "Done when"): the demo laboratory sends results by SMTP with
its organisation certificate; the documents appear in the demo patient's dossier with their
metadata and provenance, once; a replacement supersedes; an archive for another patient is
not filed and the laboratory is told why; a zip bomb is refused without the worker's memory
growing, and the message itself is always delivered."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.models import DossierDocument, FilingJob
from tests import xdm_fixtures as fx
from tests.cli.conftest import mailserver, make_install
from tests.conftest import BACKENDS
from tests.smtp.running import Running, start_server
from tests.smtp.test_doors import send_as

PATIENT_INS = "146026322000196"
PATIENT = f"{PATIENT_INS}@patient.mssante.fr"
LAB = "laboratoire@demo.mssante.fr"


@pytest.fixture(scope="module", params=BACKENDS)
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("filing")
    install = make_install(root, request.param, request)
    running = start_server(install, root / "server.log")
    yield running
    running.stop()


def _lab(srv: Running) -> dict[str, Any]:
    return next(a for a in srv.install.demo["accounts"] if a["address"] == LAB)


def _docs(unique: str, **changes: object) -> list[fx.DocSpec]:
    return fx.lab_docs(
        unique_id=unique,
        patient_id=fx.patient_cx(PATIENT_INS),
        content=fx.cda_lab_report(ins=PATIENT_INS),
        **changes,
    )


def _send(srv: Running, archive: bytes, *, subject: str = "XDM/1.0/DDM+CR de biologie") -> None:
    data = fx.mime_message(
        [fx.Part(archive)], recipient_ins=PATIENT_INS, sender=LAB, subject=subject
    )
    # every message gets its own Message-ID, as real sending software does
    data = data.replace(b"20240315110500.42@", f"{time.monotonic_ns()}@".encode(), 1)
    send_as(srv, _lab(srv), PATIENT, data)


def _settled(srv: Running, timeout: float = 20) -> list[FilingJob]:
    """Wait until no filing job is pending; the jobs."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = srv.rows(FilingJob)
        if all(j.state in ("done", "failed") for j in jobs) or time.monotonic() > deadline:
            return jobs
        time.sleep(0.1)


def _documents(srv: Running) -> list[DossierDocument]:
    return srv.rows(DossierDocument)


def _cli(srv: Running, *args: str) -> str:
    r = mailserver("dossier", *args, "-c", srv.install.config)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_lab_result_is_filed_with_metadata_and_provenance_once(srv: Running) -> None:
    unique = "1.2.250.1.999.1.1.9^E2E-0001"
    before = len(srv.inbox(PATIENT))
    _send(srv, fx.xdm_zip(_docs(unique)))
    assert len(srv.wait_inbox(PATIENT, before + 1)) == before + 1
    jobs = _settled(srv)
    assert all(j.state == "done" for j in jobs), [(j.state, j.last_error) for j in jobs]
    (doc,) = [d for d in _documents(srv) if d.unique_id == unique]
    assert (doc.type_code, doc.type_display) == ("11502-2", "CR d'examens biologiques")
    assert doc.title == "Compte rendu d'examens biologiques"
    assert doc.author_name and "BERNARD" in doc.author_name
    assert doc.author_institution == "Laboratoire de biologie médicale des Lilas"
    assert doc.creation_time is not None and doc.creation_time.year == 2024
    assert doc.sender == LAB and doc.source_uid is not None and doc.source_message_id
    assert doc.mime_type == "text/xml"
    # The CLI shows it, with its provenance; every read is audited.
    listing = _cli(srv, "list", PATIENT_INS)
    assert "11502-2" in listing and "Compte rendu d'examens biologiques" in listing
    shown = json.loads(_cli(srv, "show", PATIENT_INS, str(doc.id)))
    assert shown["provenance"]["sender"] == LAB and shown["unique_id"] == unique
    # Sent again (a laboratory re-sends the same result): delivered, not filed twice.
    _send(srv, fx.xdm_zip(_docs(unique)))
    _settled(srv)
    assert [d.unique_id for d in _documents(srv)].count(unique) == 1


def test_replacement_supersedes_the_earlier_report(srv: Running) -> None:
    first = _docs("1.2.250.1.999.1.1.9^E2E-RPLC-1")
    _send(srv, fx.xdm_zip(first))
    _settled(srv)
    second = _docs("1.2.250.1.999.1.1.9^E2E-RPLC-2", title="CR de biologie (corrigé)")
    _send(srv, fx.xdm_zip(second, replaces=[(second[0].entry, first[0].entry)]))
    _settled(srv)
    docs = {d.unique_id: d for d in _documents(srv)}
    old, new = docs["1.2.250.1.999.1.1.9^E2E-RPLC-1"], docs["1.2.250.1.999.1.1.9^E2E-RPLC-2"]
    assert old.superseded_by_id == new.id and new.superseded_by_id is None
    assert "superseded" in _cli(srv, "list", PATIENT_INS)


def test_archive_for_another_patient_is_not_filed_and_the_lab_is_told(srv: Running) -> None:
    lab_before = len(srv.inbox(LAB))
    before = len(_documents(srv))
    other = fx.lab_docs(
        unique_id="1.2.250.1.999.1.1.9^E2E-OTHER",
        patient_id=fx.patient_cx(fx.OTHER_INS),
        content=fx.cda_lab_report(ins=fx.OTHER_INS),
    )
    _send(srv, fx.xdm_zip(other))
    _settled(srv)
    assert len(_documents(srv)) == before
    notices = srv.wait_inbox(LAB, lab_before + 1)
    assert len(notices) == lab_before + 1, srv.logs()
    text = notices[-1].decode(errors="replace")
    assert "X-MSS-ERR: 904" in text and "904" in text.split("\r\n\r\n", 1)[0]
    assert "INS" in text


def test_zip_bomb_is_refused_without_memory_growth_and_the_message_is_delivered(
    srv: Running,
) -> None:
    lab_before = len(srv.inbox(LAB))
    before_docs = len(_documents(srv))
    rss_before = srv.peak_rss_kb()
    before = len(srv.inbox(PATIENT))
    _send(srv, fx.deflate_bomb_zip(1 << 30))  # 1 GiB of zeros in about 1 MB
    assert len(srv.wait_inbox(PATIENT, before + 1)) == before + 1
    _settled(srv)
    assert srv.peak_rss_kb() - rss_before < 100 * 1024  # the worker stayed under 100 MB
    assert len(_documents(srv)) == before_docs
    notices = srv.wait_inbox(LAB, lab_before + 1)
    assert len(notices) == lab_before + 1
    assert b"archive-bomb" in notices[-1] or b"archive-" in notices[-1]


def test_export_writes_documents_and_metadata(srv: Running, tmp_path: Path) -> None:
    _send(srv, fx.xdm_zip(fx.discharge_docs(patient_id=fx.patient_cx(PATIENT_INS),
                                           content=fx.cda_discharge_summary(ins=PATIENT_INS)),
                          extra={"IHE_XDM/SUBSET01/DOC0001.PDF": fx.pdf_bytes("CRH")}))  # fmt: skip
    _settled(srv)
    out = tmp_path / "export"
    _cli(srv, "export", PATIENT_INS, str(out))
    index = json.loads((out / "metadata.json").read_text())
    assert index["ins"] == PATIENT_INS and index["documents"]
    crh = next(d for d in index["documents"] if d["type_code"] == "34112-3")
    assert crh["has_rendition"] and (out / crh["files"]["rendition"]).read_bytes().startswith(
        b"%PDF"
    )
    assert (out / crh["files"]["document"]).read_bytes().lstrip().startswith(b"<?xml")

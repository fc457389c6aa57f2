"""The integration-error notice sent back to the sender of documents that were not filed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

from filing.notice import build_notice


@dataclass(frozen=True)
class R:
    code: str
    reason: str
    attachment: str


def _notice(*refusals: R, message_id: str | None = "<res-1@labo>") -> bytes:
    return build_notice(
        postmaster="postmaster@demo.mssante.fr",
        to="laboratoire@demo.mssante.fr",
        patient_address="146026322000196@patient.mssante.fr",
        original_message_id=message_id,
        original_subject="XDM/1.0/DDM+Résultats DUPONT Camille 01/02/1946",
        refusals=refusals,
        now=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        message_id_domain="mail.demo.mssante.fr",
    )


def test_notice_names_the_code_the_reason_and_the_original_message() -> None:
    raw = _notice(R("904", "patientId 2850... is not the recipient's INS", "IHE_XDM.ZIP"))
    msg = message_from_bytes(raw, policy=default)
    assert msg["To"] == "laboratoire@demo.mssante.fr"
    assert msg["X-MSS-ERR"] == "904"
    assert "904" in msg["Subject"]
    assert msg["In-Reply-To"] == "<res-1@labo>" and msg["Auto-Submitted"] == "auto-replied"
    body = msg.get_content()
    assert "IHE_XDM.ZIP: code 904 (INS non concordant / INS mismatch)" in body
    assert "is not the recipient's INS" in body
    assert "146026322000196@patient.mssante.fr" in body
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_hostile_archive_refusals_are_listed_by_their_slug() -> None:
    raw = _notice(
        R("archive-bomb", "IHE_XDM.ZIP: expands 10,000 times", "IHE_XDM.ZIP"),
        R("903", "no patientId", "autre.zip"),
        message_id=None,
    )
    msg = message_from_bytes(raw, policy=default)
    assert msg["X-MSS-ERR"] == "903,archive-bomb"
    assert msg["In-Reply-To"] is None
    assert "(903)" in msg["Subject"]
    body = msg.get_content()
    assert "code archive-bomb" in body and "code 903 (INS absent / INS missing)" in body

"""Pure pieces of the webmail: TOTP (RFC 6238 test vectors), the HTML sanitiser, reading
stored messages, the read receipt (RFC 8098), file names and the pages of long lists."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default

import pytest

from directory import otp
from webmail.outgoing import build_mdn, build_message
from webmail.paging import Pager
from webmail.reading import (
    content_disposition,
    display_subject,
    has_attachments,
    read_message,
    safe_filename,
)
from webmail.sanitize import clean_html

# RFC 6238 Appendix B: the SHA-1 seed "12345678901234567890", 8 digits.
SEED = base64.b32encode(b"12345678901234567890").decode()


@pytest.mark.parametrize(
    ("unix", "code"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
    ],
)
def test_totp_rfc6238_vectors(unix: int, code: str) -> None:
    assert otp.hotp(SEED, unix // otp.TOTP_PERIOD, digits=8) == code


def test_totp_window_and_single_use() -> None:
    secret = otp.new_totp_secret()
    now = 1_800_000_000.0
    step = int(now // 30)
    code = otp.hotp(secret, step)
    assert otp.totp_match(secret, code, now) == step
    assert otp.totp_match(secret, otp.hotp(secret, step - 1), now) == step - 1  # clock drift
    assert otp.totp_match(secret, otp.hotp(secret, step - 3), now) is None
    assert otp.totp_match(secret, code, now, after_step=step) is None  # RFC 6238 §5.2
    assert otp.totp_match(secret, "12a456", now) is None
    assert otp.otpauth_uri(secret, "p@x.fr", "Mon espace santé").startswith("otpauth://totp/")


def test_email_codes_are_stored_hashed() -> None:
    code = otp.new_email_code()
    assert len(code) == 6 and code.isdigit()
    digest = otp.code_digest(code, "session")
    assert code not in digest
    assert otp.code_matches(f" {code[:3]} {code[3:]} ", "session", digest)
    assert not otp.code_matches(code, "other session", digest)


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        '<img src="https://tracker.example/p.gif">',
        '<a href="javascript:alert(1)">x</a>',
        '<p onmouseover="alert(1)">x</p>',
        '<form action="https://evil.example"><input name="pw"></form>',
        '<div style="background:url(https://evil.example/x)">x</div>',
        '<iframe src="https://evil.example"></iframe>',
        "<svg><script>alert(1)</script></svg>",
        '<link rel="stylesheet" href="https://evil.example/s.css">',
        "<style>@import url(https://evil.example/s.css)</style>",
    ],
)
def test_sanitiser_removes_active_and_remote_content(payload: str) -> None:
    cleaned = clean_html(f"<p>Bonjour</p>{payload}")
    for needle in (
        "script",
        "evil.example",
        "tracker",
        "javascript",
        "on",
        "<img",
        "<form",
        "style",
        "<iframe",
        "<link",
    ):
        assert needle not in cleaned.replace("Bonjour", ""), (needle, cleaned)
    assert "Bonjour" in cleaned


def test_sanitiser_keeps_text_formatting_and_safe_links() -> None:
    cleaned = clean_html(
        "<h2>Résultats</h2><table><tr><td>Glycémie</td></tr></table>"
        '<a href="https://ansm.sante.fr">ANSM</a>'
    )
    assert "<h2>Résultats</h2>" in cleaned and "<td>Glycémie</td>" in cleaned
    assert 'href="https://ansm.sante.fr"' in cleaned and "noreferrer" in cleaned


def test_subject_prefix_hidden_and_file_names_safe() -> None:
    assert display_subject("XDM/1.0/DDM+CR biologie DUPONT") == "CR biologie DUPONT"
    assert display_subject("=?utf-8?q?R=C3=A9sultats?=") == "Résultats"
    assert display_subject(None) == "(sans objet)"
    assert safe_filename("../../etc/passwd", 1) == "passwd"
    assert safe_filename('"><script>x.pdf', 2) == "___script_x.pdf"
    assert safe_filename("a\r\nb.pdf", 3) == "a  b.pdf"
    assert safe_filename("", 4) == "piece-jointe-4"
    header = content_disposition("résultat «final».pdf")
    assert header.startswith('attachment; filename="') and "filename*=UTF-8''" in header
    assert "\n" not in header


def test_reading_the_header_fields_of_a_message_as_sent() -> None:
    """Names and subjects as people should see them, from header fields as mail clients
    really write them: encoded words (RFC 2047), folded lines (RFC 5322 §2.2.3), raw UTF-8
    (RFC 6532), the old ``address (Name)`` form, and a charset nobody knows."""
    data = (
        "From: =?utf-8?q?Dr_C=C3=A9line?= =?utf-8?q?_Dupont?= <Celine.Dupont@demo.mssante.fr>\r\n"
        'To: "Martin, Camille" <camille.martin@demo.mssante.fr>,\r\n'
        " secretariat@demo.mssante.fr (Secrétariat),\r\n"
        " =?x-unknown?q?Labo?= <labo@demo.mssante.fr>\r\n"
        "Subject: XDM/1.0/DDM+=?utf-8?q?R=C3=A9sultats?=\r\n de biologie\r\n"
        "Date: Mon, 07 Dec 2026\r\n 01:00:00 +0100\r\n"
        "Message-ID: <m1@demo.mssante.fr>\r\n"
        "\r\nBonjour\r\n"
    ).encode()
    read = read_message(data)
    # RFC 2047 §6.2: the space between two adjacent encoded words is not part of the text.
    assert (read.from_name, read.from_address) == (
        "Dr Céline Dupont",
        "celine.dupont@demo.mssante.fr",
    )
    assert read.to == [
        ("Martin, Camille", "camille.martin@demo.mssante.fr"),
        ("Secrétariat", "secretariat@demo.mssante.fr"),
        ("Labo", "labo@demo.mssante.fr"),
    ]
    assert read.subject == "Résultats de biologie"
    assert read.date == datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    assert read.message_id == "<m1@demo.mssante.fr>"


def test_reading_a_message_and_its_attachments() -> None:
    m = EmailMessage()
    m["From"] = "Dr Camille Martin <camille.martin@demo.mssante.fr>"
    m["To"] = "146026322000196@patient.mssante.fr"
    m["Subject"] = "Compte rendu"
    m["Disposition-Notification-To"] = "camille.martin@demo.mssante.fr"
    m.set_content("Bonjour")
    m.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="cr.pdf")
    read = read_message(m.as_bytes())
    assert read.text == "Bonjour\n" and read.html is None
    assert read.from_name == "Dr Camille Martin"
    assert [a.filename for a in read.attachments] == ["cr.pdf"]
    assert read.disposition_notification_to == ["camille.martin@demo.mssante.fr"]
    assert has_attachments(
        [
            ["TEXT", "PLAIN", None, None, None, "7BIT", 1, 1, None, None],
            [
                "APPLICATION",
                "PDF",
                None,
                None,
                None,
                "BASE64",
                9,
                None,
                ["ATTACHMENT", ["FILENAME", "cr.pdf"]],
            ],
            "MIXED",
        ]
    )
    assert not has_attachments(["TEXT", "PLAIN", None, None, None, "7BIT", 1, 1])


def test_mdn_is_a_disposition_notification_report() -> None:
    data = build_mdn(
        patient=("Camille Dupont", "146026322000196@patient.mssante.fr"),
        to="camille.martin@demo.mssante.fr",
        original_subject="Compte rendu",
        original_message_id="<1@demo>",
        original_recipient=None,
        hostname="mail.demo",
        now=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
    )
    m = BytesParser(policy=default).parsebytes(data)
    assert m.get_content_type() == "multipart/report"
    assert m.get_param("report-type") == "disposition-notification"
    assert m["Auto-Submitted"] == "auto-replied"
    assert "Camille Dupont" in str(m["From"])
    text, report = list(m.iter_parts())
    assert "affiché" in text.get_content()
    raw = report.as_bytes()
    assert b"Final-Recipient: rfc822;146026322000196@patient.mssante.fr" in raw
    assert b"Original-Message-ID: <1@demo>" in raw
    assert b"Disposition: manual-action/MDN-sent-automatically; displayed" in raw
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


def test_patient_message_is_utf8_text_with_threading() -> None:
    data = build_message(
        sender=("Camille Dupont", "146026322000196@patient.mssante.fr"),
        recipient=("Dr Martin", "camille.martin@demo.mssante.fr"),
        subject="Re: Résultats",
        body="Merci, à jeudi.",
        hostname="mail.demo",
        now=datetime(2026, 1, 2, tzinfo=UTC),
        in_reply_to="<1@demo>",
    )
    m = BytesParser(policy=default).parsebytes(data)
    assert m["Subject"] == "Re: Résultats" and m["In-Reply-To"] == "<1@demo>"
    assert m.get_content_charset() == "utf-8" and m["X-MSS-NIL"]
    assert m.get_content().rstrip() == "Merci, à jeudi."


def test_pager_counts_pages_and_its_links_keep_the_filter() -> None:
    pager = Pager(2, 50, keep=(("type", "CR d'imagerie"),)).counted(120)
    assert (pager.pages, pager.offset, pager.exists) == (3, 50, True)
    assert pager.href(3) == "?type=CR+d%27imagerie&page=3"
    assert Pager(1, 50).counted(0).exists  # an empty list still has its first page
    assert not Pager(4, 50).counted(120).exists

"""smtp.dsn: RFC 3464 delivery status notifications, NOTIFY and xtext (RFC 3461)."""

from __future__ import annotations

import email
import email.message
import email.policy
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtp.dsn import (
    RecipientReport,
    build_dsn,
    notify_wants,
    parse_dsn,
    parse_notify,
    xtext_decode,
    xtext_encode,
)

Ret = Literal["FULL", "HDRS"] | None
PARIS = timezone(timedelta(hours=2))
ARRIVAL = datetime(2024, 5, 2, 14, 3, 7, tzinfo=PARIS)
NOW = datetime(2024, 5, 2, 14, 5, 0, tzinfo=PARIS)
ORIGINAL = (
    b"From: Camille Martin <camille.martin@demo.mssante.fr>\r\n"
    b"To: dr.absent@hopital.mssante.fr\r\n"
    b"Subject: Compte rendu\r\n"
    b"Message-ID: <orig-1@demo.mssante.fr>\r\n"
    b"\r\n"
    b"Patient data that must not bounce around.\r\n"
)


def _dsn(
    reports: list[RecipientReport],
    *,
    ret: Ret = None,
    envid: str | None = None,
    original: bytes = ORIGINAL,
) -> bytes:
    return build_dsn(
        reporting_mta="mail.demo.mssante.fr",
        postmaster="postmaster@demo.mssante.fr",
        sender="camille.martin@demo.mssante.fr",
        original=original,
        reports=reports,
        envid=envid,
        ret=ret,
        arrival=ARRIVAL,
        now=NOW,
        message_id_domain="demo.mssante.fr",
    )


def _parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


FAILED = RecipientReport(
    final_recipient="dr.absent@hopital.mssante.fr",
    action="failed",
    status="5.1.1",
    diagnostic="smtp; 550 5.1.1 <dr.absent@hopital.mssante.fr>: no such mailbox",
    original_recipient="rfc822;Dr.Absent+cardio@hopital.mssante.fr",
    remote_mta="dns; mx.hopital.mssante.fr",
    last_attempt=NOW,
)


def test_failure_dsn_structure_and_fields() -> None:
    data = _dsn([FAILED], envid="QUEUE-42=x+2B")
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    msg = _parse(data)
    assert msg["From"] == "Mail Delivery System <postmaster@demo.mssante.fr>"
    assert msg["To"].addresses[0].addr_spec == "camille.martin@demo.mssante.fr"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    assert "Undelivered" in msg["Subject"] and "non remis" in msg["Subject"]
    assert msg["Message-ID"].endswith("@demo.mssante.fr>")
    assert msg["Date"] == "Thu, 02 May 2024 14:05:00 +0200"
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]

    human = parts[0]
    assert human.get_content_charset() == "utf-8"
    assert human["Content-Transfer-Encoding"] == "quoted-printable"
    text = human.get_content()
    assert "Votre message n'a pas pu être remis" in text
    assert "could not be delivered" in text
    assert "dr.absent@hopital.mssante.fr" in text
    assert "no such mailbox" in text

    per_message, recipients = parse_dsn(data)
    assert per_message == {
        "Original-Envelope-Id": "QUEUE-42=x+2B",  # decoded values are written as given
        "Reporting-MTA": "dns; mail.demo.mssante.fr",
        "Arrival-Date": "Thu, 02 May 2024 14:03:07 +0200",
    }
    assert recipients == [
        {
            "Original-Recipient": "rfc822; Dr.Absent+cardio@hopital.mssante.fr",
            "Final-Recipient": "rfc822; dr.absent@hopital.mssante.fr",
            "Action": "failed",
            "Status": "5.1.1",
            "Remote-MTA": "dns; mx.hopital.mssante.fr",
            "Diagnostic-Code": "smtp; 550 5.1.1 <dr.absent@hopital.mssante.fr>: no such mailbox",
            "Last-Attempt-Date": "Thu, 02 May 2024 14:05:00 +0200",
        }
    ]


def test_stdlib_parser_sees_the_same_per_recipient_blocks() -> None:
    msg = _parse(_dsn([FAILED, FAILED]))
    status = list(msg.iter_parts())[1]
    payload = status.get_payload()
    assert isinstance(payload, list)
    blocks = [b for b in payload if isinstance(b, email.message.Message)]
    assert len(blocks) == 3
    assert blocks[0]["Reporting-MTA"] == "dns; mail.demo.mssante.fr"
    assert "Original-Envelope-Id" not in blocks[0]  # no ENVID given
    assert blocks[1]["Status"] == "5.1.1" and blocks[2]["Action"] == "failed"


def test_delay_dsn_has_will_retry_until() -> None:
    until = datetime(2024, 5, 7, 14, 3, 7, tzinfo=UTC)
    delayed = RecipientReport(
        final_recipient="secretariat@clinique.mssante.fr",
        action="delayed",
        status="4.4.1",
        diagnostic="smtp; 421 4.4.1 try again later",
        remote_mta="mx.clinique.mssante.fr",  # type added
        last_attempt=NOW,
        will_retry_until=until,
    )
    data = _dsn([delayed])
    msg = _parse(data)
    assert "Delayed" in msg["Subject"] and "en attente" in msg["Subject"]
    text = next(iter(msg.iter_parts())).get_content()
    assert "pas encore pu être remis" in text and "not yet been delivered" in text
    assert "2024-05-07 14:03 +0000" in text
    _, recipients = parse_dsn(data)
    assert recipients[0]["Action"] == "delayed"
    assert recipients[0]["Will-Retry-Until"] == "Tue, 07 May 2024 14:03:07 +0000"
    assert recipients[0]["Remote-MTA"] == "dns; mx.clinique.mssante.fr"


def test_will_retry_until_only_for_delayed() -> None:
    report = RecipientReport(
        "a@b.fr", "failed", "4.4.7", will_retry_until=datetime(2024, 5, 7, tzinfo=UTC)
    )
    _, recipients = parse_dsn(_dsn([report]))
    assert "Will-Retry-Until" not in recipients[0]
    assert recipients[0]["Status"] == "4.4.7"  # an expired delay is "failed" with 4.x.x


def test_success_dsn() -> None:
    delivered = RecipientReport("cardiologie@demo.mssante.fr", "delivered", "2.0.0")
    relayed = RecipientReport(
        "dr.b@hopital.mssante.fr", "relayed", "2.0.0", diagnostic="smtp; 250 2.0.0 queued as X"
    )
    data = _dsn([delivered, relayed])
    msg = _parse(data)
    assert "Successful" in msg["Subject"]
    text = next(iter(msg.iter_parts())).get_content()
    assert "Votre message a été remis" in text and "was delivered" in text
    _, recipients = parse_dsn(data)
    assert [r["Action"] for r in recipients] == ["delivered", "relayed"]
    assert recipients[1]["Diagnostic-Code"] == "smtp; 250 2.0.0 queued as X"


def test_mixed_reports_use_the_most_serious_subject() -> None:
    ok = RecipientReport("a@b.fr", "delivered", "2.0.0")
    late = RecipientReport("c@d.fr", "delayed", "4.2.0")
    assert "Undelivered" in _parse(_dsn([ok, late, FAILED]))["Subject"]
    assert "Delayed" in _parse(_dsn([ok, late]))["Subject"]


def test_ret_full_returns_the_whole_message() -> None:
    msg = _parse(_dsn([FAILED], ret="FULL"))
    returned = list(msg.iter_parts())[2]
    assert returned.get_content_type() == "message/rfc822"
    inner = returned.get_content()
    assert inner["Subject"] == "Compte rendu"
    assert inner.get_content().strip() == "Patient data that must not bounce around."
    text = next(iter(msg.iter_parts())).get_content()
    assert "Votre message d'origine est joint" in text


@pytest.mark.parametrize("ret", ["HDRS", None])
def test_ret_hdrs_and_default_return_only_the_header(ret: Ret) -> None:
    data = _dsn([FAILED], ret=ret)
    assert b"Patient data" not in data
    returned = list(_parse(data).iter_parts())[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    headers = returned.get_payload(decode=True)
    assert isinstance(headers, bytes)
    assert headers == ORIGINAL.split(b"\r\n\r\n")[0] + b"\r\n"
    text = next(iter(_parse(data).iter_parts())).get_content()
    assert "seul l'en-tête" in text and "only the header" in text


def test_broken_8bit_original_without_separator() -> None:
    broken = b"Subject: caf\xe9 cr\xe8me\nFrom: x@y\nthis line is body text\n\xff\xfe garbage"
    rets: tuple[Ret, ...] = ("HDRS", "FULL")
    for ret in rets:
        data = _dsn([FAILED], ret=ret, original=broken)
        assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
        msg = _parse(data)
        returned = list(msg.iter_parts())[2]
        assert returned["Content-Transfer-Encoding"] == "8bit"
        per_message, recipients = parse_dsn(data)
        assert per_message["Reporting-MTA"] == "dns; mail.demo.mssante.fr"
        assert recipients[0]["Status"] == "5.1.1"
    headers_only = _dsn([FAILED], ret="HDRS", original=broken)
    assert b"Subject: caf\xe9 cr\xe8me\r\nFrom: x@y\r\n\r\n--" in headers_only
    assert b"this line is body text" not in headers_only
    assert b"\xff\xfe garbage" in _dsn([FAILED], ret="FULL", original=broken)


def test_empty_and_headerless_originals_do_not_crash() -> None:
    for original in (b"", b"no header at all\r\n", b"\r\n\r\nbody"):
        _, recipients = parse_dsn(_dsn([FAILED], original=original))
        assert recipients[0]["Final-Recipient"] == "rfc822; dr.absent@hopital.mssante.fr"


def test_boundary_never_appears_in_returned_content() -> None:
    data = _dsn([FAILED], ret="FULL")
    boundary = _parse(data).get_boundary()
    assert boundary is not None
    assert data.count(f"--{boundary}".encode()) == 4  # three parts and the close delimiter


def test_long_and_hostile_diagnostic_is_folded_and_cleaned() -> None:
    diag = "smtp; 550 5.7.1 " + " ".join(["refused"] * 40) + "\r\nInjected: header é"
    report = RecipientReport("a@b.fr", "failed", "5.7.1", diagnostic=diag)
    data = _dsn([report])
    assert b"\r\nInjected:" not in data
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    _, recipients = parse_dsn(data)
    assert recipients[0]["Diagnostic-Code"].startswith("smtp; 550 5.7.1 refused refused")
    assert recipients[0]["Diagnostic-Code"].endswith("refused Injected: header ?")


def test_non_ascii_final_recipient_uses_utf8_type() -> None:
    report = RecipientReport("hélène@hôpital.fr", "failed", "5.1.1")
    _, recipients = parse_dsn(_dsn([report]))
    assert recipients[0]["Final-Recipient"] == "utf-8; h\\x{E9}l\\x{E8}ne@h\\x{F4}pital.fr"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="null reverse-path"):
        build_dsn(
            reporting_mta="h",
            postmaster="p@h",
            sender="",
            original=b"",
            reports=[FAILED],
            envid=None,
            ret=None,
            arrival=ARRIVAL,
            now=NOW,
            message_id_domain="h",
        )
    with pytest.raises(ValueError, match="enhanced status"):
        _dsn([RecipientReport("a@b.fr", "failed", "550")])
    with pytest.raises(ValueError, match="at least one"):
        _dsn([])
    with pytest.raises(ValueError, match="timezone-aware"):
        _dsn([RecipientReport("a@b.fr", "failed", "5.0.0", last_attempt=datetime(2024, 1, 1))])


def test_parse_dsn_refuses_a_plain_message() -> None:
    with pytest.raises(ValueError, match="no message/delivery-status"):
        parse_dsn(ORIGINAL)


# -- NOTIFY -----------------------------------------------------------------------------------


def test_notify_default_is_failure_and_delay() -> None:
    assert notify_wants(None, "FAILURE")
    assert notify_wants(None, "DELAY")
    assert not notify_wants(None, "SUCCESS")


def test_notify_explicit_values() -> None:
    assert not notify_wants("NEVER", "FAILURE")
    assert not notify_wants("never", "DELAY")
    assert notify_wants("SUCCESS,FAILURE", "SUCCESS")
    assert not notify_wants("SUCCESS,FAILURE", "DELAY")
    assert notify_wants("success", "SUCCESS")
    assert parse_notify("DELAY,FAILURE") == frozenset({"DELAY", "FAILURE"})


@pytest.mark.parametrize("bad", ["", "NEVER,SUCCESS", "SUCCESS,SOMETIMES", "SUCCESS,"])
def test_notify_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="NOTIFY"):
        notify_wants(bad, "FAILURE")


# -- xtext ------------------------------------------------------------------------------------


def test_xtext_examples() -> None:
    assert xtext_encode("a+b=c d@x.fr") == "a+2Bb+3Dc+20d@x.fr"
    assert xtext_decode("a+2Bb+3Dc+20d@x.fr") == "a+b=c d@x.fr"
    assert xtext_encode("é") == "+C3+A9"
    assert xtext_decode("+c3+a9") == "é"  # lower-case hex accepted on input
    assert xtext_decode("") == ""


@given(st.text())
def test_xtext_round_trip(value: str) -> None:
    encoded = xtext_encode(value)
    assert all("!" <= c <= "~" and c != "=" for c in encoded)
    assert xtext_decode(encoded) == value


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("a+2", "two hexadecimal digits"),
        ("a+G0", "two hexadecimal digits"),
        ("a b", "' '"),
        ("a=b", "'='"),
        ("caf\u00e9", "'é'"),
        ("+FF", "not UTF-8"),
    ],
)
def test_xtext_refusals(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        xtext_decode(bad)

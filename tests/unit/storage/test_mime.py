"""storage.mime: ENVELOPE, BODYSTRUCTURE and part offsets computed once at delivery.

Expected values come from RFC 3501 §7.4.2 / §8 examples where the RFC gives one, otherwise
they are worked out by hand from RFC 2045/2046/5322 (and Dovecot's conventions where the RFCs
leave room, see the module docstring). ``imap_body`` / ``imap_envelope`` below render the JSON
form the way the IMAP grammar writes it, to compare with the RFC's own text.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import mime
from storage.mime import (
    MAX_DEPTH,
    MAX_PARTS,
    MISSING_DOMAIN,
    MISSING_MAILBOX,
    MessageMeta,
    PartSpan,
    body_without_extensions,
    message_key,
    meta_from_json,
    meta_to_json,
    parse_metadata,
)

CRLF = "\r\n"


def msg(*lines: str) -> bytes:
    """A message from its lines, CRLF line ends."""
    return CRLF.join(lines).encode("utf-8")


def text_body(octets: int, lines: int) -> str:
    """``lines`` CRLF-terminated lines of exactly ``octets`` octets in all."""
    chars = octets - 2 * lines
    width, extra = divmod(chars, lines)
    return "".join("x" * (width + (i < extra)) + CRLF for i in range(lines))


def body_of(data: bytes, meta: MessageMeta, part: str) -> bytes:
    span = meta.parts[part]
    return data[span.body_start : span.body_end]


def header_of(data: bytes, meta: MessageMeta, part: str) -> bytes:
    span = meta.parts[part]
    return data[span.header_start : span.header_end]


# -- an IMAP rendering of the JSON form (RFC 3501 §9 grammar) ---------------------------------


def _q(value: str | None) -> str:
    if value is None:
        return "NIL"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _plist(value: list[Any] | None) -> str:
    if value is None:
        return "NIL"
    return (
        "(" + " ".join(_q(item) if isinstance(item, str) else _plist(item) for item in value) + ")"
    )


def _addresses(value: list[list[str | None]] | None) -> str:
    # env-from = "(" 1*address ")" / nil: addresses side by side, no SP
    if value is None:
        return "NIL"
    return "(" + "".join("(" + " ".join(_q(x) for x in address) + ")" for address in value) + ")"


def imap_envelope(envelope: list[Any]) -> str:
    fields = [_q(envelope[0]), _q(envelope[1])]
    fields += [_addresses(value) for value in envelope[2:8]]
    fields += [_q(envelope[8]), _q(envelope[9])]
    return "(" + " ".join(fields) + ")"


def _ext(value: Any) -> str:
    if value is None or isinstance(value, str):
        return _q(value)
    if (  # body-fld-dsp
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and (value[1] is None or isinstance(value[1], list))
    ):
        return "(" + _q(value[0]) + " " + _plist(value[1]) + ")"
    return _plist(value)


def imap_body(body: list[Any]) -> str:
    if isinstance(body[0], list):  # body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
        count = next(i for i, item in enumerate(body) if not isinstance(item, list))
        inner = "".join(imap_body(part) for part in body[:count])
        fields = [_q(body[count])]
        if len(body) > count + 1:
            fields += [_plist(body[count + 1]), *(_ext(x) for x in body[count + 2 :])]
        return "(" + inner + " " + " ".join(fields) + ")"
    out = [_q(body[0]), _q(body[1]), _plist(body[2]), _q(body[3]), _q(body[4]), _q(body[5])]
    out.append(str(body[6]))
    rest = body[7:]
    if body[0] == "TEXT":
        out.append(str(rest[0]))
        rest = rest[1:]
    elif body[:2] == ["MESSAGE", "RFC822"]:
        out += [imap_envelope(rest[0]), imap_body(rest[1]), str(rest[2])]
        rest = rest[3:]
    out += [_ext(x) for x in rest]
    return "(" + " ".join(out) + ")"


# -- RFC 3501 examples ------------------------------------------------------------------------

RFC3501_HEADER = (
    "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)",
    "From: Terry Gray <gray@cac.washington.edu>",
    "Subject: IMAP4rev1 WG mtg summary and minutes",
    "To: imap@cac.washington.edu",
    "cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>",
    "Message-Id: <B27397-0100000@cac.washington.edu>",
    "MIME-Version: 1.0",
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII",
)


def test_rfc3501_section_8_fetch_full_example() -> None:
    # RFC 3501 §8: "a003 fetch 12 full" and "a004 fetch 12 body[header]" ({342} octets).
    data = msg(*RFC3501_HEADER, "") + CRLF.encode() + text_body(3028, 92).encode()
    meta = parse_metadata(data)
    assert meta.parts[""].header_end == 342
    assert imap_envelope(meta.envelope) == (
        '("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        '(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        '(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        '(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        '((NIL NIL "imap" "cac.washington.edu")) '
        '((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        'NIL NIL "<B27397-0100000@cac.washington.edu>")'
    )
    assert imap_body(body_without_extensions(meta.body_structure)) == (
        '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)'
    )
    assert meta.body_structure == [
        *["TEXT", "PLAIN", ["CHARSET", "US-ASCII"], None, None, "7BIT", 3028, 92],
        *[None, None, None, None],
    ]
    assert meta.message_id == "<B27397-0100000@cac.washington.edu>"
    assert meta.subject == "IMAP4rev1 WG mtg summary and minutes"
    assert meta.date == "Wed, 17 Jul 1996 02:23:25 -0700 (PDT)"
    assert meta.size == len(data)


def test_rfc3501_section_7_4_2_multipart_example() -> None:
    # RFC 3501 §7.4.2 BODYSTRUCTURE: "a two part message consisting of a text and a
    # BASE64-encoded text attachment".
    data = (
        msg(
            "From: a@example.org",
            "MIME-Version: 1.0",
            'Content-Type: MULTIPART/MIXED; BOUNDARY="----- =_aaaaaaaaaa0"',
            "",
            "------- =_aaaaaaaaaa0",
            "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII",
            "",
            text_body(1152, 23),  # + CRLF: the CRLF before a boundary is the boundary's
            "------- =_aaaaaaaaaa0",
            'Content-Type: TEXT/PLAIN; CHARSET=US-ASCII; NAME="cc.diff"',
            "Content-ID: <960723163407.20117h@cac.washington.edu>",
            "Content-Description: Compiler diff",
            "Content-Transfer-Encoding: BASE64",
            "",
            text_body(4554, 73),
            "------- =_aaaaaaaaaa0--",
        )
        + CRLF.encode()
    )
    meta = parse_metadata(data)
    assert imap_body(body_without_extensions(meta.body_structure)) == (
        '(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)'
        '("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") '
        '"<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73) "MIXED")'
    )
    assert imap_body(meta.body_structure).endswith(
        '"MIXED" ("BOUNDARY" "----- =_aaaaaaaaaa0") NIL NIL NIL)'
    )


# -- the common shapes -------------------------------------------------------------------------


def test_simple_text_message() -> None:
    data = msg(
        "From: Alice Martin <alice@hopital.mssante.fr>",
        "To: bob@cabinet.mssante.fr",
        "Subject: Compte rendu",
        "Date: Mon, 2 Jun 2025 10:00:00 +0200",
        "Message-ID:  <abc@hopital.mssante.fr> ",
        "",
        "Bonjour,",
        "voici le compte rendu.",
        "",
    )
    meta = parse_metadata(data)
    assert meta.body_structure == [
        *["TEXT", "PLAIN", ["CHARSET", "us-ascii"], None, None, "7BIT", 34, 2],
        *[None, None, None, None],
    ]
    alice = [["Alice Martin", None, "alice", "hopital.mssante.fr"]]
    assert meta.envelope == [
        "Mon, 2 Jun 2025 10:00:00 +0200",
        "Compte rendu",
        alice,
        alice,
        alice,
        [[None, None, "bob", "cabinet.mssante.fr"]],
        None,
        None,
        None,
        "<abc@hopital.mssante.fr>",
    ]
    assert meta.message_id == "<abc@hopital.mssante.fr>"
    header_end = data.index(b"\r\n\r\n") + 4
    # RFC 3501 §6.4.5: a non-multipart message has only part 1, its body.
    assert meta.parts == {
        "": PartSpan(0, header_end, header_end, len(data)),
        "1": PartSpan(0, header_end, header_end, len(data)),
    }
    assert body_of(data, meta, "1") == b"Bonjour,\r\nvoici le compte rendu.\r\n"
    assert meta.size == len(data)


PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def mixed_with_pdf() -> bytes:
    encoded = base64.encodebytes(PDF).replace(b"\n", b"\r\n")
    return (
        msg(
            "From: labo@labo.mssante.fr",
            "To: dr.house@cabinet.mssante.fr",
            "Subject: =?utf-8?q?R=C3=A9sultats?=",
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="=_sep_1"',
            "",
            "This is a multi-part message in MIME format.",
            "",
            "--=_sep_1",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            "Résultats ci-joints.",
            "",
            "--=_sep_1",
            'Content-Type: application/pdf; name="resultats.pdf"',
            "Content-Transfer-Encoding: base64",
            "Content-Disposition: attachment;",
            '\tfilename="resultats.pdf"; size=10000',
            "",
            "",
        )
        + encoded
        + msg("--=_sep_1--", "")
    )


def test_multipart_mixed_with_pdf_attachment() -> None:
    data = mixed_with_pdf()
    meta = parse_metadata(data)
    text, pdf, *multipart = meta.body_structure
    assert text == [
        *["TEXT", "PLAIN", ["CHARSET", "utf-8"], None, None, "8BIT"],
        len("Résultats ci-joints.\r\n".encode()),
        1,
        *[None, None, None, None],
    ]
    encoded_size = len(base64.encodebytes(PDF).replace(b"\n", b"\r\n")) - 2  # CRLF: boundary's
    assert pdf == [
        *["APPLICATION", "PDF", ["NAME", "resultats.pdf"], None, None, "BASE64", encoded_size],
        None,
        ["ATTACHMENT", ["FILENAME", "resultats.pdf", "SIZE", "10000"]],
        None,
        None,
    ]
    assert multipart == ["MIXED", ["BOUNDARY", "=_sep_1"], None, None, None]
    assert meta.envelope[1] == "=?utf-8?q?R=C3=A9sultats?="  # encoded-words are not decoded
    assert base64.b64decode(body_of(data, meta, "2")) == PDF
    assert body_of(data, meta, "1") == "Résultats ci-joints.\r\n".encode()
    assert header_of(data, meta, "2").startswith(b"Content-Type: application/pdf")
    assert header_of(data, meta, "2").endswith(b"size=10000\r\n\r\n")
    assert sorted(meta.parts) == ["", "1", "2"]


def alternative_in_mixed() -> bytes:
    return msg(
        "From: a@example.org",
        "Content-Type: multipart/mixed; boundary=outer",
        "",
        "--outer",
        "Content-Type: multipart/alternative; boundary=inner",
        "",
        "--inner",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "plain",
        "--inner",
        "Content-Type: text/html; charset=us-ascii",
        "Content-Language: fr, en-GB",
        "",
        "<p>html</p>",
        "--inner--",
        "",
        "--outer",
        "Content-Type: image/png",
        "Content-ID: <logo@example.org>",
        "Content-Description: logo",
        "Content-Disposition: inline",
        "Content-Location: logo.png",
        "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==",
        "Content-Transfer-Encoding: base64",
        "",
        "iVBORw0KGgo=",
        "--outer--",
        "",
    )


def test_alternative_inside_mixed_numbering_and_spans() -> None:
    data = alternative_in_mixed()
    meta = parse_metadata(data)
    assert sorted(meta.parts) == ["", "1", "1.1", "1.2", "2"]
    assert body_of(data, meta, "1.1") == b"plain"
    assert body_of(data, meta, "1.2") == b"<p>html</p>"
    assert body_of(data, meta, "2") == b"iVBORw0KGgo="
    # Part 1 is the multipart/alternative: its body holds the inner boundaries and the empty
    # epilogue line that follows the close-delimiter (RFC 2046 §5.1.1).
    assert body_of(data, meta, "1").startswith(b"--inner\r\n")
    assert body_of(data, meta, "1").endswith(b"--inner--\r\n")
    assert header_of(data, meta, "1") == (
        b"Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
    )
    assert header_of(data, meta, "1.2") == (
        b"Content-Type: text/html; charset=us-ascii\r\nContent-Language: fr, en-GB\r\n\r\n"
    )
    alternative, image, *rest = meta.body_structure
    assert alternative == [
        [
            "TEXT",
            "PLAIN",
            ["CHARSET", "us-ascii"],
            None,
            None,
            "7BIT",
            5,
            0,
            None,
            None,
            None,
            None,
        ],
        [
            *["TEXT", "HTML", ["CHARSET", "us-ascii"], None, None, "7BIT", 11, 0],
            *[None, None, ["fr", "en-GB"], None],
        ],
        *["ALTERNATIVE", ["BOUNDARY", "inner"], None, None, None],
    ]
    assert image == [
        *["IMAGE", "PNG", None, "<logo@example.org>", "logo", "BASE64", 12],
        *["Q2hlY2sgSW50ZWdyaXR5IQ==", ["INLINE", None], None, "logo.png"],
    ]
    assert rest == ["MIXED", ["BOUNDARY", "outer"], None, None, None]
    assert body_without_extensions(meta.body_structure) == [
        [
            ["TEXT", "PLAIN", ["CHARSET", "us-ascii"], None, None, "7BIT", 5, 0],
            ["TEXT", "HTML", ["CHARSET", "us-ascii"], None, None, "7BIT", 11, 0],
            "ALTERNATIVE",
        ],
        ["IMAGE", "PNG", None, "<logo@example.org>", "logo", "BASE64", 12],
        "MIXED",
    ]


FORWARDED = (
    "From: Carol <carol@example.org>",
    "To: dave@example.org, erin@example.org",
    "Subject: inner",
    "Date: Tue, 3 Jun 2025 09:00:00 +0000",
    "Content-Type: multipart/alternative; boundary=sub",
    "",
    "--sub",
    "",
    "inner text",
    "--sub",
    "Content-Type: text/html",
    "",
    "<b>inner</b>",
    "",
    "--sub--",
)


def message_with_attached_message() -> bytes:
    return msg(
        "From: a@example.org",
        "Subject: fwd",
        "Content-Type: multipart/mixed; boundary=b",
        "",
        "--b",
        "",
        "see attached",
        "--b",
        "Content-Type: message/rfc822",
        "Content-Description: forwarded",
        "",
        *FORWARDED,
        "--b--",
    )


def test_message_rfc822_attachment() -> None:
    data = message_with_attached_message()
    meta = parse_metadata(data)
    assert sorted(meta.parts) == ["", "1", "2", "2.1", "2.2", "2.MESSAGE"]
    # The LF ending the inner close-delimiter line is the inner multipart's (then the outer
    # boundary line follows at once and takes no newline): sizes agree with Dovecot's.
    forwarded = msg(*FORWARDED) + CRLF.encode()
    assert body_of(data, meta, "2") == forwarded
    assert message_key("2") == "2.MESSAGE" and message_key("") == ""
    inner_header = forwarded[: forwarded.index(b"\r\n\r\n") + 4]
    assert header_of(data, meta, "2.MESSAGE") == inner_header  # BODY[2.HEADER]
    assert body_of(data, meta, "2.MESSAGE") == forwarded[len(inner_header) :]  # BODY[2.TEXT]
    assert body_of(data, meta, "2.1") == b"inner text"
    assert body_of(data, meta, "2.2") == b"<b>inner</b>\r\n"
    text, message, *_ = meta.body_structure
    assert text[:8] == ["TEXT", "PLAIN", ["CHARSET", "us-ascii"], None, None, "7BIT", 12, 0]
    assert message[:7] == ["MESSAGE", "RFC822", None, None, "forwarded", "7BIT", len(forwarded)]
    envelope, body, lines = message[7:10]
    assert envelope == [
        "Tue, 3 Jun 2025 09:00:00 +0000",
        "inner",
        [["Carol", None, "carol", "example.org"]],
        [["Carol", None, "carol", "example.org"]],
        [["Carol", None, "carol", "example.org"]],
        [[None, None, "dave", "example.org"], [None, None, "erin", "example.org"]],
        None,
        None,
        None,
        None,
    ]
    assert lines == forwarded.count(b"\n") == len(FORWARDED)
    assert body == [
        [
            "TEXT",
            "PLAIN",
            ["CHARSET", "us-ascii"],
            None,
            None,
            "7BIT",
            10,
            0,
            None,
            None,
            None,
            None,
        ],
        [
            "TEXT",
            "HTML",
            ["CHARSET", "us-ascii"],
            None,
            None,
            "7BIT",
            14,
            1,
            None,
            None,
            None,
            None,
        ],
        *["ALTERNATIVE", ["BOUNDARY", "sub"], None, None, None],
    ]
    assert meta.parts["2.MESSAGE"].body_end == meta.parts["2"].body_end
    assert message[10:] == [None, None, None, None]
    without = body_without_extensions(meta.body_structure)
    assert without[1] == [
        *["MESSAGE", "RFC822", None, None, "forwarded", "7BIT", len(forwarded), envelope],
        [
            ["TEXT", "PLAIN", ["CHARSET", "us-ascii"], None, None, "7BIT", 10, 0],
            ["TEXT", "HTML", ["CHARSET", "us-ascii"], None, None, "7BIT", 14, 1],
            "ALTERNATIVE",
        ],
        lines,
    ]


def test_message_rfc822_with_single_part_body_and_top_level_rfc822() -> None:
    inner = msg("Subject: inner", "", "hello", "")
    data = msg("Content-Type: message/rfc822", "", "") + inner
    meta = parse_metadata(data)
    # The top-level body (part 1) is the message/rfc822; its message has part 1.1, its body.
    assert sorted(meta.parts) == ["", "1", "1.1", "1.MESSAGE"]
    assert body_of(data, meta, "1") == inner
    assert meta.parts["1.1"] == meta.parts["1.MESSAGE"]
    assert body_of(data, meta, "1.1") == b"hello\r\n"
    assert header_of(data, meta, "1.MESSAGE") == b"Subject: inner\r\n\r\n"
    assert meta.body_structure[7][1] == "inner"
    assert meta.body_structure[8][:8] == [
        *["TEXT", "PLAIN", ["CHARSET", "us-ascii"], None, None, "7BIT", 7, 1]
    ]
    assert meta.body_structure[9] == 3  # body-fld-lines of the encapsulated message


def test_multipart_digest_parts_default_to_message_rfc822() -> None:
    # RFC 2046 §5.1.5: in a digest, a part without Content-Type is message/rfc822.
    data = msg(
        "Content-Type: multipart/digest; boundary=d",
        "",
        "--d",
        "",
        "Subject: one",
        "",
        "first",
        "--d",
        "Content-Type: text/plain",
        "",
        "not a message",
        "--d--",
    )
    meta = parse_metadata(data)
    first, second, subtype, *_ = meta.body_structure
    assert first[:2] == ["MESSAGE", "RFC822"] and first[7][1] == "one"
    assert second[:2] == ["TEXT", "PLAIN"]
    assert subtype == "DIGEST"
    assert body_of(data, meta, "1.1") == b"first"


# -- ENVELOPE ---------------------------------------------------------------------------------


def test_envelope_groups_defaults_and_raw_values() -> None:
    data = msg(
        'From: "Martin, Alice" <alice@example.org>',
        "From: second@example.org",
        "Sender:",
        "To: Équipe: bob@example.org, Carol <carol@example.org>;, dave@example.org",
        "Cc: undisclosed-recipients:;",
        "Bcc: <@relay.example,@other.example:eve@example.org>",
        "Subject: =?utf-8?b?UsOpc3VsdGF0cw==?=",
        "  suite",
        "In-Reply-To: <parent@example.org>",
        "",
        "",
    )
    envelope = parse_metadata(data).envelope
    sender = [
        ["Martin, Alice", None, "alice", "example.org"],
        [None, None, "second", "example.org"],  # several From headers are merged (Dovecot)
    ]
    assert envelope == [
        None,
        "=?utf-8?b?UsOpc3VsdGF0cw==?=  suite",  # unfolded (RFC 5322 §2.2.3), not decoded
        sender,
        sender,  # RFC 3501: an empty Sender is the From
        sender,  # and so is a missing Reply-To
        [
            [None, None, "Équipe", None],  # group start (RFC 3501 §7.4.2)
            [None, None, "bob", "example.org"],
            ["Carol", None, "carol", "example.org"],
            [None, None, None, None],  # group end
            [None, None, "dave", "example.org"],
        ],
        [[None, None, "undisclosed-recipients", None], [None, None, None, None]],
        [[None, "@relay.example,@other.example", "eve", "example.org"]],
        "<parent@example.org>",
        None,
    ]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("user@example.org (Jean Dupont)", [["Jean Dupont", None, "user", "example.org"]]),
        ("John Q. Public <jqp@example.org>", [["John Q. Public", None, "jqp", "example.org"]]),
        ('"a b"@example.org', [[None, None, "a b", "example.org"]]),
        ("<user@[192.0.2.1]>", [[None, None, "user", "[192.0.2.1]"]]),
        # Missing pieces are filled like Dovecot: a NIL host would read as a group marker.
        ("postmaster", [[None, None, "postmaster", MISSING_DOMAIN]]),
        ("user@", [[None, None, "user", MISSING_DOMAIN]]),
        ("@example.org", [[None, None, MISSING_MAILBOX, "example.org"]]),
        ("Jean Dupont", [["Jean Dupont", None, MISSING_MAILBOX, MISSING_DOMAIN]]),
        ("<>", [[None, None, MISSING_MAILBOX, MISSING_DOMAIN]]),
        ("Jean <jean", [["Jean", None, "jean", MISSING_DOMAIN]]),
        (",,, ;", None),
        ("", None),
    ],
)
def test_envelope_addresses_best_effort(header: str, expected: Any) -> None:
    envelope = parse_metadata(msg(f"To: {header}", "", "")).envelope
    assert envelope[5] == expected


def test_envelope_of_a_message_without_headers() -> None:
    meta = parse_metadata(b"\r\njust a body\r\n")
    assert meta.envelope == [None] * 10
    assert meta.message_id is None and meta.subject is None and meta.date is None
    assert meta.parts[""] == PartSpan(0, 2, 2, 15)


def test_header_bytes_that_are_not_ascii() -> None:
    data = b"Subject: caf\xc3\xa9 \xe9t\xe9\x00\r\nFrom: J\xe9r\xf4me <j@example.org>\r\n\r\nx"
    envelope = parse_metadata(data).envelope
    # Valid UTF-8 is read as UTF-8, other bytes as Latin-1; NUL is replaced.
    assert envelope[1] == "café été\ufffd"
    assert envelope[2] == [["Jérôme", None, "j", "example.org"]]


# -- MIME fields ------------------------------------------------------------------------------


def test_content_type_comments_quotes_and_rfc2231() -> None:
    data = msg(
        "Content-Type: multipart/mixed; boundary=----=_Part_0_1 (unquoted, with =)",
        "",
        "------=_Part_0_1",
        "Content-Type: text/plain; charset=us-ascii (Plain text)",  # RFC 2045 §5.1 example
        "",
        "a",
        "------=_Part_0_1",
        "Content-Type: application/octet-stream;",
        "  name*0*=utf-8''r%C3%A9sultats%20;",
        '  name*1="du jour.pdf"; x-junk',
        "Content-Disposition: attachment; filename*=iso-8859-1'fr'%E9t%E9.pdf",
        "Content-Transfer-Encoding: ?invalid",
        "",
        "b",
        "------=_Part_0_1--",
    )
    meta = parse_metadata(data)
    text, attachment, subtype, params, *_ = meta.body_structure
    assert params == ["BOUNDARY", "----=_Part_0_1"]
    assert text[2] == ["CHARSET", "us-ascii"]
    assert attachment[2] == ["NAME", "résultats du jour.pdf"]
    assert attachment[5] == "7BIT"  # not a token (RFC 2045 §6.1): the default
    assert attachment[8] == ["ATTACHMENT", ["FILENAME", "été.pdf"]]
    assert subtype == "MIXED"


def test_missing_or_invalid_content_type_means_text_plain() -> None:
    # RFC 2045 §5.2: default, and recommended for a syntactically invalid Content-Type.
    for header in ("X-Nothing: here", "Content-Type: garbage", "Content-Type: text/"):
        structure = parse_metadata(msg(header, "", "body")).body_structure
        assert structure[:3] == ["TEXT", "PLAIN", ["CHARSET", "us-ascii"]], header
    structure = parse_metadata(msg("Content-Type: text/html", "", "x")).body_structure
    assert structure[2] == ["CHARSET", "us-ascii"]  # RFC 2046 §4.1.2 default charset


# -- broken and hostile input -----------------------------------------------------------------


def test_multipart_without_boundary_parameter_is_text_plain() -> None:
    data = msg("Content-Type: multipart/mixed", "", "--x", "", "a", "--x--", "")
    meta = parse_metadata(data)
    assert meta.body_structure[:8] == [
        *["TEXT", "PLAIN", ["CHARSET", "us-ascii"], None, None, "7BIT", 17, 4]
    ]
    assert sorted(meta.parts) == ["", "1"]


def test_multipart_without_any_body_part_gets_one_empty_part() -> None:
    # body-type-mpart needs 1*body: one empty text/plain part (as Dovecot writes it).
    data = msg("Content-Type: multipart/mixed; boundary=never", "", "only a preamble", "")
    meta = parse_metadata(data)
    assert meta.body_structure == [
        [
            "TEXT",
            "PLAIN",
            ["CHARSET", "us-ascii"],
            None,
            None,
            "7BIT",
            0,
            0,
            None,
            None,
            None,
            None,
        ],
        *["MIXED", ["BOUNDARY", "never"], None, None, None],
    ]
    assert body_of(data, meta, "1") == b""
    assert body_of(data, meta, "") == b"only a preamble\r\n"


def test_missing_close_delimiter() -> None:
    data = msg("Content-Type: multipart/mixed; boundary=b", "", "--b", "", "one", "--b", "", "two")
    meta = parse_metadata(data)
    assert [part[6] for part in meta.body_structure[:2]] == [3, 3]
    assert body_of(data, meta, "2") == b"two"
    assert meta.parts[""].body_end == len(data)


def test_outer_boundary_ends_inner_multipart() -> None:
    # RFC 2046 §5.1.2: the outer boundary ends the inner multipart and its parts.
    data = msg(
        "Content-Type: multipart/mixed; boundary=outer",
        "",
        "--outer",
        "Content-Type: multipart/alternative; boundary=inner",
        "",
        "--inner",
        "",
        "unfinished",
        "--outer",
        "",
        "after",
        "--outer--",
    )
    meta = parse_metadata(data)
    assert sorted(meta.parts) == ["", "1", "1.1", "2"]
    assert body_of(data, meta, "1.1") == b"unfinished"
    assert body_of(data, meta, "2") == b"after"
    assert body_of(data, meta, "1") == b"--inner\r\n\r\nunfinished"


def test_longest_boundary_wins_when_one_prefixes_another() -> None:
    data = msg(
        "Content-Type: multipart/mixed; boundary=ab",
        "",
        "--ab",
        "Content-Type: multipart/mixed; boundary=abcd",
        "",
        "--abcd",
        "",
        "inner",
        "--abcd--",
        "--ab",
        "",
        "second",
        "--ab--",
    )
    meta = parse_metadata(data)
    assert sorted(meta.parts) == ["", "1", "1.1", "2"]
    assert body_of(data, meta, "1.1") == b"inner"
    assert body_of(data, meta, "2") == b"second"


def test_boundary_inside_a_header_block_ends_it() -> None:
    data = msg(
        "Content-Type: multipart/mixed; boundary=b",
        "",
        "--b",
        "Content-Type: text/plain",
        "--b",
        "",
        "x",
        "--b--",
    )
    meta = parse_metadata(data)
    assert header_of(data, meta, "1") == b"Content-Type: text/plain"
    assert body_of(data, meta, "1") == b""
    assert body_of(data, meta, "2") == b"x"


def test_bare_lf_line_ends() -> None:
    data = alternative_in_mixed().replace(b"\r\n", b"\n")
    meta = parse_metadata(data)
    assert sorted(meta.parts) == ["", "1", "1.1", "1.2", "2"]
    assert body_of(data, meta, "1.1") == b"plain"
    assert body_of(data, meta, "2") == b"iVBORw0KGgo="
    assert header_of(data, meta, "1.1") == b"Content-Type: text/plain; charset=us-ascii\n\n"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n",
        b"Subject: only headers",
        b"Subject: only headers\r\nFrom: a@b\r\n",
        b"no colon at all",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x--",
        b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\n',
        b"Content-Type: text/plain; charset*=bogus-charset''%ff%fe%\r\n\r\n",
        b'To: (unterminated\r\nCc: "unterminated\r\nBcc: [x\r\n\r\n',
        b"\x00\xff\xfe\r\n\r\n\x00",
    ],
)
def test_degenerate_messages(data: bytes) -> None:
    meta = mime._parse(data)  # the strict parser: parse_metadata would hide an exception
    check_consistency(data, meta)


def test_empty_message() -> None:
    meta = parse_metadata(b"")
    assert meta.size == 0
    assert meta.parts == {"": PartSpan(0, 0, 0, 0), "1": PartSpan(0, 0, 0, 0)}
    assert meta.body_structure[6:8] == [0, 0]


def test_nesting_depth_is_limited() -> None:
    levels = MAX_DEPTH + 20
    data = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(levels)
    )
    meta = mime._parse(data + b"\r\nleaf\r\n")
    structure, depth = meta.body_structure, 0
    while isinstance(structure[0], list):
        structure, depth = structure[0], depth + 1
    assert depth == MAX_DEPTH
    assert structure[:2] == ["APPLICATION", "OCTET-STREAM"]
    deep_rfc822 = b"Content-Type: message/rfc822\r\n\r\n" * (levels)
    meta = mime._parse(deep_rfc822)
    check_consistency(deep_rfc822, meta)


def test_number_of_parts_is_limited() -> None:
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * (
        MAX_PARTS + 500
    )
    started = time.perf_counter()
    meta = mime._parse(data)
    assert time.perf_counter() - started < 5
    assert len(meta.body_structure) - 5 == MAX_PARTS - 1  # the top level counts as one
    assert meta.parts[""].body_end == len(data)


def big_message(attachment_size: int) -> bytes:
    attachment = base64.encodebytes(b"\x8f\x01" * (attachment_size // 2)).replace(b"\n", b"\r\n")
    return (
        mixed_with_pdf().replace(b"--=_sep_1--\r\n", b"")
        + msg("--=_sep_1", "Content-Type: image/jpeg", "Content-Transfer-Encoding: base64", "")
        + CRLF.encode()
        + attachment
        + msg("--=_sep_1--", "")
    )


def test_ten_megabytes_in_well_under_half_a_second() -> None:
    data = big_message(7_500_000)
    assert len(data) > 10_000_000
    parse_metadata(data)  # warm up
    started = time.perf_counter()
    meta = parse_metadata(data)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"{elapsed:.3f} s"
    assert meta.body_structure[2][:2] == ["IMAGE", "JPEG"]


def test_twenty_megabyte_attachment() -> None:
    data = big_message(15_000_000)
    meta = parse_metadata(data)
    assert len(body_of(data, meta, "3")) == meta.body_structure[2][6] > 20_000_000
    check_consistency(data, meta)


# -- JSON -------------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    data = message_with_attached_message()
    meta = parse_metadata(data)
    envelope_json, structure_json = meta_to_json(meta)
    assert json.loads(envelope_json) == meta.envelope
    document = json.loads(structure_json)
    assert document["structure"] == meta.body_structure
    assert document["parts"]["2"] == list(dataclasses.astuple(meta.parts["2"]))
    envelope, structure, parts = meta_from_json(envelope_json, structure_json)
    assert (envelope, structure, parts) == (meta.envelope, meta.body_structure, meta.parts)
    assert envelope_json.isascii() and structure_json.isascii()


@pytest.mark.parametrize(
    ("envelope_json", "structure_json"),
    [
        ("", ""),
        ("[]", '{"v": 1, "structure": [], "parts": {}}'),
        ("[null,null,null,null,null,null,null,null,null,null]", '{"structure": [], "parts": {}}'),
        (
            "[null,null,null,null,null,null,null,null,null,null]",
            '{"v": 1, "structure": [], "parts": {"1": [0, 1, 2]}}',
        ),
    ],
)
def test_meta_from_json_rejects_malformed_columns(envelope_json: str, structure_json: str) -> None:
    with pytest.raises(ValueError):
        meta_from_json(envelope_json, structure_json)


# -- BODY -------------------------------------------------------------------------------------


def test_body_without_extensions() -> None:
    basic = ["APPLICATION", "PDF", None, None, None, "BASE64", 10, None, None, None, None]
    text = ["TEXT", "PLAIN", None, None, None, "7BIT", 10, 2, "md5", None, ["fr"], "loc"]
    message = [
        *["MESSAGE", "RFC822", None, None, None, "7BIT", 50, [None] * 10, text, 4],
        *[None, ["INLINE", None], None, None],
    ]
    multipart = [basic, message, "MIXED", ["BOUNDARY", "x"], None, None, None]
    assert body_without_extensions(multipart) == [
        ["APPLICATION", "PDF", None, None, None, "BASE64", 10],
        [
            *["MESSAGE", "RFC822", None, None, None, "7BIT", 50, [None] * 10],
            ["TEXT", "PLAIN", None, None, None, "7BIT", 10, 2],
            4,
        ],
        "MIXED",
    ]
    for broken in ([], [["TEXT"]], ["TEXT", "PLAIN"], [[*basic]]):
        with pytest.raises(ValueError):
            body_without_extensions(broken)


# -- consistency on any input -----------------------------------------------------------------


def check_consistency(data: bytes, meta: MessageMeta) -> None:
    """Invariants of any result: spans inside the data, in order, matching the structure."""
    assert meta.size == len(data)
    for key, span in meta.parts.items():
        assert 0 <= span.header_start <= span.header_end == span.body_start, key
        assert span.body_start <= span.body_end <= len(data), key
    assert meta.parts[""].header_start == 0 and meta.parts[""].body_end == len(data)
    check_message(data, meta, "", meta.body_structure)
    envelope_json, structure_json = meta_to_json(meta)
    assert meta_from_json(envelope_json, structure_json) == (
        meta.envelope,
        meta.body_structure,
        meta.parts,
    )
    assert imap_body(body_without_extensions(meta.body_structure))
    check_envelope(meta.envelope)


def check_envelope(envelope: list[Any]) -> None:
    assert len(envelope) == 10
    for index in (0, 1, 8, 9):
        assert envelope[index] is None or isinstance(envelope[index], str)
    for addresses in envelope[2:8]:
        assert addresses is None or addresses
        for address in addresses or []:
            assert len(address) == 4
            assert all(item is None or isinstance(item, str) for item in address)
    strings = [x for x in envelope[:2] + envelope[8:] if x is not None]
    strings += [x for a in envelope[2:8] for address in a or [] for x in address if x is not None]
    assert not any(char in text for text in strings for char in "\r\n\0")


def check_message(data: bytes, meta: MessageMeta, prefix: str, body: list[Any]) -> None:
    """``body`` is the structure of the message at ``message_key(prefix)``."""
    if isinstance(body[0], list):
        check_body(data, meta, prefix, body)
    else:
        number = f"{prefix}.1" if prefix else "1"
        assert meta.parts[number] == meta.parts[message_key(prefix)]
        check_body(data, meta, number, body)


def check_body(data: bytes, meta: MessageMeta, number: str, body: list[Any]) -> None:
    """``number`` is the body's part number, or for a multipart the prefix of its parts."""
    if isinstance(body[0], list):  # body-type-mpart
        count = next(i for i, item in enumerate(body) if not isinstance(item, list))
        assert count >= 1 and len(body) == count + 5
        assert isinstance(body[count], str) and body[count] == body[count].upper()
        for index, part in enumerate(body[:count], 1):
            check_body(data, meta, f"{number}.{index}" if number else str(index), part)
        return
    span = meta.parts[number]
    media = body[:2]
    assert all(isinstance(x, str) and x == x.upper() for x in media)
    assert body[2] is None or (len(body[2]) % 2 == 0 and all(isinstance(x, str) for x in body[2]))
    assert isinstance(body[5], str) and body[6] == span.body_end - span.body_start
    lines = data.count(b"\n", span.body_start, span.body_end)
    if media[0] == "TEXT":
        assert len(body) == 12 and body[7] == lines
    elif media == ["MESSAGE", "RFC822"]:
        assert len(body) == 14 and body[9] == lines
        check_envelope(body[7])
        inner = meta.parts[message_key(number)]
        assert (inner.header_start, inner.body_end) == (span.body_start, span.body_end)
        check_message(data, meta, number, body[8])
    else:
        assert len(body) == 11


FRAGMENTS = [
    b"--a",
    b"--a--",
    b"--bb",
    b"--bb--",
    b"--",
    b"",
    b" folded",
    b"Content-Type: multipart/mixed; boundary=a",
    b"Content-Type: multipart/alternative; boundary=bb",
    b"Content-Type: multipart/digest; boundary=a",
    b"Content-Type: message/rfc822",
    b"Content-Type: text/plain; charset*0*=utf-8''%C3; charset*1=x",
    b'Content-Disposition: attachment; filename="x',
    b'To: g: a@b, <c@d>;, (x) "q\\"" <@r:e@f>',
    b"Subject: \xc3\xa9\xff",
    b"\x00\r",
    b"text",
]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40), st.sampled_from([b"\r\n", b"\n"]))
def test_mime_shaped_input_is_consistent(lines: list[bytes], newline: bytes) -> None:
    data = newline.join(lines)
    check_consistency(data, mime._parse(data))


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    check_consistency(data, mime._parse(data))
    assert parse_metadata(data) == mime._parse(data)

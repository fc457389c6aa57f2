"""imap.fetch: FETCH data items (RFC 3501 §6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ)."""

from __future__ import annotations

import pytest

from imap.commands import FetchArgs
from imap.errors import ParseError
from imap.fetch import (
    FETCH_MACROS,
    FetchAttribute,
    FetchBinary,
    FetchBinarySize,
    FetchBody,
    FetchItem,
    Partial,
    Section,
)
from imap.sequence import SequenceSet

from .wire import parse


def fetch(line: str | bytes) -> FetchArgs:
    args = parse(line).args
    assert isinstance(args, FetchArgs)
    return args


def items(spec: str) -> tuple[FetchAttribute, ...]:
    return fetch(f"a FETCH 1 {spec}").attributes


def bad(line: str | bytes) -> ParseError:
    with pytest.raises(ParseError) as exc:
        parse(line)
    return exc.value


@pytest.mark.parametrize(
    "name",
    [
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",
    ],
)
def test_simple_items(name: str) -> None:
    assert items(name) == (FetchItem(name),)  # type: ignore[arg-type]
    assert items(name.lower()) == (FetchItem(name),)  # type: ignore[arg-type]
    assert items(f"({name})") == (FetchItem(name),)  # type: ignore[arg-type]


def test_macros() -> None:
    assert items("ALL") == FETCH_MACROS["ALL"]
    assert items("fast") == (
        FetchItem("FLAGS"),
        FetchItem("INTERNALDATE"),
        FetchItem("RFC822.SIZE"),
    )
    assert items("FULL")[-1] == FetchItem("BODY")
    # A macro is not an attribute: it cannot appear in a list.
    assert "unknown fetch attribute ALL" in bad("a FETCH 1 (ALL)").message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("BODY[]", FetchBody(Section())),
        ("BODY.PEEK[]", FetchBody(Section(), peek=True)),
        ("BODY[HEADER]", FetchBody(Section(text="HEADER"))),
        ("body.peek[header]", FetchBody(Section(text="HEADER"), peek=True)),
        ("BODY[TEXT]", FetchBody(Section(text="TEXT"))),
        ("BODY[1]", FetchBody(Section((1,)))),
        ("BODY[4.2.2.1]", FetchBody(Section((4, 2, 2, 1)))),
        ("BODY[1.MIME]", FetchBody(Section((1,), "MIME"))),
        ("BODY[3.HEADER]", FetchBody(Section((3,), "HEADER"))),
        ("BODY[3.1.TEXT]", FetchBody(Section((3, 1), "TEXT"))),
        (
            "BODY[HEADER.FIELDS (DATE FROM)]",
            FetchBody(Section(text="HEADER.FIELDS", headers=("DATE", "FROM"))),
        ),
        (
            'BODY.PEEK[HEADER.FIELDS.NOT (Received "X-Spam")]',
            FetchBody(Section(text="HEADER.FIELDS.NOT", headers=("Received", "X-Spam")), peek=True),
        ),
        (
            "BODY[2.HEADER.FIELDS (Subject)]",
            FetchBody(Section((2,), "HEADER.FIELDS", ("Subject",))),
        ),
        ("BODY[]<0.2048>", FetchBody(Section(), partial=Partial(0, 2048))),
        ("BODY.PEEK[1]<100.4294967295>", FetchBody(Section((1,)), True, Partial(100, 4294967295))),
        ("BINARY[]", FetchBinary(())),
        ("BINARY[1.2]", FetchBinary((1, 2))),
        ("BINARY.PEEK[2]<0.1024>", FetchBinary((2,), True, Partial(0, 1024))),
        ("BINARY.SIZE[1]", FetchBinarySize((1,))),
    ],
)
def test_sections(spec: str, expected: FetchAttribute) -> None:
    assert items(spec) == (expected,)
    assert items(f"(FLAGS {spec})") == (FetchItem("FLAGS"), expected)


def test_response_names() -> None:
    def name(spec: str) -> str:
        [attribute] = items(spec)
        return attribute.response_name()

    assert name("BODY.PEEK[]") == "BODY[]"
    assert name("BODY.PEEK[]<0.2048>") == "BODY[]<0>"
    assert (
        name("BODY[1.2.HEADER.FIELDS (From To)]<10.5>") == "BODY[1.2.HEADER.FIELDS (From To)]<10>"
    )
    assert name("body[header.fields.not (X)]") == "BODY[HEADER.FIELDS.NOT (X)]"
    assert name("BODY[3.MIME]") == "BODY[3.MIME]"
    assert name("BINARY.PEEK[1.2]<5.5>") == "BINARY[1.2]<5>"
    assert name("BINARY.SIZE[3]") == "BINARY.SIZE[3]"
    assert name("rfc822.size") == "RFC822.SIZE"


def test_duplicates_are_dropped_in_order() -> None:
    assert items("(FLAGS UID FLAGS BODY[] UID BODY[])") == (
        FetchItem("FLAGS"),
        FetchItem("UID"),
        FetchBody(Section()),
    )


def test_header_list_as_literal() -> None:
    args = fetch(b"a FETCH 1 (BODY[HEADER.FIELDS ({7+}\r\nSubject)])")
    assert args.attributes == (FetchBody(Section(text="HEADER.FIELDS", headers=("Subject",))),)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "expected a space at end of command"),
        ("X-GM-MSGID", "unknown fetch attribute X-GM-MSGID"),
        ("(FLAGS X-GM-LABELS)", "unknown fetch attribute X-GM-LABELS"),
        ("()", "expected a fetch attribute"),
        ("(FLAGS", "')' or a space in FETCH attribute list"),
        ("(FLAGS  UID)", "expected a fetch attribute"),
        ("((FLAGS))", "nested parentheses"),
        ("BODY.PEEK", "expected '[' after BODY.PEEK"),
        ("BINARY", "expected '[' after BINARY"),
        ("FLAGS[]", "fetch attribute FLAGS takes no section"),
        ("BODY[", "expected a section"),
        ("BODY[HEADER", "expected ']'"),
        ("BODY[0]", "invalid section part '0'"),
        ("BODY[01]", "invalid section part '01'"),
        ("BODY[1.]", "invalid section '1.'"),
        ("BODY[.TEXT]", "invalid section '.TEXT'"),
        ("BODY[FOO]", "invalid section 'FOO'"),
        ("BODY[MIME]", "section MIME needs a part number"),
        ("BODY[1.TEXT.2]", "invalid section '1.TEXT.2'"),
        ("BODY[HEADER.FIELDS]", "expected a space"),
        ("BODY[HEADER.FIELDS ()]", "expected a header field name"),
        ('BODY[HEADER.FIELDS ("a:b")]', "invalid header field name 'a:b'"),
        ('BODY[HEADER.FIELDS ("")]', "invalid header field name ''"),
        ("BODY[HEADER.FIELDS (From]", "')' after header field names"),
        ("BODY[]<0>", "expected '.'"),
        ("BODY[]<0.0>", "partial length out of range"),
        ("BODY[]<x.1>", "expected partial offset"),
        ("BODY[]<0.1", "expected '>'"),
        ("BINARY[HEADER]", "invalid section part 'HEADER'"),
        ("BINARY.SIZE[1]<0.1>", "unexpected characters after command"),
    ],
)
def test_fetch_errors(spec: str, message: str) -> None:
    error = bad(f"f1 FETCH 1:* {spec}".rstrip())
    assert error.tag == "f1"
    assert message in error.message


def test_sequence_set_forms() -> None:
    assert fetch("a FETCH 1:*,3 FLAGS").sequence == SequenceSet.parse("1:*,3")
    assert fetch("a FETCH $ FLAGS").sequence.saved
    assert "invalid sequence set" in bad("a FETCH 1:x FLAGS").message

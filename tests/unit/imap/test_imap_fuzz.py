"""Fuzzing: whatever a client sends, the wire layer raises only ProtocolError or ParseError."""

from __future__ import annotations

import contextlib
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imap.arguments import Command
from imap.commands import parse_command, parse_done, parse_sasl_response
from imap.errors import ParseError, ProtocolError
from imap.framing import CommandReader, NeedContinuation, RawCommand

# Valid commands from real clients, to mutate (see test_imap_clients.py).
SEEDS = [
    b"a1 UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Subject)])\r\n",
    b'A003 SELECT "INBOX" (QRESYNC (67890007 20050715194045000 41:211,214:541 (1:3 4:6)))\r\n',
    b"a UID SEARCH RETURN (ALL) CHARSET UTF-8 OR SUBJECT {6+}\r\nh\xc3\xa9llo FROM x\r\n",
    b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" "%") RETURN (STATUS (MESSAGES) CHILDREN)\r\n',
    b"a STORE 1:3 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Seen $Forwarded)\r\n",
    b'a APPEND "Sent" (\\Seen) " 5-Jan-2024 10:00:00 +0100" {5}\r\nhello\r\n',
    b'a SEARCH OR (FROM "a" SINCE 1-Feb-1994) NOT MODSEQ "/flags/\\\\Seen" all 5 UID $\r\n',
    b'a ID ("name" "mutt" "version" NIL)\r\n',
    b"a AUTHENTICATE PLAIN AGNhbWlsbGUAc2VjcmV0\r\n",
    b'a CREATE "Envoy&AOk-s" (USE (\\Sent))\r\n',
    b"a FETCH 1 (BODY[1.2.MIME]<0.100> BINARY.PEEK[1]<0.5> BINARY.SIZE[2] MODSEQ)\r\n",
    b'a SETQUOTA "" (STORAGE 512)\r\n',
    b"a LOGIN {4+}\r\nuser {3+}\r\npwd\r\n",
    b"a APPEND INBOX ~{3+}\r\n\x00\x01\x02\r\n",
]

# Fragments to build command-like inputs that get past the first checks.
TOKENS = [
    b"a",
    b"UID",
    b"FETCH",
    b"SEARCH",
    b"STORE",
    b"SELECT",
    b"LIST",
    b"APPEND",
    b"STATUS",
    b"LOGIN",
    b"ID",
    b"ENABLE",
    b"CREATE",
    b"COPY",
    b"MOVE",
    b"EXPUNGE",
    b"AUTHENTICATE",
    b"SETQUOTA",
    b"RETURN",
    b"CHARSET",
    b"UTF-8",
    b"OR",
    b"NOT",
    b"ALL",
    b"HEADER",
    b"MODSEQ",
    b"BODY[",
    b"BODY.PEEK[",
    b"HEADER.FIELDS",
    b"]",
    b"<0.1>",
    b"(",
    b")",
    b"1:*",
    b"$",
    b"0",
    b"*",
    b'"',
    b'"x"',
    b"\\",
    b"\\Seen",
    b"{3}\r\nabc",
    b"{0+}\r\n",
    b"~{1+}\r\n\x00",
    b"{",
    b"}",
    b"NIL",
    b"INBOX",
    b"&AOk-",
    b"&",
    b"1-Feb-1994",
    b'" 1-Feb-1994 00:00:00 +0000"',
    b"QRESYNC",
    b"CONDSTORE",
    b"CHANGEDSINCE",
    b"VANISHED",
    b"+FLAGS",
    b".SILENT",
    b"\xc3\xa9",
    b"\r",
    b"\n",
    b" ",
    b"  ",
    b"=",
    b"USE",
    b"STATUS",
    b"SPECIAL-USE",
    b"RECURSIVEMATCH",
]


def run(data: bytes, chunk: int) -> None:
    """Feed ``data`` and parse everything framed; only the two wire errors may escape."""
    reader = CommandReader(
        max_line_length=200, max_literal_size=50, max_command_size=400, max_discard=100
    )
    for start in range(0, len(data), chunk):
        reader.feed(data[start : start + chunk])
        while True:
            try:
                item = reader.next_command()
            except ProtocolError as exc:
                assert isinstance(exc.message, str)
                if exc.fatal:
                    return
                continue
            if item is None:
                break
            if isinstance(item, NeedContinuation):
                continue
            check_parsers(item)


def check_parsers(raw: RawCommand) -> None:
    try:
        command = parse_command(raw)
    except ParseError as exc:
        assert isinstance(exc.message, str) and exc.message
        assert exc.tag is None or exc.tag == raw.tag
    else:
        assert isinstance(command, Command)
        assert command.tag == raw.tag
    for helper in (parse_done, parse_sasl_response):
        with contextlib.suppress(ParseError):
            helper(raw)


FUZZ = settings(
    max_examples=int(os.environ.get("IMAP_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(st.binary(max_size=600), st.integers(1, 64))
def test_arbitrary_bytes(data: bytes, chunk: int) -> None:
    run(data, chunk)


@FUZZ
@given(
    st.lists(st.sampled_from(TOKENS), max_size=40),
    st.sampled_from([b" ", b"", b"\r\n"]),
    st.integers(1, 64),
)
def test_token_soup(tokens: list[bytes], separator: bytes, chunk: int) -> None:
    run(b"t " + separator.join(tokens) + b"\r\n", chunk)


@st.composite
def mutated_seed(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "token"]))
        if action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=3))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 5))]
        elif action == "replace" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        else:
            data[position:position] = draw(st.sampled_from(TOKENS))
    return bytes(data)


@FUZZ
@given(mutated_seed(), st.integers(1, 64))
def test_mutated_client_commands(data: bytes, chunk: int) -> None:
    run(data, chunk)


def test_seeds_parse() -> None:
    for seed in SEEDS:
        reader = CommandReader()
        reader.feed(seed)
        items = []
        while (item := reader.next_command()) is not None:
            items.append(item)
        assert isinstance(items[-1], RawCommand)
        parse_command(items[-1])

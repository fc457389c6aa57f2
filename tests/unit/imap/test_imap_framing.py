"""imap.framing: lines and literals (RFC 3501 §4.3, §7.5; RFC 7888 LITERAL+; RFC 3516 literal8)."""

from __future__ import annotations

import pytest

from imap.commands import AppendArgs, parse_command
from imap.errors import ParseError, ProtocolError
from imap.framing import CommandReader, NeedContinuation, RawCommand, RawLiteral, tag_of

from .wire import frame

APPEND_SYNC = b"A003 APPEND saved-messages (\\Seen) {21}\r\nFrom: a@b\r\n\r\nhello!\r\n\r\n"


def drain(reader: CommandReader) -> list[RawCommand | NeedContinuation]:
    out: list[RawCommand | NeedContinuation] = []
    while (item := reader.next_command()) is not None:
        out.append(item)
    return out


# -- lines -----------------------------------------------------------------------------------------


def test_crlf_and_bare_lf_end_lines() -> None:
    assert frame(b"a NOOP\r\nb NOOP\nc NOOP\r\n") == [
        RawCommand((b"a NOOP",)),
        RawCommand((b"b NOOP",)),
        RawCommand((b"c NOOP",)),
    ]


def test_bare_cr_never_ends_a_line() -> None:
    reader = CommandReader()
    reader.feed(b"a NOOP\rb NOOP\r")
    assert reader.next_command() is None
    reader.feed(b"\n")
    [raw] = drain(reader)
    assert raw == RawCommand((b"a NOOP\rb NOOP",))
    with pytest.raises(ParseError) as exc:
        parse_command(raw)
    assert exc.value.tag == "a"


def test_pipelined_commands_in_one_chunk() -> None:
    data = b"".join(b"t%d NOOP\r\n" % i for i in range(50))
    assert [raw.tag for raw in frame(data)] == [f"t{i}" for i in range(50)]


def test_partial_line_waits_for_more() -> None:
    reader = CommandReader()
    reader.feed(b"a1 SELECT INB")
    assert reader.next_command() is None
    assert reader.in_command
    reader.feed(b"OX\r\n")
    assert drain(reader) == [RawCommand((b"a1 SELECT INBOX",))]
    assert not reader.in_command
    assert reader.buffered == 0


def test_empty_line_is_framed_and_refused_by_the_parser() -> None:
    [raw] = frame(b"\r\n")
    assert raw == RawCommand((b"",))
    with pytest.raises(ParseError, match="empty command line"):
        parse_command(raw)


def test_tag_of() -> None:
    assert tag_of(b"A001 NOOP") == "A001"
    assert tag_of(b"A001") == "A001"
    assert tag_of(b"+ NOOP") is None
    assert tag_of(b"a(b NOOP") is None
    assert tag_of(b"") is None


# -- synchronising literals ------------------------------------------------------------------------


def test_synchronising_literal_asks_for_continuation_once() -> None:
    reader = CommandReader()
    reader.feed(b"A003 APPEND saved-messages (\\Seen) {21}\r\n")
    assert reader.next_command() == NeedContinuation("A003", 21)
    # Asking again before the data arrives must not produce a second continuation request.
    assert reader.next_command() is None
    assert reader.next_command() is None
    reader.feed(b"From: a@b\r\n\r\nhello!\r\n\r\n")
    [raw] = drain(reader)
    assert isinstance(raw, RawCommand)
    assert raw.lines == (b"A003 APPEND saved-messages (\\Seen) {21}", b"")
    assert raw.literals == (RawLiteral(b"From: a@b\r\n\r\nhello!\r\n"),)
    args = parse_command(raw).args
    assert isinstance(args, AppendArgs)
    assert args.message == b"From: a@b\r\n\r\nhello!\r\n"


def test_literal_split_across_every_byte_boundary() -> None:
    expected = frame(APPEND_SYNC)
    for cut in range(1, len(APPEND_SYNC)):
        reader = CommandReader()
        reader.feed(APPEND_SYNC[:cut])
        first = drain(reader)
        reader.feed(APPEND_SYNC[cut:])
        items = first + drain(reader)
        assert [i for i in items if isinstance(i, RawCommand)] == expected, cut
        assert sum(isinstance(i, NeedContinuation) for i in items) == 1


def test_fed_byte_by_byte() -> None:
    data = (
        b"a LOGIN {4}\r\nuser {8}\r\np\xc3\xa4ssw0r\r\n"
        b"b UID SEARCH CHARSET UTF-8 SUBJECT {6+}\r\nh\xc3\xa9llo FROM x\n"
        b"c NOOP\r\n"
    )
    reader = CommandReader()
    items: list[RawCommand | NeedContinuation] = []
    for octet in data:
        reader.feed(bytes([octet]))
        items.extend(drain(reader))
    assert items == [
        NeedContinuation("a", 4),
        NeedContinuation("a", 8),
        RawCommand(
            (b"a LOGIN {4}", b" {8}", b""),
            (RawLiteral(b"user"), RawLiteral(b"p\xc3\xa4ssw0r")),
        ),
        RawCommand(
            (b"b UID SEARCH CHARSET UTF-8 SUBJECT {6+}", b" FROM x"),
            (RawLiteral("héllo".encode(), non_sync=True),),
        ),
        RawCommand((b"c NOOP",)),
    ]


def test_literal_containing_crlf_and_braces() -> None:
    data = b"a APPEND INBOX {11}\r\nx {3}\r\n\r\nyz\r\n"
    [raw] = frame(data)
    assert raw.literals[0].data == b"x {3}\r\n\r\nyz"


def test_zero_length_literals() -> None:
    reader = CommandReader()
    reader.feed(b'a LOGIN {0}\r\n "" \r\n')
    assert reader.next_command() == NeedContinuation("a", 0)
    [raw] = drain(reader)
    assert isinstance(raw, RawCommand)
    assert raw.literals == (RawLiteral(b""),)
    assert frame(b"b LOGIN {0+}\r\n x\r\n")[0].literals == (RawLiteral(b"", non_sync=True),)


def test_literal_marker_inside_quoted_string_is_not_a_literal() -> None:
    assert frame(b'a LOGIN user "pass {3}"\r\n') == [RawCommand((b'a LOGIN user "pass {3}"',))]
    # An escaped quote keeps the string open; the marker is inside it.
    assert len(frame(b'a LOGIN user "x\\" {3}\r\n')) == 1
    # After a closed string the marker is real.
    reader = CommandReader()
    reader.feed(b'a LOGIN "user" {3}\r\n')
    assert reader.next_command() == NeedContinuation("a", 3)


def test_unterminated_quote_before_marker_is_one_line_and_a_parse_error() -> None:
    [raw] = frame(b'a LOGIN "user {3}\r\n')
    with pytest.raises(ParseError, match="unterminated quoted string"):
        parse_command(raw)


# -- LITERAL+ and literal8 -------------------------------------------------------------------------


def test_non_synchronising_literal_needs_no_continuation() -> None:
    reader = CommandReader()
    reader.feed(b"a APPEND INBOX {5+}\r\nhello\r\n")
    [raw] = drain(reader)
    assert isinstance(raw, RawCommand)
    assert raw.literals == (RawLiteral(b"hello", non_sync=True),)


def test_literal8_is_binary_and_may_hold_nul() -> None:
    [raw] = frame(b"a APPEND INBOX ~{5+}\r\nhe\x00lo\r\n")
    assert raw.literals == (RawLiteral(b"he\x00lo", binary=True, non_sync=True),)
    args = parse_command(raw).args
    assert isinstance(args, AppendArgs)
    assert args.binary
    assert args.message == b"he\x00lo"


def test_literal8_synchronising() -> None:
    reader = CommandReader()
    reader.feed(b"a APPEND INBOX ~{3}\r\n")
    assert reader.next_command() == NeedContinuation("a", 3)
    reader.feed(b"\x00\x01\x02\r\n")
    [raw] = drain(reader)
    assert isinstance(raw, RawCommand)
    assert raw.literals[0].binary


# -- limits ----------------------------------------------------------------------------------------


def test_oversized_synchronising_literal_is_refused_without_reading_it() -> None:
    reader = CommandReader(max_literal_size=1000)
    reader.feed(b"A004 APPEND INBOX (\\Seen) {1001}\r\n")
    with pytest.raises(ProtocolError) as exc:
        reader.next_command()
    assert exc.value.tag == "A004"
    assert not exc.value.fatal
    assert exc.value.code == "TOOBIG"
    assert "1001" in exc.value.message
    # The client got NO instead of "+" and does not send the literal: the next command works.
    assert not reader.in_command
    reader.feed(b"A005 NOOP\r\n")
    assert drain(reader) == [RawCommand((b"A005 NOOP",))]


def test_session_may_refuse_a_literal_after_looking_at_the_command() -> None:
    reader = CommandReader()
    reader.feed(b'a APPEND "No such box" {300}\r\n')
    request = reader.next_command()
    assert request == NeedContinuation("a", 300)
    assert isinstance(request, NeedContinuation)
    assert request.lines == (b'a APPEND "No such box" {300}',)
    reader.refuse_literal()  # the session answered "a NO [TRYCREATE] ..." instead of "+"
    assert not reader.in_command
    reader.feed(b"b NOOP\r\n")
    assert drain(reader) == [RawCommand((b"b NOOP",))]
    with pytest.raises(RuntimeError):
        reader.refuse_literal()
    reader.feed(b"c APPEND INBOX {3+}\r\n")
    assert reader.next_command() is None
    with pytest.raises(RuntimeError):
        reader.refuse_literal()  # a non-synchronising literal is on its way: too late


def test_literal_at_the_limit_is_accepted() -> None:
    reader = CommandReader(max_literal_size=5)
    reader.feed(b"a APPEND INBOX {5+}\r\nhello\r\n")
    assert len(drain(reader)) == 1


def test_oversized_non_synchronising_literal_is_discarded() -> None:
    reader = CommandReader(max_literal_size=10, max_discard=1000)
    reader.feed(b"a APPEND INBOX {500+}\r\n" + b"x" * 200)
    with pytest.raises(ProtocolError) as exc:
        reader.next_command()
    assert (exc.value.tag, exc.value.fatal, exc.value.code) == ("a", False, "TOOBIG")
    assert reader.next_command() is None
    assert reader.buffered == 0  # discarded as it arrives, not buffered
    # The rest of the literal, then the rest of the refused command with another literal+.
    reader.feed(b"x" * 300 + b" {3+}\r\nabc more\r\nb NOOP\r\n")
    assert drain(reader) == [RawCommand((b"b NOOP",))]
    assert not reader.in_command


def test_refused_command_skipping_stops_at_a_synchronising_literal() -> None:
    reader = CommandReader(max_literal_size=10)
    reader.feed(b"a X {50+}\r\n" + b"y" * 50 + b" {4}\r\nb NOOP\r\n")
    with pytest.raises(ProtocolError):
        reader.next_command()
    # The client waits for a "+" for {4} that never comes: its command is over.
    assert drain(reader) == [RawCommand((b"b NOOP",))]


def test_non_synchronising_literal_beyond_discard_limit_is_fatal() -> None:
    reader = CommandReader(max_literal_size=10, max_discard=100)
    reader.feed(b"a APPEND INBOX {4000000000+}\r\n")
    with pytest.raises(ProtocolError) as exc:
        reader.next_command()
    assert exc.value.fatal
    assert exc.value.tag == "a"
    reader.feed(b"b NOOP\r\n")  # dropped: the connection is being closed
    with pytest.raises(ProtocolError) as again:
        reader.next_command()
    assert again.value is exc.value


def test_huge_literal_size_digits() -> None:
    reader = CommandReader()
    reader.feed(b"a LOGIN {99999999999999999999}\r\n")
    with pytest.raises(ProtocolError) as exc:
        reader.next_command()
    assert not exc.value.fatal


def test_line_at_limit_passes_and_longer_is_fatal() -> None:
    reader = CommandReader(max_line_length=20)
    reader.feed(b"a SELECT " + b"x" * 11 + b"\r\n")
    assert len(drain(reader)) == 1
    reader.feed(b"a SELECT " + b"x" * 12 + b"\r\n")
    with pytest.raises(ProtocolError) as exc:
        reader.next_command()
    assert exc.value.fatal
    assert exc.value.tag == "a"
    assert exc.value.code == "TOOBIG"


def test_line_limit_applies_to_each_line_of_a_command() -> None:
    reader = CommandReader(max_line_length=20)
    reader.feed(b"a LOGIN {1+}\r\nx " + b"p" * 30 + b"\r\n")
    with pytest.raises(ProtocolError) as exc:
        reader.next_command()
    assert exc.value.fatal and exc.value.tag == "a"


def test_ten_megabyte_line_without_newline_fails_fast() -> None:
    reader = CommandReader(max_line_length=64 * 1024)
    chunk = b"a SEARCH " + b"x" * (64 * 1024)
    reader.feed(chunk)
    with pytest.raises(ProtocolError) as exc:
        reader.next_command()
    assert exc.value.fatal
    assert exc.value.tag == "a"
    # The rest of the 10 MB keeps coming: it is dropped, nothing is buffered.
    for _ in range(150):
        reader.feed(b"x" * 65536)
    assert reader.buffered == 0
    with pytest.raises(ProtocolError):
        reader.next_command()


def test_ten_megabyte_line_in_one_feed() -> None:
    reader = CommandReader()
    reader.feed(b"x" * 10_000_000)
    with pytest.raises(ProtocolError) as exc:
        reader.next_command()
    assert exc.value.fatal
    assert exc.value.tag is None
    assert reader.buffered == 0


def test_long_line_in_small_chunks_is_scanned_once() -> None:
    reader = CommandReader(max_line_length=1_000_000)
    for _ in range(1000):
        reader.feed(b"y" * 900)
        assert reader.next_command() is None
    reader.feed(b"\r\n")
    [raw] = drain(reader)
    assert isinstance(raw, RawCommand)
    assert len(raw.lines[0]) == 900_000


def test_command_size_limit_over_lines_is_not_fatal() -> None:
    reader = CommandReader(max_line_length=100, max_command_size=120)
    reader.feed(b"a LOGIN {10+}\r\n0123456789 " + b"z" * 99 + b"\r\nb NOOP\r\n")
    with pytest.raises(ProtocolError) as exc:
        reader.next_command()
    assert not exc.value.fatal and exc.value.tag == "a"
    assert drain(reader) == [RawCommand((b"b NOOP",))]


def test_command_size_limit_counts_literals() -> None:
    reader = CommandReader(max_literal_size=100, max_command_size=150)
    reader.feed(b"a LOGIN {100}\r\n")
    assert isinstance(reader.next_command(), NeedContinuation)
    reader.feed(b"u" * 100 + b" {60}\r\n")
    with pytest.raises(ProtocolError) as exc:
        reader.next_command()
    assert exc.value.tag == "a" and not exc.value.fatal


def test_invalid_limits() -> None:
    with pytest.raises(ValueError):
        CommandReader(max_line_length=0)


# -- connection closing mid-command ----------------------------------------------------------------


def test_connection_closed_mid_literal() -> None:
    reader = CommandReader()
    reader.feed(b"a APPEND INBOX {100+}\r\nonly a part")
    assert reader.next_command() is None
    assert reader.next_command() is None
    assert reader.in_command


def test_connection_closed_after_continuation() -> None:
    reader = CommandReader()
    reader.feed(b"a APPEND INBOX {100}\r\n")
    assert isinstance(reader.next_command(), NeedContinuation)
    assert reader.next_command() is None
    assert reader.in_command


# -- big literals are handled linearly -------------------------------------------------------------


def test_large_literal_in_chunks() -> None:
    size = 3_000_000
    reader = CommandReader()
    reader.feed(b"a APPEND INBOX {%d+}\r\n" % size)
    for offset in range(0, size, 65536):
        assert reader.next_command() is None
        reader.feed(b"m" * min(65536, size - offset))
    reader.feed(b"\r\nb NOOP\r\n")
    items = drain(reader)
    assert len(items) == 2
    first = items[0]
    assert isinstance(first, RawCommand)
    assert len(first.literals[0].data) == size
    assert items[1] == RawCommand((b"b NOOP",))
    assert reader.buffered == 0


def test_raw_command_helpers() -> None:
    raw = frame(APPEND_SYNC)[0]
    assert raw.tag == "A003"
    assert raw.size == len(b"A003 APPEND saved-messages (\\Seen) {21}") + 21
    assert RawCommand.from_line("a NOOP") == RawCommand((b"a NOOP",))

"""imap.search: SEARCH criteria (RFC 3501 §6.4.4, RFC 7162 §3.1.5, RFC 4731, RFC 5182)."""

from __future__ import annotations

from datetime import date

import pytest

from imap.arguments import SearchArgs
from imap.errors import ParseError, UnsupportedCharsetError
from imap.search import (
    MAX_KEY_DEPTH,
    MAX_PAREN_DEPTH,
    SUPPORTED_CHARSETS,
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSequence,
    SearchSize,
    SearchText,
)
from imap.sequence import SequenceSet

from .wire import parse


def search(line: str | bytes) -> SearchArgs:
    args = parse(line).args
    assert isinstance(args, SearchArgs)
    return args


def criteria(keys: str) -> SearchKey:
    return search(f"a SEARCH {keys}").criteria


def bad(line: str | bytes) -> ParseError:
    with pytest.raises(ParseError) as exc:
        parse(line)
    return exc.value


def seq(text: str, uid: bool = False) -> SearchSequence:
    return SearchSequence(SequenceSet.parse(text), uid)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("ALL", SearchAll()),
        ("ANSWERED", SearchFlag("\\Answered")),
        ("UNANSWERED", SearchFlag("\\Answered", False)),
        ("DELETED", SearchFlag("\\Deleted")),
        ("UNDELETED", SearchFlag("\\Deleted", False)),
        ("DRAFT", SearchFlag("\\Draft")),
        ("UNDRAFT", SearchFlag("\\Draft", False)),
        ("FLAGGED", SearchFlag("\\Flagged")),
        ("UNFLAGGED", SearchFlag("\\Flagged", False)),
        ("SEEN", SearchFlag("\\Seen")),
        ("unseen", SearchFlag("\\Seen", False)),
        ("RECENT", SearchFlag("\\Recent")),
        ("OLD", SearchFlag("\\Recent", False)),
        ("NEW", SearchAnd((SearchFlag("\\Recent"), SearchFlag("\\Seen", False)))),
        ("KEYWORD $Forwarded", SearchFlag("$Forwarded")),
        ("UNKEYWORD $Junk", SearchFlag("$Junk", False)),
        ("KEYWORD \\seen", SearchFlag("\\Seen")),
        ("BEFORE 1-Feb-1994", SearchDate("internal", "before", date(1994, 2, 1))),
        ("ON 01-feb-1994", SearchDate("internal", "on", date(1994, 2, 1))),
        ('SINCE "17-Jul-1996"', SearchDate("internal", "since", date(1996, 7, 17))),
        ("SENTBEFORE 31-Dec-2023", SearchDate("sent", "before", date(2023, 12, 31))),
        ("SENTON 29-Feb-2024", SearchDate("sent", "on", date(2024, 2, 29))),
        ("SENTSINCE 1-Jan-2024", SearchDate("sent", "since", date(2024, 1, 1))),
        ("LARGER 10000", SearchSize(True, 10000)),
        ("SMALLER 4294967295", SearchSize(False, 4294967295)),
        ("FROM smith", SearchHeader("From", "smith")),
        ('TO "Dr Martin"', SearchHeader("To", "Dr Martin")),
        ("CC x", SearchHeader("Cc", "x")),
        ("BCC x", SearchHeader("Bcc", "x")),
        ('SUBJECT ""', SearchHeader("Subject", "")),
        ("HEADER Message-ID <abc@example.org>", SearchHeader("Message-ID", "<abc@example.org>")),
        ('HEADER X-TUID ""', SearchHeader("X-TUID", "")),
        ("BODY ordonnance", SearchText("body", "ordonnance")),
        ('TEXT "compte rendu"', SearchText("text", "compte rendu")),
        ("2,4:7", seq("2,4:7")),
        ("1:*", seq("1:*")),
        ("*", seq("*")),
        ("$", seq("$")),
        ("UID 1:100,200", seq("1:100,200", uid=True)),
        ("UID $", seq("$", uid=True)),
        ("MODSEQ 620162338", SearchModSeq(620162338)),
        ("MODSEQ 0", SearchModSeq(0)),
        ('MODSEQ "/flags/\\\\draft" all 620162338', SearchModSeq(620162338, "\\Draft", "all")),
        ('MODSEQ "/flags/$Junk" priv 5', SearchModSeq(5, "$Junk", "priv")),
        ("NOT DELETED", SearchNot(SearchFlag("\\Deleted"))),
        ("OR SEEN FLAGGED", SearchOr(SearchFlag("\\Seen"), SearchFlag("\\Flagged"))),
        ("(SEEN)", SearchFlag("\\Seen")),
        ("(SEEN FLAGGED)", SearchAnd((SearchFlag("\\Seen"), SearchFlag("\\Flagged")))),
    ],
)
def test_search_keys(keys: str, expected: SearchKey) -> None:
    assert criteria(keys) == expected


def test_program_is_an_implicit_and() -> None:
    # RFC 3501 §6.4.4 examples.
    assert criteria('FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"') == SearchAnd(
        (
            SearchFlag("\\Flagged"),
            SearchDate("internal", "since", date(1994, 2, 1)),
            SearchNot(SearchHeader("From", "Smith")),
        )
    )
    assert criteria('OR BODY "Tout" (FROM "a" SUBJECT "b")') == SearchOr(
        SearchText("body", "Tout"),
        SearchAnd((SearchHeader("From", "a"), SearchHeader("Subject", "b"))),
    )


def test_nested_or_chain_as_thunderbird_builds_it() -> None:
    keys = "OR OR OR FROM x TO x CC x SUBJECT x"
    x = "x"
    assert criteria(keys) == SearchOr(
        SearchOr(SearchOr(SearchHeader("From", x), SearchHeader("To", x)), SearchHeader("Cc", x)),
        SearchHeader("Subject", x),
    )


def test_return_options() -> None:
    assert search("a SEARCH RETURN (MIN MAX COUNT) UNSEEN").return_options == (
        "MIN",
        "MAX",
        "COUNT",
    )
    assert search("a UID SEARCH RETURN (SAVE) FLAGGED").return_options == ("SAVE",)
    assert search("a SEARCH RETURN () ALL").return_options == ("ALL",)
    assert search("a SEARCH RETURN (all ALL) ALL").return_options == ("ALL",)
    assert search("a SEARCH ALL").return_options is None
    assert (
        "unknown search return option PARTIAL" in bad("a SEARCH RETURN (PARTIAL 1:10) ALL").message
    )
    assert "expected a space" in bad("a SEARCH RETURN (ALL)").message


def test_charset_utf8_allows_8bit_quoted_and_literal() -> None:
    args = search('a SEARCH CHARSET UTF-8 SUBJECT "h\xe9llo"')
    assert args.charset == "UTF-8"
    assert args.criteria == SearchHeader("Subject", "héllo")
    args = search(b"a UID SEARCH RETURN (ALL) CHARSET UTF-8 OR SUBJECT {6+}\r\nh\xc3\xa9llo FROM x")
    assert args == SearchArgs(
        SearchOr(SearchHeader("Subject", "héllo"), SearchHeader("From", "x")), "UTF-8", ("ALL",)
    )


def test_literal_length_must_count_octets() -> None:
    # "héllo" is 6 octets in UTF-8: announcing 5 leaves "o" behind, which is not a key.
    error = bad(b"a UID SEARCH RETURN (ALL) CHARSET UTF-8 OR SUBJECT {5+}\r\nh\xc3\xa9llo FROM x")
    assert error.tag == "a"
    assert error.message == "expected a space near 'o FROM x'"


def test_8bit_quoted_refused_without_utf8_charset() -> None:
    assert "8-bit characters in quoted string" in bad('a SEARCH SUBJECT "h\xe9llo"').message
    assert "8-bit" in bad('a SEARCH CHARSET ISO-8859-1 SUBJECT "h\xe9llo"').message


def test_other_charsets_decode_literals() -> None:
    args = search(b"a SEARCH CHARSET ISO-8859-1 SUBJECT {5+}\r\nh\xe9llo")
    assert args.criteria == SearchHeader("Subject", "héllo")
    args = search(b"a SEARCH CHARSET windows-1252 BODY {4+}\r\n\x80 10")
    assert args.criteria == SearchText("body", "€ 10")
    # Without CHARSET, 8-bit literals are read as UTF-8 (what clients sending them mean).
    assert search(b"a SEARCH BODY {2+}\r\n\xc3\xa9").criteria == SearchText("body", "é")
    assert (
        "not valid in the search charset"
        in bad(b"a SEARCH CHARSET UTF-8 BODY {1+}\r\n\xe9").message
    )


def test_unsupported_charset_is_its_own_error() -> None:
    with pytest.raises(UnsupportedCharsetError) as exc:
        parse("a6 SEARCH CHARSET KOI8-R SUBJECT x")
    assert exc.value.tag == "a6"
    assert exc.value.charset == "KOI8-R"
    assert exc.value.supported == tuple(SUPPORTED_CHARSETS)
    assert {"US-ASCII", "UTF-8"} <= set(exc.value.supported)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("", "missing arguments for SEARCH"),
        ("FOO", "unknown search key FOO"),
        ("X-GM-RAW x", "unknown search key X-GM-RAW"),
        ("SINCE", "expected a space"),
        ("SINCE 1994-02-01", "expected a date like 1-Feb-1994"),
        ("SINCE 30-Feb-1994", "invalid date '30-Feb-1994'"),
        ("SINCE 1-Fev-1994", "invalid date"),
        ('SINCE "1-Feb-1994', "expected '\"'"),
        ("LARGER x", "expected LARGER size"),
        ("LARGER 99999999999", "LARGER size out of range"),
        ("0:3", "invalid sequence set '0:3'"),
        ("UID 1:0", "invalid sequence set '1:0'"),
        ("(SEEN", "expected ')'"),
        ("()", "expected a search key"),
        ("SEEN)", "unexpected characters after command"),
        ("OR SEEN", "expected a space"),
        ("NOT", "expected a space"),
        ("HEADER Sub:ject x", "invalid header field name 'Sub:ject'"),
        ('MODSEQ "/flags/\\\\Seen" bogus 1', "invalid MODSEQ entry type bogus"),
        ('MODSEQ "/other/x" all 1', "expected an entry name"),
        ("MODSEQ -1", "expected MODSEQ value"),
        ("SUBJECT (x)", "expected SUBJECT value"),
        ("SEEN  FLAGGED", "expected a search key"),
    ],
)
def test_search_errors(keys: str, message: str) -> None:
    error = bad(f"t SEARCH {keys}".rstrip())
    assert error.tag == "t"
    assert message in error.message


def test_parenthesis_nesting_limit() -> None:
    ok = "(" * MAX_PAREN_DEPTH + "ALL" + ")" * MAX_PAREN_DEPTH
    assert criteria(ok) == SearchAll()
    deep = "(" * (MAX_PAREN_DEPTH + 1) + "ALL" + ")" * (MAX_PAREN_DEPTH + 1)
    assert bad(f"a SEARCH {deep}").message == "nesting too deep in SEARCH"


def test_operator_nesting_limit() -> None:
    assert isinstance(criteria("NOT " * (MAX_KEY_DEPTH - 1) + "ALL"), SearchNot)
    assert bad("a SEARCH " + "NOT " * (MAX_KEY_DEPTH + 1) + "ALL").message == (
        "nesting too deep in SEARCH"
    )
    assert bad("a SEARCH " + "OR ALL " * 5000 + "ALL").message == "nesting too deep in SEARCH"
    # Thousands of parentheses: refused at the limit, no recursion error.
    assert bad("a SEARCH " + "(" * 60_000).message == "nesting too deep in SEARCH"


def test_long_flat_program_is_fine() -> None:
    keys = " ".join(f"UID {n}" for n in range(1, 2001))
    program = criteria(keys)
    assert isinstance(program, SearchAnd)
    assert len(program.keys) == 2000

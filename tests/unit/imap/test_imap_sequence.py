"""imap.sequence: sequence sets (RFC 3501 §9 sequence-set, RFC 5182 "$")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imap.errors import ParseError
from imap.sequence import MAX_NUMBER, STAR, SequenceSet


def test_parse_forms() -> None:
    assert SequenceSet.parse("1").ranges == ((1, 1),)
    assert SequenceSet.parse("1:*").ranges == ((1, STAR),)
    assert SequenceSet.parse("*").ranges == ((STAR, STAR),)
    assert SequenceSet.parse(b"2,4:7,9,12:*").ranges == ((2, 2), (4, 7), (9, 9), (12, STAR))
    assert SequenceSet.parse("*:4").ranges == ((STAR, 4),)
    assert SequenceSet.parse("4294967295").ranges == ((MAX_NUMBER, MAX_NUMBER),)
    saved = SequenceSet.parse("$")
    assert saved.saved and saved.ranges == ()


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "0:3",
        "1:0",
        "",
        ",",
        "1,",
        ",1",
        "1::2",
        "1:2:3",
        "a",
        "1-3",
        "01",
        "4294967296",
        "99999999999",
        "$,1",
        "1,$",
        "$:1",
        "**",
        "1 2",
        "-1",
        "1:*:",
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(ParseError) as exc:
        SequenceSet.parse(text)
    assert "invalid sequence set" in exc.value.message
    assert exc.value.tag is None


def test_invalid_message_names_the_set() -> None:
    with pytest.raises(ParseError, match=r"invalid sequence set '0:3'"):
        SequenceSet.parse("0:3")


def test_resolve() -> None:
    assert SequenceSet.parse("1:*").resolve(10) == [(1, 10)]
    assert SequenceSet.parse("5:2").resolve(10) == [(2, 5)]
    # RFC 3501 §9: "559:*" includes the last UID even when 559 is above it.
    assert SequenceSet.parse("559:*").resolve(500) == [(500, 559)]
    assert SequenceSet.parse("3,1,2,7:9,8").resolve(20) == [(1, 3), (7, 9)]
    assert SequenceSet.parse("1:3,2:6,10,11").resolve(20) == [(1, 6), (10, 11)]
    assert SequenceSet.parse("*").resolve(7) == [(7, 7)]
    # Numbers above the largest are kept: the caller decides (BAD for sequence numbers).
    assert SequenceSet.parse("15").resolve(10) == [(15, 15)]


def test_resolve_empty_mailbox_drops_star_ranges() -> None:
    assert SequenceSet.parse("1:*").resolve(0) == []
    assert SequenceSet.parse("*,3").resolve(0) == [(3, 3)]


def test_saved_set_must_be_substituted() -> None:
    with pytest.raises(ValueError, match="saved search result"):
        SequenceSet.parse("$").resolve(10)


def test_membership_and_numbers() -> None:
    seq = SequenceSet.parse("2:4,10:*")
    assert seq.has_star
    assert not SequenceSet.parse("2:4").has_star
    assert [n for n in range(1, 14) if seq.contains(n, 12)] == [2, 3, 4, 10, 11, 12]
    assert list(seq.numbers(12)) == [2, 3, 4, 10, 11, 12]
    assert list(SequenceSet.parse("5:100").numbers(7)) == [5, 6, 7]


def test_from_numbers_and_str() -> None:
    assert str(SequenceSet.from_numbers([5, 1, 2, 3, 9, 10])) == "1:3,5,9:10"
    assert str(SequenceSet.from_ranges([(4, 6), (1, 2), (3, 3)])) == "1:6"
    assert str(SequenceSet.parse("1:*,7,*:3")) == "1:*,7,*:3"
    assert str(SequenceSet.parse("$")) == "$"
    assert str(SequenceSet.from_numbers([])) == ""


@given(st.lists(st.integers(1, MAX_NUMBER), min_size=1, max_size=50))
def test_from_numbers_round_trip(numbers: list[int]) -> None:
    seq = SequenceSet.from_numbers(numbers)
    again = SequenceSet.parse(str(seq))
    assert again == seq
    assert all(again.contains(n, MAX_NUMBER) for n in numbers)


@given(st.text(alphabet="0123456789:*,$", max_size=30))
def test_parser_only_raises_parse_error(text: str) -> None:
    try:
        seq = SequenceSet.parse(text)
    except ParseError:
        return
    if not seq.saved:
        assert SequenceSet.parse(str(seq)) == seq
        for lo, hi in seq.resolve(1000):
            assert 1 <= lo <= hi

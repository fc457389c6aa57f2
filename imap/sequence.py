"""Sequence sets (RFC 3501 §9 ``sequence-set``, RFC 5182 ``$``).

A :class:`SequenceSet` keeps the ranges as the client wrote them, ``*`` included (``STAR``,
which is ``None``), because ``*`` means "the largest number in use" and is only known when the
command runs: :meth:`SequenceSet.resolve` turns the set into sorted, merged ``(lo, hi)``
ranges for a given largest number. ``$`` (RFC 5182, the result saved by ``SEARCH RETURN
(SAVE)``) is a set of its own (:attr:`SequenceSet.saved`); the session replaces it with the
saved set before resolving.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from imap.errors import ParseError

__all__ = ["MAX_NUMBER", "STAR", "SeqNumber", "SequenceSet"]

#: RFC 3501 §9 nz-number / uniqueid: unsigned 32-bit.
MAX_NUMBER: Final = 0xFFFFFFFF

#: ``*`` in a range: "the largest number in use" (RFC 3501 §9 seq-number).
STAR: Final = None

#: A number of a range, or ``STAR``.
SeqNumber = int | None

# RFC 3501 §9: sequence-set = (seq-number / seq-range) ["," sequence-set];
# seq-range = seq-number ":" seq-number; seq-number = nz-number / "*".
_SEQ_NUMBER = rb"(?:[1-9][0-9]{0,9}|\*)"
_SEQ_ITEM = _SEQ_NUMBER + rb"(?::" + _SEQ_NUMBER + rb")?"
SEQUENCE_SET_RE: Final = re.compile(rb"\$|" + _SEQ_ITEM + rb"(?:," + _SEQ_ITEM + rb")*")
#: The characters a sequence set token may be made of (used to report the whole bad token).
SEQUENCE_CHARS_RE: Final = re.compile(rb"[0-9:*,$]+")


def _number(text: bytes, whole: bytes) -> SeqNumber:
    if text == b"*":
        return STAR
    value = int(text)
    if value > MAX_NUMBER:
        raise ParseError(None, f"invalid sequence set '{whole.decode('ascii')}' (number too large)")
    return value


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A parsed sequence set: ``ranges`` as written (``STAR`` for ``*``) or ``saved`` (``$``).

    A single number ``n`` is the range ``(n, n)``; ``lo`` may be greater than ``hi``
    (``5:2`` is ``2:5``, RFC 3501 §9 seq-range).
    """

    ranges: tuple[tuple[SeqNumber, SeqNumber], ...]
    saved: bool = False

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str | bytes) -> SequenceSet:
        """Parse the wire form; :class:`ParseError` (tag ``None``) if invalid (``0``, empty...)."""
        data = text.encode("latin-1", "replace") if isinstance(text, str) else text
        return _parse_cached(data) if len(data) <= 32 else _parse(data)

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> SequenceSet:
        """The compact set of the given numbers (e.g. a saved SEARCH result, COPYUID)."""
        return cls(tuple(_merge((n, n) for n in numbers)))

    @classmethod
    def from_ranges(cls, ranges: Iterable[tuple[int, int]]) -> SequenceSet:
        """The set of the given inclusive ranges, merged."""
        return cls(tuple(_merge(ranges)))

    # -- inspection --------------------------------------------------------------------------

    @property
    def has_star(self) -> bool:
        """Whether ``*`` appears (its meaning depends on the mailbox)."""
        return any(lo is STAR or hi is STAR for lo, hi in self.ranges)

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Sorted, merged, inclusive ``(lo, hi)`` ranges with ``*`` replaced by ``largest``.

        With ``largest == 0`` (empty mailbox) every range involving ``*`` is dropped. Numbers
        above ``largest`` are kept: for message sequence numbers the caller refuses them
        (RFC 3501 §9), for UIDs they simply match nothing. Raises :class:`ValueError` for ``$``
        (replace it with the saved result first).
        """
        if self.saved:
            raise ValueError("'$' must be replaced by the saved search result before resolving")
        concrete: list[tuple[int, int]] = []
        for lo, hi in self.ranges:
            if lo is STAR or hi is STAR:
                if largest <= 0:
                    continue
                lo_value = largest if lo is STAR else lo
                hi_value = largest if hi is STAR else hi
            else:
                lo_value, hi_value = lo, hi
            concrete.append((lo_value, hi_value))
        return _merge(concrete)

    def contains(self, number: int, largest: int) -> bool:
        """Whether ``number`` is in the set once ``*`` means ``largest``."""
        return any(lo <= number <= hi for lo, hi in self.resolve(largest))

    def numbers(self, largest: int) -> Iterator[int]:
        """Every number of the set, ascending, capped at ``largest`` (never beyond it)."""
        for lo, hi in self.resolve(largest):
            yield from range(lo, min(hi, largest) + 1)

    def __str__(self) -> str:
        """The wire form (``1:*,5``, ``$``)."""
        if self.saved:
            return "$"
        parts = []
        for lo, hi in self.ranges:
            first = "*" if lo is STAR else str(lo)
            parts.append(first if lo == hi else f"{first}:{'*' if hi is STAR else hi}")
        return ",".join(parts)


def _parse(data: bytes) -> SequenceSet:
    if SEQUENCE_SET_RE.fullmatch(data) is None:
        shown = data.decode("ascii", "replace")[:60]
        raise ParseError(None, f"invalid sequence set '{shown}'")
    if data == b"$":
        return SequenceSet((), saved=True)
    ranges: list[tuple[SeqNumber, SeqNumber]] = []
    for item in data.split(b","):
        lo, sep, hi = item.partition(b":")
        first = _number(lo, data)
        ranges.append((first, _number(hi, data) if sep else first))
    return SequenceSet(tuple(ranges))


# Short sets ("1:*", "42") come back again and again; SequenceSet is immutable, so share them.
_parse_cached: Final = lru_cache(maxsize=512)(_parse)


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    ordered = sorted((lo, hi) if lo <= hi else (hi, lo) for lo, hi in ranges)
    merged: list[tuple[int, int]] = []
    for lo, hi in ordered:
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged

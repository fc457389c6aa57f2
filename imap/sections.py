"""BODY[section]<partial> content from the raw message and its cached part spans (no parsing).

RFC 3501 §6.4.5: part numbers select a MIME part; HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT and
TEXT apply to the message itself or to an encapsulated MESSAGE/RFC822 part; MIME is a part's
own header. The spans (:class:`storage.mime.PartSpan`) were computed once at delivery, so a
section is a slice of the blob; only HEADER.FIELDS needs to look at header lines.
"""

from __future__ import annotations

import re
from typing import Final

from imap.fetch import Partial, Section
from storage.mime import PartSpan, message_key

__all__ = ["apply_partial", "filter_header", "section_content"]

# One header field with its continuation lines (RFC 5322 §2.2.3), line ends included.
_FIELD: Final = re.compile(rb"[^ \t\r\n][^\n]*\n?(?:[ \t][^\n]*\n?)*")


def filter_header(block: bytes, names: tuple[str, ...], exclude: bool) -> bytes:
    """HEADER.FIELDS (``exclude=False``) / HEADER.FIELDS.NOT: the matching fields of a header
    block, then the empty line (RFC 3501 §6.4.5)."""
    wanted = {name.lower().encode("ascii") for name in names}
    kept: list[bytes] = []
    for found in _FIELD.finditer(block):
        field = found.group()
        name = field.split(b":", 1)[0].rstrip(b" \t").lower()
        if (name in wanted) != exclude:
            kept.append(field if field.endswith(b"\n") else field + b"\r\n")
    return b"".join(kept) + b"\r\n"


def section_content(data: bytes, parts: dict[str, PartSpan], section: Section) -> bytes | None:
    """The octets of ``section``, or ``None`` when the message has no such part (NIL)."""
    key = ".".join(map(str, section.part))
    text = section.text
    if text is None:
        if not key:
            return data
        span = parts.get(key)
        return None if span is None else data[span.body_start : span.body_end]
    if text == "MIME":
        span = parts.get(key)
        return None if span is None else data[span.header_start : span.header_end]
    span = parts.get(message_key(key))
    if span is None:
        return None
    if text == "TEXT":
        return data[span.body_start : span.body_end]
    header = data[span.header_start : span.header_end]
    if text == "HEADER":
        return header
    return filter_header(header, section.headers, text == "HEADER.FIELDS.NOT")


def apply_partial(content: bytes, partial: Partial | None) -> bytes:
    """``<offset.length>``: the octets from offset, at most length (RFC 3501 §6.4.5)."""
    if partial is None:
        return content
    return content[partial.offset : partial.offset + partial.length]

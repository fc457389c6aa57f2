"""Server response data on the wire (RFC 3501 §7, §9): strings, flags, ENVELOPE, BODYSTRUCTURE.

Pure functions returning ``bytes``. Strings go out as quoted strings when they can (printable
ASCII, RFC 3501 §4.3) and as literals otherwise (8-bit, CR, LF, or very long). ENVELOPE and
BODYSTRUCTURE come from the JSON cached at delivery (:mod:`storage.mime`), whose lists follow
the RFC 3501 grammar item by item; the two places where that grammar puts parenthesised items
side by side without a space (the addresses of an address list, the bodies of a multipart)
are written here explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from imap.sequence import SequenceSet
from imap.utf7 import encode_mailbox

__all__ = [
    "MAILBOX_FLAGS",
    "astring",
    "body_structure",
    "envelope",
    "flag_list",
    "internal_date",
    "mailbox_name",
    "nstring",
    "sequence_text",
    "string",
]

# Printable ASCII without '"' and '\' needs no escape; with them it is still quotable.
_QUOTABLE: Final = re.compile(rb"[\x20-\x7e]*")
_ATOM_SAFE: Final = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
_MAX_QUOTED: Final = 1024
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


def string(value: str | bytes) -> bytes:
    """RFC 3501 §9 string: quoted when possible, else a literal."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) <= _MAX_QUOTED and _QUOTABLE.fullmatch(data):
        if b'"' in data or b"\\" in data:
            data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + data + b'"'
    return b"{%d}\r\n" % len(data) + data


def nstring(value: str | bytes | None) -> bytes:
    """RFC 3501 §9 nstring."""
    return b"NIL" if value is None else string(value)


def astring(value: str | bytes) -> bytes:
    """RFC 3501 §9 astring: an atom when it is one, else a string."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if data and _ATOM_SAFE.fullmatch(data) and data.upper() != b"NIL":
        return data
    return string(data)


def mailbox_name(name: str) -> bytes:
    """A mailbox name in modified UTF-7 (RFC 3501 §5.1.3), always quoted (clients cope best)."""
    return string(encode_mailbox(name))


# RFC 3501 §2.3.2: the system flags every mailbox has (\Recent is never stored).
MAILBOX_FLAGS: Final = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def flag_list(flags: Iterable[str]) -> bytes:
    """RFC 3501 §9 flag-list."""
    return ("(" + " ".join(flags) + ")").encode("ascii", "replace")


def internal_date(value: datetime) -> bytes:
    """RFC 3501 §9 date-time, in UTC: ``"17-Jul-1996 09:44:25 +0000"``."""
    v = value.astimezone(UTC)
    return (
        f'"{v.day:02d}-{_MONTHS[v.month - 1]}-{v.year:04d} '
        f'{v.hour:02d}:{v.minute:02d}:{v.second:02d} +0000"'
    ).encode("ascii")


def sequence_text(numbers: Iterable[int]) -> str:
    """``1:3,7`` for a set of numbers (COPYUID, ESEARCH ALL, VANISHED)."""
    return str(SequenceSet.from_numbers(numbers))


# -- cached structures --------------------------------------------------------------------------


def _value(item: Any) -> bytes:
    """Generic cached item: NIL, number, string or parenthesised list."""
    if item is None:
        return b"NIL"
    if isinstance(item, bool):
        return b"1" if item else b"0"
    if isinstance(item, int):
        return str(item).encode("ascii")
    if isinstance(item, str):
        return string(item)
    if isinstance(item, list):
        return b"(" + b" ".join(_value(x) for x in item) + b")"
    return string(str(item))


def _addresses(addresses: Sequence[Sequence[str | None]] | None) -> bytes:
    # RFC 3501 §9 env-from etc. = "(" 1*address ")" / nil; address = "(" 4 nstrings ")".
    if not addresses:
        return b"NIL"
    return (
        b"("
        + b"".join(b"(" + b" ".join(nstring(part) for part in addr) + b")" for addr in addresses)
        + b")"
    )


def envelope(env: Sequence[Any]) -> bytes:
    """RFC 3501 §7.4.2 ENVELOPE from the cached list (date, subject, from, sender, reply-to,
    to, cc, bcc, in-reply-to, message-id)."""
    items = [nstring(env[0]), nstring(env[1])]
    items += [_addresses(env[i]) for i in range(2, 8)]
    items += [nstring(env[8]), nstring(env[9])]
    return b"(" + b" ".join(items) + b")"


def body_structure(body: Sequence[Any]) -> bytes:
    """RFC 3501 §7.4.2 BODY / BODYSTRUCTURE from the cached list (storage.mime)."""
    if body and isinstance(body[0], list):
        # body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
        count = 0
        while count < len(body) and isinstance(body[count], list):
            count += 1
        out = b"".join(body_structure(part) for part in body[:count])
        rest = [_value(x) for x in body[count:]]
        return b"(" + out + b" " + b" ".join(rest) + b")"
    message = (
        len(body) > 9
        and str(body[0]).upper() == "MESSAGE"
        and str(body[1]).upper() == "RFC822"
        and isinstance(body[7], list)
    )
    items: list[bytes] = []
    for index, item in enumerate(body):
        if message and index == 7:
            items.append(envelope(item))
        elif message and index == 8:
            items.append(body_structure(item))
        else:
            items.append(_value(item))
    return b"(" + b" ".join(items) + b")"

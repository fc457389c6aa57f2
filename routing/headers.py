"""Reading the few header fields the rules look at, from the raw message (pure)."""

from __future__ import annotations

from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from routing.addresses import InvalidAddress, normalize_address
from routing.rules import MessageFacts

__all__ = ["header_block", "message_facts"]

# A header block larger than this is not read for the rules (RFC 5322 sets no limit; the
# fields we need come first in practice and the SMTP door bounds the whole message anyway).
MAX_HEADER_BYTES = 1024 * 1024


def header_block(data: bytes) -> bytes:
    """The header section up to and including the empty line (RFC 5322 §2.1)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = data.find(separator, 0, MAX_HEADER_BYTES)
        if end >= 0:
            return data[: end + len(separator)]
    return data[:MAX_HEADER_BYTES]


def _decoded(value: str) -> str:
    """RFC 2047 §6.1: the text of encoded words ("=?UTF-8?B?W0ZJTl0=?=" reads "[FIN]")."""
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, ValueError):  # unknown charset, bad bytes: as is
        return value


def _addresses(values: list[str]) -> list[str]:
    found: list[str] = []
    for _name, address in getaddresses(values):
        try:
            found.append(normalize_address(address))
        except InvalidAddress:
            continue
    return found


def message_facts(data: bytes) -> MessageFacts:
    """Subject, Reply-To addresses and X-MSS-MES of a message; never raises on bad input."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(header_block(data))

    def one(name: str) -> str | None:
        value = headers.get(name)
        return None if value is None else " ".join(_decoded(str(value)).split())

    return MessageFacts(
        subject=one("Subject"),
        reply_to=_addresses([str(v) for v in headers.get_all("Reply-To", [])]),
        x_mss_mes=one("X-MSS-MES"),
    )

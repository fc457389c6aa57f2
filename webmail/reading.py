"""Reading stored messages for people (pure, no I/O): subjects, names, bodies, attachments.

Listing uses the ENVELOPE and BODYSTRUCTURE cached at delivery (storage.mime), so a page of
the inbox never re-parses a message. Reading one message walks its MIME parts with the
standard library's parser in its plain (``compat32``) mode, which keeps header values as text,
and reads the few top-level fields the page shows from that text (``getaddresses``, RFC 2047
decoding, ``parsedate_to_datetime``) instead of building the library's structured header
objects, which took 40% of the time of reading a message with a PDF attachment.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from typing import Any, Final
from urllib.parse import quote

from webmail.sanitize import clean_html

__all__ = [
    "Attachment",
    "ReadMessage",
    "attachment_payload",
    "content_disposition",
    "decode_words",
    "display_subject",
    "envelope_from",
    "envelope_to",
    "has_attachments",
    "read_message",
    "safe_filename",
]

# mssante.md §5: structured sends are titled "XDM/1.0/DDM+<libellé> ..."; interfaces hide it.
XDM_PREFIX: Final = "XDM/1.0/DDM+"
MAX_FILENAME: Final = 120
MAX_TEXT: Final = 2 * 1024 * 1024  # characters of a body shown (the rest is in the file)


def decode_words(value: str | None) -> str:
    """RFC 2047 encoded words decoded; control characters removed."""
    if not value:
        return ""
    return _decode_words(value)


@lru_cache(maxsize=4096)  # a page lists the same senders and subjects at every view
def _decode_words(value: str) -> str:
    try:
        parts = decode_header(value)
    except (HeaderParseError, ValueError):
        parts = [(value, None)]
    try:
        text = str(make_header(parts))
    except (LookupError, ValueError, UnicodeError):  # a charset Python does not know
        text = "".join(p if isinstance(p, str) else p.decode("utf-8", "replace") for p, _ in parts)
    if text.isprintable():  # no control, format or unassigned character: the usual case
        return text.strip()
    return "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text).strip()


def display_subject(raw: str | None) -> str:
    subject = decode_words(raw)
    if subject.startswith(XDM_PREFIX):
        subject = subject[len(XDM_PREFIX) :].lstrip()
    return subject or "(sans objet)"


def _address(entry: Any) -> tuple[str, str]:
    """(name, address) of an RFC 3501 ENVELOPE address ``(name adl mailbox host)``."""
    if not isinstance(entry, list) or len(entry) < 4:
        return "", ""
    name, _adl, mailbox, host = entry[:4]
    address = f"{mailbox}@{host}".lower() if mailbox and host else ""
    return decode_words(name) if isinstance(name, str) else "", address


def envelope_from(envelope: list[Any]) -> tuple[str, str]:
    """(display name, address) of the first From address (ENVELOPE field 3)."""
    if len(envelope) > 2 and isinstance(envelope[2], list) and envelope[2]:
        return _address(envelope[2][0])
    return "", ""


def envelope_to(envelope: list[Any]) -> list[tuple[str, str]]:
    if len(envelope) > 5 and isinstance(envelope[5], list):
        return [_address(e) for e in envelope[5]]
    return []


def envelope_subject(envelope: list[Any]) -> str:
    raw = envelope[1] if len(envelope) > 1 and isinstance(envelope[1], str) else None
    return display_subject(raw)


def has_attachments(structure: list[Any] | None) -> bool:
    """Whether a cached BODYSTRUCTURE (RFC 3501 §7.4.2) holds a part that is not the text."""
    if not structure:
        return False
    if isinstance(structure[0], list):  # body-type-mpart: the parts, then the subtype
        return any(has_attachments(p) for p in structure if isinstance(p, list))
    kind = str(structure[0]).upper()
    subtype = str(structure[1]).upper() if len(structure) > 1 else ""
    # body-ext-1part: the disposition follows MD5 (text: after lines; message: after lines).
    index = {"TEXT": 9, "MESSAGE": 11 if subtype == "RFC822" else 8}.get(kind, 8)
    disposition = structure[index] if len(structure) > index else None
    if (
        isinstance(disposition, list)
        and disposition
        and str(disposition[0]).upper() == ("ATTACHMENT")
    ):
        return True
    return kind != "TEXT" or subtype not in ("PLAIN", "HTML")


# --- one message -------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    index: int  # position among the message's leaf parts (the download URL uses it)
    filename: str  # safe to show and to offer as a file name
    content_type: str
    size: int
    sha256: str  # of the decoded content: the dossier holds it already when it was filed


@dataclass(frozen=True)
class ReadMessage:
    subject: str
    from_name: str
    from_address: str
    to: list[tuple[str, str]]
    date: datetime | None
    message_id: str | None
    references: str | None
    reply_to: list[str]
    text: str | None  # the plain text body, or
    html: str | None  # the sanitised HTML body (safe to insert as is)
    attachments: list[Attachment]
    disposition_notification_to: list[str]  # RFC 8098 §2.1
    original_recipient: str | None  # RFC 8098 §2.3


def safe_filename(name: str | None, index: int) -> str:
    """A file name with no path, control or quoting characters, bounded in length."""
    text = decode_words(name or "")
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = re.sub(r'[\x00-\x1f\x7f"<>:|?*;]', "_", text).strip(" .")
    if len(text) > MAX_FILENAME:
        stem, dot, ext = text.rpartition(".")
        text = (
            (stem[: MAX_FILENAME - len(ext) - 1] + dot + ext)
            if dot and len(ext) < 10
            else (text[:MAX_FILENAME])
        )
    return text or f"piece-jointe-{index}"


def content_disposition(filename: str) -> str:
    """RFC 6266 §4.3: an ASCII fallback and the UTF-8 name (RFC 8187)."""
    fallback = filename.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _leaves(message: Message) -> list[Message]:
    return [p for p in message.walk() if not p.is_multipart()]


def _is_attachment(part: Message) -> bool:
    if part.get_content_disposition() == "attachment" or part.get_filename():
        return True
    return part.get_content_maintype() != "text" or part.get_content_subtype() not in (
        "plain",
        "html",
    )


def _attachment(part: Message, index: int, payload: bytes) -> Attachment:
    return Attachment(
        index,
        safe_filename(part.get_filename(), index),
        part.get_content_type(),
        len(payload),
        hashlib.sha256(payload).hexdigest(),
    )


def _payload(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _text(part: Message) -> str:
    charset = part.get_content_charset() or "utf-8"
    try:
        return _payload(part).decode(charset, "replace")
    except LookupError:
        return _payload(part).decode("utf-8", "replace")


def _parse(data: bytes) -> Message:
    """The MIME tree, header values left as text (no structured header objects)."""
    return BytesParser(policy=policy.compat32).parsebytes(data)


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_Fields = dict[str, list[str]]


def _fields(message: Message) -> _Fields:
    """The top-level fields as sent, by lower-case name, unfolded (RFC 5322 §2.2.3): octets
    that are not ASCII read as UTF-8 (RFC 6532), a wrong one replaced."""
    fields: _Fields = {}
    for name, value in message.raw_items():
        text = value if value.isascii() else _utf8(value)
        fields.setdefault(name.lower(), []).append(_FOLD.sub("", text).strip())
    return fields


def _utf8(value: str) -> str:
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _header(fields: _Fields, name: str) -> str | None:
    found = fields.get(name.lower())
    return found[0] if found else None


def _addresses(fields: _Fields, name: str) -> list[tuple[str, str]]:
    """(name, address) of every mailbox of the fields (RFC 5322 §3.4), the display names'
    encoded words decoded (RFC 2047 §5(3): an encoded word holds no comma, no bracket)."""
    found = fields.get(name.lower(), [])
    return [(decode_words(n), a.lower()) for n, a in getaddresses(found) if a]


def read_message(data: bytes) -> ReadMessage:
    message = _parse(data)
    fields = _fields(message)
    text = html = None
    attachments: list[Attachment] = []
    for index, part in enumerate(_leaves(message)):
        if _is_attachment(part):
            attachments.append(_attachment(part, index, _payload(part)))
        elif part.get_content_subtype() == "plain" and text is None:
            text = _text(part)[:MAX_TEXT]
        elif part.get_content_subtype() == "html" and html is None:
            html = _text(part)[:MAX_TEXT]
    try:
        date = parsedate_to_datetime(_header(fields, "Date") or "")
    except (TypeError, ValueError, IndexError):
        date = None
    senders = _addresses(fields, "From")
    return ReadMessage(
        subject=display_subject(_header(fields, "Subject")),  # encoded words decoded
        from_name=senders[0][0] if senders else "",
        from_address=senders[0][1] if senders else "",
        to=_addresses(fields, "To"),
        date=date,
        message_id=_header(fields, "Message-ID"),
        references=_header(fields, "References"),
        reply_to=[a for _, a in _addresses(fields, "Reply-To")],
        text=text,
        html=None if text is not None or html is None else clean_html(html),
        attachments=attachments,
        disposition_notification_to=[
            a for _, a in _addresses(fields, "Disposition-Notification-To")
        ],
        original_recipient=_header(fields, "Original-Recipient"),
    )


def attachment_payload(data: bytes, index: int) -> tuple[Attachment, bytes] | None:
    """The decoded content of the attachment at ``index`` (see :class:`Attachment`)."""
    leaves = _leaves(_parse(data))
    if not 0 <= index < len(leaves) or not _is_attachment(leaves[index]):
        return None
    payload = _payload(leaves[index])
    return _attachment(leaves[index], index, payload), payload

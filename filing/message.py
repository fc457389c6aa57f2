"""The attachments and MSSanté headers of a message, read without ever raising.

The stdlib parser (``email.policy.default``) records defects instead of failing; this module
also guards every header access (a malformed header can still raise on access) and walks the
MIME tree itself, iteratively and bounded, so that a hostile message gives attachments,
notes, or an "unreadable" mark, never an exception.

What counts as an attachment (our choice, RFC 2183): every leaf part except the message
text, i.e. except ``text/*`` parts without a file name and the parts of a multipart/related
body (RFC 2387: the images of an HTML text), unless marked ``Content-Disposition:
attachment``. Encapsulated messages (``message/*``) are not looked into: a forwarded
message's attachments were addressed to someone else.
"""

from __future__ import annotations

import email
import email.errors
import email.policy
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Final, TypeVar

__all__ = ["SUBJECT_PREFIX", "Attachment", "MessageParts", "read_message", "strip_prefix"]

# docs/mssante.md §5: subject of structured sends, the prefix user interfaces hide.
SUBJECT_PREFIX: Final = "XDM/1.0/DDM+"
_T = TypeVar("_T")


@dataclass(frozen=True)
class Attachment:
    """One attachment: its bytes (transfer encoding undone) and what the sender said."""

    section: str  # MIME part number, RFC 3501 §6.4.5 style ("2", "1.3")
    file_name: str  # RFC 2231 / RFC 2047 decoded, "" when none
    declared_type: str  # Content-Type as declared (lower case, no parameters)
    content: bytes
    broken: str = ""  # why the content could not be decoded, "" when it could

    @property
    def label(self) -> str:
        """How refusals and notes name it: the file name, else "part N"."""
        return self.file_name or f"part {self.section}"


@dataclass(frozen=True)
class MessageParts:
    subject: str
    codes_declared: tuple[str, ...]  # X-MSS-CODECDA, comma-separated (docs/mssante.md §5)
    ins_declared: str  # X-MSS-INS: "O" / "N" / ""
    attachments: tuple[Attachment, ...]
    notes: tuple[str, ...] = ()
    unreadable: str = ""  # why the message could not be parsed at all


def _guard(call: Callable[[], _T], default: _T) -> _T:
    """Run a header or payload accessor; hostile input may make the stdlib raise."""
    try:
        return call()
    except Exception:
        return default


def strip_prefix(subject: str) -> str:
    """The subject without the ``XDM/1.0/DDM+`` prefix (docs/mssante.md §5)."""
    subject = subject.strip()
    if subject.upper().startswith(SUBJECT_PREFIX):
        subject = subject[len(SUBJECT_PREFIX) :]
    return " ".join(subject.split())


def _header_values(message: Message, name: str) -> list[str]:
    return _guard(lambda: [str(value) for value in message.get_all(name) or []], [])


def _file_name(part: Message) -> str:
    """Content-Disposition filename, else Content-Type name (RFC 2231/2047 decoded)."""
    return _guard(lambda: (part.get_filename() or "").strip(), "")


def _is_body(part: Message, file_name: str, in_related: bool) -> bool:
    """Part of the message text rather than an attachment (RFC 2183, RFC 2387).

    Text without a file name, and the resources of a multipart/related body (the logo of
    an HTML signature), unless marked ``Content-Disposition: attachment``.
    """
    if _guard(part.get_content_disposition, None) == "attachment":
        return False
    is_text = _guard(part.get_content_maintype, "") == "text"
    return in_related or (is_text and not file_name)


def _decode(part: Message) -> tuple[bytes, str]:
    """The part's bytes with its transfer encoding undone, and why not when it failed."""
    payload = _guard(lambda: part.get_payload(decode=True), None)
    if not isinstance(payload, bytes):
        return b"", "its content cannot be decoded"
    # email.message.Message.get_payload returns the *undecoded* text when base64 lost data
    if any(isinstance(d, email.errors.InvalidBase64LengthDefect) for d in part.defects):
        return b"", "its base64 content is truncated or damaged"
    return payload, ""


def _walk(root: Message, max_parts: int) -> tuple[list[tuple[str, Message, bool]], list[str]]:
    """Leaf parts, depth first, at most ``max_parts`` parts: (section, part, in related)."""
    leaves: list[tuple[str, Message, bool]] = []
    notes: list[str] = []
    stack: list[tuple[str, Message, bool]] = [("", root, False)]
    visited = 0
    while stack:
        section, part, in_related = stack.pop()
        visited += 1
        if visited > max_parts:
            notes.append(f"the message has more than {max_parts} MIME parts; the rest is ignored")
            break
        if part.get_content_maintype() == "message":
            notes.append(f"part {section or '1'}: attached message not looked into")
            continue
        children = _guard(part.get_payload, None) if part.is_multipart() else None
        if isinstance(children, list):
            related = in_related or part.get_content_subtype() == "related"
            prefix = f"{section}." if section else ""
            numbered = [(f"{prefix}{i}", c, related) for i, c in enumerate(children, 1)]
            stack.extend(reversed([n for n in numbered if isinstance(n[1], Message)]))
        else:
            leaves.append((section or "1", part, in_related))
    return leaves, notes


def read_message(data: bytes, max_parts: int = 500) -> MessageParts:
    """Read the MSSanté headers and the attachments of the raw message ``data``."""
    try:
        message = email.message_from_bytes(data, policy=email.policy.default)
        leaves, notes = _walk(message, max_parts)
    except Exception as error:  # RecursionError on absurd nesting, parser bugs
        return MessageParts("", (), "", (), unreadable=f"{type(error).__name__}: {error}")
    codes = tuple(
        code.strip()
        for value in _header_values(message, "X-MSS-CODECDA")
        for code in value.split(",")
        if code.strip()
    )
    ins_flags = _header_values(message, "X-MSS-INS")
    attachments: list[Attachment] = []
    for section, part, in_related in leaves:
        file_name = _file_name(part)
        if _is_body(part, file_name, in_related):
            continue  # the message text is never filed
        content, broken = _decode(part)
        attachments.append(
            Attachment(
                section=section,
                file_name=file_name,
                declared_type=_guard(part.get_content_type, ""),
                content=content,
                broken=broken,
            )
        )
    subjects = _header_values(message, "Subject")
    return MessageParts(
        subject=subjects[0] if subjects else "",
        codes_declared=codes,
        ins_declared=ins_flags[0].strip().upper() if ins_flags else "",
        attachments=tuple(attachments),
        notes=tuple(notes),
    )

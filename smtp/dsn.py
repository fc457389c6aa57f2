"""Delivery status notifications: RFC 3464 reports in RFC 6522 multipart/report messages.

Pure functions, no I/O and no clock reads: the caller hands in `now` and the arrival date.

- `build_dsn` writes a complete bounce / delay / success notification (CRLF line endings);
- `parse_dsn` reads the machine-readable part back (tests, the queue CLI);
- `notify_wants` / `parse_notify` interpret the NOTIFY parameter (RFC 3461 §4.1);
- `xtext_decode` / `xtext_encode` handle ENVID and ORCPT values (RFC 3461 §4).

The caller sends the notification with a null reverse-path, `MAIL FROM:<>` (RFC 3461 §6.2,
RFC 5321 §4.5.5), so that a notification about a notification is never generated.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import quoprimime
from email.utils import format_datetime
from typing import Literal

Action = Literal["failed", "delayed", "delivered", "relayed", "expanded"]
NotifyEvent = Literal["SUCCESS", "FAILURE", "DELAY"]

_ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
# RFC 3463 §2: class "." subject "." detail, class 2, 4 or 5, then 1 to 3 digits each.
_STATUS_RE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
# RFC 5322 §2.1.1 caps a line at 998 characters: field values are cut well below that.
_MAX_FIELD_VALUE = 900
_FOLD_AT = 78


@dataclass(frozen=True)
class RecipientReport:
    """What happened to one recipient (one per-recipient block, RFC 3464 §2.3)."""

    final_recipient: str  # the address (RFC 3464 §2.3.2), without address type
    action: Action  # RFC 3464 §2.3.3
    status: str  # enhanced status code "5.1.1" (RFC 3464 §2.3.4, RFC 3463)
    diagnostic: str | None = None  # "smtp; 550 5.1.1 no such mailbox" (RFC 3464 §2.3.6)
    # The ORCPT parameter, "rfc822;a@b", its address already decoded from xtext (RFC 3461
    # §4.2), as the SMTP door stores it.
    original_recipient: str | None = None
    remote_mta: str | None = None  # "dns; mx.peer.example" (RFC 3464 §2.3.5)
    last_attempt: datetime | None = None  # RFC 3464 §2.3.7
    will_retry_until: datetime | None = None  # RFC 3464 §2.3.9, for "delayed" only


# ---------------------------------------------------------------------------------------------
# xtext (RFC 3461 §4)


def xtext_encode(value: str) -> str:
    """Encode `value` (UTF-8 octets) as xtext: "+" HEX for "+", "=" and octets outside 33..126."""
    out: list[str] = []
    for octet in value.encode("utf-8"):
        # RFC 3461 §4: xchar is "!" (33) to "~" (126) except "+" and "="; hexchar is "+" and
        # two upper-case hexadecimal digits.
        if 33 <= octet <= 126 and octet not in (0x2B, 0x3D):
            out.append(chr(octet))
        else:
            out.append(f"+{octet:02X}")
    return "".join(out)


def xtext_decode(value: str) -> str:
    """Decode an xtext value (RFC 3461 §4); ValueError names the offending character.

    Lower-case hexadecimal digits after "+" are accepted (RFC 3461 asks for upper case, some
    clients send lower case); the decoded octets must be UTF-8.
    """
    out = bytearray()
    i = 0
    while i < len(value):
        c = value[i]
        if c == "+":
            pair = value[i + 1 : i + 3]
            if len(pair) != 2 or any(h not in "0123456789ABCDEFabcdef" for h in pair):
                raise ValueError(
                    f"bad xtext at position {i}: '+' must be followed by two hexadecimal "
                    f"digits (RFC 3461 §4), got {value[i : i + 3]!r}"
                )
            out.append(int(pair, 16))
            i += 3
            continue
        if not ("!" <= c <= "~") or c == "=":
            raise ValueError(
                f"bad xtext at position {i}: character {c!r} must be encoded as +XX (RFC 3461 §4)"
            )
        out.append(ord(c))
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("bad xtext: the decoded value is not UTF-8") from None


# ---------------------------------------------------------------------------------------------
# NOTIFY (RFC 3461 §4.1)

_NOTIFY_WORDS = frozenset({"NEVER", "SUCCESS", "FAILURE", "DELAY"})


def parse_notify(value: str) -> frozenset[str]:
    """The keywords of a NOTIFY value, upper-cased; ValueError when it is not valid.

    RFC 3461 §4.1: "NEVER" alone, or a comma-separated list of SUCCESS, FAILURE, DELAY.
    ESMTP keywords and values are case-insensitive here, as most MTAs treat them.
    """
    words = [w.strip().upper() for w in value.split(",")]
    if not value or any(w not in _NOTIFY_WORDS for w in words):
        raise ValueError(
            f"bad NOTIFY value {value!r}: expected NEVER or a list of SUCCESS, FAILURE, DELAY "
            "(RFC 3461 §4.1)"
        )
    if "NEVER" in words and len(words) > 1:
        raise ValueError(f"bad NOTIFY value {value!r}: NEVER cannot be combined (RFC 3461 §4.1)")
    return frozenset(words)


def notify_wants(notify: str | None, event: NotifyEvent) -> bool:
    """Whether a recipient's NOTIFY parameter asks for a notification on `event`.

    RFC 3461 §4.1: without NOTIFY the MTA behaves as for FAILURE or FAILURE,DELAY; like most
    MTAs we use FAILURE,DELAY (never SUCCESS). "NEVER" asks for nothing. A malformed value
    raises ValueError (the SMTP door refuses it at RCPT time).
    """
    if notify is None:
        return event in ("FAILURE", "DELAY")
    return event in parse_notify(notify)


# ---------------------------------------------------------------------------------------------
# Building a notification


def build_dsn(
    *,
    reporting_mta: str,
    postmaster: str,
    sender: str,
    original: bytes,
    reports: Sequence[RecipientReport],
    envid: str | None,
    ret: Literal["FULL", "HDRS"] | None,
    arrival: datetime,
    now: datetime,
    message_id_domain: str,
) -> bytes:
    """A complete RFC 5322 delivery status notification, CRLF line endings.

    - `reporting_mta`: our host name ("Reporting-MTA: dns; host", RFC 3464 §2.2.2);
    - `postmaster`: the address in `From: Mail Delivery System <postmaster>`;
    - `sender`: the envelope sender the notification goes to (never empty: no notification is
      ever sent about a message with a null reverse-path, RFC 5321 §4.5.5 / §6.1);
    - `original`: the original message as received (may be broken: no header/body separator,
      8-bit octets, bare LF; it is returned as is with line endings made CRLF);
    - `reports`: one per recipient reported on; the subject and text follow the most serious
      action (failed, then delayed, then delivered / relayed / expanded);
    - `envid`: the ENVID parameter, already decoded from xtext (RFC 3461 §4.4);
    - `ret`: the RET parameter (RFC 3461 §4.3). "FULL" returns the whole original as
      `message/rfc822`, however large, since RET must be honoured. "HDRS" **and no RET at all**
      return only its header section as `text/rfc822-headers` (RFC 6522 §4): our choice for
      the default, because health data should not travel back and forth in bounces;
    - `arrival`, `now`, and the dates in the reports must be timezone-aware;
    - `message_id_domain`: the right-hand side of the fresh Message-ID.

    The ENVID and ORCPT values are written decoded, as given (RFC 3464 §2.2.1, §2.3.1: xtext
    is only the SMTP transport form); characters outside printable US-ASCII become "?".
    Raises ValueError on an empty sender, no reports, a naive datetime, an unknown action or
    a malformed status code.
    """
    if not sender:
        raise ValueError("no delivery status notification for a null reverse-path (RFC 5321 §6.1)")
    if not reports:
        raise ValueError("a delivery status notification needs at least one recipient report")
    for r in reports:
        if r.action not in _ACTIONS:
            raise ValueError(f"unknown DSN action {r.action!r} (RFC 3464 §2.3.3)")
        if not _STATUS_RE.fullmatch(r.status):
            raise ValueError(f"bad enhanced status code {r.status!r} (RFC 3463 §2)")
    dates = [arrival, now] + [
        d for r in reports for d in (r.last_attempt, r.will_retry_until) if d is not None
    ]
    if any(d.tzinfo is None or d.utcoffset() is None for d in dates):
        raise ValueError("DSN dates must be timezone-aware")

    kind = _kind(reports)
    text = _normalise_crlf(original)
    full = ret == "FULL"
    returned = text if full else _header_section(text)
    boundary = _boundary(returned)

    subject = {
        "failed": "Undelivered Mail Returned to Sender / Message non remis",
        "delayed": "Delayed Mail (still being retried) / Message en attente de remise",
        "success": "Successful Mail Delivery Report / Avis de remise",
    }[kind]
    headers = [
        f"From: Mail Delivery System <{_clean(postmaster)}>",
        f"To: <{_clean(sender, ascii_only=False)}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(now)}",
        f"Message-ID: <{uuid.uuid4().hex}@{_clean(message_id_domain)}>",
        "MIME-Version: 1.0",
        # RFC 3834 §5: generated automatically in response to another message.
        "Auto-Submitted: auto-replied",
        # RFC 6522 §3: multipart/report; RFC 3464 §2: report-type=delivery-status.
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
    ]
    human = _human_text(kind, _clean(reporting_mta), reports, full)
    status = _delivery_status(reporting_mta, envid, arrival, reports)

    # RFC 6522 §3: first part human-readable, second the machine-readable report, third the
    # returned message or its header.
    out = bytearray()
    out += "\r\n".join(headers).encode("utf-8") + b"\r\n\r\n"
    out += b"This is a MIME-encapsulated delivery status notification.\r\n"
    out += b"Ceci est un avis d'etat de remise au format MIME.\r\n"
    out += f"\r\n--{boundary}\r\n".encode("ascii")
    out += b"Content-Type: text/plain; charset=utf-8\r\n"
    out += b"Content-Transfer-Encoding: quoted-printable\r\n"
    out += b"Content-Description: Notification\r\n\r\n"
    out += quoprimime.body_encode(human.encode("utf-8").decode("latin-1"), eol="\r\n").encode(
        "ascii"
    )
    out += f"\r\n--{boundary}\r\n".encode("ascii")
    out += b"Content-Type: message/delivery-status\r\n"
    out += b"Content-Description: Delivery report\r\n\r\n"
    out += status.encode("ascii")
    out += f"\r\n--{boundary}\r\n".encode("ascii")
    if full:
        # RFC 2046 §5.2.1: message/rfc822 only takes 7bit, 8bit or binary.
        out += b"Content-Type: message/rfc822\r\n"
        out += b"Content-Description: Original message\r\n"
    else:
        out += b"Content-Type: text/rfc822-headers\r\n"
        out += b"Content-Description: Original message header\r\n"
    out += f"Content-Transfer-Encoding: {_transfer_encoding(returned)}\r\n\r\n".encode("ascii")
    out += returned
    if returned and not returned.endswith(b"\r\n"):
        out += b"\r\n"
    # RFC 2046 §5.1.1: the CRLF before a delimiter belongs to the delimiter.
    out += f"\r\n--{boundary}--\r\n".encode("ascii")
    return bytes(out)


def _kind(reports: Sequence[RecipientReport]) -> Literal["failed", "delayed", "success"]:
    actions = {r.action for r in reports}
    if "failed" in actions:
        return "failed"
    if "delayed" in actions:
        return "delayed"
    return "success"


def _normalise_crlf(data: bytes) -> bytes:
    # RFC 5322 §2.1: lines end in CRLF; a stored original may carry bare LF or bare CR.
    return re.sub(rb"\r\n|\r|\n", b"\r\n", data)


_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")


def _header_section(text: bytes) -> bytes:
    """The leading header lines of `text` (RFC 5322 §2.2), stopping at the blank line.

    A broken original without a separator stops at the first line that is neither a field
    nor a continuation line, so that its body is never returned as "headers".
    """
    lines = text.split(b"\r\n")
    kept: list[bytes] = []
    for line in lines:
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            if not kept:
                break
        elif not _HEADER_LINE.match(line):
            break
        kept.append(line)
    return b"".join(line + b"\r\n" for line in kept)


def _boundary(content: bytes) -> str:
    while True:
        boundary = f"=_dsn_{secrets.token_hex(12)}"
        if boundary.encode("ascii") not in content:
            return boundary


def _transfer_encoding(content: bytes) -> str:
    # RFC 2045 §2.7-2.9: 7bit is short lines of US-ASCII without NUL; 8bit allows octets above
    # 127; anything else (NUL, lines over 998 octets) is binary.
    lines = content.split(b"\r\n")
    if b"\x00" in content or any(len(line) > 998 for line in lines):
        return "binary"
    if any(b > 127 for b in content):
        return "8bit"
    return "7bit"


def _clean(value: str, *, ascii_only: bool = True, limit: int = _MAX_FIELD_VALUE) -> str:
    """One line of printable text: controls become spaces, non-ASCII becomes "?" if asked."""
    out = []
    for c in value:
        if c in "\r\n\t" or ord(c) < 32 or ord(c) == 127:
            out.append(" ")
        elif ascii_only and ord(c) > 127:
            out.append("?")
        else:
            out.append(c)
    text = " ".join("".join(out).split())
    return text[:limit]


def _fold(name: str, value: str) -> str:
    """`name: value`, folded at spaces near column 78 (RFC 5322 §2.2.3)."""
    line = f"{name}: {value}"
    if len(line) <= _FOLD_AT:
        return line
    parts = line.split(" ")
    lines: list[str] = []
    current = parts[0]
    for word in parts[1:]:
        if len(current) + 1 + len(word) > _FOLD_AT:
            lines.append(current)
            current = " " + word  # the folding whitespace is the space already there
        else:
            current += " " + word
    lines.append(current)
    return "\r\n".join(lines)


def _typed(value: str, default_type: str) -> str:
    """`type; value` (RFC 3464 §2.1.2); values without a type get `default_type`."""
    value = _clean(value)
    kind, sep, rest = value.partition(";")
    if sep and kind.strip() and re.fullmatch(r"[A-Za-z0-9-]+", kind.strip()):
        return f"{kind.strip()}; {rest.strip()}"
    return f"{default_type}; {value}"


def _original_recipient(orcpt: str) -> str:
    # RFC 3464 §2.3.1: address-type ";" generic-address, from ORCPT (RFC 3461 §4.2).
    addr_type, sep, address = orcpt.partition(";")
    if not sep:
        return _clean(orcpt)
    return f"{_clean(addr_type.strip())}; {_clean(address.strip())}"


def _final_recipient(address: str) -> str:
    if all(" " < c <= "~" for c in address):
        return f"rfc822; {address}"
    # RFC 6533 §3: a non-ASCII address in a message/delivery-status is reported as
    # "utf-8; " utf-8-addr-xtext, each character outside QCHAR written \x{HEX}.
    encoded = "".join(
        c if ("!" <= c <= "~" and c not in "+=\\") else f"\\x{{{ord(c):X}}}"
        for c in _clean(address, ascii_only=False)
    )
    return f"utf-8; {encoded}"


def _delivery_status(
    reporting_mta: str,
    envid: str | None,
    arrival: datetime,
    reports: Sequence[RecipientReport],
) -> str:
    # RFC 3464 §2.1: per-message fields, then one block per recipient, blocks separated by a
    # blank line; fields in the order of the ABNF of §2.2 and §2.3.
    blocks: list[list[str]] = []
    message = []
    if envid is not None:
        message.append(_fold("Original-Envelope-Id", _clean(envid)))  # §2.2.1
    message.append(_fold("Reporting-MTA", _typed(reporting_mta, "dns")))  # §2.2.2
    message.append(_fold("Arrival-Date", format_datetime(arrival)))  # §2.2.5
    blocks.append(message)
    for r in reports:
        block = []
        if r.original_recipient is not None:
            block.append(_fold("Original-Recipient", _original_recipient(r.original_recipient)))
        block.append(_fold("Final-Recipient", _final_recipient(r.final_recipient)))  # §2.3.2
        block.append(f"Action: {r.action}")  # §2.3.3
        block.append(f"Status: {r.status}")  # §2.3.4
        if r.remote_mta is not None:
            block.append(_fold("Remote-MTA", _typed(r.remote_mta, "dns")))  # §2.3.5
        if r.diagnostic is not None:
            block.append(_fold("Diagnostic-Code", _typed(r.diagnostic, "smtp")))  # §2.3.6
        if r.last_attempt is not None:
            block.append(_fold("Last-Attempt-Date", format_datetime(r.last_attempt)))  # §2.3.7
        if r.action == "delayed" and r.will_retry_until is not None:
            block.append(_fold("Will-Retry-Until", format_datetime(r.will_retry_until)))  # §2.3.9
        blocks.append(block)
    return "\r\n\r\n".join("\r\n".join(b) for b in blocks) + "\r\n"


# ---------------------------------------------------------------------------------------------
# The human-readable part (RFC 6522 §3: first part), French then English

_FR_ACTION = {
    "failed": "non remis",
    "delayed": "en attente",
    "delivered": "remis",
    "relayed": "transmis à un serveur qui ne renvoie pas d'accusé de remise",
    "expanded": "remis à une liste de diffusion",
}
_EN_ACTION = {
    "failed": "failed",
    "delayed": "delayed",
    "delivered": "delivered",
    "relayed": "relayed to a server that sends no delivery report",
    "expanded": "delivered to a mailing list",
}


def _human_date(d: datetime) -> str:
    return d.strftime("%Y-%m-%d %H:%M %z")


def _recipient_lines(
    reports: Sequence[RecipientReport], actions: dict[str, str], until_word: str
) -> list[str]:
    lines = []
    for r in reports:
        lines.append(f"  <{_clean(r.final_recipient, ascii_only=False)}> : {actions[r.action]}")
        detail = r.status
        if r.diagnostic:
            _, sep, text = r.diagnostic.partition(";")
            detail += " - " + _clean(text if sep else r.diagnostic, ascii_only=False)
        lines.append(f"      {detail}")
        if r.action == "delayed" and r.will_retry_until is not None:
            lines.append(f"      {until_word} {_human_date(r.will_retry_until)}")
    return lines


def _human_text(
    kind: Literal["failed", "delayed", "success"],
    host: str,
    reports: Sequence[RecipientReport],
    full: bool,
) -> str:
    fr_intro = {
        "failed": "Votre message n'a pas pu être remis à un ou plusieurs destinataires.",
        "delayed": (
            "Votre message n'a pas encore pu être remis à un ou plusieurs destinataires.\n"
            "De nouvelles tentatives sont faites automatiquement jusqu'à la date indiquée :\n"
            "vous n'avez pas besoin de le renvoyer."
        ),
        "success": "Votre message a été remis aux destinataires ci-dessous.",
    }[kind]
    en_intro = {
        "failed": "Your message could not be delivered to one or more recipients.",
        "delayed": (
            "Your message has not yet been delivered to one or more recipients.\n"
            "Delivery is retried automatically until the date shown:\n"
            "you do not need to send it again."
        ),
        "success": "Your message was delivered to the recipients below.",
    }[kind]
    if full:
        fr_attached = "Votre message d'origine est joint à cet avis."
        en_attached = "Your original message is attached."
    else:
        fr_attached = (
            "Pour protéger la confidentialité des données de santé, seul l'en-tête\n"
            "de votre message d'origine est joint à cet avis."
        )
        en_attached = (
            "To protect the confidentiality of health data, only the header of your\n"
            "original message is attached."
        )
    lines = [
        "[Français]",
        "",
        f"Ceci est le système de messagerie de {host}.",
        "",
        fr_intro,
        "",
        *_recipient_lines(reports, _FR_ACTION, "nouvelles tentatives jusqu'au"),
        "",
        fr_attached,
        "Ce message est généré automatiquement, merci de ne pas y répondre.",
        "",
        "[English]",
        "",
        f"This is the mail system at {host}.",
        "",
        en_intro,
        "",
        *_recipient_lines(reports, _EN_ACTION, "will retry until"),
        "",
        en_attached,
        "This message was generated automatically, please do not reply.",
    ]
    return "\r\n".join("\r\n".join(line.split("\n")) for line in lines) + "\r\n"


# ---------------------------------------------------------------------------------------------
# Reading a notification back


def _unfold(value: str) -> str:
    # RFC 5322 §2.2.3: unfolding removes the CRLF before folding whitespace.
    return re.sub(r"\r?\n(?=[ \t])", "", value).strip()


def _blocks_from_text(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    for raw in re.split(r"\r?\n[ \t]*\r?\n", text.strip()):
        fields: dict[str, str] = {}
        name = ""
        for line in re.split(r"\r?\n", raw):
            if line[:1] in (" ", "\t") and name:
                fields[name] += " " + line.strip()
            elif ":" in line:
                name, _, value = line.partition(":")
                name = name.strip()
                fields.setdefault(name, value.strip())
        if fields:
            blocks.append(fields)
    return blocks


def parse_dsn(data: bytes) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The per-message fields and the per-recipient field blocks of a notification.

    Field names keep the case they were written in; values are unfolded. Accepts
    message/delivery-status and message/global-delivery-status (RFC 6533) parts. Raises
    ValueError when `data` holds no delivery status part.
    """
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        payload = part.get_payload()
        blocks: list[dict[str, str]]
        if isinstance(payload, list):
            # The stdlib parser splits message/delivery-status into one Message per block.
            blocks = []
            for sub in payload:
                assert isinstance(sub, email.message.Message)
                fields: dict[str, str] = {}
                for k, v in sub.items():
                    fields.setdefault(k, _unfold(str(v)))
                if fields:
                    blocks.append(fields)
        else:
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
            blocks = _blocks_from_text(text)
        if not blocks:
            raise ValueError("the delivery status part is empty")
        return blocks[0], blocks[1:]
    raise ValueError("not a delivery status notification: no message/delivery-status part")

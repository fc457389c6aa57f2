"""Messages the webmail writes (pure): a patient's message to a professional, and the read
receipt (MDN, RFC 8098) a professional asked for. Both then go through the routing pipeline
like any submission (architecture.md: one pipeline, many doors)."""

from __future__ import annotations

import secrets
from datetime import datetime
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

__all__ = ["PRODUCT", "build_mdn", "build_message"]

# mssante.md §5 (Référentiel #2): X-MSS-NIL names the sending software on every message.
PRODUCT = "mssante-mailserver-webmail/0.1"
_POLICY = SMTP.clone(max_line_length=78)  # CRLF line ends, as stored and relayed


def _mailbox(name: str, address: str) -> Address:
    local, _, domain = address.partition("@")
    return Address(display_name=name, username=local, domain=domain)


def build_message(
    *,
    sender: tuple[str, str],
    recipient: tuple[str, str],
    subject: str,
    body: str,
    hostname: str,
    now: datetime,
    in_reply_to: str | None = None,
    references: str | None = None,
) -> bytes:
    """A plain-text message in UTF-8 (mssante.md §5), threaded under ``in_reply_to``."""
    m = EmailMessage(policy=_POLICY)
    m["From"] = _mailbox(*sender)
    m["To"] = _mailbox(*recipient)
    m["Subject"] = subject
    m["Date"] = format_datetime(now)
    m["Message-ID"] = make_msgid(domain=hostname)
    if in_reply_to:
        m["In-Reply-To"] = in_reply_to  # RFC 5322 §3.6.4
        m["References"] = f"{references} {in_reply_to}" if references else in_reply_to
    m["X-MSS-NIL"] = PRODUCT
    m.set_content(body.replace("\r\n", "\n"), charset="utf-8", cte="quoted-printable")
    return m.as_bytes(policy=_POLICY)


def build_mdn(
    *,
    patient: tuple[str, str],
    to: str,
    original_subject: str,
    original_message_id: str | None,
    original_recipient: str | None,
    hostname: str,
    now: datetime,
) -> bytes:
    """RFC 8098 §3: multipart/report; report-type=disposition-notification.

    The patient displayed the message (their action, ``manual-action``) and the receipt
    leaves without asking them (``MDN-sent-automatically``): mssante.md §4, a patient cannot
    refuse a read receipt a professional asked for.
    """
    boundary = "mdn-" + secrets.token_hex(12)
    head = (
        "".join(
            f"{name}: {value}\r\n"
            for name, value in (
                ("From", formataddr(patient, charset="utf-8")),
                ("To", to),
                ("Subject", Header(f"Accusé de lecture : {original_subject}", "utf-8").encode()),
                ("Date", format_datetime(now)),
                ("Message-ID", make_msgid(domain=hostname)),
                ("Auto-Submitted", "auto-replied"),  # RFC 3834 §5: no automatic answer to it
                ("X-MSS-NIL", PRODUCT),
                ("MIME-Version", "1.0"),
                (
                    "Content-Type",
                    "multipart/report; report-type=disposition-notification;\r\n"
                    f' boundary="{boundary}"',
                ),
            )
        ).encode("ascii")
        + b"\r\n"
    )
    human = (
        f"Le message « {original_subject} » a été affiché par son destinataire "
        f"le {now.strftime('%d/%m/%Y à %H:%M')} (UTC).\r\n"
        "Cet accusé de lecture ne garantit pas que le message a été lu ou compris.\r\n"
    )
    fields = [f"Reporting-UA: {hostname}; {PRODUCT}"]  # RFC 8098 §3.2.1
    if original_recipient:
        fields.append(f"Original-Recipient: {original_recipient}")  # §3.2.3
    fields.append(f"Final-Recipient: rfc822;{patient[1]}")  # §3.2.4
    if original_message_id:
        fields.append(f"Original-Message-ID: {original_message_id}")  # §3.2.5
    fields.append("Disposition: manual-action/MDN-sent-automatically; displayed")  # §3.2.6
    parts = [
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n" + human,
        f"--{boundary}\r\nContent-Type: message/disposition-notification\r\n\r\n"
        + "\r\n".join(fields)
        + "\r\n",
        f"--{boundary}--\r\n",
    ]
    return head + "".join(parts).encode("utf-8")

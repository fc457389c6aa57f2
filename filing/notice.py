"""The notice sent back to the sender when documents of a message could not be filed.

mssante.md §5: receiving systems report integration errors with codes 900-906 (902 unknown
patient, 903 INS absent, 904 INS mismatch, 905 incomplete INS); the other refusals here
(hostile or inconsistent archives) carry a short slug naming the check. The notice is plain
text, French first (the trust space's language) then English, quotes the original
Message-ID, and carries the codes in ``X-MSS-ERR`` for sending software to act on. It never
quotes the documents themselves: no health data travels back.
"""

from __future__ import annotations

import email.policy
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Protocol

__all__ = ["build_notice"]

# mssante.md §5: the integration error codes a receiving system reports.
CODE_LABELS = {
    "902": "patient inconnu / unknown patient",
    "903": "INS absent / INS missing",
    "904": "INS non concordant / INS mismatch",
    "905": "INS incomplet / incomplete INS",
}


class _Refusal(Protocol):
    @property
    def code(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def attachment(self) -> str: ...


def build_notice(
    *,
    postmaster: str,
    to: str,
    patient_address: str,
    original_message_id: str | None,
    original_subject: str | None,
    refusals: Sequence[_Refusal],
    now: datetime,
    message_id_domain: str,
) -> bytes:
    """The whole notice as CRLF bytes, ready for the pipeline."""
    codes = sorted({r.code for r in refusals})
    numeric = [c for c in codes if c.isdigit()]
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = f"Dossier patient <{postmaster}>"
    msg["To"] = to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid("filing", domain=message_id_domain)
    label = ", ".join(numeric or codes)
    msg["Subject"] = f"Erreur d'intégration au dossier du patient ({label})"
    if original_message_id:
        msg["In-Reply-To"] = original_message_id
        msg["References"] = original_message_id
    msg["X-MSS-ERR"] = ",".join(codes)
    msg["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5: no automatic answer to this
    lines = [
        "Les documents suivants n'ont pas été intégrés au dossier du patient.",
        "The following documents were not filed into the patient's dossier.",
        "",
        f"Destinataire / recipient: {patient_address}",
        f"Message: {original_message_id or '(sans Message-ID / no Message-ID)'}",
    ]
    if original_subject:
        lines.append(f"Objet / subject: {original_subject}")
    lines.append("")
    for r in refusals:
        label = CODE_LABELS.get(r.code, r.code)
        lines.append(f"- {r.attachment or '(message)'}: code {r.code} ({label})")
        lines.append(f"  {r.reason}")
    lines += [
        "",
        "Le message lui-même a bien été remis au patient.",
        "The message itself was delivered to the patient.",
    ]
    msg.set_content("\n".join(lines) + "\n", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()

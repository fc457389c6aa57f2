"""Trace header fields added to each accepted message: Received and Authentication-Results.

RFC 5321 §4.4 (Received, prepended by every SMTP server), RFC 8601 (Authentication-Results:
what this server verified about the message: DKIM result, TLS peer identity, SASL login).
Header values are kept on folded lines of at most 78 characters where possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache

__all__ = ["TraceInfo", "authentication_results", "received"]


@dataclass(frozen=True)
class TraceInfo:
    helo: str  # what the client said in EHLO/HELO
    remote_ip: str
    protocol: str  # RFC 3848 with-type: ESMTPS, ESMTPSA, ...
    tls_version: str | None  # "TLSv1.3"
    cipher: str | None
    recipient: str | None  # only when the message has a single recipient (privacy otherwise)
    queue_id: str
    at: datetime


# Cached: the same EHLO names, addresses, ciphers and peer DNs come message after message.
@lru_cache(maxsize=1024)
def _clean(value: str) -> str:
    """ASCII without CR, LF or parentheses that would break the header syntax."""
    if value.isascii() and value.isprintable() and "(" not in value and ")" not in value:
        return value[:300]
    text = value.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if c.isprintable() and c not in "()" else "?" for c in text)[:300]


def received(info: TraceInfo, by_host: str) -> bytes:
    """RFC 5321 §4.4 time-stamp-line."""
    tls = ""
    if info.tls_version:
        tls = f"\r\n\t(using {_clean(info.tls_version)} with cipher {_clean(info.cipher or '?')})"
    rcpt = f"\r\n\tfor <{_clean(info.recipient)}>" if info.recipient else ""
    return (
        f"Received: from {_clean(info.helo) or 'unknown'} ([{_clean(info.remote_ip)}])\r\n"
        f"\tby {by_host} with {info.protocol} id {info.queue_id}{tls}{rcpt};\r\n"
        f"\t{_date(info.at.replace(microsecond=0))}\r\n"
    ).encode()


@lru_cache(maxsize=4)  # RFC 5322 §3.3 dates have whole seconds: one formatting per second
def _date(at: datetime) -> str:
    return format_datetime(at)


def authentication_results(
    authserv_id: str, results: list[str], *, tls_peer: str | None, auth: str | None
) -> bytes:
    """RFC 8601 §2.2: ``authserv-id; method=result ...``. ``results`` are ready-made
    resinfo fragments (e.g. ``dkim=pass header.d=x.fr header.s=mss``)."""
    parts = list(results) or ["dkim=none"]
    if auth:
        parts.append(f"auth=pass smtp.auth={_clean(auth)}")  # RFC 8601 §2.7.4
    if tls_peer:
        # RFC 8601 §2.7.x has no method for mutual TLS; the peer DN is recorded as a comment
        # so that readers of the message can see which operator certificate relayed it.
        parts.append(f"x-tls=pass (peer certificate {_clean(tls_peer)})")
    body = ";\r\n\t".join(parts)
    return f"Authentication-Results: {authserv_id};\r\n\t{body}\r\n".encode()

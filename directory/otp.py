"""One-time codes for the patients' webmail login (issue #6: a code on every login).

Two kinds, pure functions, no I/O:

* a code sent by e-mail to the patient's personal address: :func:`new_email_code` draws it,
  only its keyed hash is stored (:func:`code_digest`), and :func:`code_matches` compares in
  constant time;
* TOTP (RFC 6238) from an authenticator application the patient enrolled: HMAC-SHA1, 30 s
  steps, 6 digits, the defaults every authenticator application reads from an
  ``otpauth://`` URI (:func:`otpauth_uri`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

__all__ = [
    "CODE_DIGITS",
    "TOTP_PERIOD",
    "code_digest",
    "code_matches",
    "hotp",
    "new_email_code",
    "new_totp_secret",
    "normalize_code",
    "otpauth_uri",
    "totp_match",
]

CODE_DIGITS = 6
TOTP_PERIOD = 30  # seconds, RFC 6238 §5.2 recommended time step
TOTP_WINDOW = 1  # steps accepted either side of now (clock drift, RFC 6238 §5.2)


def normalize_code(text: str) -> str:
    """What the patient typed, without the spaces and dashes people add when copying."""
    return "".join(c for c in text if not c.isspace() and c != "-")


def new_email_code() -> str:
    """A fresh 6-digit code, from the system's CSPRNG."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_digest(code: str, salt: str) -> str:
    """The stored form of an e-mailed code: HMAC-SHA256 keyed by the (secret) session id."""
    return hmac.new(salt.encode(), code.encode(), hashlib.sha256).hexdigest()


def code_matches(code: str, salt: str, digest: str | None) -> bool:
    if not digest:
        return False
    return hmac.compare_digest(code_digest(normalize_code(code), salt), digest)


# --- TOTP, RFC 6238 over HOTP, RFC 4226 ---------------------------------------------------


def new_totp_secret() -> str:
    """160 random bits (RFC 4226 §4 R6 recommends 160), base32 without padding."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def _key(secret: str) -> bytes:
    text = secret.strip().replace(" ", "").upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def hotp(secret: str, counter: int, digits: int = CODE_DIGITS) -> str:
    """RFC 4226 §5.3: HMAC-SHA1 of the 8-byte counter, dynamic truncation, modulo 10^digits."""
    mac = hmac.new(_key(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 10**digits:0{digits}d}"


def totp_match(secret: str, code: str, now: float, *, after_step: int | None = None) -> int | None:
    """The time step (RFC 6238 §4.2: T = floor(unix time / 30)) ``code`` is valid for, or None.

    Steps at or before ``after_step`` (the last one accepted) are refused: RFC 6238 §5.2, the
    verifier must not accept the same code twice.
    """
    code = normalize_code(code)
    if len(code) != CODE_DIGITS or not code.isdigit():
        return None
    current = int(now // TOTP_PERIOD)
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(hotp(secret, step), code):
            return step
    return None


def otpauth_uri(secret: str, account: str, issuer: str) -> str:
    """The Key Uri Format authenticator applications read (QR code or typed)."""
    label = quote(f"{issuer}:{account}", safe="")
    query = urlencode(
        {
            "secret": secret,
            "issuer": issuer,
            "digits": CODE_DIGITS,
            "period": TOTP_PERIOD,
            "algorithm": "SHA1",
        }
    )
    return f"otpauth://totp/{label}?{query}"

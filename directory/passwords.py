"""Password hashing (scrypt, RFC 7914) for development logins and patients' first factor."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets

# RFC 7914 §2 parameters: N=2^14, r=8, p=1 is ~16 MB and tens of ms per check.
_N, _R, _P = 2**14, 8, 1
_PREFIX = "scrypt"


def new_password(nbytes: int = 12) -> str:
    """A random password of URL-safe characters (``nbytes`` of randomness), never starting
    with "-": pasted into a command line (swaks, curl), it would be read as an option."""
    while True:
        password = secrets.token_urlsafe(nbytes)
        if not password.startswith("-"):
            return password


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"${_PREFIX}$n={_N},r={_R},p={_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str | None) -> bool:
    """Constant-time check; any malformed or missing hash simply fails."""
    if not encoded:
        return False
    try:
        _, prefix, params, salt_b64, key_b64 = encoded.split("$")
        if prefix != _PREFIX:
            return False
        opts = dict(item.split("=") for item in params.split(","))
        n, r, p = int(opts["n"]), int(opts["r"]), int(opts["p"])
        salt, expected = _unb64(salt_b64), _unb64(key_b64)
    except (ValueError, KeyError):
        return False
    key = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=len(expected),
        maxmem=256 * 1024 * 1024,
    )
    return hmac.compare_digest(key, expected)


async def check_password(password: str, encoded: str | None) -> bool:
    """:func:`verify_password` off the event loop: scrypt takes tens of milliseconds, during
    which every other session of the door would otherwise stand still."""
    return await asyncio.to_thread(verify_password, password, encoded)

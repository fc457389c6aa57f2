"""SASL messages, decoded: what the SMTP (RFC 4954) and IMAP (RFC 3501 §6.2.2) doors receive.

Pure functions, no I/O, shared by both doors so that a client's bytes mean the same thing on
either. Each refusal is a :class:`SaslError` with a plain message. Cancellation (a client
answering ``*`` to a challenge, RFC 4954 §4 and RFC 3501 §6.2.2) is the door's business: it
checks for ``*`` before calling :func:`decode_base64_response`.

Mechanisms:

* PLAIN (RFC 4616), development logins and patients' first factor;
* XOAUTH2 (Google's format, https://developers.google.com/gmail/imap/xoauth2-protocol) and
  OAUTHBEARER (RFC 7628), carrying a Pro Santé Connect access token;
* EXTERNAL (RFC 4422 Appendix A), with the TLS client certificate.

For XOAUTH2 and OAUTHBEARER a refused token is not answered at once: the server first sends a
challenge holding a JSON error (:func:`xoauth2_failure`, :func:`oauthbearer_failure`), the
client answers with a dummy response (empty for XOAUTH2, ``%x01`` for OAUTHBEARER, RFC 7628
§3.2.3), then the server sends the final failure (SMTP ``535 5.7.8``, IMAP ``NO``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Final

from directory.errors import DirectoryError

__all__ = [
    "SaslError",
    "decode_base64_response",
    "oauthbearer_failure",
    "parse_external",
    "parse_oauthbearer",
    "parse_plain",
    "parse_xoauth2",
    "xoauth2_failure",
]


class SaslError(DirectoryError):
    """A SASL response that does not follow its mechanism's format; the message says how."""


# RFC 4648 §4 alphabet with padding, as SMTP AUTH and IMAP AUTHENTICATE use it.
_BASE64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 6749 Appendix A.7: error = 1*NQSCHAR (%x20-21 / %x23-5B / %x5D-7E).
_ERROR_CODE: Final = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")
# RFC 7628 §3.1: key = 1*(ALPHA); value = *(VCHAR / SP / HTAB / CR / LF).
_KV_KEY: Final = re.compile(r"[A-Za-z]+")
_KV_VALUE: Final = re.compile(r"[\x21-\x7e \t\r\n]*")
_KVSEP: Final = "\x01"


def _show(value: str, limit: int = 40) -> str:
    shown = value if len(value) <= limit else value[:limit] + "..."
    return repr(shown)


def decode_base64_response(text: str) -> bytes:
    """Decode a client's base64 response (RFC 4954 §4, RFC 3501 §6.2.2).

    Strict RFC 4648 §4 base64: no whitespace inside, correct padding, canonical final bits
    (RFC 4648 §3.5). A single ``=`` is an empty initial response (RFC 4954 §4); an empty line
    is an empty response to a challenge.
    """
    text = text.strip(" \t\r\n")
    if text == "=":  # RFC 4954 §4: "=" stands for a zero-length initial response
        return b""
    if not text.isascii() or _BASE64.fullmatch(text) is None or len(text) % 4:
        raise SaslError(f"response {_show(text)} is not base64")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise SaslError(f"response {_show(text)} is not base64") from None
    if base64.b64encode(data).decode("ascii") != text:  # RFC 4648 §3.5: canonical encoding
        raise SaslError(f"response {_show(text)} is not canonical base64")
    return data


def _utf8(data: bytes, mechanism: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SaslError(f"{mechanism} response is not UTF-8 (byte {exc.start})") from None


def parse_plain(data: bytes) -> tuple[str, str, str]:
    """``(authzid, authcid, password)`` from a PLAIN response (RFC 4616 §2).

    ``message = [authzid] UTF8NUL authcid UTF8NUL passwd``: exactly two NULs, the authcid and
    the password non-empty, the authzid empty when the client acts as itself.
    """
    text = _utf8(data, "PLAIN")
    parts = text.split("\x00")
    if len(parts) != 3:
        raise SaslError(
            f"PLAIN response must be authzid NUL authcid NUL password "
            f"(found {len(parts) - 1} NUL separators, expected 2)"
        )
    authzid, authcid, password = parts
    if not authcid:
        raise SaslError("PLAIN response has an empty authentication identity")
    if not password:
        raise SaslError("PLAIN response has an empty password")
    return authzid, authcid, password


def _bearer_token(auth_value: str, mechanism: str) -> str:
    """The token of an ``auth`` value ``Bearer <token>`` (RFC 6750 §2.1)."""
    scheme, _, token = auth_value.partition(" ")
    # RFC 7235 §2.1: the auth-scheme is case-insensitive.
    if scheme.lower() != "bearer":
        raise SaslError(f"{mechanism} response lacks auth=Bearer")
    token = token.strip(" ")
    if not token:
        raise SaslError(f"{mechanism} response has an empty bearer token")
    if _B64TOKEN.fullmatch(token) is None:
        raise SaslError(f"{mechanism} bearer token has characters outside RFC 6750 b64token")
    return token


def parse_xoauth2(data: bytes) -> tuple[str, str]:
    """``(user, token)`` from an XOAUTH2 response.

    Google's format: ``"user=" user ^A "auth=Bearer " token ^A ^A`` (^A is %x01).
    """
    text = _utf8(data, "XOAUTH2")
    if not text.endswith(_KVSEP * 2):
        raise SaslError("XOAUTH2 response does not end with two ^A (0x01) separators")
    fields = text[:-2].split(_KVSEP)
    values: dict[str, str] = {}
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep:
            raise SaslError(f"XOAUTH2 field {_show(field)} is not key=value")
        if key in values:
            raise SaslError(f"XOAUTH2 response repeats {key}=")
        values[key] = value
    if "user" not in values:
        raise SaslError("XOAUTH2 response lacks user=")
    if not values["user"]:
        raise SaslError("XOAUTH2 response has an empty user=")
    if "auth" not in values:
        raise SaslError("XOAUTH2 response lacks auth=Bearer")
    return values["user"], _bearer_token(values["auth"], "XOAUTH2")


def _saslname(value: str) -> str:
    """Decode an RFC 5801 §4 saslname: ``=2C`` is a comma, ``=3D`` an equals sign."""
    decoded: list[str] = []
    index = 0
    while index < len(value):
        char = value[index]
        if char == ",":
            raise SaslError("OAUTHBEARER authzid contains an unescaped comma")
        if char == "=":
            escape = value[index : index + 3]
            if escape not in ("=2C", "=3D"):
                raise SaslError(
                    f"OAUTHBEARER authzid has a bad escape {_show(escape)} (only =2C and =3D)"
                )
            decoded.append("," if escape == "=2C" else "=")
            index += 3
            continue
        decoded.append(char)
        index += 1
    return "".join(decoded)


def parse_oauthbearer(data: bytes) -> tuple[str | None, str]:
    """``(authzid or None, token)`` from an OAUTHBEARER initial client response.

    RFC 7628 §3.1::

        client-resp = (gs2-header kvsep *kvpair kvsep) / kvsep
        kvpair      = key "=" value kvsep      ; key = 1*ALPHA
        gs2-header  = gs2-cbind-flag "," [ authzid ] ","     ; RFC 5801 §4
        authzid     = "a=" saslname

    ``auth`` (``Bearer <token>``) is required; ``host``, ``port`` and any other keys are
    allowed and ignored. A lone ``%x01`` is the client's reply to an error challenge
    (RFC 7628 §3.2.3), not a login: it is refused here, and the door fails the exchange.
    """
    text = _utf8(data, "OAUTHBEARER")
    if text == _KVSEP:
        raise SaslError("OAUTHBEARER response is the client's acknowledgement of a failure")
    if not text.endswith(_KVSEP * 2):
        raise SaslError("OAUTHBEARER response does not end with two ^A (0x01) separators")
    gs2, sep, rest = text.partition(_KVSEP)
    if not sep:
        raise SaslError("OAUTHBEARER response has no GS2 header")
    # gs2-header: flag "," [authzid] ","
    flag, comma, after_flag = gs2.partition(",")
    authz_part, comma2, trailing = after_flag.partition(",")
    if not comma or not comma2 or trailing:
        raise SaslError(f"OAUTHBEARER GS2 header {_show(gs2)} is not 'n,[a=authzid],'")
    if flag.startswith("p="):
        # RFC 7628 §3.1 defines no channel binding for OAUTHBEARER: only 'n' or 'y'.
        raise SaslError("OAUTHBEARER does not support channel binding (p=)")
    if flag not in ("n", "y"):
        raise SaslError(f"OAUTHBEARER GS2 header has an unknown flag {_show(flag)}")
    authzid: str | None = None
    if authz_part:
        if not authz_part.startswith("a="):
            raise SaslError(f"OAUTHBEARER GS2 header {_show(gs2)} has no a= before the authzid")
        authzid = _saslname(authz_part[2:])
        if not authzid:
            raise SaslError("OAUTHBEARER GS2 header has an empty authzid")
    pairs = rest[:-2].split(_KVSEP) if rest != _KVSEP else []
    values: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or _KV_KEY.fullmatch(key) is None:
            raise SaslError(f"OAUTHBEARER field {_show(pair)} is not key=value")
        if _KV_VALUE.fullmatch(value) is None:
            raise SaslError(f"OAUTHBEARER {key}= value has control characters")
        if key in values:
            raise SaslError(f"OAUTHBEARER response repeats {key}=")
        values[key] = value
    if "auth" not in values:
        raise SaslError("OAUTHBEARER response lacks auth=Bearer")
    return authzid, _bearer_token(values["auth"], "OAUTHBEARER")


def _json_challenge(fields: dict[str, str]) -> str:
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=True)
    return base64.b64encode(body.encode("ascii")).decode("ascii")


def oauthbearer_failure(
    status: str = "invalid_token",
    scope: str | None = None,
    openid_configuration: str | None = None,
) -> str:
    """The base64 error challenge sent before an OAUTHBEARER failure (RFC 7628 §3.2.2).

    ``status`` is an OAuth error code (RFC 6750 §3.1: ``invalid_token``, ``invalid_request``,
    ``insufficient_scope``); ``scope`` and ``openid-configuration`` are optional hints.
    """
    if _ERROR_CODE.fullmatch(status) is None:
        raise ValueError(f"OAuth error code {status!r} is not RFC 6749 error syntax")
    fields = {"status": status}
    if scope is not None:
        fields["scope"] = scope
    if openid_configuration is not None:
        fields["openid-configuration"] = openid_configuration
    return _json_challenge(fields)


def xoauth2_failure(status: str = "401", schemes: str = "bearer", scope: str | None = None) -> str:
    """The base64 error challenge sent before an XOAUTH2 failure.

    Google's format: ``{"status":"401","schemes":"bearer","scope":"..."}``; the client answers
    with an empty line, then the server sends the final failure.
    """
    fields = {"status": status, "schemes": schemes}
    if scope is not None:
        fields["scope"] = scope
    return _json_challenge(fields)


def parse_external(data: bytes) -> str | None:
    """The requested authorization identity of an EXTERNAL response, or None when empty.

    RFC 4422 Appendix A.1: ``external-initial-resp = [ authz-id-string ]``, a UTF-8 string
    without NUL; empty means "the identity the certificate gives".
    """
    if not data:
        return None
    text = _utf8(data, "EXTERNAL")
    if "\x00" in text:
        raise SaslError("EXTERNAL authorization identity contains NUL")
    return text

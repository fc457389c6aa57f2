"""MAIL FROM and RCPT TO parameters (ESMTP keywords), parsed and checked. Pure.

RFC 5321 §4.1.2 (esmtp-param), RFC 1870 (SIZE), RFC 6152 (BODY=8BITMIME), RFC 6531
(SMTPUTF8), RFC 3461 §4 (RET, ENVID, NOTIFY, ORCPT). Parameter values are case-sensitive where
the RFCs say so (ENVID and ORCPT are xtext and keep their case).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smtp import dsn as reports

__all__ = [
    "MailParams",
    "ParamError",
    "RcptParams",
    "parse_mail_params",
    "parse_path",
    "parse_rcpt_params",
    "xtext_decode",
]

_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
MAX_ENVID = 100  # RFC 3461 §4.4: ENVID at most 100 characters


class ParamError(ValueError):
    """A bad command argument; ``reply`` is the full SMTP reply line to send."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class MailParams:
    size: int | None = None
    body: str = "7BIT"
    smtputf8: bool = False
    ret: str | None = None  # FULL | HDRS
    envid: str | None = None  # decoded


@dataclass(frozen=True)
class RcptParams:
    notify: str | None = None  # "NEVER" or a comma list of SUCCESS/FAILURE/DELAY
    orcpt: str | None = None  # "rfc822;addr" with the address decoded from xtext


def xtext_decode(value: str) -> str:
    """RFC 3461 §4 xtext, refused with a 501 reply when malformed."""
    try:
        return reports.xtext_decode(value)
    except ValueError as exc:
        raise ParamError(f"501 5.5.4 {exc}") from None


def parse_path(arg: str, keyword: str) -> tuple[str, list[str]]:
    """Split ``FROM:<a@b> P=V ...`` into the address and the parameter words.

    RFC 5321 §4.1.2 Reverse-path / Forward-path; ``<>`` gives the null path. Source routes
    (``<@a,@b:x@y>``) are accepted and ignored as RFC 5321 §4.1.1.3 asks.
    """
    head = arg.lstrip()
    if not head[: len(keyword)].upper() == keyword:
        raise ParamError(f"501 5.5.4 syntax: {keyword}<address> [parameters]")
    rest = head[len(keyword) :].lstrip()
    if not rest.startswith("<"):
        raise ParamError(f"501 5.5.4 syntax: {keyword}<address> (angle brackets required)")
    end = rest.find(">")
    if end < 0:
        raise ParamError("501 5.5.4 syntax: missing '>' after the address")
    address = rest[1:end].strip()
    if address.startswith("@") and ":" in address:
        address = address.split(":", 1)[1]
    if any(c.isspace() or c in "<>" for c in address):
        raise ParamError("501 5.1.3 malformed address")
    return address, rest[end + 1 :].split()


def _split(words: list[str]) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not _KEYWORD.match(key) or (eq and not value):
            raise ParamError(f"501 5.5.4 malformed parameter {word!r}")
        upper = key.upper()
        if upper in params:
            raise ParamError(f"501 5.5.4 parameter {upper} given twice")
        params[upper] = value if eq else None
    return params


def parse_mail_params(words: list[str], *, dsn: bool = True) -> MailParams:
    params = _split(words)
    size: int | None = None
    body = "7BIT"
    smtputf8 = False
    ret: str | None = None
    envid: str | None = None
    for key, value in params.items():
        if key == "SIZE":  # RFC 1870 §6
            if value is None or not value.isdigit() or len(value) > 20:
                raise ParamError("501 5.5.4 SIZE needs a number of octets")
            size = int(value)
        elif key == "BODY":  # RFC 6152 §2; BINARYMIME needs CHUNKING, which we do not offer
            if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                raise ParamError("501 5.5.4 BODY must be 7BIT or 8BITMIME")
            body = value.upper()
        elif key == "SMTPUTF8":  # RFC 6531 §3.4
            if value is not None:
                raise ParamError("501 5.5.4 SMTPUTF8 takes no value")
            smtputf8 = True
        elif key == "RET" and dsn:  # RFC 3461 §4.3
            if value is None or value.upper() not in ("FULL", "HDRS"):
                raise ParamError("501 5.5.4 RET must be FULL or HDRS")
            ret = value.upper()
        elif key == "ENVID" and dsn:  # RFC 3461 §4.4
            if value is None:
                raise ParamError("501 5.5.4 ENVID needs a value")
            envid = xtext_decode(value)
            if len(envid) > MAX_ENVID:
                raise ParamError(f"501 5.5.4 ENVID longer than {MAX_ENVID} characters")
        else:
            raise ParamError(f"555 5.5.4 MAIL FROM parameter {key} not recognised")
    return MailParams(size=size, body=body, smtputf8=smtputf8, ret=ret, envid=envid)


def parse_rcpt_params(words: list[str], *, dsn: bool = True) -> RcptParams:
    params = _split(words)
    notify: str | None = None
    orcpt: str | None = None
    for key, value in params.items():
        if key == "NOTIFY" and dsn:  # RFC 3461 §4.1
            if value is None:
                raise ParamError("501 5.5.4 NOTIFY needs a value")
            try:
                keywords = reports.parse_notify(value)
            except ValueError as exc:
                raise ParamError(f"501 5.5.4 {exc}") from None
            order = ("NEVER", "SUCCESS", "FAILURE", "DELAY")
            notify = ",".join(w for w in order if w in keywords)
        elif key == "ORCPT" and dsn:  # RFC 3461 §4.2: addr-type ";" xtext
            if value is None or ";" not in value:
                raise ParamError("501 5.5.4 ORCPT must be addr-type;xtext")
            addr_type, _, encoded = value.partition(";")
            if not _KEYWORD.match(addr_type) or not encoded:
                raise ParamError("501 5.5.4 ORCPT must be addr-type;xtext")
            orcpt = f"{addr_type.lower()};{xtext_decode(encoded)}"
        else:
            raise ParamError(f"555 5.5.4 RCPT TO parameter {key} not recognised")
    return RcptParams(notify=notify, orcpt=orcpt)

"""Message metadata computed once at delivery, so that IMAP FETCH never re-parses a message.

Pure functions, no I/O. :func:`parse_metadata` reads the raw message bytes (as stored in the
blob, normally CRLF line ends; bare LF is tolerated) and returns a :class:`MessageMeta`:

* ``envelope``: the RFC 3501 §7.4.2 ENVELOPE;
* ``body_structure``: the RFC 3501 §7.4.2 BODYSTRUCTURE (extensible form); BODY, the
  non-extensible form, is derived with :func:`body_without_extensions`;
* ``parts``: byte offsets of every part, so that ``BODY[section]`` is a slice of the blob.

JSON conventions (what :func:`meta_to_json` stores in ``messages.envelope`` and
``messages.body_structure``): IMAP NIL is ``None``, strings are ``str``, numbers ``int``,
parenthesised lists are lists, in exactly the order of the RFC 3501 grammar (``envelope``,
``body-type-1part``, ``body-type-mpart``, ``body-ext-1part``, ``body-ext-mpart``, ...). Two
places of that grammar put parenthesised items side by side *without* a space, which the wire
serialiser must respect: the bodies of ``body-type-mpart`` (``1*body SP media-subtype``) and
the addresses of an address list (``"(" 1*address ")"``). Strings never hold NUL, CR or LF.

Choices where RFC 3501 leaves room (Dovecot's behaviour is followed where unsure):

* header values are the raw, unfolded values (RFC 5322 §2.2.3): MIME encoded-words are *not*
  decoded; 8-bit bytes are read as UTF-8, bytes that are not valid UTF-8 as Latin-1;
* media type, subtype, transfer encoding, parameter names and disposition type are
  upper-cased, as in the RFC 3501 examples; parameter values keep their case;
* RFC 2231 parameters (``name*0*=utf-8''...``) are merged and decoded to Unicode, the name
  without its stars (as Dovecot does); encoded-words in parameters are left alone;
* a TEXT part without ``charset`` gets ``("CHARSET" "us-ascii")`` (RFC 2046 §4.1.2);
* a missing or invalid Content-Type means ``text/plain; charset=us-ascii`` (RFC 2045 §5.2),
  ``message/rfc822`` inside multipart/digest (RFC 2046 §5.1.5); a multipart without (or with
  an empty) boundary parameter is invalid (RFC 2046 §5.1.1) and read as text/plain too;
* a multipart with no body part at all gets one empty text/plain part (``body-type-mpart``
  needs ``1*body``), as Dovecot writes it;
* body-fld-lines is the number of LF in the body as stored; the CRLF before a boundary
  belongs to the boundary (RFC 2046 §5.1.1), so it is neither in the size nor in the lines,
  except the line end of an empty line ending a header or of a close-delimiter line, which
  stays with them (a boundary line right after takes no newline): sizes agree with Dovecot's;
* a MESSAGE/RFC822 part is parsed as a message even when (against RFC 2046 §5.2.1) it is
  base64 or quoted-printable encoded, as Dovecot does;
* Content-Language is always a list; Content-MD5 is reported when present;
* unparseable addresses never fail: a missing mailbox or host becomes ``MISSING_MAILBOX`` /
  ``MISSING_DOMAIN`` like Dovecot (a NIL host would turn the address into a group marker,
  RFC 3501 §7.4.2); several From/To/... headers are merged; sender and reply-to default to
  from when absent or empty (RFC 3501 §7.4.2);
* boundaries are matched like Dovecot: a line starting with ``--boundary`` (RFC 2046 §5.1.1),
  the longest of the boundaries in force winning, an outer boundary also ending the inner
  multiparts (RFC 2046 §5.1.2);
* hostile input is bounded: beyond :data:`MAX_DEPTH` nested multipart/message levels or
  :data:`MAX_PARTS` parts, a multipart or message/rfc822 part is reported as
  APPLICATION/OCTET-STREAM (no boundary is recognised any more after :data:`MAX_PARTS`);
  header fields are read from the first :data:`HEADER_PARSE_LIMIT` bytes of each header.

Part numbers (RFC 3501 §6.4.5) are the keys of ``parts``:

* ``""`` is the whole message: its header span (``header_start:header_end``) is the
  RFC 5322 header (BODY[HEADER]), its body span (``body_start:body_end``) the text
  (BODY[TEXT]);
* a multipart's parts are numbered ``1``, ``2``... below it (``"1.2"``); a message or an
  encapsulated message that is *not* multipart has a part ``1`` = its body, whose MIME
  header is the message header (so ``"1"`` and ``""`` have the same span at top level);
* for every part ``N``, the header span of ``parts[N]`` is its MIME header (BODY[N.MIME])
  and its body span the body as transferred (BODY[N]);
* for a MESSAGE/RFC822 part ``N``, the encapsulated message is under ``N + ".MESSAGE"``
  (see :func:`message_key`): its header span is BODY[N.HEADER], its body span BODY[N.TEXT];
  its parts are ``N.1``, ``N.2``... A multipart without parts has an empty part ``1`` (empty
  spans at the start of the multipart's body), matching its BODYSTRUCTURE.

Every header span includes the empty line that ends it (when there is one), and
``header_end == body_start``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote_to_bytes

__all__ = [
    "DEFAULT_CHARSET",
    "HEADER_PARSE_LIMIT",
    "MAX_DEPTH",
    "MAX_PARTS",
    "MESSAGE_SUFFIX",
    "MISSING_DOMAIN",
    "MISSING_MAILBOX",
    "MessageMeta",
    "PartSpan",
    "body_without_extensions",
    "message_key",
    "meta_from_json",
    "meta_to_json",
    "parse_metadata",
]

MAX_DEPTH: Final = 50
"""Nested multipart / message levels parsed; deeper ones become APPLICATION/OCTET-STREAM."""
MAX_PARTS: Final = 10_000
"""Parts (MIME parts and encapsulated messages) parsed; after that no boundary is recognised."""
HEADER_PARSE_LIMIT: Final = 256 * 1024
"""Bytes of each header block searched for fields (the span still covers the whole block)."""
MESSAGE_SUFFIX: Final = ".MESSAGE"
"""Key suffix of the encapsulated message of a MESSAGE/RFC822 part in ``parts``."""
MISSING_MAILBOX: Final = "MISSING_MAILBOX"
MISSING_DOMAIN: Final = "MISSING_DOMAIN"
DEFAULT_CHARSET: Final = "us-ascii"  # RFC 2045 §5.2, RFC 2046 §4.1.2
_JSON_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class PartSpan:
    """Byte offsets of one part in the raw message, ``[start, end)``."""

    header_start: int
    header_end: int  # the MIME header block, including the empty line that ends it
    body_start: int
    body_end: int


@dataclass(frozen=True)
class MessageMeta:
    """What IMAP needs of a message, computed once by :func:`parse_metadata`."""

    message_id: str | None  # the Message-ID header value, stripped; None if absent or empty
    subject: str | None  # raw header value (unfolded), None if absent
    date: str | None  # raw Date header value
    envelope: list[Any]  # RFC 3501 §7.4.2 ENVELOPE
    body_structure: list[Any]  # RFC 3501 §7.4.2 BODYSTRUCTURE (extensible form)
    parts: dict[str, PartSpan] = field(repr=False)
    size: int


def message_key(part: str) -> str:
    """The key in ``parts`` of the message a HEADER/TEXT section of ``part`` refers to.

    ``""`` (the message itself) stays ``""``; a MESSAGE/RFC822 part ``"2"`` gives
    ``"2.MESSAGE"``, the encapsulated message (RFC 3501 §6.4.5 ``2.HEADER``, ``2.TEXT``).
    """
    return part + MESSAGE_SUFFIX if part else ""


# -- header fields ---------------------------------------------------------------------------

# RFC 5322 §2.2: a field name, a colon, the value with its folded continuation lines (§2.2.3).
# "Name :" (obsolete space before the colon, RFC 5322 §4.5) is accepted.
_FIELD_RE: Final = re.compile(rb"^([^\s:]+)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)", re.M)
_FOLD_RE: Final = re.compile(rb"\r?\n")
_BLANK_LINE_RE: Final = re.compile(rb"\n\r?\n")  # RFC 5322 §2.1: the empty line ends the header
_WANTED: Final = frozenset(
    {
        # RFC 3501 §7.4.2 ENVELOPE
        b"date",
        b"subject",
        b"from",
        b"sender",
        b"reply-to",
        b"to",
        b"cc",
        b"bcc",
        b"in-reply-to",
        b"message-id",
        # RFC 2045 §5, §6, §7, §8; RFC 2183; RFC 3282; RFC 2557 §4.2; RFC 1864
        b"content-type",
        b"content-transfer-encoding",
        b"content-id",
        b"content-description",
        b"content-disposition",
        b"content-language",
        b"content-location",
        b"content-md5",
    }
)
# RFC 2045 §5.1 token: printable US-ASCII except SPACE and tspecials.
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_SURROGATES: Final = {0xDC80 + i: 0x80 + i for i in range(128)}

Fields = dict[str, list[str]]


def _parse_fields(block: bytes) -> Fields:
    """The wanted fields of a header block, unfolded, in order; several values per name.

    Values are decoded as UTF-8 with ``surrogateescape`` so that the original bytes can be
    recovered exactly (a boundary is compared as bytes); :func:`_out` makes them printable.
    """
    fields: Fields = {}
    for match in _FIELD_RE.finditer(block):
        name = match.group(1).lower()
        if name not in _WANTED:
            continue
        raw = match.group(2)
        if b"\n" in raw:
            raw = _FOLD_RE.sub(b"", raw)  # RFC 5322 §2.2.3 unfolding: drop CRLF before WSP
        value = raw.strip(b" \t\r").decode("utf-8", "surrogateescape")
        fields.setdefault(name.decode("ascii"), []).append(value)
    return fields


def _out(text: str) -> str:
    """A header-derived string as stored: invalid UTF-8 bytes read as Latin-1, no NUL/CR/LF."""
    if not text.isascii():
        text = text.translate(_SURROGATES)
    if "\r" in text or "\n" in text or "\0" in text:
        # RFC 3501 §4.3: strings cannot hold NUL, and CR/LF only as the folding we removed.
        text = text.replace("\r", "").replace("\n", "").replace("\0", "\ufffd")
    return text


def _first(fields: Fields, name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


# -- structured field values (RFC 2045 §5.1 parameters, RFC 2231) ------------------------------

_PLAIN_RUN_RE: Final = re.compile(r'[^"()\\]+')


def _segments(value: str, separator: str) -> list[str]:
    """Split a structured value on ``separator`` outside quoted strings; comments removed.

    Quoted strings are kept with their quotes and escapes (see :func:`_unquote`); a comment
    (RFC 5322 §3.2.2, nested, with quoted-pairs) becomes one space. Unterminated quotes and
    comments run to the end of the value.
    """
    segments: list[str] = []
    current: list[str] = []
    i, n = 0, len(value)
    while i < n:
        char = value[i]
        if char == '"':
            j = i + 1
            while j < n and value[j] != '"':
                j += 2 if value[j] == "\\" else 1
            current.append(value[i : j + 1])
            i = j + 1
        elif char == "(":
            depth, j = 1, i + 1
            while j < n and depth:
                if value[j] == "\\":
                    j += 1
                elif value[j] == "(":
                    depth += 1
                elif value[j] == ")":
                    depth -= 1
                j += 1
            current.append(" ")
            i = j
        elif char == "\\":
            current.append(value[i : i + 2])
            i += 2
        else:
            run = _PLAIN_RUN_RE.match(value, i)
            chunk = run.group() if run else char
            parts = chunk.split(separator)
            current.append(parts[0])
            for part in parts[1:]:
                segments.append("".join(current))
                current = [part]
            i += len(chunk)
    segments.append("".join(current))
    return segments


def _unquote(text: str) -> str:
    """The content of a leading quoted-string (RFC 5322 §3.2.4), quoted-pairs unescaped."""
    out: list[str] = []
    i, n = 1, len(text)
    while i < n and text[i] != '"':
        if text[i] == "\\" and i + 1 < n:
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


def _split_params(value: str) -> tuple[str, list[tuple[str, str]]]:
    """``head *(";" name "=" value)`` -> (head, [(lower-case name, value)]), RFC 2045 §5.1.

    Lenient like most readers: an unquoted value runs to the next ``;`` (the frequent
    ``boundary=----=_Part_1`` is kept whole). RFC 2231 parameters are merged and decoded.
    """
    head, *rest = _segments(value, ";")
    params: list[tuple[str, str]] = []
    for segment in rest:
        name, equals, raw = segment.partition("=")
        name = name.strip().lower()
        if not equals or not name or not _TOKEN_RE.fullmatch(name):
            continue
        raw = raw.strip()
        params.append((name, _unquote(raw) if raw.startswith('"') else raw))
    return head.strip(), _rfc2231(params)


_RFC2231_NAME_RE: Final = re.compile(r"([^*]+)\*(?:([0-9]{1,6})(\*)?)?")


def _charset_decode(raw: bytes, charset: str | None) -> str:
    if charset:
        try:
            return raw.decode(charset)
        except (LookupError, UnicodeError, ValueError):
            pass  # unknown or wrong charset: fall back on UTF-8 / Latin-1 like header values
    return raw.decode("utf-8", "surrogateescape")


def _extended_value(value: str) -> tuple[str | None, bytes]:
    """RFC 2231 §4: ``charset'language'%XX...`` -> (charset, octets)."""
    charset: str | None = None
    pieces = value.split("'", 2)
    if len(pieces) == 3:
        charset, value = pieces[0].strip(), pieces[2]
    return charset, unquote_to_bytes(value.encode("utf-8", "surrogateescape"))


def _rfc2231(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Merge RFC 2231 §3 continuations and decode §4 extended values; first name wins."""
    result: list[tuple[str, str]] = []
    seen: set[str] = set()
    continued: dict[str, dict[int, tuple[str, bool]]] = {}
    for name, value in params:
        match = _RFC2231_NAME_RE.fullmatch(name) if "*" in name else None
        if match is None:
            key = name
        elif match.group(2) is None:  # name*=charset'lang'value
            key = match.group(1)
            extended_charset, octets = _extended_value(value)
            value = _charset_decode(octets, extended_charset)
        else:  # name*0=... / name*1*=...
            sections = continued.setdefault(match.group(1), {})
            sections.setdefault(int(match.group(2)), (value, match.group(3) is not None))
            continue
        if key not in seen:
            seen.add(key)
            result.append((key, value))
    for key, sections in continued.items():
        if key in seen:
            continue
        charset: str | None = None
        joined = bytearray()
        for index in sorted(sections):
            value, extended = sections[index]
            if not extended:
                joined += value.encode("utf-8", "surrogateescape")
            elif index == 0:
                charset, decoded = _extended_value(value)
                joined += decoded
            else:
                joined += unquote_to_bytes(value.encode("utf-8", "surrogateescape"))
        seen.add(key)
        result.append((key, _charset_decode(bytes(joined), charset)))
    return result


def _imap_params(params: list[tuple[str, str]]) -> list[str] | None:
    """RFC 3501 body-fld-param: ``("NAME" "value" ...)`` or NIL."""
    flat: list[str] = []
    for name, value in params:
        flat += (_out(name).upper(), _out(value))
    return flat or None


# -- MIME header of one part -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ContentType:
    type: str  # upper case
    subtype: str  # upper case
    params: list[tuple[str, str]]


_TEXT_PLAIN: Final = _ContentType("TEXT", "PLAIN", [("charset", DEFAULT_CHARSET)])
_MESSAGE_RFC822: Final = _ContentType("MESSAGE", "RFC822", [])


def _content_type(value: str | None, default: _ContentType) -> _ContentType:
    if value is None:
        return default  # RFC 2045 §5.2; RFC 2046 §5.1.5 in multipart/digest
    head, params = _split_params(value)
    main, slash, sub = head.partition("/")
    main, sub = main.strip(), sub.strip()
    if not slash or not _TOKEN_RE.fullmatch(main) or not _TOKEN_RE.fullmatch(sub):
        return _TEXT_PLAIN  # RFC 2045 §5.2: an invalid Content-Type is read as the default
    kind = _ContentType(main.upper(), sub.upper(), params)
    if kind.type == "MULTIPART" and not _param(kind.params, "boundary"):
        return _TEXT_PLAIN  # RFC 2046 §5.1.1: the boundary parameter is required
    return kind


def _param(params: list[tuple[str, str]], name: str) -> str | None:
    for key, value in params:
        if key == name:
            return value
    return None


def _nstring(fields: Fields, name: str) -> str | None:
    value = _first(fields, name)
    return None if value is None else _out(value)


def _encoding(fields: Fields) -> str:
    """RFC 2045 §6.1 Content-Transfer-Encoding, "7BIT" when absent or not a token."""
    value = _first(fields, "content-transfer-encoding")
    if value is not None:
        token = _segments(value, ";")[0].strip()
        if _TOKEN_RE.fullmatch(token):
            return token.upper()
    return "7BIT"


def _disposition(fields: Fields) -> list[Any] | None:
    """RFC 3501 body-fld-dsp: ``("TYPE" body-fld-param)`` or NIL (RFC 2183 §2)."""
    value = _first(fields, "content-disposition")
    if value is None:
        return None
    head, params = _split_params(value)
    if not _TOKEN_RE.fullmatch(head):
        return None
    return [head.upper(), _imap_params(params)]


def _language(fields: Fields) -> list[str] | None:
    """RFC 3501 body-fld-lang from RFC 3282 ``Content-Language: 1#Language-Tag``."""
    value = _first(fields, "content-language")
    if value is None:
        return None
    tags = [_out(tag.strip()) for tag in _segments(value, ",")]
    return [tag for tag in tags if tag] or None


def _extension(fields: Fields) -> list[Any]:
    """RFC 3501 body-ext-1part after md5: disposition, language, location."""
    return [_disposition(fields), _language(fields), _nstring(fields, "content-location")]


# -- addresses (RFC 5322 §3.4, RFC 3501 §7.4.2) ------------------------------------------------

_ATOM, _QUOTED, _LITERAL, _SPECIAL, _COMMENT = range(5)
_ADDRESS_ATOM_RE: Final = re.compile(r'[^\s()<>\[\]:;@\\,."]+')
_SPACE_RE: Final = re.compile(r"\s+")
_Token = tuple[int, str, bool]  # kind, text, preceded by white space or a comment


def _tokenize(value: str) -> list[_Token]:
    """RFC 5322 §3.2 lexical tokens of an address field, never failing."""
    tokens: list[_Token] = []
    i, n, space = 0, len(value), False
    while i < n:
        char = value[i]
        if char.isspace():
            match = _SPACE_RE.match(value, i)
            i = match.end() if match else i + 1
            space = True
            continue
        if char == '"':
            j = i + 1
            while j < n and value[j] != '"':
                j += 2 if value[j] == "\\" else 1
            tokens.append((_QUOTED, _unquote(value[i : j + 1]), space))
            i = j + 1
        elif char == "(":
            depth, j = 1, i + 1
            while j < n and depth:
                if value[j] == "\\":
                    j += 1
                elif value[j] == "(":
                    depth += 1
                elif value[j] == ")":
                    depth -= 1
                j += 1
            text = value[i + 1 : j - 1 if depth == 0 else j]
            tokens.append((_COMMENT, text.strip(), space))
            i = j
            space = True
            continue
        elif char == "[":
            j = value.find("]", i)
            j = n if j < 0 else j + 1
            tokens.append((_LITERAL, value[i:j], space))
            i = j
        elif char in "<>:;@\\,.]":
            tokens.append((_SPECIAL, char, space))
            i += 1
        else:
            match = _ADDRESS_ATOM_RE.match(value, i)
            j = match.end() if match else i + 1
            tokens.append((_ATOM, value[i:j], space))
            i = j
        space = False
    return tokens


def _is(token: _Token, special: str) -> bool:
    return token[0] == _SPECIAL and token[1] == special


def _phrase(tokens: list[_Token]) -> str | None:
    """A display name (RFC 5322 §3.2.5 phrase): words joined by one space where spaced."""
    out: list[str] = []
    for kind, text, space in tokens:
        if kind == _COMMENT:
            continue
        if out and space:
            out.append(" ")
        out.append(text)
    name = "".join(out).strip()
    return name or None


def _joined(tokens: list[_Token]) -> str:
    return "".join(text for kind, text, _ in tokens if kind != _COMMENT)


def _addr_spec(tokens: list[_Token]) -> tuple[str | None, str]:
    """``local-part "@" domain`` (RFC 5322 §3.4.1) -> (local-part or None, domain).

    Quotes are removed; a quoted empty local part (``""@domain``) stays an empty string.
    """
    for i, token in enumerate(tokens):
        if _is(token, "@"):
            local = tokens[:i]
            return (_joined(local) if local else None), _joined(tokens[i + 1 :])
    return (_joined(tokens) if tokens else None), ""


def _route(tokens: list[_Token]) -> str:
    """RFC 5322 §4.4 obs-route ``@a,@b`` (also ``@a@b``) -> "@a,@b" like Dovecot."""
    domains: list[str] = []
    for kind, text, _ in tokens:
        if kind == _SPECIAL and text == "@":
            domains.append("")
        elif kind != _COMMENT and not (kind == _SPECIAL and text == ",") and domains:
            domains[-1] += text
    return ",".join("@" + domain for domain in domains)


def _address(
    name: str | None, route: str | None, mailbox: str | None, host: str | None
) -> list[str | None]:
    # Dovecot fills what is missing: a NIL host would read as a group marker (RFC 3501 §7.4.2).
    return [
        None if name is None else _out(name),
        None if route is None else _out(route),
        MISSING_MAILBOX if mailbox is None else _out(mailbox),
        _out(host) if host else MISSING_DOMAIN,
    ]


def _mailbox(tokens: list[_Token]) -> list[str | None] | None:
    """One RFC 5322 §3.4 ``mailbox`` (name-addr or addr-spec), best effort."""
    angle = next((i for i, token in enumerate(tokens) if _is(token, "<")), None)
    if angle is not None:  # [display-name] "<" [obs-route] addr-spec ">"
        name = _phrase(tokens[:angle])
        close = next((i for i in range(angle + 1, len(tokens)) if _is(tokens[i], ">")), len(tokens))
        inner = [token for token in tokens[angle + 1 : close] if token[0] != _COMMENT]
        route: str | None = None
        if inner and _is(inner[0], "@"):  # RFC 5322 §4.4 obs-route, "@a,@b:"
            colon = next((i for i, token in enumerate(inner) if _is(token, ":")), None)
            if colon is None:  # "<@route>": Dovecot's INVALID_ROUTE
                return _address(name, "INVALID_ROUTE", None, None)
            route, inner = _route(inner[:colon]), inner[colon + 1 :]
        mailbox, host = _addr_spec(inner)
        return _address(name, route, mailbox, host)
    words = [token for token in tokens if token[0] != _COMMENT]
    comments = [text for kind, text, _ in tokens if kind == _COMMENT and text]
    if any(_is(token, "@") for token in words):  # addr-spec, "(Name)" comment as the name
        mailbox, host = _addr_spec(words)
        return _address(comments[-1] if comments else None, None, mailbox, host)
    if len(words) == 1 and words[0][0] == _ATOM:  # a bare local part
        return _address(comments[-1] if comments else None, None, words[0][1], None)
    if words:  # only a phrase: a name without an address
        return _address(_phrase(words) or "", None, None, None)
    return None


# The common shapes, "a@b" and "Some Name <a@b>", without quotes, comments, groups or routes:
# read with one regular expression, the same result as the tokenizer at a fraction of the cost.
_SIMPLE_ADDRESS_RE: Final = re.compile(
    r"\s*(?:([^<>@,\s][^<>@,]*?)?\s*<([^<>@,\s]+)@([^<>@,\s]+)>|([^<>@,\s]+)@([^<>@,\s]+))\s*"
)
_NOT_SIMPLE: Final = frozenset('"()[]:;\\')


def _simple_addresses(value: str) -> list[list[str | None]] | None:
    if not _NOT_SIMPLE.isdisjoint(value):
        return None
    out: list[list[str | None]] = []
    for item in value.split(","):
        if not item or item.isspace():
            continue
        match = _SIMPLE_ADDRESS_RE.fullmatch(item)
        if match is None:
            return None
        name, mailbox, host, bare_mailbox, bare_host = match.groups()
        if mailbox is None:
            out.append(_address(None, None, bare_mailbox, bare_host))
        else:
            out.append(_address(" ".join(name.split()) if name else None, None, mailbox, host))
    return out


def _addresses(value: str) -> list[list[str | None]]:
    """RFC 5322 §3.4 address-list -> RFC 3501 addresses, groups as start/end markers."""
    simple = _simple_addresses(value)
    if simple is not None:
        return simple
    tokens = _tokenize(value)
    out: list[list[str | None]] = []
    i, n = 0, len(tokens)
    while i < n:
        if tokens[i][0] == _SPECIAL and tokens[i][1] in ",;>":
            i += 1
            continue
        j = i
        while j < n and (tokens[j][0] in (_ATOM, _QUOTED, _COMMENT) or _is(tokens[j], ".")):
            j += 1
        group = _phrase(tokens[i:j]) if j < n and _is(tokens[j], ":") else None
        if group is not None:
            # RFC 3501 §7.4.2: group start (NIL NIL "name" NIL), group end (NIL NIL NIL NIL)
            out.append([None, None, _out(group), None])
            i = j + 1
            while i < n and not _is(tokens[i], ";"):
                if _is(tokens[i], ","):
                    i += 1
                    continue
                i = _take_mailbox(tokens, i, out, in_group=True)
            i += 1
            out.append([None, None, None, None])
        else:
            i = _take_mailbox(tokens, i, out, in_group=False)
    return out


def _take_mailbox(
    tokens: list[_Token], start: int, out: list[list[str | None]], *, in_group: bool
) -> int:
    """Parse the mailbox at ``start`` up to the next top-level separator; return its end."""
    end, depth = start, 0
    while end < len(tokens):
        kind, text, _ = tokens[end]
        if kind == _SPECIAL:
            if text == "<":
                depth += 1
            elif text == ">":
                depth = max(0, depth - 1)
            elif depth == 0 and (text == "," or (in_group and text == ";")):
                break
        end += 1
    address = _mailbox(tokens[start:end])
    if address is not None:
        out.append(address)
    return max(end, start + 1)


def _address_list(fields: Fields, name: str) -> list[list[str | None]] | None:
    values = fields.get(name)
    if not values:
        return None
    found: list[list[str | None]] = []
    for value in values:  # several headers are merged, as Dovecot does
        found += _addresses(value)
    return found or None


def _envelope(fields: Fields) -> list[Any]:
    """RFC 3501 §7.4.2 ENVELOPE."""
    sender = _address_list(fields, "from")
    return [
        _nstring(fields, "date"),
        _nstring(fields, "subject"),
        sender,
        _address_list(fields, "sender") or _copy(sender),  # RFC 3501: defaults to from
        _address_list(fields, "reply-to") or _copy(sender),
        _address_list(fields, "to"),
        _address_list(fields, "cc"),
        _address_list(fields, "bcc"),
        _nstring(fields, "in-reply-to"),
        _nstring(fields, "message-id"),
    ]


def _copy(addresses: list[list[str | None]] | None) -> list[list[str | None]] | None:
    return None if addresses is None else [list(address) for address in addresses]


_EMPTY_ENVELOPE: Final[list[Any]] = [None] * 10


def _empty_text_structure() -> list[Any]:
    """RFC 3501 body-type-text and body-ext-1part of an empty text/plain part."""
    return [
        *["TEXT", "PLAIN", ["CHARSET", DEFAULT_CHARSET], None, None, "7BIT", 0, 0],
        *[None, None, None, None],
    ]


# -- the parser --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hit:
    """A boundary line: ``--boundary`` at ``line_start``, of ``level`` in the stack."""

    line_start: int
    line_end: int  # after its LF, or the end of the data
    level: int
    close: bool  # "--boundary--": the close-delimiter (RFC 2046 §5.1.1)


@dataclass(frozen=True, slots=True)
class _Head:
    start: int
    end: int  # header end == body start
    fields: Fields
    hit: _Hit | None  # the first boundary line at or after ``start``
    interrupted: bool  # a boundary line came before the empty line: the body is empty


@dataclass(frozen=True, slots=True)
class _Content:
    structure: list[Any]
    end: int  # end of the body
    hit: _Hit | None  # the boundary line that ended it, None at the end of the data
    multipart: bool


class _Parser:
    """One pass over the message; the stack holds the boundaries of the open multiparts."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.boundaries: list[bytes] = []
        self.generation = 0
        self.memo: tuple[int, int, _Hit | None] | None = None
        # boundary -> (start, stop, found): the first boundary line in [start, stop) is at
        # ``found`` (-1: none there).
        self.searched: dict[bytes, tuple[int, int, int]] = {}
        self.count = 0
        self.parts: dict[str, PartSpan] = {}

    # boundaries

    def push(self, boundary: bytes) -> None:
        self.boundaries.append(boundary)
        self.generation += 1

    def pop(self) -> None:
        self.boundaries.pop()
        self.generation += 1

    def find_boundary(self, pos: int) -> _Hit | None:
        """The first line at or after ``pos`` (a line start) that is a boundary in force."""
        if not self.boundaries or self.count >= MAX_PARTS:
            return None
        memo = self.memo
        if (
            memo is not None
            and memo[0] == self.generation
            and memo[1] <= pos
            and (memo[2] is None or pos <= memo[2].line_start)
        ):
            return memo[2]  # nothing between memo[1] and the hit matched: same answer
        hit = self._scan(pos)
        self.memo = (self.generation, pos, hit)
        return hit

    def _next_line(self, boundary: bytes, pos: int, limit: int) -> int:
        """The first line start ``L``, ``pos <= L < limit``, whose line begins with
        ``--boundary``, or -1. Searches with ``bytes.find`` and remembers, per boundary, the
        range already searched: the parse moves forward, so each range is searched once."""
        data = self.data
        searched = self.searched.get(boundary)
        begin = keep = pos
        if searched is not None and searched[0] <= pos:
            start, stop, found = searched
            if found >= pos:
                return found if found < limit else -1
            if found < 0 and stop >= limit:
                return -1
            if found < 0 and stop >= pos:
                begin, keep = stop, start  # none in [start, stop): search on from stop
        if begin == 0 and data.startswith(b"--" + boundary):
            found = 0
        else:
            needle = b"\n--" + boundary  # a line start L is just after a LF, at L - 1
            at = data.find(needle, max(begin - 1, 0), limit - 2 + len(needle))
            found = -1 if at < 0 else at + 1
        # found >= 0: the first such line at or after ``keep``; -1: none in [keep, limit).
        self.searched[boundary] = (keep, limit, found)
        return found

    def _scan(self, pos: int) -> _Hit | None:
        best: bytes | None = None
        line_start, limit = -1, self.size + 1
        # Outermost first: its (usually cached) next line bounds the search for inner ones.
        for boundary in self.boundaries:
            line = self._next_line(boundary, pos, limit)
            if line < 0:
                continue
            if best is None or line < line_start or len(boundary) >= len(best):
                # The earliest line; on the same line the longest boundary, then the
                # innermost one (Dovecot, RFC 2046 §5.1.2).
                best, line_start, limit = boundary, line, line + 1
        if best is None:
            return None
        level = max(i for i, boundary in enumerate(self.boundaries) if boundary == best)
        data = self.data
        after = line_start + 2 + len(best)
        newline = data.find(b"\n", after)
        return _Hit(
            line_start=line_start,
            line_end=self.size if newline < 0 else newline + 1,
            level=level,
            close=data.startswith(b"--", after),
        )

    def newline_before(self, line_start: int, floor: int) -> int:
        """Where the CRLF (or LF) before a boundary line starts: it belongs to the boundary
        (RFC 2046 §5.1.1), unless it is before ``floor``, the start of the region."""
        data = self.data
        if line_start - 2 >= floor and data[line_start - 2 : line_start] == b"\r\n":
            return line_start - 2
        if line_start - 1 >= floor and data[line_start - 1] == 0x0A:
            return line_start - 1
        return line_start

    # entities

    def header(self, start: int) -> _Head:
        """The header block at ``start``: up to the empty line, a boundary line, or the end."""
        data = self.data
        hit = self.find_boundary(start)
        stop = self.size if hit is None else hit.line_start
        if hit is not None and stop <= start:
            return _Head(start, start, {}, hit, True)
        if data.startswith(b"\n", start):
            return _Head(start, start + 1, {}, hit, False)
        if data.startswith(b"\r\n", start):
            return _Head(start, start + 2, {}, hit, False)
        blank = _BLANK_LINE_RE.search(data, start, stop)
        if blank is not None:
            end, fields_end, interrupted = blank.end(), blank.start() + 1, False
        elif hit is not None:
            # The header runs into a boundary line; the newline before it is the boundary's.
            end = fields_end = self.newline_before(stop, start)
            interrupted = True
        else:
            end = fields_end = self.size
            interrupted = False
        block = data[start : min(fields_end, start + HEADER_PARSE_LIMIT)]
        return _Head(start, end, _parse_fields(block), hit, interrupted)

    def message(self, start: int, prefix: str, depth: int) -> tuple[list[Any], _Content]:
        """A message (the top level, or encapsulated in MESSAGE/RFC822 part ``prefix``)."""
        self.count += 1
        head = self.header(start)
        body_part = f"{prefix}.1" if prefix else "1"
        content = self.content(head, body_part, prefix, depth, _TEXT_PLAIN)
        span = PartSpan(start, head.end, head.end, content.end)
        self.parts[message_key(prefix)] = span
        if not content.multipart:
            self.parts[body_part] = span  # RFC 3501 §6.4.5: a non-multipart body is part 1
        return _envelope(head.fields), content

    def empty_message(self, at: int, prefix: str) -> list[Any]:
        """The structure of an encapsulated message with no bytes at all."""
        span = PartSpan(at, at, at, at)
        self.parts[message_key(prefix)] = span
        self.parts[f"{prefix}.1"] = span
        return _empty_text_structure()

    def mime_part(self, start: int, number: str, depth: int, digest: bool) -> _Content:
        """Body part ``number`` of a multipart, starting right after its delimiter line."""
        self.count += 1
        head = self.header(start)
        default = _MESSAGE_RFC822 if digest else _TEXT_PLAIN  # RFC 2046 §5.1.5
        content = self.content(head, number, number, depth, default)
        self.parts[number] = PartSpan(start, head.end, head.end, content.end)
        return content

    def content(
        self, head: _Head, number: str, children: str, depth: int, default: _ContentType
    ) -> _Content:
        """The body after ``head``: ``number`` is its part number if it is not multipart,
        ``children`` the prefix of its parts' numbers if it is."""
        fields = head.fields
        kind = _content_type(_first(fields, "content-type"), default)
        nested = kind.type == "MULTIPART" or (kind.type, kind.subtype) == ("MESSAGE", "RFC822")
        if nested and (depth >= MAX_DEPTH or self.count >= MAX_PARTS):
            # Too deep or too many parts: reported like Dovecot, as an opaque leaf.
            kind = _ContentType("APPLICATION", "OCTET-STREAM", kind.params)
        elif kind.type == "MULTIPART":
            return self.multipart(head, kind, children, depth)
        start = head.end
        message = (kind.type, kind.subtype) == ("MESSAGE", "RFC822")
        extra: list[Any] = []  # body-type-msg: envelope, body (lines are appended below)
        if head.interrupted:
            end, hit = start, head.hit
            if message:
                extra = [list(_EMPTY_ENVELOPE), self.empty_message(start, number)]
        elif message:
            envelope, inner = self.message(start, number, depth + 1)
            end, hit = inner.end, inner.hit
            extra = [envelope, inner.structure]
        else:
            hit = self.find_boundary(start)
            end = self.size if hit is None else self.newline_before(hit.line_start, start)
        params = kind.params
        if kind.type == "TEXT" and _param(params, "charset") is None:
            params = [*params, ("charset", DEFAULT_CHARSET)]  # RFC 2046 §4.1.2
        structure: list[Any] = [
            kind.type,
            kind.subtype,
            _imap_params(params),
            _nstring(fields, "content-id"),
            _nstring(fields, "content-description"),
            _encoding(fields),
            end - start,  # body-fld-octets: the body as transferred
            *extra,
        ]
        if kind.type == "TEXT" or message:
            structure.append(self.data.count(b"\n", start, end))  # body-fld-lines
        structure.append(_nstring(fields, "content-md5"))  # body-fld-md5
        structure += _extension(fields)
        return _Content(structure, end, hit, False)

    def multipart(self, head: _Head, kind: _ContentType, prefix: str, depth: int) -> _Content:
        """RFC 2046 §5.1.1: preamble, body parts between delimiter lines, epilogue."""
        start = head.end
        bodies: list[list[Any]] = []
        if head.interrupted:
            end, hit = start, head.hit
        else:
            boundary = _param(kind.params, "boundary") or ""
            self.push(boundary.encode("utf-8", "surrogateescape"))
            level = len(self.boundaries) - 1
            popped = False
            hit = self.find_boundary(start)
            end = self.size
            while hit is not None:
                if hit.level != level:
                    # An outer boundary: this multipart lacks its close-delimiter, it ends here
                    # with its last part, or its preamble (RFC 2046 §5.1.2).
                    if not bodies:
                        end = self.newline_before(hit.line_start, start)
                    break
                if hit.close:
                    self.pop()
                    popped = True
                    epilogue = hit.line_end
                    hit = self.find_boundary(epilogue)
                    end = (
                        self.size if hit is None else self.newline_before(hit.line_start, epilogue)
                    )
                    break
                number = f"{prefix}.{len(bodies) + 1}" if prefix else str(len(bodies) + 1)
                part = self.mime_part(hit.line_end, number, depth + 1, kind.subtype == "DIGEST")
                bodies.append(part.structure)
                end, hit = part.end, part.hit
            if not popped:
                self.pop()
        if not bodies:
            # body-type-mpart needs 1*body: one empty text/plain part, as Dovecot writes it.
            bodies.append(_empty_text_structure())
            self.parts[f"{prefix}.1" if prefix else "1"] = PartSpan(start, start, start, start)
        fields = head.fields
        structure: list[Any] = [*bodies, kind.subtype, _imap_params(kind.params)]
        structure += _extension(fields)  # body-ext-mpart
        return _Content(structure, end, hit, True)


# -- public API --------------------------------------------------------------------------------


def _parse(data: bytes) -> MessageMeta:
    parser = _Parser(data)
    envelope, content = parser.message(0, "", 0)
    message_id = envelope[9].strip() if envelope[9] is not None else None
    return MessageMeta(
        message_id=message_id or None,
        subject=envelope[1],
        date=envelope[0],
        envelope=envelope,
        body_structure=content.structure,
        parts=parser.parts,
        size=len(data),
    )


def _fallback(data: bytes) -> MessageMeta:
    """Whole message as one text/plain body: used only if the parser itself failed."""
    structure = _empty_text_structure()
    structure[6], structure[7] = len(data), data.count(b"\n")
    span = PartSpan(0, 0, 0, len(data))
    return MessageMeta(
        None, None, None, list(_EMPTY_ENVELOPE), structure, {"": span, "1": span}, len(data)
    )


def parse_metadata(data: bytes) -> MessageMeta:
    """ENVELOPE, BODYSTRUCTURE and part offsets of a raw message; never raises.

    Boundary lines are found with ``bytes.find`` (each stretch of the message searched once
    per boundary in force), never by walking lines in Python: a 10 MB message with a large
    attachment takes about 10 ms. Should the parser ever fail, the message is described as
    one text/plain body rather than making the delivery fail.
    """
    data = bytes(data)
    try:
        return _parse(data)
    except Exception:  # pragma: no cover - defensive: delivery must never fail on metadata
        return _fallback(data)


def meta_to_json(meta: MessageMeta) -> tuple[str, str]:
    """(``messages.envelope``, ``messages.body_structure``) column values.

    The second is ``{"v": 1, "structure": BODYSTRUCTURE, "parts": {"1.2": [header_start,
    header_end, body_start, body_end], ...}}``.
    """
    parts = {
        key: [span.header_start, span.header_end, span.body_start, span.body_end]
        for key, span in meta.parts.items()
    }
    document = {"v": _JSON_VERSION, "structure": meta.body_structure, "parts": parts}
    compact = (",", ":")
    return json.dumps(meta.envelope, separators=compact), json.dumps(document, separators=compact)


def meta_from_json(
    envelope_json: str, body_structure_json: str
) -> tuple[list[Any], list[Any], dict[str, PartSpan]]:
    """(envelope, body structure, parts) back from the two columns; ValueError if malformed
    (for instance the empty default of a row written before this module: parse it again)."""
    envelope = json.loads(envelope_json)
    document = json.loads(body_structure_json)
    if not isinstance(envelope, list) or len(envelope) != 10:
        raise ValueError("envelope: not a 10-item JSON list")
    if not isinstance(document, dict) or document.get("v") != _JSON_VERSION:
        raise ValueError(f"body structure: not a version {_JSON_VERSION} JSON object")
    structure, raw_parts = document.get("structure"), document.get("parts")
    if not isinstance(structure, list) or not isinstance(raw_parts, dict):
        raise ValueError("body structure: missing structure or parts")
    parts: dict[str, PartSpan] = {}
    for key, offsets in raw_parts.items():
        if (
            not isinstance(offsets, list)
            or len(offsets) != 4
            or not all(type(offset) is int for offset in offsets)
        ):
            raise ValueError(f"body structure: bad offsets for part {key!r}")
        parts[key] = PartSpan(*offsets)
    return envelope, structure, parts


def body_without_extensions(structure: list[Any]) -> list[Any]:
    """The non-extensible BODY form (RFC 3501 §7.4.2 BODY) of a BODYSTRUCTURE.

    ``body-type-mpart`` keeps its bodies and subtype; ``body-type-1part`` keeps the basic
    fields (type, subtype, params, id, description, encoding, octets), plus the line count
    for TEXT, plus envelope, body and line count for MESSAGE/RFC822.
    """
    if not structure:
        raise ValueError("empty body structure")
    if isinstance(structure[0], list):  # body-type-mpart: 1*body SP media-subtype
        count = 0
        while count < len(structure) and isinstance(structure[count], list):
            count += 1
        if count >= len(structure):
            raise ValueError("multipart body structure without subtype")
        bodies = [body_without_extensions(body) for body in structure[:count]]
        return [*bodies, structure[count]]
    if len(structure) < 7:
        raise ValueError("single-part body structure with fewer than 7 fields")
    media = (str(structure[0]).upper(), str(structure[1]).upper())
    if media[0] == "TEXT":
        return structure[:8]  # body-type-text: ... body-fld-lines
    if media == ("MESSAGE", "RFC822"):  # body-type-msg: ... envelope SP body SP body-fld-lines
        if len(structure) < 10 or not isinstance(structure[8], list):
            raise ValueError("MESSAGE/RFC822 body structure without envelope and body")
        return [*structure[:8], body_without_extensions(structure[8]), structure[9]]
    return structure[:7]  # body-type-basic

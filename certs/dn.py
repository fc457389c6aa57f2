"""Distinguished-name parsing and normalisation.

MSSanté peers are accepted when the subject DN of their TLS certificate matches a
``DNCertificatOperateur`` of the liste blanche "after RFC 4514 normalisation". The published
list spells DNs loosely (``", "`` separators, quoted values with doubled spaces, unescaped
quotes inside values), so both sides are reduced to one canonical string here:

* the string is parsed as RFC 4514 (§3 grammar, §2.4 escapes ``\\,`` and ``\\2C``, §2.4 ``#``
  hex-encoded BER values), leniently accepting the RFC 1779/2253 quoted-string form
  (``O="C.H. DE  CADILLAC"``) and unescaped ``"``, ``;``, ``<``, ``>``, ``=`` inside values;
* attribute types are matched case-insensitively and mapped, like their dotted OIDs
  (``2.5.4.3``, ``OID.2.5.4.3``), to one lower-case short name (``S`` and ``ST`` are the same);
* values are stripped, internal whitespace collapsed, NFKC-normalised and case-folded,
  approximating the caseIgnoreMatch / LDAP string preparation of RFC 4518 and the X.500
  name comparison rules RFC 5280 §7.1 asks for;
* attributes of a multi-valued RDN are sorted (their order is not significant, RFC 4512
  §2.3.1); RDN order is kept (it is significant);
* the result is re-escaped per RFC 4514 §2.4, e.g. ``cn=smtp.operator.fr,ou=318...,c=fr``.

Two DNs denote the same entity when their canonical strings are equal with ``==``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from certs.errors import CertsError

__all__ = [
    "DNSyntaxError",
    "canonical_type",
    "dn_of_name",
    "dns_equal",
    "name_to_text",
    "normalize_dn",
    "normalize_value",
    "parse_dn",
]


class DNSyntaxError(CertsError, ValueError):
    """A DN string does not follow RFC 4514 (even leniently)."""


#: One attribute: (canonical lower-case type, normalised value).
Attribute = tuple[str, str]
#: One RDN: its attributes, sorted.
RDN = tuple[Attribute, ...]
# Internal attribute: (type, value, value is an undecoded "#" BER hex string).
_Attr = tuple[str, str, bool]
_RDN = tuple[_Attr, ...]

# Dotted OID -> canonical short name (lower case in the canonical output). Short names are
# those of RFC 4514 §3 (CN, L, ST, O, OU, C, STREET, DC, UID) plus the usual X.520 /
# PKCS #9 ones found in health-sector certificates.
_OID_NAMES: dict[str, str] = {
    "2.5.4.3": "cn",
    "2.5.4.4": "sn",
    "2.5.4.5": "serialnumber",
    "2.5.4.6": "c",
    "2.5.4.7": "l",
    "2.5.4.8": "st",
    "2.5.4.9": "street",
    "2.5.4.10": "o",
    "2.5.4.11": "ou",
    "2.5.4.12": "title",
    "2.5.4.17": "postalcode",
    "2.5.4.42": "gn",
    "2.5.4.43": "initials",
    "2.5.4.44": "generationqualifier",
    "2.5.4.46": "dnqualifier",
    "2.5.4.65": "pseudonym",
    "2.5.4.97": "organizationidentifier",
    "1.2.840.113549.1.9.1": "e",
    "0.9.2342.19200300.100.1.1": "uid",
    "0.9.2342.19200300.100.1.25": "dc",
}

# Keyword (any case) -> dotted OID. Several spellings per attribute, as seen in OpenSSL,
# Windows CryptoAPI, Java and LDAP tools.
_KEYWORDS: dict[str, str] = {
    "cn": "2.5.4.3",
    "commonname": "2.5.4.3",
    "sn": "2.5.4.4",
    "surname": "2.5.4.4",
    "serialnumber": "2.5.4.5",
    "c": "2.5.4.6",
    "countryname": "2.5.4.6",
    "l": "2.5.4.7",
    "localityname": "2.5.4.7",
    "st": "2.5.4.8",
    "s": "2.5.4.8",
    "stateorprovincename": "2.5.4.8",
    "street": "2.5.4.9",
    "streetaddress": "2.5.4.9",
    "o": "2.5.4.10",
    "organizationname": "2.5.4.10",
    "ou": "2.5.4.11",
    "organizationalunitname": "2.5.4.11",
    "t": "2.5.4.12",
    "title": "2.5.4.12",
    "postalcode": "2.5.4.17",
    "gn": "2.5.4.42",
    "g": "2.5.4.42",
    "givenname": "2.5.4.42",
    "initials": "2.5.4.43",
    "generationqualifier": "2.5.4.44",
    "dnqualifier": "2.5.4.46",
    "pseudonym": "2.5.4.65",
    "organizationidentifier": "2.5.4.97",
    "e": "1.2.840.113549.1.9.1",
    "email": "1.2.840.113549.1.9.1",
    "emailaddress": "1.2.840.113549.1.9.1",
    "uid": "0.9.2342.19200300.100.1.1",
    "userid": "0.9.2342.19200300.100.1.1",
    "dc": "0.9.2342.19200300.100.1.25",
    "domaincomponent": "0.9.2342.19200300.100.1.25",
}

# RFC 4512 §1.4: keystring = leadkeychar *keychar ; numericoid = number 1*( DOT number ).
_KEYSTRING = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
_NUMERICOID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+\Z")
_HEX = frozenset("0123456789abcdefABCDEF")
# RFC 4514 §3: escaped = DQUOTE / PLUS / COMMA / SEMI / LANGLE / RANGLE, plus ESC, SPACE,
# SHARP and EQUALS which "pair" also allows.
_ESCAPABLE = frozenset('"+,;<>\\ #=')

# Names used for the human-readable RFC 4514 text of attributes cryptography would otherwise
# print as dotted OIDs (see name_to_text).
_TEXT_NAMES: dict[ObjectIdentifier, str] = {
    NameOID.SURNAME: "SN",
    NameOID.GIVEN_NAME: "GN",
    NameOID.TITLE: "TITLE",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.EMAIL_ADDRESS: "E",
    NameOID.POSTAL_CODE: "POSTALCODE",
    NameOID.ORGANIZATION_IDENTIFIER: "ORGANIZATIONIDENTIFIER",
}


def canonical_type(attribute_type: str) -> str:
    """Canonical lower-case name of an attribute type given as keyword or dotted OID.

    Unknown keywords raise :class:`DNSyntaxError`; unknown OIDs are kept in dotted form.
    """
    text = attribute_type.strip()
    if text[:4].lower() == "oid.":  # RFC 1779 §2.3 "OID.2.5.4.3" form
        text = text[4:]
    if _NUMERICOID.match(text):
        return _OID_NAMES.get(text, text)
    if not _KEYSTRING.match(text):
        raise DNSyntaxError(f"invalid attribute type {attribute_type!r}")
    oid = _KEYWORDS.get(text.lower())
    if oid is None:
        raise DNSyntaxError(f"unknown attribute type {attribute_type!r}")
    return _OID_NAMES[oid]


def normalize_value(value: str) -> str:
    """Normalise an attribute value for comparison.

    Unicode NFKC, whitespace stripped and runs of whitespace collapsed to one space, then
    case-folded (RFC 4518 §2 prepares strings the same way: map, normalise, insignificant
    space handling; case folding stands for caseIgnoreMatch).
    """
    text = unicodedata.normalize("NFKC", value)
    text = " ".join(text.split())
    return unicodedata.normalize("NFKC", text.casefold())


def _decode_ber_string(hexstring: str) -> str | None:
    """Decode the ``#``-hex BER encoding of a string value (RFC 4514 §2.4), if it is one."""
    try:
        data = bytes.fromhex(hexstring)
    except ValueError:
        return None
    if len(data) < 2:
        return None
    tag, length, offset = data[0], data[1], 2
    if length & 0x80:  # long form length (X.690 §8.1.3.5)
        count = length & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return None
        length = int.from_bytes(data[2 : 2 + count], "big")
        offset = 2 + count
    content = data[offset:]
    if len(content) != length:
        return None
    codecs = {
        0x0C: "utf-8",  # UTF8String
        0x12: "ascii",  # NumericString
        0x13: "ascii",  # PrintableString
        0x14: "latin-1",  # TeletexString (approximation)
        0x16: "ascii",  # IA5String
        0x1A: "ascii",  # VisibleString
        0x1C: "utf-32-be",  # UniversalString
        0x1E: "utf-16-be",  # BMPString
    }
    codec = codecs.get(tag)
    if codec is None:
        return None
    try:
        return content.decode(codec)
    except UnicodeDecodeError:
        return None


class _Parser:
    """Single-pass RFC 4514 §3 parser (lenient where real data requires it)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> DNSyntaxError:
        return DNSyntaxError(f"{message} at position {self.pos} in DN {self.text!r}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def parse(self) -> list[_RDN]:
        if not self.text.strip():
            raise DNSyntaxError("empty DN")
        rdns: list[_RDN] = []
        current: list[_Attr] = []
        while True:
            current.append(self.attribute())
            self.skip_spaces()
            if self.pos >= len(self.text):
                break
            separator = self.text[self.pos]
            self.pos += 1
            if separator == ",":
                rdns.append(tuple(sorted(current)))
                current = []
            # "+" continues a multi-valued RDN (RFC 4514 §3 relativeDistinguishedName)
            self.skip_spaces()
            if self.pos >= len(self.text):
                raise self.error(f"nothing after trailing {separator!r}")
        rdns.append(tuple(sorted(current)))
        return rdns

    def attribute(self) -> _Attr:
        self.skip_spaces()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in "=,+":
            self.pos += 1
        raw_type = self.text[start : self.pos].strip()
        if self.pos >= len(self.text) or self.text[self.pos] != "=":
            if not raw_type:
                raise self.error("empty RDN")
            raise self.error(f"missing '=' after {raw_type!r}")
        if not raw_type:
            raise self.error("missing attribute type before '='")
        try:
            attribute_type = canonical_type(raw_type)
        except DNSyntaxError as exc:
            raise self.error(str(exc)) from None
        self.pos += 1  # "="
        self.skip_spaces()
        if self.pos < len(self.text) and self.text[self.pos] == "#":
            value, raw = self.hex_value()
            return attribute_type, value, raw
        if self.pos < len(self.text) and self.text[self.pos] == '"':
            return attribute_type, self.quoted_value(), False
        return attribute_type, normalize_value(self.string_value()), False

    def hex_value(self) -> tuple[str, bool]:
        """``#`` followed by the hex BER encoding (RFC 4514 §2.4)."""
        self.pos += 1
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _HEX:
            self.pos += 1
        hexstring = self.text[start : self.pos]
        self.skip_spaces()
        if self.pos < len(self.text) and self.text[self.pos] not in ",+":
            raise self.error("invalid character in '#' hex value")
        if not hexstring or len(hexstring) % 2:
            raise self.error("'#' hex value needs an even, non-zero number of hex digits")
        decoded = _decode_ber_string(hexstring)
        if decoded is None:  # not a string type we know: compare the encoding itself
            return "#" + hexstring.lower(), True
        return normalize_value(decoded), False

    def quoted_value(self) -> str:
        """RFC 1779 §2.3 / RFC 2253 §4 quoted string, still seen in the liste blanche."""
        self.pos += 1
        buffer = bytearray()
        while True:
            if self.pos >= len(self.text):
                raise self.error("unterminated quoted value")
            char = self.text[self.pos]
            if char == "\\":
                self.escape(buffer)
                continue
            self.pos += 1
            if char == '"':
                if self.text.startswith('"', self.pos):  # Windows CryptoAPI doubles quotes
                    buffer += b'"'
                    self.pos += 1
                    continue
                break
            buffer += char.encode("utf-8")
        self.skip_spaces()
        if self.pos < len(self.text) and self.text[self.pos] not in ",+":
            raise self.error("unexpected text after closing quote")
        return normalize_value(self.decode(buffer))

    def string_value(self) -> str:
        buffer = bytearray()
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in ",+":
                break
            if char == "\\":
                self.escape(buffer)
                continue
            # Lenient: RFC 4514 wants '"', ';', '<', '>' escaped; real data does not always.
            buffer += char.encode("utf-8")
            self.pos += 1
        return self.decode(buffer)

    def escape(self, buffer: bytearray) -> None:
        """RFC 4514 §3 ``pair``: backslash then a special character or two hex digits."""
        if self.pos + 1 >= len(self.text):
            raise self.error("dangling escape '\\' at end of DN")
        following = self.text[self.pos + 1]
        if following in _ESCAPABLE:
            buffer += following.encode("utf-8")
            self.pos += 2
            return
        pair = self.text[self.pos + 1 : self.pos + 3]
        if len(pair) == 2 and all(c in _HEX for c in pair):
            buffer.append(int(pair, 16))
            self.pos += 3
            return
        raise self.error(f"invalid escape '\\{following}'")

    def decode(self, buffer: bytearray) -> str:
        try:
            return buffer.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error("hex escapes do not form valid UTF-8") from None


def parse_dn(dn: str) -> list[RDN]:
    """Parse an RFC 4514 DN into RDNs of (canonical type, normalised value), in text order.

    A ``#`` value that is not a BER string stays as ``#`` + lower-case hex.
    """
    return [tuple((t, v) for t, v, _ in rdn) for rdn in _Parser(dn).parse()]


def _escape(value: str, raw_hex: bool) -> str:
    """Escape a normalised value for RFC 4514 §2.4 output."""
    if raw_hex:  # undecoded BER from a '#' value: emitted as is
        return value
    out: list[str] = []
    for index, char in enumerate(value):
        if char in '"+,;<>\\' or (char == "#" and index == 0):
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        else:
            out.append(char)
    # Normalised values never start or end with a space, so §2.4's space rule is moot.
    return "".join(out)


def _serialise(rdns: Iterable[_RDN]) -> str:
    return ",".join(
        "+".join(f"{kind}={_escape(value, raw)}" for kind, value, raw in rdn) for rdn in rdns
    )


def normalize_dn(dn: str) -> str:
    """Canonical form of an RFC 4514 DN string; equal strings mean equal DNs.

    >>> normalize_dn("CN=Smtp.Operator.fr, OU=123, O=\\"ACME  SA\\", S=Paris (75), C=FR")
    'cn=smtp.operator.fr,ou=123,o=acme sa,st=paris (75),c=fr'

    Raises :class:`DNSyntaxError` (a ``ValueError``) naming the problem.
    """
    return _serialise(_Parser(dn).parse())


def _attribute(attribute: x509.NameAttribute[str | bytes]) -> _Attr:
    oid = attribute.oid.dotted_string
    kind = _OID_NAMES.get(oid, oid)
    value = attribute.value
    if isinstance(value, bytes):  # BIT STRING attributes (x500UniqueIdentifier)
        return kind, "#" + value.hex(), True
    return kind, normalize_value(value), False


def _rdns_of_name(name: x509.Name) -> list[_RDN]:
    rdns: list[_RDN] = []
    # Name.rdns is in encoding order (least specific first); RFC 4514 §2.1 writes the
    # last RDN first, so walk it backwards as Name.rfc4514_string() does.
    for rdn in reversed(name.rdns):
        rdns.append(tuple(sorted(_attribute(a) for a in rdn)))
    return rdns


def dn_of_name(name: x509.Name) -> str:
    """Canonical DN of a certificate name, equal to :func:`normalize_dn` of its text form."""
    return _serialise(_rdns_of_name(name))


def name_to_text(name: x509.Name) -> str:
    """RFC 4514 text of a name with readable keywords (SN, GN, TITLE...) instead of OIDs."""
    return name.rfc4514_string(_TEXT_NAMES)


def dns_equal(a: str | x509.Name, b: str | x509.Name) -> bool:
    """Whether two DNs (text or :class:`x509.Name`) are the same after normalisation."""

    def canon(dn: str | x509.Name) -> str:
        return dn_of_name(dn) if isinstance(dn, x509.Name) else normalize_dn(dn)

    return canon(a) == canon(b)

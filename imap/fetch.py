"""FETCH data items: dataclasses and parser.

RFC 3501 §6.4.5 and §9 ``fetch-att`` / ``section``, RFC 3516 ``BINARY[...]``,
``BINARY.PEEK[...]``, ``BINARY.SIZE[...]``, RFC 7162 §3.1.4.1 ``MODSEQ`` and the fetch
modifiers ``CHANGEDSINCE`` (§3.1.4.1) and ``VANISHED`` (§3.2.6).

The macros ALL, FAST and FULL are expanded (RFC 3501 §6.4.5). Each item knows its response
name (:meth:`FetchBody.response_name`...), which is how the server labels the data it returns
(``BODY[HEADER.FIELDS (From)]``, ``BODY[]<0>`` for a partial fetch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from imap.errors import ParseError
from imap.tokens import FIELD_NAME, LPAREN, RPAREN, SP, Lexer, show

__all__ = [
    "FETCH_MACROS",
    "SIMPLE_ITEMS",
    "FetchAttribute",
    "FetchBinary",
    "FetchBinarySize",
    "FetchBody",
    "FetchItem",
    "Partial",
    "Section",
    "SectionText",
    "SimpleItemName",
    "parse_fetch_attributes",
]

SimpleItemName = Literal[
    "ENVELOPE",
    "FLAGS",
    "INTERNALDATE",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.SIZE",
    "RFC822.TEXT",
    "BODY",
    "BODYSTRUCTURE",
    "UID",
    "MODSEQ",
]
SectionText = Literal["HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"]

#: Items without section (RFC 3501 §9 fetch-att, RFC 7162 §7 MODSEQ).
SIMPLE_ITEMS: Final[frozenset[SimpleItemName]] = frozenset(
    (
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",
    )
)
_SECTION_TEXTS: Final[frozenset[SectionText]] = frozenset(
    ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME")
)

# The item name up to "[" or "<" or a delimiter.
_ITEM_NAME: Final = re.compile(rb"[A-Za-z0-9.\-_]+")
# RFC 3501 §9 section-spec, before an optional header-list: part numbers and/or a text name.
_SECTION_SPEC: Final = re.compile(rb"[A-Za-z0-9.]+")
# "(" name *(SP name) ")" made of item names only (no section): see parse_fetch_attributes.
_SIMPLE_LIST: Final = re.compile(rb"\(([A-Za-z0-9.]+(?: [A-Za-z0-9.]+)*)\)(?= |\Z)")
_NZ_NUMBER: Final = re.compile(r"[1-9][0-9]{0,9}")
_LBRACKET: Final = 0x5B
_RBRACKET: Final = 0x5D


@dataclass(frozen=True, slots=True)
class FetchItem:
    """An item without section: FLAGS, UID, ENVELOPE, RFC822.SIZE, BODY, MODSEQ, ..."""

    name: SimpleItemName

    def response_name(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Section:
    """RFC 3501 §6.4.5 section: ``part`` numbers (``()`` = whole message) + optional text.

    ``text`` is HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME or ``None`` (the part's
    whole content); ``headers`` lists the field names of HEADER.FIELDS[.NOT] as sent.
    """

    part: tuple[int, ...] = ()
    text: SectionText | None = None
    headers: tuple[str, ...] = ()

    def to_wire(self) -> str:
        """The section spec as written between brackets (``1.2.HEADER.FIELDS (From To)``)."""
        spec = ".".join(map(str, self.part))
        if self.text is not None:
            spec = f"{spec}.{self.text}" if spec else self.text
        if self.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            spec += " (" + " ".join(self.headers) + ")"
        return spec


@dataclass(frozen=True, slots=True)
class Partial:
    """``<offset.length>`` (RFC 3501 §6.4.5): ``length`` octets from ``offset``."""

    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class FetchBody:
    """BODY[section]<partial> / BODY.PEEK[...] (``peek``: do not set \\Seen).

    RFC822 / RFC822.HEADER / RFC822.TEXT are :class:`FetchItem`: their response names differ.
    """

    section: Section
    peek: bool = False
    partial: Partial | None = None

    def response_name(self) -> str:
        """``BODY[...]`` (never ``.PEEK``), ``<offset>`` for a partial fetch (RFC 3501 §7.4.2)."""
        origin = f"<{self.partial.offset}>" if self.partial is not None else ""
        return f"BODY[{self.section.to_wire()}]{origin}"


@dataclass(frozen=True, slots=True)
class FetchBinary:
    """BINARY[part]<partial> / BINARY.PEEK[...] (RFC 3516): decoded content of a part."""

    part: tuple[int, ...]
    peek: bool = False
    partial: Partial | None = None

    def response_name(self) -> str:
        origin = f"<{self.partial.offset}>" if self.partial is not None else ""
        return f"BINARY[{'.'.join(map(str, self.part))}]{origin}"


@dataclass(frozen=True, slots=True)
class FetchBinarySize:
    """BINARY.SIZE[part] (RFC 3516): size of the decoded content."""

    part: tuple[int, ...]

    def response_name(self) -> str:
        return f"BINARY.SIZE[{'.'.join(map(str, self.part))}]"


FetchAttribute = FetchItem | FetchBody | FetchBinary | FetchBinarySize

#: RFC 3501 §6.4.5 macros.
FETCH_MACROS: Final[dict[str, tuple[FetchAttribute, ...]]] = {
    "ALL": (
        FetchItem("FLAGS"),
        FetchItem("INTERNALDATE"),
        FetchItem("RFC822.SIZE"),
        FetchItem("ENVELOPE"),
    ),
    "FAST": (FetchItem("FLAGS"), FetchItem("INTERNALDATE"), FetchItem("RFC822.SIZE")),
    "FULL": (
        FetchItem("FLAGS"),
        FetchItem("INTERNALDATE"),
        FetchItem("RFC822.SIZE"),
        FetchItem("ENVELOPE"),
        FetchItem("BODY"),
    ),
}
_SIMPLE_CACHE: Final[dict[str, FetchItem]] = {name: FetchItem(name) for name in SIMPLE_ITEMS}


def _part_numbers(tokens: list[str], spec: str) -> tuple[int, ...]:
    for token in tokens:
        if _NZ_NUMBER.fullmatch(token) is None:
            raise ParseError(None, f"invalid section part '{show(spec)}'")
    return tuple(int(token) for token in tokens)


def _header_list(lex: Lexer) -> tuple[str, ...]:
    """RFC 3501 §9 header-list = "(" header-fld-name *(SP header-fld-name) ")"."""
    lex.expect(LPAREN)
    names: list[str] = []
    while True:
        name = lex.astring("a header field name")
        # RFC 5322 §3.6.8 ftext: printable ASCII except ":".
        if FIELD_NAME.fullmatch(name) is None:
            raise ParseError(None, f"invalid header field name '{show(name)}'")
        names.append(name.decode("ascii"))
        if lex.accept(RPAREN):
            return tuple(names)
        if not lex.skip_sp():
            raise lex.fail_expected("')' after header field names")


def _section(lex: Lexer) -> Section:
    """RFC 3501 §9 section = "[" [section-spec] "]", the "[" already consumed."""
    if lex.accept(_RBRACKET):
        return Section()
    found = lex.match(_SECTION_SPEC)
    if found is None:
        raise lex.fail_expected("a section")
    spec = found.decode("ascii")
    tokens = spec.upper().split(".")
    numbers = 0
    while numbers < len(tokens) and tokens[numbers][:1].isdigit():
        numbers += 1
    part = _part_numbers(tokens[:numbers], spec)
    rest = ".".join(tokens[numbers:])
    text: SectionText | None = None
    headers: tuple[str, ...] = ()
    if rest:
        if rest not in _SECTION_TEXTS:
            raise ParseError(None, f"invalid section '{show(spec)}'")
        text = rest
        if text == "MIME" and not part:
            raise ParseError(None, "section MIME needs a part number")
        if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            lex.sp()
            headers = _header_list(lex)
    elif spec.endswith(".") or not part:
        raise ParseError(None, f"invalid section '{show(spec)}'")
    lex.expect(_RBRACKET)
    return Section(part, text, headers)


def _binary_part(lex: Lexer) -> tuple[int, ...]:
    """RFC 3516 section-binary = "[" [section-part] "]"."""
    lex.expect(_LBRACKET)
    if lex.accept(_RBRACKET):
        return ()
    found = lex.match(_SECTION_SPEC)
    if found is None:
        raise lex.fail_expected("a part number")
    spec = found.decode("ascii")
    part = _part_numbers(spec.split("."), spec)
    lex.expect(_RBRACKET)
    return part


def _partial(lex: Lexer) -> Partial | None:
    """RFC 3501 §9 "<" number "." nz-number ">"."""
    if not lex.accept(0x3C):
        return None
    offset = lex.number("partial offset")
    lex.expect(0x2E)
    length = lex.nz_number("partial length")
    lex.expect(0x3E)
    return Partial(offset, length)


def _attribute(lex: Lexer) -> FetchAttribute:
    """RFC 3501 §9 fetch-att (RFC 3516, RFC 7162 additions)."""
    found = lex.match(_ITEM_NAME)
    if found is None:
        raise lex.fail_expected("a fetch attribute")
    name = found.decode("ascii").upper()
    if lex.peek() == _LBRACKET:
        if name in ("BODY", "BODY.PEEK"):
            lex.pos += 1
            section = _section(lex)
            return FetchBody(section, name == "BODY.PEEK", _partial(lex))
        if name in ("BINARY", "BINARY.PEEK"):
            part = _binary_part(lex)
            return FetchBinary(part, name == "BINARY.PEEK", _partial(lex))
        if name == "BINARY.SIZE":
            return FetchBinarySize(_binary_part(lex))
        raise ParseError(None, f"fetch attribute {show(name)} takes no section")
    simple = _SIMPLE_CACHE.get(name)
    if simple is not None:
        return simple
    if name in ("BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        raise lex.fail_expected(f"'[' after {name}")
    raise ParseError(None, f"unknown fetch attribute {show(name)}")


def _listed(attribute: FetchAttribute, attributes: list[FetchAttribute]) -> bool:
    """Whether ``attribute`` is already requested (simple items are shared singletons)."""
    if type(attribute) is FetchItem:
        return any(other is attribute for other in attributes)
    kind = type(attribute)
    return any(type(other) is kind and other == attribute for other in attributes)


@lru_cache(maxsize=256)
def _simple_list(names: bytes) -> tuple[FetchAttribute, ...] | None:
    """Fast path for a list of items without section, like ``(UID FLAGS)``: clients send the
    same few lists again and again, and the items are immutable, so the tuples are shared."""
    items = [_SIMPLE_CACHE.get(name) for name in names.upper().decode("ascii").split()]
    if None in items:
        return None
    return tuple(dict.fromkeys(item for item in items if item is not None))


def parse_fetch_attributes(lex: Lexer) -> tuple[FetchAttribute, ...]:
    """ "ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")".

    Duplicates are dropped, order is kept.
    """
    simple = _SIMPLE_LIST.match(lex.line, lex.pos)
    if simple is not None:
        items = _simple_list(simple.group(1))
        if items is not None:
            lex.pos = simple.end()
            return items
    if lex.accept(LPAREN):
        attributes: list[FetchAttribute] = []
        while True:
            if lex.peek() == LPAREN:
                raise ParseError(None, "nested parentheses in FETCH attribute list")
            attribute = _attribute(lex)
            if not _listed(attribute, attributes):
                attributes.append(attribute)
            if lex.accept(RPAREN):
                return tuple(attributes)
            if lex.peek() != SP:
                raise lex.fail_expected("')' or a space in FETCH attribute list")
            lex.pos += 1
    start = lex.pos
    found = lex.match(_ITEM_NAME)
    if found is not None:
        macro = FETCH_MACROS.get(found.decode("ascii").upper())
        if macro is not None and lex.peek() != _LBRACKET:
            return macro
        lex.pos = start
    return (_attribute(lex),)

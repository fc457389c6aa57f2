"""SEARCH criteria: the search-key tree and its parser.

RFC 3501 §6.4.4 and §9 ``search-key``, RFC 7162 §3.1.5 ``MODSEQ``, RFC 5182 ``$``, RFC 4731
ESEARCH ``RETURN (...)`` options. A program (the keys after ``SEARCH``) is an implicit AND: it is
returned as one :class:`SearchAnd` (or the single key itself).

Search strings are decoded with the command's CHARSET: US-ASCII (the default) and UTF-8 must be
supported (RFC 3501 §6.4.4); a few common legacy charsets are decoded too. Any other charset
raises :class:`imap.errors.UnsupportedCharsetError` (answer ``NO [BADCHARSET (...)]``). 8-bit
octets are accepted in quoted strings only under CHARSET UTF-8, in literals always (without a
CHARSET they are read as UTF-8, which is what clients sending them mean).

``NEW`` is expanded to ``RECENT UNSEEN`` (RFC 3501 §6.4.4). Nesting (parentheses, NOT, OR) is
bounded: :data:`MAX_PAREN_DEPTH` parenthesised groups, :data:`MAX_KEY_DEPTH` nested keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from imap.errors import ParseError, UnsupportedCharsetError
from imap.sequence import SequenceSet
from imap.tokens import DQUOTE, FIELD_NAME, LPAREN, RPAREN, Lexer, canonical_flag, show

__all__ = [
    "MAX_KEY_DEPTH",
    "MAX_PAREN_DEPTH",
    "SEARCH_RETURN_OPTIONS",
    "SUPPORTED_CHARSETS",
    "DateField",
    "DateOp",
    "SearchAll",
    "SearchAnd",
    "SearchDate",
    "SearchFlag",
    "SearchHeader",
    "SearchKey",
    "SearchModSeq",
    "SearchNot",
    "SearchOr",
    "SearchSequence",
    "SearchSize",
    "SearchText",
    "parse_search_program",
    "parse_search_return",
]

#: Parenthesised groups inside each other.
MAX_PAREN_DEPTH: Final = 32
#: Keys inside each other (parentheses, NOT, OR): bounds recursion.
MAX_KEY_DEPTH: Final = 128

#: Charset names (upper-case) -> Python codec. RFC 3501 §6.4.4 requires US-ASCII and UTF-8.
SUPPORTED_CHARSETS: Final = {
    "US-ASCII": "utf-8",
    "UTF-8": "utf-8",
    "ISO-8859-1": "iso-8859-1",
    "ISO-8859-15": "iso-8859-15",
    "WINDOWS-1252": "cp1252",
}
#: RFC 4731 search-return-opt, RFC 5182 SAVE.
SEARCH_RETURN_OPTIONS: Final = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})

DateField = Literal["internal", "sent"]
DateOp = Literal["before", "on", "since"]

# RFC 7162 §7 entry-flag-name = DQUOTE "/flags/" attr-flag DQUOTE (inside a quoted string).
_ENTRY_NAME: Final = re.compile(
    rb'"/flags/((?:\\\\)?[^\x00-\x20\x7f-\xff(){%*"\\\]]+)"', re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class SearchAll:
    """ALL."""


@dataclass(frozen=True, slots=True)
class SearchFlag:
    """A flag is set (``present``) or not: ANSWERED/UNANSWERED, KEYWORD x/UNKEYWORD x, ...

    ``flag`` is ``\\Seen``, ``\\Recent`` (RECENT/OLD) etc. or a keyword as given.
    """

    flag: str
    present: bool = True


@dataclass(frozen=True, slots=True)
class SearchDate:
    """BEFORE/ON/SINCE (``internal`` date) and SENTBEFORE/SENTON/SENTSINCE (``sent``: Date:)."""

    field: DateField
    op: DateOp
    date: date


@dataclass(frozen=True, slots=True)
class SearchSize:
    """LARGER n (``larger=True``) / SMALLER n: RFC822.SIZE strictly above / below n."""

    larger: bool
    size: int


@dataclass(frozen=True, slots=True)
class SearchHeader:
    """HEADER field value, and FROM/TO/CC/BCC/SUBJECT (``field`` "From", "To", ...).

    An empty ``value`` matches every message having the field (RFC 3501 §6.4.4).
    """

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class SearchText:
    """BODY (``where="body"``) or TEXT (``where="text"``: header and body) contains value."""

    where: Literal["body", "text"]
    value: str


@dataclass(frozen=True, slots=True)
class SearchSequence:
    """A message sequence set, or ``UID set`` (``uid=True``); may be ``$`` (RFC 5182)."""

    sequence: SequenceSet
    uid: bool = False


@dataclass(frozen=True, slots=True)
class SearchModSeq:
    """MODSEQ [entry-name entry-type] n (RFC 7162 §3.1.5): modseq >= ``modseq``.

    ``entry_flag`` is the flag of ``"/flags/<flag>"`` and ``entry_type`` is ``priv``,
    ``shared`` or ``all``; both ``None`` when not given.
    """

    modseq: int
    entry_flag: str | None = None
    entry_type: str | None = None


@dataclass(frozen=True, slots=True)
class SearchNot:
    """NOT key."""

    key: SearchKey


@dataclass(frozen=True, slots=True)
class SearchOr:
    """OR key1 key2."""

    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchAnd:
    """All keys match: a parenthesised group, or the whole program."""

    keys: tuple[SearchKey, ...]


SearchKey = (
    SearchAll
    | SearchFlag
    | SearchDate
    | SearchSize
    | SearchHeader
    | SearchText
    | SearchSequence
    | SearchModSeq
    | SearchNot
    | SearchOr
    | SearchAnd
)

# RFC 3501 §6.4.4: keys without argument.
_FLAG_KEYS: Final[dict[str, SearchKey]] = {
    "ALL": SearchAll(),
    "ANSWERED": SearchFlag("\\Answered"),
    "UNANSWERED": SearchFlag("\\Answered", False),
    "DELETED": SearchFlag("\\Deleted"),
    "UNDELETED": SearchFlag("\\Deleted", False),
    "DRAFT": SearchFlag("\\Draft"),
    "UNDRAFT": SearchFlag("\\Draft", False),
    "FLAGGED": SearchFlag("\\Flagged"),
    "UNFLAGGED": SearchFlag("\\Flagged", False),
    "SEEN": SearchFlag("\\Seen"),
    "UNSEEN": SearchFlag("\\Seen", False),
    "RECENT": SearchFlag("\\Recent"),
    "OLD": SearchFlag("\\Recent", False),
    "NEW": SearchAnd((SearchFlag("\\Recent"), SearchFlag("\\Seen", False))),
}
_DATE_KEYS: Final[dict[str, tuple[DateField, DateOp]]] = {
    "BEFORE": ("internal", "before"),
    "ON": ("internal", "on"),
    "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"),
    "SENTSINCE": ("sent", "since"),
}
_ADDRESS_KEYS: Final = {
    "FROM": "From",
    "TO": "To",
    "CC": "Cc",
    "BCC": "Bcc",
    "SUBJECT": "Subject",
}


class _SearchParser:
    """Recursive-descent parser of search keys, bounded in depth."""

    __slots__ = ("codec", "lex", "parens", "utf8")

    def __init__(self, lex: Lexer, codec: str, utf8: bool) -> None:
        self.lex = lex
        self.codec = codec
        self.utf8 = utf8
        self.parens = 0

    def text(self, what: str) -> str:
        data = self.lex.astring(what, allow_8bit=self.utf8)
        try:
            return data.decode(self.codec)
        except UnicodeDecodeError:
            raise ParseError(None, f"{what} is not valid in the search charset") from None

    def key(self, depth: int) -> SearchKey:
        """RFC 3501 §9 search-key (RFC 7162 §7 search-modsequence, RFC 5182 $)."""
        if depth > MAX_KEY_DEPTH:
            raise ParseError(None, "nesting too deep in SEARCH")
        lex = self.lex
        char = lex.peek()
        if char == LPAREN:
            return self.group(depth)
        if 0x30 <= char <= 0x39 or char in (0x2A, 0x24):  # digit, "*", "$"
            return SearchSequence(lex.sequence_set())
        name = lex.keyword("a search key")
        simple = _FLAG_KEYS.get(name)
        if simple is not None:
            return simple
        parse = _KEY_PARSERS.get(name)
        if parse is None:
            raise ParseError(None, f"unknown search key {show(name)}")
        lex.sp()
        return parse(self, name, depth)

    def group(self, depth: int) -> SearchKey:
        """ "(" search-key *(SP search-key) ")"."""
        if self.parens >= MAX_PAREN_DEPTH:
            raise ParseError(None, "nesting too deep in SEARCH")
        self.parens += 1
        self.lex.expect(LPAREN)
        keys = [self.key(depth + 1)]
        while not self.lex.accept(RPAREN):
            if not self.lex.skip_sp():
                raise self.lex.fail_expected("')'")
            keys.append(self.key(depth + 1))
        self.parens -= 1
        return keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))

    def program(self) -> SearchKey:
        """1*(SP search-key), the leading space already consumed: an implicit AND."""
        keys = [self.key(1)]
        while self.lex.skip_sp():
            keys.append(self.key(1))
        self.lex.expect_end()
        return keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))

    # -- keys with arguments -----------------------------------------------------------------

    def _address(self, name: str, depth: int) -> SearchKey:
        return SearchHeader(_ADDRESS_KEYS[name], self.text(f"{name} value"))

    def _header(self, name: str, depth: int) -> SearchKey:
        field = self.lex.astring("a header field name")
        if FIELD_NAME.fullmatch(field) is None:
            raise ParseError(None, f"invalid header field name '{show(field)}'")
        self.lex.sp()
        return SearchHeader(field.decode("ascii"), self.text("HEADER value"))

    def _text(self, name: str, depth: int) -> SearchKey:
        return SearchText("body" if name == "BODY" else "text", self.text(f"{name} value"))

    def _date(self, name: str, depth: int) -> SearchKey:
        field, op = _DATE_KEYS[name]
        return SearchDate(field, op, self.lex.date())

    def _size(self, name: str, depth: int) -> SearchKey:
        return SearchSize(name == "LARGER", self.lex.number(f"{name} size"))

    def _keyword(self, name: str, depth: int) -> SearchKey:
        # RFC 3501 §9: "KEYWORD" SP flag-keyword (an atom); system flags are not keywords but
        # clients do send KEYWORD \Seen: it means the flag.
        flag = self.lex.flag()
        return SearchFlag(canonical_flag(flag), name == "KEYWORD")

    def _uid(self, name: str, depth: int) -> SearchKey:
        return SearchSequence(self.lex.sequence_set(), uid=True)

    def _not(self, name: str, depth: int) -> SearchKey:
        return SearchNot(self.key(depth + 1))

    def _or(self, name: str, depth: int) -> SearchKey:
        left = self.key(depth + 1)
        self.lex.sp()
        return SearchOr(left, self.key(depth + 1))

    def _modseq(self, name: str, depth: int) -> SearchKey:
        # RFC 7162 §3.1.5: "MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer
        lex = self.lex
        entry_flag: str | None = None
        entry_type: str | None = None
        if lex.peek() == DQUOTE:
            found = lex.match(_ENTRY_NAME)
            if found is None:
                raise lex.fail_expected('an entry name like "/flags/\\\\Seen"')
            entry_flag = canonical_flag(found[8:-1].decode("ascii").replace("\\\\", "\\"))
            lex.sp()
            entry_type = lex.keyword("an entry type").lower()
            if entry_type not in ("priv", "shared", "all"):
                raise ParseError(None, f"invalid MODSEQ entry type {show(entry_type)}")
            lex.sp()
        return SearchModSeq(
            lex.mod_sequence("MODSEQ value", allow_zero=True), entry_flag, entry_type
        )


_KEY_PARSERS: Final[dict[str, Callable[[_SearchParser, str, int], SearchKey]]] = {
    **dict.fromkeys(_ADDRESS_KEYS, _SearchParser._address),
    **dict.fromkeys(_DATE_KEYS, _SearchParser._date),
    "HEADER": _SearchParser._header,
    "BODY": _SearchParser._text,
    "TEXT": _SearchParser._text,
    "LARGER": _SearchParser._size,
    "SMALLER": _SearchParser._size,
    "KEYWORD": _SearchParser._keyword,
    "UNKEYWORD": _SearchParser._keyword,
    "UID": _SearchParser._uid,
    "NOT": _SearchParser._not,
    "OR": _SearchParser._or,
    "MODSEQ": _SearchParser._modseq,
}


def parse_search_return(lex: Lexer) -> tuple[str, ...]:
    """RFC 4731 "RETURN" SP "(" [search-return-opt *(SP search-return-opt)] ")".

    The ``RETURN`` keyword and its space are already consumed. ``RETURN ()`` means ``ALL``.
    """
    lex.expect(LPAREN)
    options: list[str] = []
    if not lex.accept(RPAREN):
        while True:
            option = lex.keyword("a search return option")
            if option not in SEARCH_RETURN_OPTIONS:
                raise ParseError(None, f"unknown search return option {show(option)}")
            if option not in options:
                options.append(option)
            if lex.close_or_sp():
                break
    return tuple(options) or ("ALL",)


def charset_codec(charset: str) -> str:
    """The Python codec for a CHARSET name; :class:`UnsupportedCharsetError` if unknown."""
    codec = SUPPORTED_CHARSETS.get(charset.upper())
    if codec is None:
        raise UnsupportedCharsetError(None, charset, tuple(SUPPORTED_CHARSETS))
    return codec


def parse_search_program(lex: Lexer, charset: str | None) -> SearchKey:
    """The search keys from the cursor to the end of the command (RFC 3501 §9 search)."""
    codec = charset_codec(charset) if charset is not None else "utf-8"
    utf8 = charset is not None and charset.upper() == "UTF-8"
    return _SearchParser(lex, codec, utf8).program()

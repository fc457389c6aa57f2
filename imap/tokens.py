"""The tokeniser: a cursor over a framed command (RFC 3501 §9 formal syntax, lexical level).

:class:`Lexer` walks the lines of a :class:`imap.framing.RawCommand`, stepping into the literal
that ends a line when a string is expected there. It knows the basic productions shared by all
commands (atoms, strings, numbers, mailbox names, flags, dates, sequence sets) and raises
:class:`imap.errors.ParseError` (tag ``None``; :func:`imap.commands.parse_command` adds it) with
a message naming what was expected and where.

Values are returned as the protocol defines them: strings as ``bytes`` (their meaning depends
on the context: UTF-8 password, charset-encoded search text, modified UTF-7 mailbox name),
atoms as ``str`` (they are ASCII), mailbox names decoded to ``str``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Final

from imap.errors import ParseError
from imap.framing import RawCommand, RawLiteral
from imap.sequence import MAX_NUMBER, SEQUENCE_CHARS_RE, SequenceSet
from imap.utf7 import UndecodableName, decode_mailbox

__all__ = [
    "FIELD_NAME",
    "MAX_MODSEQ",
    "MAX_NUMBER64",
    "SYSTEM_FLAGS",
    "Lexer",
    "canonical_flag",
    "show",
]

#: RFC 7162 §7 mod-sequence-value: 1 <= n <= 9,223,372,036,854,775,807 (63 bits).
MAX_MODSEQ: Final = 2**63 - 1
#: RFC 9208 number64: 0 <= n <= 9,223,372,036,854,775,807.
MAX_NUMBER64: Final = 2**63 - 1

#: RFC 3501 §2.3.2 system flags (and \Recent), by their upper-case spelling.
SYSTEM_FLAGS: Final = {
    flag.upper(): flag
    for flag in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent")
}

SP: Final = 0x20
LPAREN: Final = 0x28
RPAREN: Final = 0x29
DQUOTE: Final = 0x22
BACKSLASH: Final = 0x5C
LBRACE: Final = 0x7B
TILDE: Final = 0x7E

# RFC 3501 §9: ATOM-CHAR = <any CHAR except atom-specials>; atom-specials = "(" / ")" / "{" /
# SP / CTL / list-wildcards ("%" / "*") / quoted-specials (DQUOTE / "\") / resp-specials ("]").
# CHAR is 7-bit, so 8-bit octets are excluded too.
_ATOM: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
# ASTRING-CHAR = ATOM-CHAR / resp-specials.
_ASTRING_ATOM: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
# list-char = ATOM-CHAR / list-wildcards / resp-specials.
_LIST_CHARS: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')
#: RFC 5322 §3.6.8 field-name = 1*ftext; ftext = %d33-57 / %d59-126 (printable except ":").
FIELD_NAME: Final = re.compile(rb"[\x21-\x39\x3b-\x7e]+")
_DIGITS: Final = re.compile(rb"[0-9]+")
# A quoted string without escapes, controls or 8-bit octets: the common case, one regex.
_SIMPLE_QUOTED: Final = re.compile(rb'"([^"\\\x00-\x1f\x7f-\xff]*)"')
_QUOTED_RUN: Final = re.compile(rb'[^"\\]*')
_BAD_QUOTED_CHAR: Final = re.compile(rb"[\x00\r\n]")
# RFC 3501 §9 literal / RFC 7888 literal+ / RFC 3516 literal8, at the end of a line.
_LITERAL_MARKER: Final = re.compile(rb"(~?)\{([0-9]+)(\+?)\}")
# RFC 3501 §9 date-text = date-day "-" date-month "-" date-year.
_DATE_TEXT: Final = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
# RFC 3501 §9 date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone
# DQUOTE, date-day-fixed = (SP DIGIT) / 2DIGIT (a single digit is accepted too).
_DATE_TIME: Final = re.compile(
    rb'"( ?[0-9]|[0-9]{2})-([A-Za-z]{3})-([0-9]{4}) '
    rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)
_MONTHS: Final = {
    name: index
    for index, name in enumerate(b"JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)
}


def show(data: bytes | str, limit: int = 40) -> str:
    """A user-supplied value for an error message: one line, bounded, non-ASCII escaped."""
    text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isascii() and text.isprintable():
        return text
    return (
        "".join(
            char if " " <= char <= "~" else repr(char)[1:-1] if char.isascii() else char
            for char in text
        )
        .encode("ascii", "backslashreplace")
        .decode("ascii")
    )


def canonical_flag(flag: str) -> str:
    """System flags in their RFC 3501 spelling (flags are case-insensitive); others as given."""
    if flag.startswith("\\"):
        return SYSTEM_FLAGS.get(flag.upper(), flag)
    return flag


class Lexer:
    """A cursor over the lines and literals of one command."""

    __slots__ = ("_index", "_lines", "_literals", "line", "pos")

    def __init__(self, raw: RawCommand) -> None:
        self._lines = raw.lines or (b"",)
        self._literals = raw.literals
        self._index = 0
        self.line = self._lines[0]
        self.pos = 0

    # -- position ----------------------------------------------------------------------------

    def at_end(self) -> bool:
        """Whether the whole command has been consumed."""
        return self.pos >= len(self.line) and self._index >= len(self._lines) - 1

    def peek(self) -> int:
        """The next octet of the current line, or -1 at its end."""
        return self.line[self.pos] if self.pos < len(self.line) else -1

    def near(self) -> str:
        """Where the cursor is, for error messages."""
        if self.pos >= len(self.line):
            return "at end of command" if self.at_end() else "at end of line"
        return f"near '{show(self.line[self.pos : self.pos + 30], 30)}'"

    def error(self, message: str) -> ParseError:
        return ParseError(None, message)

    def fail_expected(self, what: str) -> ParseError:
        return ParseError(None, f"expected {what} {self.near()}")

    # -- punctuation -------------------------------------------------------------------------

    def sp(self) -> None:
        """Exactly one space (RFC 3501 §9 SP)."""
        if self.pos < len(self.line) and self.line[self.pos] == SP:
            self.pos += 1
            return
        raise self.fail_expected("a space")

    def skip_sp(self) -> bool:
        """Consume one space if there is one."""
        if self.pos < len(self.line) and self.line[self.pos] == SP:
            self.pos += 1
            return True
        return False

    def expect(self, char: int) -> None:
        """Exactly ``char`` (e.g. ``RPAREN``)."""
        if self.pos < len(self.line) and self.line[self.pos] == char:
            self.pos += 1
            return
        raise self.fail_expected(f"'{chr(char)}'")

    def accept(self, char: int) -> bool:
        """Consume ``char`` if it comes next."""
        if self.pos < len(self.line) and self.line[self.pos] == char:
            self.pos += 1
            return True
        return False

    def close_or_sp(self) -> bool:
        """Inside a parenthesised list: True after ")", False after a space, else ParseError."""
        if self.pos < len(self.line):
            char = self.line[self.pos]
            if char in (RPAREN, SP):
                self.pos += 1
                return char == RPAREN
        raise self.fail_expected("')' or a space")

    def expect_end(self) -> None:
        """Nothing may follow (RFC 3501 §9 command ends with CRLF)."""
        if not self.at_end():
            raise self.error(f"unexpected characters after command {self.near()}")

    def match(self, pattern: re.Pattern[bytes]) -> bytes | None:
        """Consume what ``pattern`` matches at the cursor, if it does."""
        found = pattern.match(self.line, self.pos)
        if found is None:
            return None
        self.pos = found.end()
        return found.group()

    # -- atoms and numbers -------------------------------------------------------------------

    def atom(self, what: str = "an atom") -> str:
        """RFC 3501 §9 atom, as ``str``."""
        found = _ATOM.match(self.line, self.pos)
        if found is None:
            raise self.fail_expected(what)
        self.pos = found.end()
        return found.group().decode("ascii")

    def keyword(self, what: str = "a keyword") -> str:
        """An atom compared case-insensitively: returned upper-cased."""
        return self.atom(what).upper()

    def number(self, what: str, *, maximum: int = MAX_NUMBER, minimum: int = 0) -> int:
        """RFC 3501 §9 number (32-bit unsigned unless ``maximum`` says otherwise)."""
        found = _DIGITS.match(self.line, self.pos)
        if found is None:
            raise self.fail_expected(what)
        digits = found.group()
        if len(digits) > 20 or not minimum <= int(digits) <= maximum:
            raise self.error(f"{what} out of range: {show(digits, 25)}")
        self.pos = found.end()
        return int(digits)

    def nz_number(self, what: str) -> int:
        """RFC 3501 §9 nz-number."""
        return self.number(what, minimum=1)

    def mod_sequence(self, what: str, *, allow_zero: bool = False) -> int:
        """RFC 7162 §7 mod-sequence-value (or mod-sequence-valzer with ``allow_zero``)."""
        return self.number(what, maximum=MAX_MODSEQ, minimum=0 if allow_zero else 1)

    def sequence_set(self) -> SequenceSet:
        """RFC 3501 §9 sequence-set, RFC 5182 ``$``."""
        found = SEQUENCE_CHARS_RE.match(self.line, self.pos)
        if found is None:
            raise self.fail_expected("a sequence set")
        self.pos = found.end()
        return SequenceSet.parse(found.group())

    # -- strings -----------------------------------------------------------------------------

    def at_literal(self) -> bool:
        """Whether a literal announcement starts at the cursor."""
        char = self.peek()
        return char == LBRACE or (char == TILDE and self.line[self.pos + 1 : self.pos + 2] == b"{")

    def quoted(self, *, allow_8bit: bool = False) -> bytes:
        """RFC 3501 §9 quoted: ``\\\\`` and ``\\"`` escapes only, no CR/LF/NUL.

        8-bit octets only with ``allow_8bit`` (UTF-8 search strings); the caller decodes them.
        """
        line = self.line
        simple = _SIMPLE_QUOTED.match(line, self.pos)
        if simple is not None:
            self.pos = simple.end()
            return simple.group(1)
        if self.peek() != DQUOTE:
            raise self.fail_expected("a quoted string")
        parts: list[bytes] = []
        index = self.pos + 1
        while True:
            run_end = _QUOTED_RUN.match(line, index).end()  # type: ignore[union-attr]
            parts.append(line[index:run_end])
            if run_end >= len(line):
                raise self.error("unterminated quoted string")
            if line[run_end] == DQUOTE:
                index = run_end + 1
                break
            escaped = line[run_end + 1 : run_end + 2]
            if not escaped:
                raise self.error("unterminated quoted string")
            if escaped not in (b'"', b"\\"):
                raise self.error(
                    f"invalid escape '\\{show(escaped)}' in quoted string (only \\\\ and \\\")"
                )
            parts.append(escaped)
            index = run_end + 2
        value = b"".join(parts)
        bad = _BAD_QUOTED_CHAR.search(value)
        if bad is not None:
            raise self.error(f"invalid character {bad.group()!r} in quoted string")
        if not allow_8bit and not value.isascii():
            raise self.error("8-bit characters in quoted string (use a literal)")
        self.pos = index
        return value

    def literal(self, *, allow_binary: bool = False) -> RawLiteral:
        """The literal announced at the cursor, which must end the line (RFC 3501 §4.3)."""
        marker = _LITERAL_MARKER.match(self.line, self.pos)
        if marker is None:
            raise self.fail_expected("a literal")
        if marker.end() != len(self.line) or self._index >= len(self._literals):
            raise self.error("a literal announcement must end the line")
        literal = self._literals[self._index]
        if literal.binary != bool(marker.group(1)):
            raise self.error("invalid literal announcement")
        if literal.binary and not allow_binary:
            raise self.error("literal8 (~{n}) is only allowed for message data")
        self._index += 1
        self.line = self._lines[self._index]
        self.pos = 0
        return literal

    def string(self, *, allow_8bit: bool = False) -> bytes:
        """RFC 3501 §9 string = quoted / literal (literals may be 8-bit but not contain NUL)."""
        if self.peek() == DQUOTE:
            return self.quoted(allow_8bit=allow_8bit)
        if self.at_literal():
            data = self.literal().data
            if b"\x00" in data:
                raise self.error("NUL octet in literal")
            return data
        raise self.fail_expected("a string")

    def astring(self, what: str = "a string", *, allow_8bit: bool = False) -> bytes:
        """RFC 3501 §9 astring = 1*ASTRING-CHAR / string."""
        found = _ASTRING_ATOM.match(self.line, self.pos)
        if found is not None and not self.at_literal():  # "~" is an ASTRING-CHAR, "~{" literal8
            self.pos = found.end()
            return found.group()
        if self.peek() == DQUOTE or self.at_literal():
            return self.string(allow_8bit=allow_8bit)
        raise self.fail_expected(what)

    def nstring(self, what: str = "a string or NIL") -> bytes | None:
        """RFC 3501 §9 nstring = string / nil."""
        if self.line[self.pos : self.pos + 3].upper() == b"NIL" and not _ATOM.match(
            self.line, self.pos + 3
        ):
            self.pos += 3
            return None
        if self.peek() == DQUOTE or self.at_literal():
            return self.string()
        raise self.fail_expected(what)

    def text_astring(self, what: str) -> str:
        """An astring holding UTF-8 text (user names, passwords, quota roots, ID values)."""
        value = self.astring(what)
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"{what} is not valid UTF-8") from None

    # -- mailbox names -----------------------------------------------------------------------

    def _decode_mailbox(self, wire: bytes, what: str) -> str:
        if not wire.isascii():
            raise self.error(
                f"invalid {what} '{show(wire)}': 8-bit characters (use modified UTF-7)"
            )
        text = wire.decode("ascii")
        try:
            return decode_mailbox(text)
        except ValueError as exc:
            if text.isprintable():  # an astring all the same (RFC 3501 §9): NO, not BAD
                return UndecodableName(text, str(exc))
            raise self.error(f"invalid {what} '{show(wire)}': {exc}") from None

    def mailbox(self, what: str = "mailbox name") -> str:
        """RFC 3501 §9 mailbox = "INBOX" / astring, decoded from modified UTF-7 (§5.1.3).

        ``INBOX`` in any case is returned as ``"INBOX"`` (RFC 3501 §5.1).
        """
        name = self._decode_mailbox(self.astring(f"a {what}"), what)
        return "INBOX" if len(name) == 5 and name.upper() == "INBOX" else name

    def list_mailbox(self) -> str:
        """RFC 3501 §9 list-mailbox = 1*list-char / string (wildcards kept), decoded."""
        found = _LIST_CHARS.match(self.line, self.pos)
        if found is not None and not self.at_literal():
            self.pos = found.end()
            wire = found.group()
        elif self.peek() == DQUOTE or self.at_literal():
            wire = self.string()
        else:
            raise self.fail_expected("a mailbox pattern")
        return self._decode_mailbox(wire, "mailbox pattern")

    # -- flags -------------------------------------------------------------------------------

    def flag(self) -> str:
        """RFC 3501 §9 flag: system flag, ``\\``-extension or keyword (an atom)."""
        if self.accept(BACKSLASH):
            found = _ATOM.match(self.line, self.pos)
            if found is None:
                raise self.fail_expected("a flag name after '\\'")
            self.pos = found.end()
            return canonical_flag("\\" + found.group().decode("ascii"))
        return self.atom("a flag")

    def flag_list(self) -> tuple[str, ...]:
        """RFC 3501 §9 flag-list = "(" [flag *(SP flag)] ")" (duplicates dropped)."""
        self.expect(LPAREN)
        flags: list[str] = []
        if not self.accept(RPAREN):
            while True:
                flag = self.flag()
                if flag not in flags:
                    flags.append(flag)
                if self.accept(RPAREN):
                    break
                if not self.skip_sp():
                    raise self.fail_expected("')' or a space in flag list")
        return tuple(flags)

    # -- dates -------------------------------------------------------------------------------

    def date(self) -> date:
        """RFC 3501 §9 date = date-text / DQUOTE date-text DQUOTE (``1-Feb-1994``)."""
        quoted = self.accept(DQUOTE)
        found = _DATE_TEXT.match(self.line, self.pos)
        if found is None:
            raise self.fail_expected("a date like 1-Feb-1994")
        month = _MONTHS.get(found.group(2).upper())
        try:
            if month is None:
                raise ValueError("unknown month")
            value = date(int(found.group(3)), month, int(found.group(1)))
        except ValueError:
            raise self.error(f"invalid date '{show(found.group())}'") from None
        self.pos = found.end()
        if quoted:
            self.expect(DQUOTE)
        return value

    def date_time(self) -> datetime:
        """RFC 3501 §9 date-time (``"17-Jul-1996 02:44:25 -0700"``), timezone-aware."""
        found = _DATE_TIME.match(self.line, self.pos)
        if found is None:
            raise self.fail_expected('a date-time like "17-Jul-1996 02:44:25 -0700"')
        day, mon, year, hour, minute, second, sign, zh, zm = found.groups()
        month = _MONTHS.get(mon.upper())
        try:
            if month is None or int(zm) > 59:
                raise ValueError("bad month or zone")
            offset = timedelta(hours=int(zh), minutes=int(zm))
            zone = timezone(-offset if sign == b"-" else offset)
            value = datetime(
                int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=zone
            )
        except ValueError:
            raise self.error(f"invalid date-time {show(found.group())}") from None
        self.pos = found.end()
        return value

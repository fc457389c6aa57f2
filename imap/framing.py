"""Incremental framing of client commands: lines and literals (no I/O).

A client command is one line, or several lines joined by literals (RFC 3501 §4.3, §7.5): a line
ending in ``{n}`` (synchronising: the client waits for a ``+`` continuation request before
sending the n octets), ``{n+}`` (non-synchronising, RFC 7888 LITERAL+, sent at once) or
``~{n}`` / ``~{n+}`` (literal8, RFC 3516 BINARY: may contain NUL) is followed by exactly n
octets, then the command goes on with another line.

:class:`CommandReader` is fed the bytes as they arrive and hands out whole commands as
:class:`RawCommand` (lines without their line ending + literals, in order). The session loop::

    reader.feed(data)
    while (item := reader.next_command()) is not None:   # may raise ProtocolError
        if isinstance(item, NeedContinuation):
            write(b"+ Ready\\r\\n")                       # once per synchronising literal
        else:
            dispatch(parse_command(item))

Instead of ``+``, the session may answer a :class:`NeedContinuation` with a tagged ``NO``/``BAD``
(e.g. APPEND to a mailbox that does not exist) and then call
:meth:`CommandReader.refuse_literal`: the client will not send that literal.

Lines end with CRLF; a bare LF is accepted too, a bare CR never ends a line (it stays in the
line and the tokeniser rejects it). Limits, all given at construction:

* ``max_line_length``: one line of a command, literals and line ending excluded. A longer line
  is a **fatal** :class:`ProtocolError` (code ``TOOBIG``): the reader cannot tell where the
  next command would begin. It is raised as soon as the buffered part of the line passes the
  limit, without waiting for a line ending; bytes fed afterwards are dropped, so a 10 MB line
  without newline costs one linear scan and no more memory than what was fed.
* ``max_literal_size``: one literal (the session passes APPENDLIMIT, RFC 7889).
* ``max_command_size``: lines + literals of one command.

A literal over the limits is refused **without reading it**: ``next_command`` raises a
non-fatal ``ProtocolError(tag, ..., code="TOOBIG")`` instead of asking for continuation and
forgets the command; the session answers ``tag NO [TOOBIG] ...`` (or ``BAD``) and a compliant
client, which waited for ``+``, goes on with its next command (RFC 3501 §7.5). A too large
*non-synchronising* literal is already on its way (RFC 7888): the reader raises the same
non-fatal error and then discards, as they arrive and without buffering them, the literal's
octets and the rest of that command (further lines and non-synchronising literals; it stops at
a synchronising literal, which the client will not send since its command was answered). If
the announced size exceeds ``max_discard`` the error is fatal instead (answer
``* BYE [TOOBIG]`` and close) so that nobody can make the server read gigabytes for nothing.
A command whose lines alone pass ``max_command_size`` is refused the same way.

After a fatal error, :meth:`CommandReader.next_command` raises the same error again and
:meth:`CommandReader.feed` drops its input. At end of input a partial command simply stays
buffered (:attr:`CommandReader.in_command` tells whether one was in progress); nothing else
happens, the session just closes.

Every framed line is returned, including empty ones: an empty line is an (empty) SASL response
during AUTHENTICATE; :func:`imap.commands.parse_command` rejects it as a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from imap.errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_COMMAND_SIZE",
    "DEFAULT_MAX_DISCARD",
    "DEFAULT_MAX_LINE_LENGTH",
    "DEFAULT_MAX_LITERAL_SIZE",
    "CommandReader",
    "NeedContinuation",
    "RawCommand",
    "RawLiteral",
    "tag_of",
]

DEFAULT_MAX_LINE_LENGTH: Final = 64 * 1024
DEFAULT_MAX_LITERAL_SIZE: Final = 50 * 1024 * 1024
DEFAULT_MAX_COMMAND_SIZE: Final = 64 * 1024 * 1024
DEFAULT_MAX_DISCARD: Final = 16 * 1024 * 1024

# RFC 3501 §9 literal = "{" number "}" CRLF; RFC 7888 literal =/ "{" number64 "+}" CRLF;
# RFC 3516 literal8 = "~{" number64 ["+"] "}" CRLF. Matched against the end of a line.
_LITERAL_MARKER: Final = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\Z")
# A line prefix whose double quotes are balanced: quoted strings (with \-escapes, RFC 3501 §9
# quoted) and anything else. Possessive quantifiers keep the match linear even when it fails.
_BALANCED_QUOTES: Final = re.compile(rb'(?:[^"]++|"(?:[^"\\]++|\\.)*+")*+', re.DOTALL)
# RFC 3501 §9 tag = 1*<any ASTRING-CHAR except "+">.
_TAG: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
# Compact the buffer once this much has been consumed (and it is at least half of it).
_COMPACT_AFTER: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class RawLiteral:
    """The octets of one literal; ``binary`` for literal8 (``~{n}``), ``non_sync`` for ``{n+}``."""

    data: bytes
    binary: bool = False
    non_sync: bool = False


class RawCommand(NamedTuple):
    """One framed command: ``lines[i]`` is followed by ``literals[i]`` (immutable).

    Lines carry no line ending; every line but the last ends with its literal marker
    (``{5}``, ``{5+}``, ``~{5}``), so ``len(lines) == len(literals) + 1``.
    """

    lines: tuple[bytes, ...]
    literals: tuple[RawLiteral, ...] = ()

    @property
    def tag(self) -> str | None:
        """The tag the command starts with, if it starts with a valid one (for error replies)."""
        return tag_of(self.lines[0]) if self.lines else None

    @property
    def size(self) -> int:
        """Octets of lines and literals (line endings excluded)."""
        return sum(map(len, self.lines)) + sum(len(lit.data) for lit in self.literals)

    @classmethod
    def from_line(cls, line: bytes | str) -> RawCommand:
        """A single-line command (tests, and helpers that build commands)."""
        return cls((line.encode("utf-8") if isinstance(line, str) else line,))


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """The client announced a synchronising literal of ``size`` octets and waits for ``+``.

    ``lines`` are the lines of the command so far (the last one ends with the announcement),
    for a session that wants to look before it accepts: it then either sends ``+ ...`` or
    answers the command with a tagged NO/BAD and calls :meth:`CommandReader.refuse_literal`.
    """

    tag: str | None
    size: int
    lines: tuple[bytes, ...] = field(default=(), compare=False, repr=False)


def tag_of(line: bytes) -> str | None:
    """The leading tag of a command line if it is followed by a space or the end of line."""
    match = _TAG.match(line)
    if match is None or (match.end() < len(line) and line[match.end()] != 0x20):
        return None
    return match.group().decode("ascii")


def _literal_marker(line: bytes) -> re.Match[bytes] | None:
    """The literal announcement ending ``line``, unless it sits inside a quoted string."""
    if not line.endswith(b"}"):
        return None
    match = _LITERAL_MARKER.search(line, max(0, len(line) - 25))
    if match is None:
        return None
    prefix = line[: match.start()]
    if b'"' in prefix and _BALANCED_QUOTES.fullmatch(prefix) is None:
        return None
    return match


class CommandReader:
    """Assemble client commands from the byte stream; see the module docstring."""

    def __init__(
        self,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_literal_size: int = DEFAULT_MAX_LITERAL_SIZE,
        max_command_size: int = DEFAULT_MAX_COMMAND_SIZE,
        max_discard: int = DEFAULT_MAX_DISCARD,
    ) -> None:
        if min(max_line_length, max_command_size) <= 0 or min(max_literal_size, max_discard) < 0:
            raise ValueError("CommandReader limits must be positive")
        self.max_line_length = max_line_length
        self.max_literal_size = max_literal_size
        self.max_command_size = max_command_size
        self.max_discard = max_discard
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed data
        self._scan = 0  # where to resume looking for LF in the current line
        self._lines: list[bytes] = []
        self._literals: list[RawLiteral] = []
        self._size = 0  # octets of the command so far
        self._pending: tuple[int, bool, bool] | None = None  # (size, binary, non_sync)
        self._discard = 0  # octets of a refused literal still to skip
        self._skipping = False  # skipping the rest of a refused command
        self._skip_tag: str | None = None
        self._failed: ProtocolError | None = None

    # -- public API --------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Append received bytes (dropped after a fatal error)."""
        if self._failed is None and data:
            self._buf += data

    @property
    def in_command(self) -> bool:
        """Whether part of a command (or of a refused one) has been received and not finished."""
        return bool(
            self._lines
            or self._pending
            or self._discard
            or self._skipping
            or len(self._buf) > self._pos
        )

    @property
    def buffered(self) -> int:
        """Octets received and not yet handed out (for metrics and tests)."""
        return len(self._buf) - self._pos

    def next_command(self) -> RawCommand | NeedContinuation | None:
        """The next complete command, a continuation request, or ``None`` (need more data).

        Raises :class:`ProtocolError`; after a non-fatal one, call again to go on.
        """
        if self._failed is not None:
            raise self._failed
        buf = self._buf
        while True:
            if (self._discard or self._pending is not None) and not self._take_literal():
                return None
            pos = self._pos
            newline = buf.find(b"\n", self._scan)
            if newline < 0:
                if len(buf) - pos > self.max_line_length + 1:  # + 1: a final CR
                    self._fail_line_too_long()
                self._scan = len(buf)
                self._compact()
                return None
            end = newline - 1 if newline > pos and buf[newline - 1] == 0x0D else newline
            if end - pos > self.max_line_length:
                self._fail_line_too_long()
            line = bytes(buf[pos:end])
            self._pos = self._scan = newline + 1
            self._compact()
            marker = _literal_marker(line) if line[-1:] == b"}" else None
            if marker is None and not self._lines and not self._skipping:
                # The common case: a command of one line.
                if len(line) > self.max_command_size:
                    self._refuse(line, f"command exceeds {self.max_command_size} octets", None)
                return RawCommand((line,))
            if self._skipping:
                self._skip_line(marker)
                continue
            self._size += len(line)
            if marker is None:
                if self._size > self.max_command_size:
                    self._refuse(line, f"command exceeds {self.max_command_size} octets", None)
                self._lines.append(line)
                command = RawCommand(tuple(self._lines), tuple(self._literals))
                self._reset_command()
                return command
            size = int(marker.group(2))
            binary = bool(marker.group(1))
            non_sync = bool(marker.group(3))
            if size > self.max_literal_size:
                limit = f"literal of {size} octets exceeds the limit of {self.max_literal_size}"
                self._refuse(line, limit, size if non_sync else None)
            if self._size + size > self.max_command_size:
                limit = f"command exceeds {self.max_command_size} octets"
                self._refuse(line, limit, size if non_sync else None)
            self._size += size
            self._lines.append(line)
            self._pending = (size, binary, non_sync)
            if not non_sync:
                return NeedContinuation(tag_of(self._lines[0]), size, tuple(self._lines))

    def refuse_literal(self) -> None:
        """Drop the command whose synchronising literal was just announced.

        For a session that answers a :class:`NeedContinuation` with a tagged NO/BAD instead of
        ``+``: the client then does not send the literal (RFC 3501 §7.5) and its next line is a
        new command. Raises :class:`RuntimeError` when no synchronising literal is awaited.
        """
        pending = self._pending
        if pending is None or pending[2]:
            raise RuntimeError("no synchronising literal is waiting for a continuation request")
        self._reset_command()

    # -- internals ---------------------------------------------------------------------------

    def _take_literal(self) -> bool:
        """Skip a refused literal or collect an announced one; False if more data is needed."""
        buf = self._buf
        if self._discard:
            take = min(self._discard, len(buf) - self._pos)
            self._pos += take
            self._discard -= take
            self._scan = self._pos
            if self._discard:
                self._compact()
                return False
        if self._pending is not None:
            size, binary, non_sync = self._pending
            if len(buf) - self._pos < size:
                return False
            end = self._pos + size
            self._literals.append(RawLiteral(bytes(buf[self._pos : end]), binary, non_sync))
            self._pos = self._scan = end
            self._pending = None
        return True

    def _current_tag(self, line: bytes) -> str | None:
        return tag_of(self._lines[0] if self._lines else line)

    def _fail_line_too_long(self) -> None:
        head = bytes(self._buf[self._pos : self._pos + 200])
        space = head.find(b" ")
        tag = tag_of(self._lines[0]) if self._lines else tag_of(head[:space]) if space > 0 else None
        self._fail(tag, f"command line exceeds {self.max_line_length} octets")

    def _fail(self, tag: str | None, message: str) -> None:
        self._failed = ProtocolError(tag, message, fatal=True, code="TOOBIG")
        self._buf = bytearray()
        self._pos = self._scan = 0
        self._reset_command()
        raise self._failed

    def _refuse(self, line: bytes, message: str, incoming: int | None) -> None:
        """Drop the current command; ``incoming`` octets of a non-sync literal are on the way."""
        tag = self._current_tag(line)
        self._reset_command()
        if incoming is not None:
            if incoming > self.max_discard:
                self._fail(tag, message)
            self._discard = incoming
            self._skipping = True
            self._skip_tag = tag
        raise ProtocolError(tag, message, fatal=False, code="TOOBIG")

    def _skip_line(self, marker: re.Match[bytes] | None) -> None:
        """Another line of a refused command: skip it and the literal it announces."""
        if marker is not None and marker.group(3):
            size = int(marker.group(2))
            if size > self.max_discard:
                self._fail(self._skip_tag, f"literal of {size} octets in a refused command")
            self._discard = size
        else:
            # The end of the command, or a synchronising literal the client will not send
            # without a continuation request, which it will not get.
            self._skipping = False

    def _reset_command(self) -> None:
        self._lines = []
        self._literals = []
        self._size = 0
        self._pending = None

    def _compact(self) -> None:
        """Drop consumed bytes once they are many and at least half of the buffer."""
        if self._pos >= _COMPACT_AFTER and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._scan -= self._pos
            self._pos = 0

"""The two exceptions of the wire layer: framing violations and syntax errors.

Every problem found while reading client input is one of these, never another exception type,
so the session layer can turn any of them into a response without guessing:

* :class:`ProtocolError` comes from :class:`imap.framing.CommandReader` (limits, oversized
  literals). ``fatal`` says whether the connection must be closed (``* BYE``) because the
  reader can no longer find where the next command starts.
* :class:`ParseError` comes from :func:`imap.commands.parse_command` and the helpers: the
  command was framed correctly but is malformed; the session answers ``tag BAD message``
  (untagged ``* BAD`` when ``tag`` is ``None``). Its subclass :class:`UnsupportedCharsetError`
  must be answered ``NO [BADCHARSET (...)]`` instead (RFC 3501 §6.4.4).
"""

from __future__ import annotations

__all__ = ["ImapWireError", "ParseError", "ProtocolError", "UnsupportedCharsetError"]


class ImapWireError(Exception):
    """Base class: ``tag`` of the offending command (``None`` if unknown) and a message."""

    def __init__(self, tag: str | None, message: str) -> None:
        super().__init__(message)
        self.tag = tag
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tag={self.tag!r}, message={self.message!r})"


class ProtocolError(ImapWireError):
    """A framing violation (line or literal too large, command too large).

    ``fatal=True``: the reader is unusable and the connection must be closed after an untagged
    ``* BYE``. ``fatal=False``: the offending command has been dropped (its remaining bytes
    are skipped as they arrive); answer ``tag BAD`` / ``tag NO`` and carry on.
    ``code`` is the response code to use, e.g. ``"TOOBIG"`` (RFC 4469, RFC 7888).
    """

    def __init__(self, tag: str | None, message: str, *, fatal: bool, code: str | None = None):
        super().__init__(tag, message)
        self.fatal = fatal
        self.code = code

    def __repr__(self) -> str:
        return (
            f"ProtocolError(tag={self.tag!r}, message={self.message!r}, fatal={self.fatal}, "
            f"code={self.code!r})"
        )


class ParseError(ImapWireError):
    """A syntactically invalid command; the message names what was wrong."""

    def with_tag(self, tag: str | None) -> ParseError:
        """The same error attributed to ``tag`` (the lexer raises without knowing it)."""
        if self.tag == tag:
            return self
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        ImapWireError.__init__(clone, tag, self.message)
        return clone


class UnsupportedCharsetError(ParseError):
    """SEARCH with a CHARSET we cannot decode: answer ``NO [BADCHARSET (<supported>)]``."""

    def __init__(self, tag: str | None, charset: str, supported: tuple[str, ...]) -> None:
        super().__init__(tag, f"unsupported charset {charset}")
        self.charset = charset
        self.supported = supported

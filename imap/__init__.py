"""The IMAP door (IMAP4rev1, RFC 3501, and the extensions listed in docs/architecture.md).

So far this package holds the wire parser: pure functions and classes, no I/O, no asyncio.

=================  ==============================================================================
module             holds
=================  ==============================================================================
``errors``         ``ProtocolError`` (framing, with ``fatal``), ``ParseError`` (syntax),
                   ``UnsupportedCharsetError`` (SEARCH CHARSET: answer NO [BADCHARSET])
``framing``        ``CommandReader``: bytes in, ``RawCommand`` / ``NeedContinuation`` out
                   (lines, literals ``{n}`` ``{n+}`` ``~{n}``, size limits)
``tokens``         ``Lexer``: atoms, strings, numbers, mailbox names, flags, dates over a
                   ``RawCommand``
``sequence``       ``SequenceSet`` (``*``, ``$``), ``resolve(largest)``
``utf7``           modified UTF-7 mailbox names: ``encode_mailbox``, ``decode_mailbox``
``search``         search-key tree dataclasses (``SearchOr``, ``SearchHeader``...) and parser
``fetch``          fetch attribute dataclasses (``FetchItem``, ``FetchBody``, ``Section``...)
                   and parser
``arguments``      ``Command`` and one frozen ``*Args`` dataclass per command
``commands``       ``parse_command`` (one small parser per command), ``parse_done`` (IDLE),
                   ``parse_sasl_response`` (AUTHENTICATE)
=================  ==============================================================================

Imports go one way: ``commands`` → ``arguments`` → ``search``, ``fetch`` → ``tokens`` → ``framing``,
``sequence``, ``utf7`` → ``errors``. Nothing here does I/O or keeps state beyond one
``CommandReader`` per connection; the session layer owns sockets, TLS, state and responses.
"""

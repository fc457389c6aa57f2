"""The IMAP door (IMAP4rev1, RFC 3501, and the extensions listed in docs/architecture.md).

The wire parser (pure: no I/O, no asyncio), then the server over the ``storage`` mail store
API (no SQL here).

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
``responses``      strings, flags, ENVELOPE and BODYSTRUCTURE (from the delivery-time cache)
``sections``       BODY[section]<partial> as slices of the blob through the cached part spans
``selected``       the selected mailbox: UID ↔ sequence numbers, pending EXPUNGE/VANISHED
``searching``      evaluating search keys over message rows (pure)
``context``        ``ImapSettings``, ``ImapServices``, ``CommandError``
``session``        one connection: read loop, state machine, dispatch, sync, IDLE
``dispatch``       the command table (handler and state of each command)
``auth``           capabilities, STARTTLS, LOGIN, AUTHENTICATE (the shared Authenticator)
``general``        CAPABILITY, NOOP, CHECK, LOGOUT, ID, ENABLE, NAMESPACE, IDLE
``mailboxes``      SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST, LSUB, STATUS,
                   QUOTA
``fetching``       FETCH; ``flags``: STORE; ``search_command``: SEARCH / ESEARCH
``transfer``       COPY, MOVE, EXPUNGE, CLOSE, UNSELECT, APPEND
``server``         ``ImapDoor``: the 143 (STARTTLS) and 993 (implicit TLS) listeners
=================  ==============================================================================

Parser imports go one way: ``commands`` → ``arguments`` → ``search``, ``fetch`` → ``tokens`` →
``framing``, ``sequence``, ``utf7`` → ``errors``. The server modules use the parser and
``storage.mailstore``; handlers reach the session only through its methods.
"""

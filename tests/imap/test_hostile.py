"""Hostile input on the IMAP door: a clear BAD/NO or a clean close, never a crash or a hang
(issue #5). After each attack the server still serves a normal session."""

from __future__ import annotations

import contextlib
import socket
import ssl

from tests.imap.running_imap import CAMILLE, ImapServer


def _still_serving(imap_server: ImapServer) -> None:
    c = imap_server.login()
    assert c.select("INBOX")[0] == "OK"
    c.logout()


def _logged_in(imap_server: ImapServer) -> object:
    raw = imap_server.raw()
    raw.login(CAMILLE, imap_server.account(CAMILLE)["password"])
    return raw


def test_unterminated_literal_then_close(imap_server: ImapServer) -> None:
    raw = _logged_in(imap_server)
    raw.send(b"a APPEND INBOX {100}\r\n")  # type: ignore[attr-defined]
    assert raw.line().startswith(b"+")  # type: ignore[attr-defined]
    raw.send(b"only a few octets")  # type: ignore[attr-defined]
    raw.close()  # type: ignore[attr-defined]
    _still_serving(imap_server)


def test_literal_larger_than_the_limit_is_refused_unread(imap_server: ImapServer) -> None:
    raw = _logged_in(imap_server)
    raw.send(b"a APPEND INBOX {999999999999}\r\n")  # type: ignore[attr-defined]
    line = raw.line()  # type: ignore[attr-defined]
    assert line.startswith(b"a NO [TOOBIG]"), line
    raw.send(b"b NOOP\r\n")  # type: ignore[attr-defined]
    assert raw.until(b"b")[-1].startswith(b"b OK")  # type: ignore[attr-defined]
    # A non-synchronising one too large to discard: BYE and close.
    raw.send(b"c APPEND INBOX {999999999999+}\r\n")  # type: ignore[attr-defined]
    assert raw.line().startswith(b"* BYE [TOOBIG]")  # type: ignore[attr-defined]
    assert raw.closed()  # type: ignore[attr-defined]
    # Before login, literals are small.
    pre = imap_server.raw()
    pre.send(b"l LOGIN {200000}\r\n")
    assert pre.line().startswith(b"l NO [TOOBIG]")
    pre.close()
    _still_serving(imap_server)


def test_deeply_nested_parentheses(imap_server: ImapServer) -> None:
    raw = _logged_in(imap_server)
    raw.send(b"s SELECT INBOX\r\n")  # type: ignore[attr-defined]
    raw.until(b"s")  # type: ignore[attr-defined]
    raw.send(b"a SEARCH " + b"(" * 5000 + b"ALL" + b")" * 5000 + b"\r\n")  # type: ignore[attr-defined]
    assert raw.until(b"a")[-1].startswith(b"a BAD")  # type: ignore[attr-defined]
    raw.send(b"b SEARCH " + b"NOT " * 5000 + b"ALL\r\n")  # type: ignore[attr-defined]
    assert raw.until(b"b")[-1].startswith(b"b BAD")  # type: ignore[attr-defined]
    raw.send(b"c FETCH 1 (((((FLAGS)))))\r\n")  # type: ignore[attr-defined]
    assert raw.until(b"c")[-1].startswith(b"c BAD")  # type: ignore[attr-defined]
    raw.close()  # type: ignore[attr-defined]


def test_ten_megabyte_command_line_is_cut_off(imap_server: ImapServer) -> None:
    raw = imap_server.raw()
    with contextlib.suppress(ConnectionError, ssl.SSLError):  # it may close before the end
        raw.send(b"a LOGIN " + b"x" * (10 * 1024 * 1024) + b"\r\n")
    assert raw.closed()
    assert b"* BYE [TOOBIG]" in raw.buf or raw.buf == b""
    _still_serving(imap_server)


def test_invalid_modified_utf7_names(imap_server: ImapServer) -> None:
    raw = _logged_in(imap_server)
    # Printable but not modified UTF-7: a valid astring, so NO [CANNOT] (imaptest atoms);
    # 8-bit octets in a quoted string are a syntax error: BAD.
    cases = [(b"&Jjo", b"NO [CANNOT]"), (b"&AGE-", b"NO [CANNOT]"), (b"&Jjo-&Jjo-", b"NO [CANNOT]")]
    for i, (name, answer) in enumerate([*cases, (b"caf\xc3\xa9", b"BAD")]):
        tag = b"t%d" % i
        raw.send(tag + b' CREATE "' + name + b'"\r\n')  # type: ignore[attr-defined]
        reply = raw.until(tag)[-1]  # type: ignore[attr-defined]
        assert reply.startswith(tag + b" " + answer), (name, reply)
    raw.close()  # type: ignore[attr-defined]


def test_flood_of_commands_before_login(imap_server: ImapServer) -> None:
    raw = imap_server.raw()
    raw.send(b"".join(b"a%d NOOP\r\n" % i for i in range(500)))
    assert raw.closed()
    assert b"* BYE Too many commands without logging in" in raw.buf
    garbage = imap_server.raw()
    garbage.send(b"\x00\xff garbage\r\n" * 100)
    assert garbage.closed()
    assert b"* BYE Too many invalid commands" in garbage.buf
    _still_serving(imap_server)


def test_broken_tls_and_plaintext_on_the_tls_port(imap_server: ImapServer) -> None:
    with socket.create_connection(("127.0.0.1", imap_server.tls_port), 10) as s:
        s.sendall(b"a LOGIN x y\r\n" + b"\x16\x03\x01\x00\x05hello")
        s.settimeout(10)
        try:
            while s.recv(4096):
                pass
        except (ConnectionError, TimeoutError):
            pass
    # STARTTLS then garbage instead of a handshake.
    with socket.create_connection(("127.0.0.1", imap_server.port), 10) as s:
        s.recv(4096)
        s.sendall(b"a STARTTLS\r\n")
        assert s.recv(4096).startswith(b"a OK")
        s.sendall(b"not a tls record\r\n")
        s.settimeout(10)
        try:
            while s.recv(4096):
                pass
        except (ConnectionError, TimeoutError):
            pass
    _still_serving(imap_server)
    log = imap_server.running.logs()
    assert "Traceback" not in log, log[-3000:]

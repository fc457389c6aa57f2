"""Issue #3's limits, end to end: a real server with small limits, real clients.

Failed authentications are throttled per client address and per account (one Authenticator
for SMTP submission and IMAP, so both doors count and refuse together), and each failure is
answered later than the one before; connections are limited per client address; idle clients
are told 421 and closed, during commands and during DATA; command lines, text lines and the
recipients of a transaction are bounded. Every refusal is checked for its status code and the
words that say why.

Each test speaks from its own loopback address (127.0.x.y, bound as the source address), so
that the per-address counts of one test never reach another.
"""

from __future__ import annotations

import base64
import itertools
import select
import smtplib
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli.conftest import make_install
from tests.conftest import BACKENDS
from tests.imap.running_imap import RawClient
from tests.smtp.running import Running, edit_config, start_server

CAMILLE = "camille.martin@demo.mssante.fr"
CARDIOLOGIE = "cardiologie@demo.mssante.fr"
LABORATOIRE = "laboratoire@demo.mssante.fr"
PATIENT = "146026322000196@patient.mssante.fr"
OTHER_PATIENT = "285052A12345680@patient.mssante.fr"

PER_ADDRESS = 3  # limits.auth_failures_per_address
PER_ACCOUNT = 3  # limits.auth_failures_per_account
CONNECTIONS = 3  # limits.connections_per_address
RECIPIENTS = 3  # limits.max_recipients
LINE = 1000  # limits.max_line_length: RFC 5321 §4.5.3.1.6, CRLF included
COMMAND_TIMEOUT = 2.5  # limits.command_timeout
DATA_TIMEOUT = 5.0  # limits.data_timeout
# Above every reply below (the slowest is the third failure from one address: 1 s + checks),
# so that only the idle clients of test_idle_clients_are_told_421_and_closed time out.
assert COMMAND_TIMEOUT > 0.25 * 2 ** (PER_ADDRESS - 1) + 1
assert PER_ACCOUNT == 3 and RECIPIENTS == 3  # what the tests below are written for

_sources = (f"127.0.{n // 250}.{2 + n % 250}" for n in itertools.count(1))


def source() -> str:
    """A loopback address no other test of this module speaks from."""
    return next(_sources)


@pytest.fixture(scope="module", params=BACKENDS)
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("limits")
    install = make_install(root, request.param, request)
    edit_config(
        install,
        limits={
            "auth_failures_per_address": PER_ADDRESS,
            "auth_failures_per_account": PER_ACCOUNT,
            "connections_per_address": CONNECTIONS,
            "max_recipients": RECIPIENTS,
            "max_line_length": LINE,
            "command_timeout": COMMAND_TIMEOUT,
            "data_timeout": DATA_TIMEOUT,
        },
    )
    running = start_server(install, root / "server.log")
    yield running
    running.stop()
    assert "Traceback" not in running.logs()


# --- clients -------------------------------------------------------------------------------


def _acct(srv: Running, address: str) -> dict[str, Any]:
    return next(a for a in srv.install.demo["accounts"] if a["address"] == address)


def _password(srv: Running, address: str) -> str:
    account = _acct(srv, address)
    return str(account.get("app_password") or account["password"])


def submission(srv: Running, src: str, account: dict[str, Any] | None = None) -> smtplib.SMTP:
    """Port 587 after STARTTLS, from ``src``, with the account's certificate if given."""
    s = smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=30, source_address=(src, 0))
    s.ehlo("client.test")
    s.starttls(context=srv.context(account))
    s.ehlo("client.test")
    return s


def professional(srv: Running, src: str) -> smtplib.SMTP:
    """Camille, authenticated with her certificate (SASL EXTERNAL)."""
    s = submission(srv, src, _acct(srv, CAMILLE))
    code, text = s.docmd("AUTH", "EXTERNAL =")
    assert code == 235, text
    return s


def auth_plain(s: smtplib.SMTP, user: str, password: str) -> tuple[int, str]:
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    code, text = s.docmd("AUTH", "PLAIN " + token)
    return code, text.decode()


def auth_login(s: smtplib.SMTP, user: str, password: str) -> tuple[int, str]:
    code, text = s.docmd("AUTH", "LOGIN")
    assert code == 334, text
    code, text = s.docmd(base64.b64encode(user.encode()).decode())
    assert code == 334, text
    code, text = s.docmd(base64.b64encode(password.encode()).decode())
    return code, text.decode()


def imaps(srv: Running, src: str) -> RawClient:
    """A raw IMAP client on 993, from ``src``."""
    sock = socket.create_connection(("127.0.0.1", srv.port("imaps")), 30, source_address=(src, 0))
    client = RawClient(srv.context().wrap_socket(sock))
    assert client.greeting.startswith(b"* OK"), client.greeting
    return client


def imap_login(srv: Running, src: str, user: str, password: str) -> bytes:
    """The tagged answer to LOGIN."""
    client = imaps(srv, src)
    try:
        client.send(f'L1 LOGIN "{user}" "{password}"\r\n'.encode())
        return client.until(b"L1")[-1]
    finally:
        client.close()


def imap_authenticate_plain(srv: Running, src: str, user: str, password: str) -> bytes:
    """The tagged answer to AUTHENTICATE PLAIN with an initial response (RFC 4959)."""
    client = imaps(srv, src)
    try:
        proof = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        client.send(f"A1 AUTHENTICATE PLAIN {proof}\r\n".encode())
        return client.until(b"A1")[-1]
    finally:
        client.close()


def raw_smtp(srv: Running, src: str, listener: str = "submission") -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port(listener)), 10, source_address=(src, 0))


def read_reply(sock: socket.socket) -> bytes:
    """One whole SMTP reply (every line of a multi-line one)."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b"\r\n")
        if len(lines) > 1 and lines[-2][3:4] == b" ":
            return data


def message(subject: str, body: str = "Bonjour,") -> bytes:
    """Written by hand: an email library would wrap or encode a long body line."""
    return (
        f"From: {CAMILLE}\r\nTo: {PATIENT}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{time.monotonic_ns()}@test>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def delivered(srv: Running, address: str, subject: str) -> bool:
    return any(f"Subject: {subject}\r\n".encode() in m for m in srv.inbox(address))


# --- failed authentications -----------------------------------------------------------------


def test_account_locked_after_failures_from_any_address_and_door(srv: Running) -> None:
    """Failures on one account, each from a different address and door (so no address
    reaches its limit), lock the account: its right password is then refused by both doors."""
    right = _password(srv, CARDIOLOGIE)
    with submission(srv, source()) as s:
        code, text = auth_plain(s, CARDIOLOGIE, "not the password")
        assert code == 535 and text.startswith("5.7.8") and "invalid credentials" in text
    with submission(srv, source()) as s:
        code, text = auth_login(s, CARDIOLOGIE, "still not the password")
        assert code == 535 and text.startswith("5.7.8")
    answer = imap_login(srv, source(), CARDIOLOGIE, "nor this one")
    assert answer.startswith(b"L1 NO [AUTHENTICATIONFAILED]"), answer
    # That was PER_ACCOUNT failures: the account is locked, whoever asks; a temporary
    # refusal, like a blocked address (454 4.7.0, RFC 4954 §6; IMAP UNAVAILABLE).
    lockout = "too many failed authentications for this account; try again in 15 min"
    with submission(srv, source()) as s:
        code, text = auth_plain(s, CARDIOLOGIE, right)
        assert code == 454 and text == "4.7.0 " + lockout
        code, text = auth_login(s, CARDIOLOGIE.upper(), right)  # the same account
        assert code == 454 and lockout in text
        # The address is not what is locked: another account logs in from it.
        code, text = auth_plain(s, OTHER_PATIENT, _password(srv, OTHER_PATIENT))
        assert code == 235, text
    answer = imap_login(srv, source(), CARDIOLOGIE, right)
    assert answer.startswith(b"L1 NO [UNAVAILABLE] ") and lockout.encode() in answer, answer
    answer = imap_authenticate_plain(srv, source(), CARDIOLOGIE, right)
    assert answer.startswith(b"A1 NO [UNAVAILABLE] ") and lockout.encode() in answer, answer


def test_address_locked_after_failures_each_answered_later(srv: Running) -> None:
    """Failures from one address, on different accounts, block the address at AUTH (454,
    whatever the mechanism) and at IMAP LOGIN; each failure is answered after a growing
    delay (none for the first, then 0.5 s, 1 s, ... up to 4 s)."""
    src = source()
    took = []
    with submission(srv, src) as s:
        for n in range(PER_ADDRESS):
            start = time.monotonic()
            code, text = auth_plain(s, f"nobody{n}@demo.mssante.fr", "guess")
            took.append(time.monotonic() - start)
            assert code == 535 and text.startswith("5.7.8"), text
    assert took[1] >= 0.5 and took[2] >= 1.0, took
    assert took[2] > took[0] and took[2] < 10, took

    blocked = f"too many failed authentications from {src}; try again in 15 min"
    with submission(srv, src) as s:
        start = time.monotonic()
        code, text = auth_plain(s, OTHER_PATIENT, _password(srv, OTHER_PATIENT))
        assert code == 454 and text == "4.7.0 " + blocked
        assert time.monotonic() - start < 1.0  # refused at once, the proof unread
    with submission(srv, src, _acct(srv, CAMILLE)) as s:  # a valid certificate: refused too
        code, raw = s.docmd("AUTH", "EXTERNAL =")
        assert code == 454 and raw.decode() == "4.7.0 " + blocked
    answer = imap_login(srv, src, OTHER_PATIENT, _password(srv, OTHER_PATIENT))
    assert answer.startswith(b"L1 NO [UNAVAILABLE] ") and blocked.encode() in answer, answer

    # Only that address: the same login from another one is accepted, by both doors.
    with submission(srv, source()) as s:
        assert auth_plain(s, OTHER_PATIENT, _password(srv, OTHER_PATIENT))[0] == 235
    answer = imap_login(srv, source(), OTHER_PATIENT, _password(srv, OTHER_PATIENT))
    assert answer.startswith(b"L1 OK"), answer


# --- connections per address ----------------------------------------------------------------


def _connect_when_released(srv: Running, src: str, listener: str, greeting: bytes) -> socket.socket:
    """A connection from ``src`` once the server has counted the closed ones out."""
    deadline = time.monotonic() + 10
    while True:
        sock = raw_smtp(srv, src, listener) if listener != "imap" else _raw_imap(srv, src)
        first = sock.recv(200)
        if first.startswith(greeting) or time.monotonic() > deadline:
            assert first.startswith(greeting), first
            return sock
        sock.close()
        time.sleep(0.1)


def test_smtp_connections_per_address(srv: Running) -> None:
    src = source()
    held = [raw_smtp(srv, src) for _ in range(CONNECTIONS)]
    for sock in held:
        assert read_reply(sock).startswith(b"220 ")
    with raw_smtp(srv, src) as extra:
        assert extra.recv(200) == b"421 4.7.0 too many connections from your address\r\n"
        assert extra.recv(200) == b""  # and closed
    with raw_smtp(srv, src, "smtp_inbound") as extra:  # every SMTP door counts
        assert extra.recv(200).startswith(b"421 4.7.0 too many connections")
    with raw_smtp(srv, source()) as other:  # other addresses are not limited by this one
        assert other.recv(200).startswith(b"220 ")
    # STARTTLS on the held connections swaps their transport: they still count once each.
    for sock in held:
        sock.sendall(b"EHLO x\r\n")
        read_reply(sock)
        sock.sendall(b"STARTTLS\r\n")
        assert read_reply(sock).startswith(b"220 ")
    tls = [srv.context().wrap_socket(sock) for sock in held]
    for sock in tls:
        sock.sendall(b"NOOP\r\n")
        assert read_reply(sock).startswith(b"250 ")
    tls[0].close()
    again = _connect_when_released(srv, src, "submission", b"220 ")
    with raw_smtp(srv, src) as extra:
        assert extra.recv(200).startswith(b"421 4.7.0 too many connections")
    for sock in [again, *tls[1:]]:
        sock.close()
    # All counted out: the full allowance is there again.
    fresh = [_connect_when_released(srv, src, "submission", b"220 ")]
    fresh += [raw_smtp(srv, src) for _ in range(CONNECTIONS - 1)]
    assert all(read_reply(sock).startswith(b"220 ") for sock in fresh[1:])
    for sock in fresh:
        sock.close()


def _raw_imap(srv: Running, src: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port("imap")), 10, source_address=(src, 0))


def test_imap_connections_per_address(srv: Running) -> None:
    src = source()
    held = [_raw_imap(srv, src) for _ in range(CONNECTIONS)]
    for sock in held:
        assert sock.recv(500).startswith(b"* OK ")
    with _raw_imap(srv, src) as extra:
        answer = extra.recv(500)
        assert answer == b"* BYE [UNAVAILABLE] too many connections from your address\r\n"
        assert extra.recv(200) == b""  # and closed
    with _raw_imap(srv, source()) as other:
        assert other.recv(500).startswith(b"* OK ")
    held[0].close()
    held[0] = _connect_when_released(srv, src, "imap", b"* OK ")
    for sock in held:
        sock.close()


# --- transactions: recipients and lines -----------------------------------------------------


def test_recipient_limit_refuses_the_excess_and_the_transaction_goes_on(srv: Running) -> None:
    """RFC 5321 §4.5.3.1.10: recipients beyond the limit get 452 (here 4.5.3, RFC 3463), and
    the client sends them in another transaction; the accepted ones are delivered."""
    subject = f"Limite {time.monotonic_ns()}"
    with professional(srv, source()) as s:
        assert s.mail(CAMILLE)[0] == 250
        assert s.rcpt(PATIENT)[0] == 250
        code, _ = s.rcpt("nobody@demo.mssante.fr")
        assert code == 550  # refused recipients do not count
        assert s.rcpt(OTHER_PATIENT)[0] == 250
        assert s.rcpt(CARDIOLOGIE)[0] == 250
        for rcpt in (LABORATOIRE, LABORATOIRE):
            code, text = s.rcpt(rcpt)
            assert code == 452 and text == b"4.5.3 too many recipients (at most 3)"
        code, text = s.data(message(subject))
        assert code == 250 and b"message accepted" in text
        # The next transaction: the excess recipient is accepted.
        assert s.mail(CAMILLE)[0] == 250
        assert s.rcpt(LABORATOIRE)[0] == 250
        assert s.rset()[0] == 250
    for address in (PATIENT, OTHER_PATIENT, CARDIOLOGIE):
        assert delivered(srv, address, subject), address
    assert not delivered(srv, LABORATOIRE, subject)


def test_line_length_limits(srv: Running) -> None:
    """RFC 5321 §4.5.3.1.4 (command lines: 512 octets) and §4.5.3.1.6 (text lines: the
    configured max_line_length, here 1000 octets with the CRLF), refused with 500 and the
    session goes on; a message with a line too long is not delivered."""
    with professional(srv, source()) as s:
        code, text = s.docmd("NOOP", "x" * 2 * LINE)  # beyond the line limit itself
        assert code == 500 and text == b"5.5.2 Command line too long"
        code, text = s.docmd("HELP", "x" * 600)  # beyond a command's 512
        assert code == 500 and text == b"5.5.2 Command line too long"
        assert s.noop()[0] == 250

        fits = f"Longue {time.monotonic_ns()}"
        assert s.sendmail(CAMILLE, [PATIENT], message(fits, "y" * (LINE - 2))) == {}
        assert delivered(srv, PATIENT, fits)

        too_long = f"Trop longue {time.monotonic_ns()}"
        s.mail(CAMILLE)
        s.rcpt(PATIENT)
        data = message(too_long, "y" * (LINE - 1))  # 1001 octets with the CRLF
        code, text = s.data(data)
        assert code == 500 and text == b"5.5.2 Line too long (see RFC5321 4.5.3.1.6)"
        code, text = s.docmd("DATA")  # the transaction is over
        assert code == 503 and b"need MAIL" in text
    assert not delivered(srv, PATIENT, too_long)


# --- timeouts -------------------------------------------------------------------------------


def test_idle_clients_are_told_421_and_closed(srv: Running) -> None:
    """limits.command_timeout bounds the wait for a command and limits.data_timeout the wait
    for the next data during DATA: silent clients get 421 4.4.2 and are closed. A message that
    takes longer than command_timeout to arrive, data flowing, is not cut off."""
    hostname = srv.install.demo["hostname"]
    slow_subject, cut_subject = f"Lent {time.monotonic_ns()}", f"Coupé {time.monotonic_ns()}"
    slow, cut = professional(srv, source()), professional(srv, source())
    for s in (slow, cut):
        assert s.mail(CAMILLE)[0] == 250 and s.rcpt(PATIENT)[0] == 250
        assert s.docmd("DATA")[0] == 354
    slow.send(message(slow_subject).split(b"\r\n\r\n")[0] + b"\r\n")
    cut.send(message(cut_subject).split(b"\r\n\r\n")[0] + b"\r\n")
    cut_since = time.monotonic()
    idle = raw_smtp(srv, source())
    assert read_reply(idle).startswith(b"220 ")
    idle.sendall(b"EHLO client.test\r\n")
    assert read_reply(idle).startswith(b"250")
    idle_since = time.monotonic()
    # The slow client sends a line a second, for longer than command_timeout; meanwhile the
    # idle client hears from the server once command_timeout has passed.
    idle_reply, idle_waited = b"", 0.0
    for _ in range(int(COMMAND_TIMEOUT) + 2):
        tick = time.monotonic() + 1
        if not idle_reply and select.select([idle], [], [], 1)[0]:
            idle_waited = time.monotonic() - idle_since
            idle_reply = read_reply(idle)
        time.sleep(max(0.0, tick - time.monotonic()))
        slow.send(b"Encore une ligne.\r\n")
    slow.send(b".\r\n")
    code, text = slow.getreply()
    assert code == 250 and b"message accepted" in text
    slow.quit()

    assert idle_reply == f"421 4.4.2 {hostname} timeout, closing connection\r\n".encode()
    assert COMMAND_TIMEOUT - 0.2 < idle_waited < COMMAND_TIMEOUT + 1.5, idle_waited
    idle.settimeout(5)
    assert idle.recv(100) == b""  # closed
    idle.close()

    assert cut.sock is not None
    cut.sock.settimeout(DATA_TIMEOUT + 5)
    code, text = cut.getreply()
    waited = time.monotonic() - cut_since
    assert code == 421 and text == f"4.4.2 {hostname} timeout, closing connection".encode()
    assert DATA_TIMEOUT - 0.2 < waited < DATA_TIMEOUT + 3, waited
    cut.close()
    assert delivered(srv, PATIENT, slow_subject)
    assert not delivered(srv, PATIENT, cut_subject)

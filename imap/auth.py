"""Capabilities, STARTTLS, LOGIN and AUTHENTICATE (RFC 3501 §6.1.1, §6.2; RFC 4959 SASL-IR).

Identity rules are not here: the proof goes to the same :class:`directory.authenticate.
Authenticator` as SMTP submission (EXTERNAL with the TLS client certificate, OAUTHBEARER /
XOAUTH2 tokens, PLAIN / LOGIN passwords only when enabled, patients only with app passwords
when allowed). Nothing is accepted before TLS: the 143 listener advertises ``LOGINDISABLED``
and no ``AUTH=`` until STARTTLS (RFC 3501 §6.2.3, RFC 8314 §5.1).
"""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from cryptography import x509

from directory.identity import AuthenticationRefused, Identity, TemporarilyRefused
from directory.sasl import (
    SaslError,
    oauthbearer_failure,
    parse_external,
    parse_oauthbearer,
    parse_plain,
    parse_xoauth2,
    xoauth2_failure,
)
from imap.arguments import AuthenticateArgs, Command, LoginArgs
from imap.commands import parse_sasl_response
from imap.context import CommandError
from imap.errors import ParseError

if TYPE_CHECKING:
    from imap.session import Session

__all__ = ["authenticate", "capabilities", "login", "starttls"]

log = logging.getLogger("imap")

# RFC 3501 and the extensions every state offers.
_BASE = ("IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE")
# Extensions of the authenticated states (RFC 2342, 3691, 4315, 6851, 6154, 3348, 5258,
# 5819, 7162, 4731, 7889, 9208, 5182).
_AUTHENTICATED = (
    "NAMESPACE",
    "UNSELECT",
    "UIDPLUS",
    "MOVE",
    "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "CHILDREN",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "CONDSTORE",
    "QRESYNC",
    "ESEARCH",
    "SEARCHRES",
    "QUOTA",
    "QUOTA=RES-STORAGE",
)


def capabilities(session: Session) -> str:
    """The capability list for the session's state (RFC 3501 §7.2.1)."""
    names = list(_BASE)
    auth = session.services.authenticator
    if not session.authenticated:
        if not session.tls:
            names += ["STARTTLS", "LOGINDISABLED"]
        else:
            names += [f"AUTH={m}" for m in auth.mechanisms]
            if "PLAIN" not in auth.mechanisms:
                names.append("LOGINDISABLED")
    names += _AUTHENTICATED
    names.append(f"APPENDLIMIT={session.settings.max_message_size}")
    return " ".join(names)


async def starttls(session: Session, command: Command) -> str:
    """RFC 3501 §6.2.1; what the client sent after STARTTLS in clear is dropped (RFC 2595 §3.1)."""
    if session.tls:
        raise CommandError("TLS is already active", status="BAD")
    session.write(f"{command.tag} OK Begin TLS negotiation now\r\n".encode())
    await session.flush()
    session.reader = type(session.reader)(
        max_literal_size=session.reader.max_literal_size,
        max_command_size=session.reader.max_command_size,
        max_discard=session.reader.max_discard,
    )
    buffered = getattr(session.stream, "_buffer", None)
    if isinstance(buffered, bytearray):
        buffered.clear()
    try:
        await session.writer.start_tls(
            session.services.tls, ssl_handshake_timeout=session.settings.handshake_timeout
        )
    except (ssl.SSLError, ConnectionError, TimeoutError, OSError) as exc:
        log.info("%s: STARTTLS failed from %s: %s", session.settings.name, session.remote, exc)
        session.closed = True
        raise ConnectionResetError("TLS negotiation failed") from None
    session.tls = True
    raise _AlreadyAnswered


class _AlreadyAnswered(CommandError):
    """STARTTLS answered before the handshake: nothing more to write."""

    def __init__(self) -> None:
        super().__init__("")

    def line(self, tag: str) -> bytes:
        return b""


def _client_certificate(session: Session) -> x509.Certificate | None:
    obj = session.writer.get_extra_info("ssl_object")
    der = obj.getpeercert(binary_form=True) if isinstance(obj, ssl.SSLObject) else None
    return x509.load_der_x509_certificate(der) if der else None


def _require_tls(session: Session) -> None:
    if not session.tls:
        raise CommandError("authentication is only allowed after STARTTLS", code="PRIVACYREQUIRED")


async def _finish(session: Session, attempt: Callable[[], Awaitable[Identity]]) -> str:
    try:
        who = await attempt()
    except AuthenticationRefused as exc:
        log.info("%s: authentication refused from %s: %s", session.settings.name,
                 session.remote, exc)  # fmt: skip
        # RFC 5530 §3: a lockout is temporary (UNAVAILABLE, as for a blocked address).
        code = "UNAVAILABLE" if isinstance(exc, TemporarilyRefused) else "AUTHENTICATIONFAILED"
        raise CommandError(str(exc), code=code) from None
    session.login(who)
    return f"[CAPABILITY {capabilities(session)}] authenticated as {who.address}"


async def login(session: Session, command: Command) -> str:
    """RFC 3501 §6.2.3 LOGIN: a password, under the same policy as SASL PLAIN."""
    _require_tls(session)
    args = command.args
    assert isinstance(args, LoginArgs)
    auth = session.services.authenticator
    if "PLAIN" not in auth.mechanisms:
        raise CommandError(
            "password login is disabled: use a CPS/e-CPS certificate (AUTHENTICATE EXTERNAL) "
            "or a Pro Santé Connect token (AUTHENTICATE OAUTHBEARER)",
            code="AUTHENTICATIONFAILED",
        )
    # A blocked address or a locked account: refused by Authenticator.password (UNAVAILABLE).
    return await _finish(
        session, lambda: auth.password(args.username, args.password, session.remote)
    )


def _not_blocked(session: Session) -> None:
    """A blocked client address is refused before the SASL exchange is read."""
    blocked = session.services.authenticator.blocked(session.remote)
    if blocked:
        raise CommandError(blocked, code="UNAVAILABLE")


async def _response(session: Session, challenge: bytes = b"") -> bytes:
    """One SASL response after ``+ challenge`` (RFC 3501 §6.2.2); ``*`` cancels."""
    session.write(b"+ " + base64.b64encode(challenge) + b"\r\n")
    await session.flush()
    line = await session.next_line()
    if line is None:
        raise ConnectionResetError("client went away during AUTHENTICATE")
    try:
        data = parse_sasl_response(line)
    except ParseError as exc:
        raise CommandError(exc.message, status="BAD") from None
    if data is None:
        raise CommandError("authentication cancelled", status="BAD")
    return data


async def _initial(session: Session, args: AuthenticateArgs) -> bytes:
    if args.initial_response is not None:
        return args.initial_response
    return await _response(session)


async def authenticate(session: Session, command: Command) -> str:
    """RFC 3501 §6.2.2 AUTHENTICATE with the mechanisms the Authenticator offers."""
    _require_tls(session)
    args = command.args
    assert isinstance(args, AuthenticateArgs)
    auth = session.services.authenticator
    mechanism = args.mechanism
    if mechanism not in auth.mechanisms:
        raise CommandError(f"mechanism {mechanism} is not offered", code="CANNOT")
    _not_blocked(session)
    remote = session.remote
    try:
        if mechanism == "EXTERNAL":
            authzid = parse_external(await _initial(session, args))
            cert = _client_certificate(session)
            return await _finish(session, lambda: auth.certificate(cert, remote, authzid))
        if mechanism == "PLAIN":
            _authz, user, password = parse_plain(await _initial(session, args))
            return await _finish(session, lambda: auth.password(user, password, remote))
        if mechanism == "LOGIN":
            first = args.initial_response
            user_b = first if first is not None else await _response(session, b"Username:")
            password_b = await _response(session, b"Password:")
            try:
                user, password = user_b.decode("utf-8"), password_b.decode("utf-8")
            except UnicodeDecodeError:
                raise CommandError("LOGIN response is not UTF-8", status="BAD") from None
            return await _finish(session, lambda: auth.password(user, password, remote))
        if mechanism == "OAUTHBEARER":
            authzid_o, token = parse_oauthbearer(await _initial(session, args))
            return await _bearer(session, token, authzid_o, oauthbearer_failure())
        if mechanism == "XOAUTH2":
            user_x, token = parse_xoauth2(await _initial(session, args))
            return await _bearer(session, token, user_x or None, xoauth2_failure())
    except SaslError as exc:
        raise CommandError(str(exc), status="BAD") from None
    raise CommandError(f"mechanism {mechanism} is not offered", code="CANNOT")


async def _bearer(session: Session, token: str, authzid: str | None, failure: str) -> str:
    auth = session.services.authenticator
    try:
        return await _finish(session, lambda: auth.token(token, session.remote, authzid))
    except CommandError:
        # RFC 7628 §3.2.2: an error challenge, the client's dummy answer, then the failure.
        session.write(b"+ " + failure.encode("ascii") + b"\r\n")
        await session.flush()
        await session.next_line()
        raise

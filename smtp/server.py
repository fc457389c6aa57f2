"""The SMTP doors: inbound from peer operators, and submission for professionals and systems.

One aiosmtpd protocol subclass serves both; `DoorSettings.mode` says which rules of the door
apply. The door speaks SMTP and nothing else: who the sender is comes from the TLS peer
certificate (inbound, mssante.md §1) or SASL (submission, RFC 4954 / RFC 6409), and every
decision about senders and recipients is asked of the routing pipeline, which also makes the
message durable before the ``250``.

aiosmtpd's own MAIL and RCPT handlers are replaced: they refuse the null reverse-path that
delivery reports use, upper-case xtext values (ENVID, ORCPT) and know no DSN parameters.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import secrets
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session
from cryptography import x509

from certs.identity import identity_of
from certs.truststore import TrustStore
from directory.authenticate import Authenticator
from directory.identity import AuthenticationRefused, Identity, TemporarilyRefused
from directory.sasl import (
    SaslError,
    decode_base64_response,
    oauthbearer_failure,
    parse_external,
    parse_oauthbearer,
    parse_plain,
    parse_xoauth2,
    xoauth2_failure,
)
from routing.decisions import Refusal, Sender
from routing.pipeline import Accepted, Pipeline
from routing.rules import check_peer_certificate
from smtp.params import MailParams, ParamError, parse_mail_params, parse_path, parse_rcpt_params
from smtp.trace import TraceInfo, authentication_results, received

__all__ = ["DoorSettings", "SmtpDoor", "SmtpServices"]

log = logging.getLogger("smtp")

Mode = Literal["inbound", "submission"]

# RFC 2034 §3: once ENHANCEDSTATUSCODES is advertised every reply carries one; these are the
# codes for the replies aiosmtpd writes itself (RFC 3463 §3 classes).
_DEFAULT_STATUS = {
    "211": "2.0.0", "214": "2.0.0", "220": "2.0.0", "221": "2.0.0", "235": "2.7.0",
    "250": "2.0.0", "251": "2.1.5", "252": "2.1.5", "421": "4.3.0", "450": "4.2.0",
    "451": "4.3.0", "452": "4.3.1", "454": "4.7.0", "500": "5.5.2", "501": "5.5.4",
    "502": "5.5.1", "503": "5.5.1", "504": "5.5.4", "530": "5.7.0", "534": "5.7.9",
    "535": "5.7.8", "538": "5.7.11", "550": "5.0.0", "551": "5.1.6", "552": "5.3.4",
    "553": "5.1.3", "554": "5.0.0", "555": "5.5.4",
}  # fmt: skip
_HAS_STATUS = re.compile(rb"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}( |$)")


@dataclass(frozen=True)
class DoorSettings:
    name: str  # the listener name: smtp_inbound, submission, submissions
    mode: Mode
    implicit_tls: bool
    hostname: str
    max_message_size: int
    max_recipients: int
    max_line_length: int
    command_timeout: float
    data_timeout: float
    connections_per_address: int


@dataclass
class SmtpServices:
    """What the doors are handed by `mailserver` (composition root)."""

    pipeline: Pipeline
    trust: TrustStore
    tls: ssl.SSLContext
    authenticator: Authenticator | None = None
    # DKIM verification of inbound mail: returns RFC 8601 resinfo fragments ("dkim=pass ...").
    verify_dkim: Callable[[bytes], Awaitable[list[str]]] | None = None
    connections: dict[str, int] = field(default_factory=dict)  # per client address
    live: set[Any] = field(default_factory=set)  # open sessions (graceful stop)


class _Hooks:
    """aiosmtpd handler hooks, forwarded to the protocol instance."""

    async def handle_EHLO(
        self, server: MSSanteSMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:  # fmt: skip
        session.host_name = hostname  # aiosmtpd leaves this to the hook (new-style EHLO)
        return server.ehlo_lines(responses)

    async def handle_DATA(self, server: MSSanteSMTP, session: Session, envelope: Envelope) -> str:
        return await server.on_data(envelope)

    async def handle_exception(self, error: Exception) -> str:
        if type(error).__name__ == "TLSSetupException":
            cause = error.__cause__ or error
            log.info(
                "TLS handshake failed: %s", str(cause).splitlines()[0] if str(cause) else cause
            )
            return "454 4.7.0 TLS handshake failed"
        log.error("unexpected %s: %s", type(error).__name__, error)
        return "451 4.3.0 internal error, try again later"


class MSSanteSMTP(SMTP):
    def __init__(self, settings: DoorSettings, services: SmtpServices) -> None:
        self.settings = settings
        self.services = services
        self.line_length_limit = settings.max_line_length  # read by SMTP.__init__
        super().__init__(
            _Hooks(),
            data_size_limit=settings.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=settings.hostname,
            ident="ESMTP MSSanté",
            tls_context=None if settings.implicit_tls else services.tls,
            require_starttls=not settings.implicit_tls,
            timeout=settings.command_timeout,
            auth_required=False,
            auth_require_tls=False,  # checked below, also for implicit TLS (RFC 8314)
        )
        self._remote = ""
        self._counted = False
        self._greeted = False
        self._in_ehlo = False
        self._receiving_data = False
        self._identity: Identity | None = None
        self._peer: tuple[bool, str, str | None, str | None] | None = None
        self._reset_transaction()

    # --- connection ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None and not self._counted:
            peer = transport.get_extra_info("peername")
            self._remote = str(peer[0]) if peer else "?"
            counts = self.services.connections
            if counts.get(self._remote, 0) >= self.settings.connections_per_address:
                log.warning("%s: too many connections from %s", self.settings.name, self._remote)
                if isinstance(transport, asyncio.WriteTransport):
                    transport.write(b"421 4.7.0 too many connections from your address\r\n")
                transport.close()
                return
            counts[self._remote] = counts.get(self._remote, 0) + 1
            self._counted = True
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._receiving_data:
            self._reset_timeout()
        super().data_received(data)

    def _timeout_cb(self) -> None:
        """RFC 5321 §3.8 and §4.5.3.2.7: after the timeout the server may close; it says so
        first with a 421 (RFC 3463 X.4.2), so the client knows it was no network failure."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        log.info("%s: no word from %s for %gs: closing", self.settings.name, self._remote,
                 self._timeout_duration)  # fmt: skip
        if isinstance(transport, asyncio.WriteTransport):
            reply = f"421 4.4.2 {self.settings.hostname} timeout, closing connection\r\n"
            transport.write(reply.encode())
        transport.close()  # what aiosmtpd's own _timeout_cb does; connection_lost cleans up

    def connection_lost(self, error: Exception | None) -> None:
        self.services.live.discard(self)
        if self._counted:
            self._counted = False
            left = self.services.connections.get(self._remote, 1) - 1
            if left > 0:
                self.services.connections[self._remote] = left
            else:
                self.services.connections.pop(self._remote, None)
        if self.session is not None:
            super().connection_lost(error)

    @property
    def in_transaction(self) -> bool:
        return self._sender is not None and self.transport is not None

    @property
    def tls_active(self) -> bool:
        return self._ssl_object() is not None

    def _ssl_object(self) -> ssl.SSLObject | None:
        if self.transport is None:
            return None
        obj = self.transport.get_extra_info("ssl_object")
        return obj if isinstance(obj, ssl.SSLObject) else None

    def _client_certificate(self) -> x509.Certificate | None:
        obj = self._ssl_object()
        der = obj.getpeercert(binary_form=True) if obj is not None else None
        return x509.load_der_x509_certificate(der) if der else None

    async def push(self, status: str | bytes) -> None:
        line = status.encode() if isinstance(status, str) else status
        if self._greeted and not self._in_ehlo and not _HAS_STATUS.match(line):
            code = line[:3].decode("ascii", "replace")
            enhanced = _DEFAULT_STATUS.get(code)
            if enhanced and line[3:4] in (b" ", b""):
                line = f"{code} {enhanced}".encode() + line[3:]
        self._greeted = True
        await super().push(line)

    # --- EHLO ---------------------------------------------------------------------------------

    def ehlo_lines(self, responses: list[str]) -> list[str]:
        """RFC 5321 §4.1.1.1 with the extensions this door offers."""
        self._reset_transaction()
        lines = [responses[0]]
        lines += [
            "250-PIPELINING",  # RFC 2920
            f"250-SIZE {self.settings.max_message_size}",  # RFC 1870
            "250-8BITMIME",  # RFC 6152
            "250-SMTPUTF8",  # RFC 6531
            "250-ENHANCEDSTATUSCODES",  # RFC 2034
            "250-DSN",  # RFC 3461
        ]
        if not self.tls_active and not self.settings.implicit_tls:
            lines.append("250-STARTTLS")  # RFC 3207
        auth = self.services.authenticator
        if self.settings.mode == "submission" and self.tls_active and auth is not None:
            lines.append("250-AUTH " + " ".join(auth.mechanisms))  # RFC 4954, after TLS only
        lines.append("250 HELP")
        self.command_size_limits["MAIL"] = 512 + 26 + 10 + 100 + 500  # SIZE, SMTPUTF8, DSN
        self.command_size_limits["RCPT"] = 512 + 500
        # RFC 4954 §4: an AUTH line with an initial response may exceed 512 octets (access
        # tokens are often 1-3 KB); the line length limit bounds it.
        self.command_size_limits["AUTH"] = self.settings.max_line_length
        return lines

    async def smtp_EHLO(self, hostname: str) -> None:
        self._in_ehlo = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_ehlo = False

    # --- AUTH (submission) ----------------------------------------------------------------------

    async def smtp_AUTH(self, arg: str) -> None:
        auth = self.services.authenticator
        if self.settings.mode != "submission" or auth is None:
            await self.push("502 5.5.1 AUTH is not offered on this port")
            return
        if not self.tls_active:
            await self.push("538 5.7.11 AUTH only after TLS (STARTTLS first)")
            return
        mechanism = (arg or "").split(" ", 1)[0].upper()
        if mechanism and mechanism not in auth.mechanisms:
            await self.push(f"504 5.5.4 mechanism {mechanism} is not offered")
            return
        blocked = auth.blocked(self._remote)
        if blocked:
            await self.push(f"454 4.7.0 {blocked}")
            return
        await super().smtp_AUTH(arg.split(" ", 1)[0].upper() + arg[len(mechanism) :])

    async def _response(self, args: list[str], challenge: str = "") -> bytes | None:
        """The initial response (RFC 4954 §4, ``=`` for empty) or one read after a 334."""
        if len(args) > 1:
            if args[1] == "=":
                return b""
            try:
                return decode_base64_response(args[1])
            except SaslError as exc:
                await self.push(f"501 5.5.2 {exc}")
                return None
        answer = await self.challenge_auth(challenge, encode_to_b64=False)
        return None if answer is MISSING else answer

    async def _finish_auth(self, attempt: Callable[[], Awaitable[Identity]]) -> AuthResult:
        try:
            who = await attempt()
        except AuthenticationRefused as exc:
            log.info("%s: AUTH refused from %s: %s", self.settings.name, self._remote, exc)
            # RFC 4954 §6: 454 4.7.0 for a lockout, which may lift; 535 5.7.8 for the proof.
            reply = "454 4.7.0" if isinstance(exc, TemporarilyRefused) else "535 5.7.8"
            return AuthResult(success=False, handled=False, message=f"{reply} {exc}")
        self._identity = who
        log.info("%s: %s authenticated (%s) from %s", self.settings.name, who.address,
                 who.method, self._remote)  # fmt: skip
        return AuthResult(success=True, auth_data=who, message="235 2.7.0 authenticated as "
                          f"{who.address}")  # fmt: skip

    async def auth_EXTERNAL(self, _: Any, args: list[str]) -> AuthResult:
        """RFC 4422 Appendix A: the TLS client certificate is the credential."""
        data = await self._response(args)
        if data is None:
            return AuthResult(success=False, handled=True)
        auth = self.services.authenticator
        assert auth is not None
        try:
            authzid = parse_external(data)
        except SaslError as exc:
            return AuthResult(success=False, handled=False, message=f"501 5.5.2 {exc}")
        cert = self._client_certificate()
        return await self._finish_auth(lambda: auth.certificate(cert, self._remote, authzid))

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        """RFC 4616."""
        data = await self._response(args)
        if data is None:
            return AuthResult(success=False, handled=True)
        auth = self.services.authenticator
        assert auth is not None
        try:
            _authz, user, password = parse_plain(data)
        except SaslError as exc:
            return AuthResult(success=False, handled=False, message=f"501 5.5.2 {exc}")
        return await self._finish_auth(lambda: auth.password(user, password, self._remote))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        """The LOGIN mechanism (draft-murchison-sasl-login): user, then password."""
        auth = self.services.authenticator
        assert auth is not None
        user_b = await self._response(args, base64.b64encode(b"Username:").decode())
        if user_b is None:
            return AuthResult(success=False, handled=True)
        pw_b = await self._response([], base64.b64encode(b"Password:").decode())
        if pw_b is None:
            return AuthResult(success=False, handled=True)
        try:
            user, password = user_b.decode("utf-8"), pw_b.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False, message="501 5.5.2 not UTF-8")
        return await self._finish_auth(lambda: auth.password(user, password, self._remote))

    async def _bearer(self, token: str, authzid: str | None, failure: str) -> AuthResult:
        auth = self.services.authenticator
        assert auth is not None
        result = await self._finish_auth(lambda: auth.token(token, self._remote, authzid))
        if not result.success:
            # RFC 7628 §3.2.2: an error challenge, answered by the client, then the failure.
            await self.challenge_auth(failure, encode_to_b64=False)
        return result

    async def auth_OAUTHBEARER(self, _: Any, args: list[str]) -> AuthResult:
        """RFC 7628."""
        data = await self._response(args)
        if data is None:
            return AuthResult(success=False, handled=True)
        try:
            authzid, token = parse_oauthbearer(data)
        except SaslError as exc:
            return AuthResult(success=False, handled=False, message=f"501 5.5.2 {exc}")
        return await self._bearer(token, authzid, oauthbearer_failure())

    async def auth_XOAUTH2(self, _: Any, args: list[str]) -> AuthResult:
        """Google's XOAUTH2 (user=...^Aauth=Bearer ...^A^A)."""
        data = await self._response(args)
        if data is None:
            return AuthResult(success=False, handled=True)
        try:
            user, token = parse_xoauth2(data)
        except SaslError as exc:
            return AuthResult(success=False, handled=False, message=f"501 5.5.2 {exc}")
        return await self._bearer(token, user or None, xoauth2_failure())

    # --- transaction ----------------------------------------------------------------------------

    def _reset_transaction(self) -> None:
        self._sender: Sender | None = None
        self._mail: MailParams | None = None
        self._accepted: list[Accepted] = []
        self._refused = 0

    def _set_post_data_state(self) -> None:
        super()._set_post_data_state()  # type: ignore[no-untyped-call]
        self._reset_transaction()

    async def _ready_for_mail(self) -> bool:
        if self.session is None or not self.session.host_name:
            await self.push("503 5.5.1 say EHLO first")
            return False
        if not self.tls_active:
            await self.push("530 5.7.0 must issue a STARTTLS command first")
            return False
        if self.settings.mode == "submission" and self._identity is None:
            await self.push("530 5.7.0 authentication required (AUTH)")
            return False
        return True

    def _peer_identity(self) -> tuple[bool, str, str | None, str | None]:
        """Inbound: is the peer's certificate valid now (chain, dates, CRL), and its subject
        DN, normalised (compared with the liste blanche) and as written (shown)."""
        if self._peer is None:
            cert = self._client_certificate()
            if cert is None:
                self._peer = (True, "", None, None)
            else:
                verdict = self.services.trust.verify(cert)
                who = identity_of(cert)
                self._peer = (verdict.ok, verdict.reason, who.subject_dn, who.subject_dn_text)
        return self._peer

    async def smtp_MAIL(self, arg: str | None) -> None:
        if not await self._ready_for_mail():
            return
        if self._sender is not None:
            await self.push("503 5.5.1 nested MAIL command")
            return
        try:
            address, words = parse_path(arg or "", "FROM:")
            params = parse_mail_params(words)
        except ParamError as exc:
            await self.push(exc.reply)
            return
        if params.smtputf8 is False and not address.isascii():
            await self.push("553 5.6.7 non-ASCII address needs SMTPUTF8 (RFC 6531)")
            return
        refusal = self.services.pipeline.check_size(params.size)
        if refusal is not None:
            await self.push(refusal.reply())
            return
        pipeline = self.services.pipeline
        sender: Sender | Refusal
        if self.settings.mode == "inbound":
            ok, reason, dn, text = self._peer_identity()
            if not ok:
                sender = check_peer_certificate(False, reason) or Refusal(550, "5.7.1", reason)
            else:
                sender = await pipeline.peer_sender(address, dn, text)
        else:
            assert self._identity is not None
            sender = await pipeline.authenticated_sender(self._identity, address)
        if isinstance(sender, Refusal):
            log.info("%s: MAIL from %s refused: %s", self.settings.name, self._remote,
                     sender.reply())  # fmt: skip
            await self.push(sender.reply())
            return
        self._sender, self._mail = sender, params
        assert self.envelope is not None
        self.envelope.mail_from = address or "<>"
        self.envelope.smtp_utf8 = params.smtputf8
        await self.push("250 2.1.0 sender OK")

    async def smtp_RCPT(self, arg: str | None) -> None:
        if not await self._ready_for_mail():
            return
        if self._sender is None or self._mail is None:
            await self.push("503 5.5.1 need MAIL before RCPT")
            return
        if len(self._accepted) >= self.settings.max_recipients:
            # RFC 5321 §4.5.3.1.10: the client sends the rest in another transaction.
            await self.push(
                f"452 4.5.3 too many recipients (at most {self.settings.max_recipients})"
            )
            return
        try:
            address, words = parse_path(arg or "", "TO:")
            params = parse_rcpt_params(words)
        except ParamError as exc:
            await self.push(exc.reply)
            return
        if not address:
            await self.push("501 5.1.3 the null path is not a recipient")
            return
        route = await self.services.pipeline.route(
            self.settings.mode, self._sender, address, self._mail.size
        )
        if isinstance(route, Refusal):
            self._refused += 1
            log.info("%s: RCPT %s refused: %s", self.settings.name, address, route.reply())
            await self.push(route.reply())
            return
        self._accepted.append(Accepted(route, params.notify, params.orcpt))
        assert self.envelope is not None
        self.envelope.rcpt_tos.append(route.address)
        await self.push("250 2.1.5 recipient OK")

    async def smtp_DATA(self, arg: str) -> None:
        if not await self._ready_for_mail():
            return
        if not self._accepted:
            await self.push("503 5.5.1 no valid recipients" if self._sender else
                            "503 5.5.1 need MAIL and RCPT before DATA")  # fmt: skip
            return
        # While the message arrives the limit is data_timeout without a byte from the client
        # (data_received restarts it), not command_timeout from the DATA command: aiosmtpd arms
        # its timer once per command, which cut off any transfer longer than command_timeout.
        self._timeout_duration = self.settings.data_timeout
        self._receiving_data = True
        self._reset_timeout()
        try:
            await super().smtp_DATA(arg)
        finally:
            self._receiving_data = False
            self._timeout_duration = self.settings.command_timeout
            if self.transport is not None:
                self._reset_timeout()  # the next command is awaited from the reply on
            self._reset_transaction()

    async def on_data(self, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        assert isinstance(data, bytes)
        # RFC 5321 §2.3.8: lines end with CRLF only. A bare LF or CR is where SMTP smuggling
        # hides a second message (<LF>.<LF>, <CR>.<LF>, <LF>.<CR><LF>): refuse, never relay.
        crlf = data.count(b"\r\n")
        if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
            return "550 5.6.0 message refused: bare LF or CR in the data (lines must end in CRLF)"
        sender, params = self._sender, self._mail
        assert sender is not None and params is not None
        queue_id = secrets.token_hex(6).upper()
        trace = await self._trace_headers(data, queue_id)
        try:
            outcome = await self.services.pipeline.deliver(
                sender,
                self._accepted,
                trace + data,
                envid=params.envid,
                ret=params.ret,
                remote_address=self._remote,
                smtputf8=params.smtputf8,
            )
        except Exception as exc:  # the database or the disk failed: nothing was promised
            log.error("%s: storing %s failed: %s: %s", self.settings.name, queue_id,
                      type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")  # fmt: skip
            return "451 4.3.0 temporarily unable to store the message, try again later"
        refused = outcome.all_refused
        if refused is not None:
            return refused.reply()
        log.info("%s: %s accepted from <%s> (%s) for %d recipient(s), %d refused at DATA",
                 self.settings.name, queue_id, sender.address, self._remote, outcome.delivered,
                 len(outcome.refused))  # fmt: skip
        return f"250 2.0.0 {queue_id} message accepted"

    async def _trace_headers(self, data: bytes, queue_id: str) -> bytes:
        obj = self._ssl_object()
        version = obj.version() if obj is not None else None
        cipher = obj.cipher() if obj is not None else None
        authenticated = self._identity is not None
        protocol = "ESMTP" + ("S" if obj is not None else "") + ("A" if authenticated else "")
        if self.session is not None and self.session.host_name and not self.session.extended_smtp:
            protocol = "SMTP"
        rcpt = self._accepted[0].route.address if len(self._accepted) == 1 else None
        info = TraceInfo(
            helo=(self.session.host_name or "") if self.session else "",
            remote_ip=self._remote,
            protocol=protocol,
            tls_version=version,
            cipher=cipher[0] if cipher else None,
            recipient=rcpt,
            queue_id=queue_id,
            at=datetime.now(UTC),
        )
        results: list[str] = []
        if self.settings.mode == "inbound" and self.services.verify_dkim is not None:
            results = await self.services.verify_dkim(data)
        peer = self._peer_identity()[3] if self.settings.mode == "inbound" else None
        who = self._identity.address if self._identity is not None else None
        return received(info, self.settings.hostname) + authentication_results(
            self.settings.hostname, results, tls_peer=peer, auth=who
        )


class SmtpDoor:
    """One listening socket served by `MSSanteSMTP`."""

    def __init__(self, settings: DoorSettings, services: SmtpServices, sock: Any) -> None:
        self.name = settings.name
        self.settings = settings
        self.services = services
        self.sock = sock
        self._server: asyncio.Server | None = None

    def describe(self) -> str:
        host, port = self.sock.getsockname()[:2]
        scheme = "smtps" if self.settings.implicit_tls else "smtp"
        return f"{self.name}={scheme}://{host}:{port}"

    def _factory(self) -> MSSanteSMTP:
        protocol = MSSanteSMTP(self.settings, self.services)
        self.services.live.add(protocol)
        return protocol

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.settings.implicit_tls:  # RFC 8314 §3.3: TLS from the first byte
            self._server = await loop.create_server(
                self._factory,
                sock=self.sock,
                ssl=self.services.tls,
                ssl_handshake_timeout=self.settings.command_timeout,
            )
        else:
            self._server = await loop.create_server(self._factory, sock=self.sock)

    async def stop(self, grace: float) -> None:
        if self._server is None:
            return
        self._server.close()
        # Let transactions in progress finish (a message in DATA gets its reply), then close.
        deadline = asyncio.get_running_loop().time() + grace
        while asyncio.get_running_loop().time() < deadline and any(
            p.in_transaction for p in self._mine()
        ):
            await asyncio.sleep(0.05)
        for p in self._mine():
            if p.transport is not None:
                p.transport.close()

    def _mine(self) -> list[MSSanteSMTP]:
        return [p for p in self.services.live if p.settings is self.settings]

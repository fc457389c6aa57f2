"""The outbound hop: deliver one message to another MSSanté operator over mutual TLS.

Pure transport: no database, no queue. The relay worker calls :func:`relay` for one message
and one recipient domain and decides retries and bounces from the :class:`RelayResult`.
:func:`relay` never raises for network, DNS, TLS or SMTP trouble (only ``ValueError`` for
arguments no SMTP session could have produced: CR/LF in an address, a bad NOTIFY or RET).

Route (:func:`resolve_targets`)
    A static route (``settings.static_routes``) wins; otherwise the MX records of the domain,
    lowest preference first and shuffled among equal preferences (RFC 5321 §5.1); without MX
    records the domain's own A/AAAA records (the implicit MX, RFC 5321 §5.1). A null MX
    (RFC 7505 §3) and a domain that does not exist are permanent failures; DNS timeouts and
    SERVFAIL are temporary. MX host names are resolved through the same resolver, IPv4 first
    (our choice); a static route's host is resolved by the operating system (it is
    configuration, like ``/etc/hosts``), and a static route without a port uses
    ``settings.port`` (25 unless configured).

Session (one per target address, in order, until one takes the transaction)
    Connect; greeting; EHLO; **STARTTLS is mandatory** (RFC 3207): a peer that does not offer
    it or refuses it gets nothing but QUIT. The TLS context is :func:`certs.tls.client_context`
    with our server certificate as client certificate (mutual TLS between operators,
    Référentiel #1) and the IGC-Santé roots. The peer's certificate must chain to those roots
    (OpenSSL, during the handshake), pass the optional :class:`certs.truststore.TrustStore`
    (CRLs), and its subject DN, normalised (:mod:`certs.dn`), must be one the liste blanche
    lists for the domain (``allowed_dns``) -- checked before any MAIL command.

    **Host names.** The certificate must also match the name we connect to (RFC 6125 via
    OpenSSL ``check_hostname``): the MX host name for an MX route, the domain itself for an
    implicit MX, the configured host for a static route. A static route given as an IP
    literal has no name to check, so there only the chain and the DN are checked (the DN is
    what identifies an operator in MSSanté anyway).

    Then EHLO again (RFC 3207 §4.2), SIZE (RFC 1870), SMTPUTF8 (RFC 6531), 8BITMIME
    (RFC 6152), DSN (RFC 3461) and PIPELINING (RFC 2920) as offered; MAIL, one RCPT per
    recipient (a refused recipient does not stop the others), DATA with CRLF line endings and
    dot-stuffing (RFC 5321 §2.3.8, §4.5.2), QUIT.

Failures
    Anything that goes wrong before MAIL is sent (connection refused or lost, timeouts, TLS,
    no STARTTLS, a greeting or EHLO refusal, a peer DN not on the liste blanche, a SIZE limit
    too small, SMTPUTF8 needed and not offered) ends that attempt and the next target is
    tried. When every target failed, :attr:`RelayResult.error` lists each attempt and
    :attr:`RelayResult.permanent` is true only when every attempt failed permanently (5xx,
    DN not listed, SIZE, SMTPUTF8): one unreachable MX keeps the failure temporary. The
    replies a peer gives to MAIL, RCPT and DATA are final for this call (no other MX is
    tried); a connection lost or a timeout, at any step, moves on to the next target.
    Connection and TLS failures are always temporary.

This module speaks SMTP itself (a small asyncio client) rather than through aiosmtplib: it
needs the DN check between STARTTLS and the second EHLO, pipelining, per-recipient replies
and exact control of the DATA bytes, and it adds no dependency besides dnspython.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import re
import socket
import ssl
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.dn import DNSyntaxError, normalize_dn
from certs.errors import CertsError
from certs.identity import identity_of
from certs.tls import client_context
from certs.truststore import TrustStore
from smtp.dsn import xtext_encode

__all__ = [
    "OutboundRecipient",
    "RecipientResult",
    "RelayResult",
    "RelaySettings",
    "RelayTarget",
    "RouteError",
    "parse_static_route",
    "relay",
    "resolve_targets",
]

# RFC 5321 §4.5.3.1.5 limits reply lines to 512 octets; be lenient with real peers.
_MAX_REPLY_LINE = 8192
_MAX_REPLY_LINES = 200
_MAX_BUFFER = 1024 * 1024  # unread data from the peer before we give up on it
_CHUNK = 64 * 1024  # DATA is written in chunks, waiting for the socket between them
_QUIT_TIMEOUT = 5.0
_THREAD_THRESHOLD = 1024 * 1024  # prepare bigger messages off the event loop
_NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+\Z")  # RFC 3461 §4.2 atom
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|\Z)")  # RFC 3463 §2
_HELO_NAME = re.compile(r"[A-Za-z0-9.\-]+\Z|\[[A-Za-z0-9.:\-]+\]\Z")  # RFC 5321 §4.1.3
_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class RelayTarget:
    """One host to try: ``addresses`` from DNS, or empty to let the OS resolve ``host``."""

    host: str
    port: int
    preference: int
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class RelaySettings:
    helo_name: str  # our host name, for EHLO (RFC 5321 §4.1.1.1)
    client_cert: Path  # our server certificate (chain PEM), presented as TLS client cert
    client_key: Path
    trust_roots: Sequence[Path]  # IGC-Santé roots (+ intermediates file) to verify peers
    static_routes: Mapping[str, str]  # lower-case domain -> "host:port" or "host"
    resolver: str | None  # "127.0.0.1:5353" for a given DNS server; None: the system's
    port: int = 25
    connect_timeout: float = 30
    command_timeout: float = 300  # each reply, and each chunk written (RFC 5321 §4.5.3.2)
    dns_timeout: float = 10  # whole lifetime of one DNS query, retries included
    trust_store: TrustStore | None = None  # when given, the peer certificate's CRL status


@dataclass(frozen=True)
class RecipientResult:
    address: str
    code: int
    enhanced: str | None  # RFC 3463 status ("5.1.1") when the reply carried one
    text: str  # the reply text, enhanced code removed, lines joined by spaces
    permanent: bool  # 5xx
    accepted: bool  # the peer took responsibility for it (RCPT 2xx and end of DATA 2xx)


@dataclass(frozen=True)
class RelayResult:
    """What happened to one relay transaction.

    ``error`` is ``None`` when the transaction ran: ``recipients`` then has one result per
    recipient, in order, each accepted or refused with the peer's reply. When ``error`` is
    set the transaction failed as a whole (``permanent`` says how); ``recipients`` then only
    lists recipients the peer refused individually at RCPT before that failure (their own
    reply prevails), every other recipient shares ``error``.
    """

    mx: str | None  # the host whose greeting we got last; None if none answered
    recipients: list[RecipientResult]
    dsn_supported: bool  # the peer advertised DSN (RFC 3461 §4)
    error: str | None
    permanent: bool


@dataclass(frozen=True)
class OutboundRecipient:
    address: str
    notify: str | None  # RFC 3461 §4.1: "NEVER" or a list of SUCCESS, FAILURE, DELAY
    orcpt: str | None  # RFC 3461 §4.2, decoded: "rfc822;jean@example.fr" (xtext-encoded here)


class RouteError(Exception):
    """No target for a domain; ``permanent`` tells a bounce from a retry."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


# --------------------------------------------------------------------------- routes


def parse_static_route(value: str, default_port: int = 25) -> tuple[str, int]:
    """``"host:port"``, ``"host"``, ``"[v6]:port"``, ``"[v6]"`` -> ``(host, port)``.

    Raises ``ValueError`` naming the problem (configuration checks can call this).
    """
    text = value.strip()
    host, port_text = text, None
    if text.startswith("["):  # RFC 3986 §3.2.2 style IPv6 literal
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            raise ValueError(f"static route {value!r}: expected [IPv6] or [IPv6]:port")
        host = text[1:end]
        port_text = text[end + 2 :] if end + 1 < len(text) else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"static route {value!r}: {host!r} is not an IPv6 address") from None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        raise ValueError(f"static route {value!r}: write an IPv6 address as [address]:port")
    if not host:
        raise ValueError(f"static route {value!r} has no host")
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"static route {value!r}: port {port_text!r} is not 1-65535")
    return host, int(port_text)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _make_resolver(settings: RelaySettings) -> dns.asyncresolver.Resolver:
    if settings.resolver is None:
        resolver = dns.asyncresolver.Resolver()  # /etc/resolv.conf
    else:
        host, port = parse_static_route(settings.resolver, 53)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    resolver.lifetime = settings.dns_timeout
    resolver.timeout = settings.dns_timeout
    return resolver


def _dns_failure(
    what: str, exc: dns.exception.DNSException, missing: str = "the domain does not exist"
) -> RouteError:
    """DNS errors in words; only a name that does not exist is permanent."""
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return RouteError(f"{what}: {missing} (NXDOMAIN)", permanent=True)
    if isinstance(exc, dns.exception.Timeout):
        return RouteError(f"{what}: DNS timeout, no answer", permanent=False)
    if isinstance(exc, dns.resolver.NoNameservers):
        return RouteError(f"{what}: DNS servers failed to answer (SERVFAIL)", permanent=False)
    if isinstance(exc, dns.name.NameTooLong | dns.name.EmptyLabel | dns.name.LabelTooLong):
        return RouteError(f"{what}: not a valid domain name ({exc})", permanent=True)
    return RouteError(f"{what}: DNS error: {exc}", permanent=False)


async def _addresses(
    resolver: dns.asyncresolver.Resolver, host: str
) -> tuple[list[str], RouteError | None]:
    """IPv4 then IPv6 addresses of ``host``; the DNS failure, if any, besides."""
    found: list[str] = []
    failure: RouteError | None = None
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        try:
            answer = await resolver.resolve(host, rdtype)
        except dns.resolver.NoAnswer:
            continue
        except dns.exception.DNSException as exc:
            failure = failure or _dns_failure(f"address of {host}", exc, "no such host")
            if isinstance(exc, dns.resolver.NXDOMAIN):
                break  # no AAAA either
            continue
        found += [rdata.to_text() for rdata in answer]
    return found, failure


async def resolve_targets(domain: str, settings: RelaySettings) -> list[RelayTarget]:
    """Where to deliver mail for ``domain``, best first; :class:`RouteError` if nowhere."""
    name = domain.strip().rstrip(".").lower()
    route = settings.static_routes.get(name)
    if route is not None:
        try:
            host, port = parse_static_route(route, settings.port)
        except ValueError as exc:  # configuration: retry once it is fixed
            raise RouteError(str(exc), permanent=False) from None
        literal = (host,) if _is_ip_literal(host) else ()
        return [RelayTarget(host, port, 0, literal)]

    try:
        resolver = _make_resolver(settings)
    except (ValueError, dns.exception.DNSException) as exc:
        raise RouteError(f"DNS resolver configuration: {exc}", permanent=False) from None
    try:
        answer = await resolver.resolve(name, dns.rdatatype.MX)
        records = [(int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in answer]
    except dns.resolver.NoAnswer:
        records = []
    except dns.exception.DNSException as exc:
        raise _dns_failure(f"MX lookup for {name}", exc) from None

    # RFC 7505 §3-4: a single MX with an empty exchange (".") means "no mail service".
    exchanges = [r for r in records if r[1] not in ("", ".")]
    if records and not exchanges:
        raise RouteError(
            f"{name} publishes a null MX (RFC 7505): it accepts no mail", permanent=True
        )
    if not records:
        # RFC 5321 §5.1: no MX records -> the domain itself is the implicit MX.
        addresses, failure = await _addresses(resolver, name)
        if not addresses:
            if failure is not None:
                raise failure
            raise RouteError(f"{name} has neither MX nor address records", permanent=True)
        return [RelayTarget(name, settings.port, 0, tuple(addresses))]

    # RFC 5321 §5.1: lowest preference first, randomised among equal preferences.
    random.shuffle(exchanges)
    exchanges.sort(key=lambda record: record[0])
    targets: list[RelayTarget] = []
    failures: list[str] = []
    for preference, host in exchanges:
        addresses, failure = await _addresses(resolver, host)
        if addresses:
            targets.append(RelayTarget(host, settings.port, preference, tuple(addresses)))
        else:
            failures.append(str(failure) if failure else f"{host} has no address record")
    if not targets:
        # Temporary: an MX host without address is usually a DNS mistake being fixed.
        raise RouteError(
            f"no MX host of {name} has an address: {'; '.join(failures)}", permanent=False
        )
    return targets


# --------------------------------------------------------------------------- encoding


def _check_address(address: str, what: str) -> None:
    # A CR, LF or '>' would end the path early: command injection (RFC 5321 §4.1.2).
    if any(c in address for c in "\r\n<>") or any(ord(c) < 32 for c in address):
        raise ValueError(f"{what} {address!r} cannot be sent in an SMTP command")


def _notify(value: str) -> str:
    """RFC 3461 §4.1: ``NEVER`` alone, or SUCCESS / FAILURE / DELAY separated by commas."""
    items = [item.strip().upper() for item in value.split(",")]
    if items == ["NEVER"] or (set(items) <= _NOTIFY_VALUES and len(set(items)) == len(items)):
        return ",".join(items)
    raise ValueError(f"NOTIFY {value!r} is not NEVER or a list of SUCCESS, FAILURE, DELAY")


def _orcpt(value: str) -> str:
    """RFC 3461 §4.2: ``addr-type ";" xtext``; a bare address is taken as rfc822."""
    addr_type, separator, address = value.partition(";")
    if not separator:
        addr_type, address = "rfc822", value
    if not _ADDR_TYPE.match(addr_type.strip()):
        raise ValueError(f"ORCPT {value!r} has an invalid address type")
    return f"{addr_type.strip()};{xtext_encode(address.strip())}"


@dataclass(frozen=True)
class _Message:
    wire: bytes  # CRLF, dot-stuffed, ending with the "." line
    size: int  # RFC 1870 §4: octets with CRLFs, without stuffing or the final dot
    eight_bit: bool


def _prepare(data: bytes) -> _Message:
    # RFC 5321 §2.3.8: lines end with CRLF only; lone CR and LF become CRLF.
    text = _LINE_ENDINGS.sub(b"\r\n", data)
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    size = len(text)
    # RFC 5321 §4.5.2: a line starting with "." gets one more; then "." CRLF ends DATA.
    stuffed = (b"." + text if text.startswith(b".") else text).replace(b"\r\n.", b"\r\n..")
    return _Message(stuffed + b".\r\n", size, not data.isascii())


# --------------------------------------------------------------------------- the wire


class _Failure(Exception):
    """Ends one attempt; ``permanent`` for a 5xx or a policy refusal."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.greeted = False  # the peer answered (RelayResult.mx)
        self.dsn = False  # and advertised DSN


@dataclass(frozen=True)
class _Reply:
    code: int
    enhanced: str | None
    text: str
    lines: tuple[str, ...]  # each line's text after the code, as received

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        parts = [str(self.code), self.enhanced or "", self.text]
        return " ".join(part for part in parts if part)


def _parse_reply(lines: list[str]) -> _Reply:
    code = int(lines[0][:3])
    enhanced: str | None = None
    texts: list[str] = []
    raw = tuple(line[4:] for line in lines)
    for line in raw:
        text = line.strip()
        match = _ENHANCED.match(text)
        # RFC 2034 §4 / RFC 3463 §2: the class digit matches the reply code's first digit.
        if match and match.group(1) == str(code)[0]:
            enhanced = enhanced or match.group(0)
            text = text[match.end() :].strip()
        if text:
            texts.append(text)
    return _Reply(code, enhanced, " ".join(texts), raw)


class _Wire(asyncio.Protocol):
    """A byte stream with flow control; survives ``loop.start_tls`` (same protocol object)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self._closed: BaseException | None = None
        self._data_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _MAX_BUFFER and self.transport is not None:
            # Replies are short; a peer flooding us is not worth holding in memory.
            self._close(ConnectionAbortedError("peer sent too much unrequested data"))
            self.transport.abort()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._close(ConnectionResetError("the peer closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._close(exc or ConnectionResetError("the peer closed the connection"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _close(self, exc: BaseException) -> None:
        if self._closed is None:
            self._closed = exc
        self._wake_reader()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(exc)

    def _wake_reader(self) -> None:
        if self._data_waiter is not None and not self._data_waiter.done():
            self._data_waiter.set_result(None)

    async def readline(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[: end + 1])
                del self.buffer[: end + 1]
                return line
            if self._closed is not None:
                raise ConnectionResetError(str(self._closed) or "connection lost")
            if len(self.buffer) > _MAX_REPLY_LINE:
                raise _Failure(f"peer sent a reply line longer than {_MAX_REPLY_LINE} octets")
            self._data_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._data_waiter
            finally:
                self._data_waiter = None

    async def write(self, data: bytes | memoryview) -> None:
        if self._closed is not None or self.transport is None:
            raise ConnectionResetError(str(self._closed) or "connection lost")
        self.transport.write(data)
        if self._paused:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None


class _Session:
    """One SMTP client connection (RFC 5321 §4); every error becomes a :class:`_Failure`."""

    def __init__(self, wire: _Wire, settings: RelaySettings) -> None:
        self.wire = wire
        self.settings = settings
        self.extensions: dict[str, str] = {}
        self.greeted = False
        self.tls = False
        self.broken = False  # out of step with the peer: no QUIT, just close
        self.secure_ehlo = False  # extensions come from the EHLO sent under TLS

    @classmethod
    async def connect(cls, host: str, port: int, settings: RelaySettings) -> _Session:
        loop = asyncio.get_running_loop()
        try:
            _, wire = await asyncio.wait_for(
                loop.create_connection(_Wire, host, port), settings.connect_timeout
            )
        except TimeoutError:
            raise _Failure(f"connection timed out after {settings.connect_timeout:g}s") from None
        except socket.gaierror as exc:
            raise _Failure(f"cannot resolve {host}: {exc.strerror}") from None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise _Failure(f"cannot connect: {reason}") from None
        return cls(wire, settings)

    async def reply(self, what: str, timeout: float | None = None) -> _Reply:
        """Read one (possibly multi-line) reply (RFC 5321 §4.2.1)."""
        limit = self.settings.command_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(self._read_reply(what), limit)
        except TimeoutError:
            self.broken = True
            raise _Failure(f"no reply to {what} within {limit:g}s") from None
        except (ConnectionError, OSError) as exc:
            self.broken = True
            raise _Failure(f"connection lost waiting for the reply to {what}: {exc}") from None
        except _Failure:
            self.broken = True
            raise

    async def _read_reply(self, what: str) -> _Reply:
        lines: list[str] = []
        while True:
            raw = await self.wire.readline()
            line = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
            if not (len(line) >= 3 and line[:3].isdigit() and line[3:4] in ("", " ", "-")):
                raise _Failure(f"malformed reply to {what}: {line[:100]!r}")
            if lines and line[:3] != lines[0][:3]:
                raise _Failure(f"inconsistent codes in the multi-line reply to {what}")
            lines.append(line)
            if line[3:4] != "-":
                return _parse_reply(lines)
            if len(lines) >= _MAX_REPLY_LINES:
                raise _Failure(f"reply to {what} has more than {_MAX_REPLY_LINES} lines")

    async def send(self, data: bytes | memoryview, what: str) -> None:
        try:
            await asyncio.wait_for(self.wire.write(data), self.settings.command_timeout)
        except TimeoutError:
            self.broken = True
            raise _Failure(
                f"could not send {what} within {self.settings.command_timeout:g}s"
            ) from None
        except (ConnectionError, OSError) as exc:
            self.broken = True
            raise _Failure(f"connection lost sending {what}: {exc}") from None

    async def command(self, line: str, what: str | None = None) -> _Reply:
        label = what or line.split(" ", 1)[0]
        await self.send(line.encode("utf-8") + b"\r\n", label)
        return await self.reply(label)

    async def greeting(self) -> None:
        # RFC 5321 §3.1 / §4.3.2: 220 to proceed; 554 means "no service here".
        reply = await self.reply("the greeting")
        self.greeted = True
        if reply.code != 220:
            raise _Failure(f"peer refused the session: {reply}", permanent=reply.permanent)

    async def ehlo(self) -> None:
        # RFC 5321 §4.1.1.1: first line greets, each further line is "keyword [params]".
        reply = await self.command(f"EHLO {self.settings.helo_name}")
        if not reply.positive:
            # No ESMTP means no STARTTLS: never worth a plain-text fallback to HELO.
            raise _Failure(f"peer refused EHLO: {reply}", permanent=reply.permanent)
        self.extensions = {}
        for line in reply.lines[1:]:
            keyword, _, params = line.strip().partition(" ")
            if keyword:
                self.extensions[keyword.upper()] = params.strip()

    async def starttls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        # RFC 3207 §4: 220 then the handshake; 454 "TLS not available".
        reply = await self.command("STARTTLS")
        if reply.code != 220:
            raise _Failure(f"peer refused STARTTLS: {reply}")
        if self.wire.buffer:
            self.broken = True
            # Bytes sent before the handshake would be read as if protected (STARTTLS
            # response injection, CVE-2011-0411 class): refuse to go on.
            raise _Failure("peer sent data after its STARTTLS reply, before the TLS handshake")
        loop = asyncio.get_running_loop()
        assert self.wire.transport is not None
        try:
            transport = await asyncio.wait_for(
                loop.start_tls(
                    self.wire.transport,
                    self.wire,
                    context,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=self.settings.connect_timeout,
                ),
                self.settings.connect_timeout + 1,
            )
        except ssl.SSLCertVerificationError as exc:
            self.broken = True
            raise _Failure(
                f"TLS handshake failed: peer certificate verification failed: {exc.verify_message}"
            ) from None
        except ssl.SSLError as exc:
            self.broken = True
            raise _Failure(f"TLS handshake failed: {exc}") from None
        except TimeoutError:
            self.broken = True
            raise _Failure("TLS handshake timed out") from None
        except (ConnectionError, OSError) as exc:
            self.broken = True
            raise _Failure(f"connection lost during the TLS handshake: {exc}") from None
        if transport is None:  # pragma: no cover - the connection was closed meanwhile
            raise _Failure("connection lost during the TLS handshake")
        self.wire.transport = transport
        self.tls = True

    def peer_certificate(self) -> x509.Certificate:
        assert self.wire.transport is not None
        ssl_object = self.wire.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise _Failure("peer sent no TLS certificate")
        try:
            return x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise _Failure(f"peer certificate cannot be read: {exc}") from None

    async def quit(self) -> None:
        """RFC 5321 §4.1.1.10, politely and briefly; errors do not matter any more."""
        if self.broken or self.wire.transport is None or self.wire.transport.is_closing():
            return
        try:
            await asyncio.wait_for(self.wire.write(b"QUIT\r\n"), _QUIT_TIMEOUT)
            await asyncio.wait_for(self.wire.readline(), _QUIT_TIMEOUT)
        except (TimeoutError, ConnectionError, OSError, _Failure):
            pass

    def close(self) -> None:
        if self.wire.transport is not None:
            self.wire.transport.close()


# --------------------------------------------------------------------------- the transaction


@dataclass(frozen=True)
class _Plan:
    domain: str
    sender: str
    recipients: tuple[OutboundRecipient, ...]
    ret: str | None
    envid: str | None
    smtputf8: bool
    allowed_dns: frozenset[str]


def _plan(
    domain: str,
    sender: str,
    recipients: Sequence[OutboundRecipient],
    ret: str | None,
    envid: str | None,
    allowed_dns: Collection[str],
    smtputf8: bool,
) -> _Plan:
    """Check the arguments (``ValueError``: a programming error upstream)."""
    if not recipients:
        raise ValueError("relay() needs at least one recipient")
    _check_address(sender, "sender")
    for recipient in recipients:
        _check_address(recipient.address, "recipient")
        if not recipient.address:
            raise ValueError("a recipient address cannot be empty")
        if recipient.notify is not None:
            _notify(recipient.notify)
        if recipient.orcpt is not None:
            _orcpt(recipient.orcpt)
    if ret is not None and ret.strip().upper() not in ("FULL", "HDRS"):  # RFC 3461 §4.3
        raise ValueError(f"RET {ret!r} is neither FULL nor HDRS")
    # The caller passes normalised DNs; normalising again is idempotent and forgiving.
    allowed: set[str] = set()
    for dn in allowed_dns:
        try:
            allowed.add(normalize_dn(dn))
        except DNSyntaxError:
            continue  # a DN nobody's certificate can have
    return _Plan(
        domain=domain.strip().rstrip(".").lower(),
        sender=sender,
        recipients=tuple(recipients),
        ret=ret.strip().upper() if ret is not None else None,
        envid=envid,
        smtputf8=smtputf8,
        allowed_dns=frozenset(allowed),
    )


def _recipient_result(address: str, reply: _Reply, accepted: bool) -> RecipientResult:
    return RecipientResult(
        address=address,
        code=reply.code,
        enhanced=reply.enhanced,
        text=reply.text,
        permanent=reply.permanent,
        accepted=accepted,
    )


def _check_peer(cert: x509.Certificate, plan: _Plan, settings: RelaySettings) -> None:
    identity = identity_of(cert)
    if settings.trust_store is not None:  # revocation (CRL) and serverAuth usage
        verdict = settings.trust_store.verify(cert, purpose=ExtendedKeyUsageOID.SERVER_AUTH)
        if not verdict:
            raise _Failure(
                f"peer certificate {identity.subject_dn_text} rejected: {verdict.reason}"
            )
    # Référentiel #1: the peer's DN must be a DNCertificatOperateur listed for the domain.
    if identity.subject_dn not in plan.allowed_dns:
        raise _Failure(
            f"peer certificate DN {identity.subject_dn_text} is not listed for domain "
            f"{plan.domain} in the liste blanche",
            permanent=True,
        )


def _mail_parameters(session: _Session, plan: _Plan, message: _Message) -> list[str]:
    """MAIL FROM parameters for what the peer offers; :class:`_Failure` when it cannot do."""
    extensions = session.extensions
    params: list[str] = []
    if "SIZE" in extensions:
        # RFC 1870 §4-6: a non-zero limit is the largest message the peer accepts.
        limit_text = extensions["SIZE"].split(" ", 1)[0]
        limit = int(limit_text) if limit_text.isdigit() else 0
        if limit and message.size > limit:
            raise _Failure(
                f"message of {message.size} octets exceeds the peer's SIZE limit of "
                f"{limit} octets (RFC 1870)",
                permanent=True,
            )
        params.append(f"SIZE={message.size}")
    if message.eight_bit and "8BITMIME" in extensions:
        params.append("BODY=8BITMIME")  # RFC 6152 §2
    # Without 8BITMIME offered, 8-bit data goes as it is (our choice): converting it to
    # 7 bits would break its DKIM signature, and MSSanté peers all offer 8BITMIME.
    needs_utf8 = (
        plan.smtputf8
        or not plan.sender.isascii()
        or any(not r.address.isascii() for r in plan.recipients)
    )
    if needs_utf8:
        if "SMTPUTF8" not in extensions:
            # RFC 6531 §3.2: without SMTPUTF8 offered the message cannot be sent as is.
            raise _Failure(
                "message needs SMTPUTF8 (RFC 6531) and the peer does not offer it",
                permanent=True,
            )
        params.append("SMTPUTF8")  # RFC 6531 §3.4
    if "DSN" in extensions:
        if plan.ret is not None:
            params.append(f"RET={plan.ret}")  # RFC 3461 §4.3
        if plan.envid is not None:
            params.append(f"ENVID={xtext_encode(plan.envid)}")  # RFC 3461 §4.4
    return params


def _rcpt_line(recipient: OutboundRecipient, dsn: bool) -> str:
    line = f"RCPT TO:<{recipient.address}>"
    if dsn:
        if recipient.notify is not None:
            line += f" NOTIFY={_notify(recipient.notify)}"  # RFC 3461 §4.1
        if recipient.orcpt is not None:
            line += f" ORCPT={_orcpt(recipient.orcpt)}"  # RFC 3461 §4.2
    return line


async def _transaction(
    session: _Session, target: RelayTarget, plan: _Plan, message: _Message
) -> RelayResult:
    dsn = "DSN" in session.extensions
    mail_line = " ".join([f"MAIL FROM:<{plan.sender}>", *_mail_parameters(session, plan, message)])
    rcpt_lines = [_rcpt_line(r, dsn) for r in plan.recipients]

    def result(
        recipients: list[RecipientResult], error: str | None = None, permanent: bool = False
    ) -> RelayResult:
        return RelayResult(target.host, recipients, dsn, error, permanent)

    rcpt_replies: list[_Reply] = []
    if "PIPELINING" in session.extensions:
        # RFC 2920 §3.1: MAIL and the RCPTs go in one group; replies come back in order.
        group = "".join(f"{line}\r\n" for line in [mail_line, *rcpt_lines])
        await session.send(group.encode("utf-8"), "MAIL FROM and RCPT TO")
        mail_reply = await session.reply("MAIL FROM")
        for recipient in plan.recipients:
            try:
                rcpt_replies.append(await session.reply(f"RCPT TO:<{recipient.address}>"))
            except _Failure:
                if mail_reply.positive:
                    raise
                break  # MAIL was refused: its reply is the answer, whatever follows
    else:
        mail_reply = await session.command(mail_line, "MAIL FROM")
        if mail_reply.positive:
            for recipient, line in zip(plan.recipients, rcpt_lines, strict=True):
                rcpt_replies.append(await session.command(line, f"RCPT TO:<{recipient.address}>"))
    if not mail_reply.positive:
        return result([], f"MAIL FROM refused: {mail_reply}", mail_reply.permanent)

    refused = [
        _recipient_result(r.address, reply, False)
        for r, reply in zip(plan.recipients, rcpt_replies, strict=True)
        if not reply.positive
    ]
    if len(refused) == len(plan.recipients):  # RFC 5321 §3.3: no DATA without a recipient
        return result(refused)

    data_reply = await session.command("DATA")
    if data_reply.code != 354:  # RFC 5321 §4.2.1: 354 intermediate reply
        return result(refused, f"DATA refused: {data_reply}", data_reply.permanent)
    view = memoryview(message.wire)
    for start in range(0, len(view), _CHUNK):
        await session.send(view[start : start + _CHUNK], "the message")
    try:
        final = await session.reply("the end of the message")
    except _Failure as exc:
        # RFC 5321 §6.1: the peer may hold the message already; retry later (the caller),
        # not now through another MX, which would make a duplicate all but certain.
        return result(refused, f"{exc.message}; the peer may have taken the message", False)
    if not final.positive:
        return result(refused, f"message refused after DATA: {final}", final.permanent)
    # RFC 5321 §4.2.5: the 250 after the final dot is the peer taking responsibility.
    return result(
        [
            _recipient_result(r.address, final, True)
            if reply.positive
            else _recipient_result(r.address, reply, False)
            for r, reply in zip(plan.recipients, rcpt_replies, strict=True)
        ]
    )


class _Contexts:
    """The TLS client contexts, with and without host name checking, built once per relay."""

    def __init__(self, settings: RelaySettings) -> None:
        self._settings = settings
        self._built: dict[bool, ssl.SSLContext] = {}

    def get(self, check_hostname: bool) -> ssl.SSLContext:
        if check_hostname not in self._built:
            self._built[check_hostname] = client_context(
                list(self._settings.trust_roots),
                cert_file=self._settings.client_cert,
                key_file=self._settings.client_key,
                check_hostname=check_hostname,
            )
        return self._built[check_hostname]


async def _attempt(
    target: RelayTarget,
    address: str,
    plan: _Plan,
    message: _Message,
    settings: RelaySettings,
    context: ssl.SSLContext,
    check_hostname: bool,
) -> RelayResult:
    """One session with one address; :class:`_Failure` when no transaction took place."""
    session = await _Session.connect(address, target.port, settings)
    try:
        await session.greeting()
        await session.ehlo()
        if "STARTTLS" not in session.extensions:
            # RFC 3207 §4 / Référentiel #1: operators only exchange mail over TLS.
            raise _Failure("peer does not offer STARTTLS; the message is never sent in clear")
        await session.starttls(context, target.host if check_hostname else None)
        _check_peer(session.peer_certificate(), plan, settings)
        try:
            await session.ehlo()  # RFC 3207 §4.2: forget what was learnt before TLS
        except _Failure as exc:
            if session.broken:  # TLS 1.3 reports a refused client certificate only now
                exc.message += (
                    " (right after the TLS handshake: does the peer trust our certificate?)"
                )
            raise
        session.secure_ehlo = True
        return await _transaction(session, target, plan, message)
    except (_Failure, OSError) as caught:
        if isinstance(caught, _Failure):
            failure = caught
        else:  # an I/O error the steps above did not expect: still just a failed attempt
            session.broken = True
            failure = _Failure(f"connection error: {caught}")
        failure.greeted = session.greeted
        failure.dsn = session.secure_ehlo and "DSN" in session.extensions
        raise failure from None
    finally:
        task = asyncio.current_task()
        if task is None or not task.cancelling():  # a cancelled relay does not linger
            await session.quit()
        session.close()


def _label(target: RelayTarget, address: str) -> str:
    shown = address if ":" not in address else f"[{address}]"
    if address == target.host:
        return f"{shown}:{target.port}"
    return f"{target.host} {shown}:{target.port}"


async def relay(
    *,
    domain: str,
    sender: str,
    recipients: Sequence[OutboundRecipient],
    data: bytes,
    ret: str | None,
    envid: str | None,
    settings: RelaySettings,
    allowed_dns: Collection[str],
    smtputf8: bool = False,
) -> RelayResult:
    """Deliver ``data`` from ``sender`` to ``recipients``, all in ``domain``, to its operator.

    ``allowed_dns``: the normalised DNs the liste blanche lists for ``domain``. ``ret`` and
    ``envid`` (RFC 3461 §4.3, §4.4, ENVID decoded) and each recipient's NOTIFY / ORCPT are
    passed on when the peer offers DSN. ``smtputf8``: the message or its envelope needs
    RFC 6531 (non-ASCII addresses in the envelope are detected here too).
    """
    if not _HELO_NAME.match(settings.helo_name):
        raise ValueError(f"helo_name {settings.helo_name!r} is not a host name")
    plan = _plan(domain, sender, recipients, ret, envid, allowed_dns, smtputf8)
    try:
        targets = await resolve_targets(plan.domain, settings)
    except RouteError as exc:
        return RelayResult(None, [], False, str(exc), exc.permanent)
    if len(data) > _THREAD_THRESHOLD:  # a big body must not stall the other sessions
        message = await asyncio.to_thread(_prepare, data)
    else:
        message = _prepare(data)
    contexts = _Contexts(settings)

    failures: list[str] = []
    permanent = True
    mx: str | None = None
    dsn = False
    for target in targets:
        check_hostname = not _is_ip_literal(target.host)
        try:
            context = contexts.get(check_hostname)
        except CertsError as exc:  # our own certificate, key or trust files
            return RelayResult(mx, [], dsn, f"TLS configuration error: {exc}", False)
        for address in target.addresses or (target.host,):
            try:
                return await _attempt(
                    target, address, plan, message, settings, context, check_hostname
                )
            except _Failure as exc:
                failures.append(f"{_label(target, address)}: {exc.message}")
                permanent = permanent and exc.permanent
                if exc.greeted:
                    mx, dsn = target.host, exc.dsn
    return RelayResult(mx, [], dsn, "; ".join(failures), permanent)

"""The outbound relay client, black-box over real sockets.

The "peer operator" is a scripted SMTP server on 127.0.0.1 (a raw asyncio server, so that it
can offer or withhold STARTTLS, DSN, PIPELINING, SIZE and answer anything; aiosmtpd refuses
the DSN parameters) requiring a client certificate from the development PKI; one test also
delivers to a real aiosmtpd server. DNS answers come from :class:`tests.dnsserver.LocalDNS`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509

from certs.identity import identity_of, load_certificate
from certs.pki import DevPKI, IssuedCertificate
from certs.tls import server_context
from certs.truststore import TrustStore
from smtp.relay_client import (
    OutboundRecipient,
    RelayResult,
    RelaySettings,
    RelayTarget,
    parse_static_route,
    relay,
    resolve_targets,
)
from tests.dnsserver import LocalDNS

DOMAIN = "peer.test"
SENDER = "camille.martin@local.test"
GOOD = "jean.dupont@peer.test"
BAD = "inconnu@peer.test"
OTHER_DN = "CN=smtp.other.fr,OU=99999999999999,O=Other,ST=Paris (75),C=FR"

# --------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class Certs:
    pki: DevPKI
    other: DevPKI  # an unrelated PKI
    ours: IssuedCertificate
    peer: IssuedCertificate
    foreign: IssuedCertificate  # from an unrelated CA
    peer_dn: str  # normalised, as the liste blanche cache hands it over


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    pki = DevPKI.create(tmp_path_factory.mktemp("pki") / "pki")
    other = DevPKI.create(tmp_path_factory.mktemp("other") / "pki", organisation="AUTRE PKI")
    ours = pki.issue_server(
        "mss.local.test", organisation="LOCAL OP", structure_id="11111111111111"
    )
    peer = pki.issue_server(
        "mx.peer.test",
        organisation="PEER OP",
        structure_id="22222222222222",
        alt_names=["mx2.peer.test", "peer.test", "localhost"],
    )
    foreign = other.issue_server(
        "mx.peer.test", organisation="PEER OP", structure_id="22222222222222"
    )
    peer_dn = identity_of(load_certificate(peer.cert_path)).subject_dn
    return Certs(pki, other, ours, peer, foreign, peer_dn)


# --------------------------------------------------------------------------- the peer


@dataclass
class Behaviour:
    starttls: bool = True
    dsn: bool = True
    pipelining: bool = True
    size: int | None = None
    smtputf8: bool = True
    mail_reply: str = "250 2.1.0 sender ok"
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> reply line
    data_reply: str | None = "250 2.0.0 queued as 4F2A"  # None: hang up instead
    greeting: str = "220 peer.test ESMTP ready"


@dataclass
class PeerSession:
    plain: list[str] = field(default_factory=list)  # commands received before TLS
    tls: list[str] = field(default_factory=list)  # commands received under TLS
    client_cert: x509.Certificate | None = None
    tls_error: BaseException | None = None
    raw_data: bytes | None = None  # DATA as on the wire (stuffed), without the final dot
    message: bytes | None = None  # DATA after removing the stuffing (RFC 5321 §4.5.2)

    @property
    def mail(self) -> list[str]:
        return [c for c in self.plain + self.tls if c.upper().startswith("MAIL")]

    @property
    def rcpts(self) -> list[str]:
        return [c for c in self.plain + self.tls if c.upper().startswith("RCPT")]


class Peer:
    """A scripted SMTP server with STARTTLS and a mandatory client certificate."""

    def __init__(self, context: ssl.SSLContext, behaviour: Behaviour) -> None:
        self.context = context
        self.behaviour = behaviour
        self.sessions: list[PeerSession] = []
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def session(self) -> PeerSession:
        assert len(self.sessions) == 1, self.sessions
        return self.sessions[0]

    async def start(self) -> Peer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _ehlo(self, tls: bool) -> list[str]:
        b = self.behaviour
        lines = ["peer.test hello", "8BITMIME", "ENHANCEDSTATUSCODES"]
        lines += ["PIPELINING"] if b.pipelining else []
        lines += ["DSN"] if b.dsn else []
        lines += ["SMTPUTF8"] if b.smtputf8 else []
        lines += [f"SIZE {b.size}"] if b.size is not None else ["SIZE"]
        lines += ["STARTTLS"] if b.starttls and not tls else []
        return [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = PeerSession()
        self.sessions.append(session)
        tls = False

        async def say(*lines: str) -> None:
            writer.write("".join(f"{line}\r\n" for line in lines).encode())
            await writer.drain()

        try:
            await say(self.behaviour.greeting)
            while line := await reader.readline():
                command = line.rstrip(b"\r\n").decode("utf-8", "replace")
                (session.tls if tls else session.plain).append(command)
                verb = command.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    await say(*self._ehlo(tls))
                elif verb == "STARTTLS" and self.behaviour.starttls and not tls:
                    await say("220 2.0.0 ready to start TLS")
                    try:
                        await writer.start_tls(self.context)
                    except (ssl.SSLError, OSError) as exc:
                        session.tls_error = exc
                        return
                    tls = True
                    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
                    session.client_cert = x509.load_der_x509_certificate(der)
                elif verb == "MAIL":
                    await say(self.behaviour.mail_reply)
                elif verb == "RCPT":
                    address = command.split("<", 1)[1].split(">", 1)[0]
                    await say(self.behaviour.rcpt_replies.get(address, "250 2.1.5 recipient ok"))
                elif verb == "DATA":
                    await say("354 end with <CRLF>.<CRLF>")
                    raw = b""
                    while (chunk := await reader.readline()) != b".\r\n":
                        assert chunk, "connection closed inside DATA"
                        raw += chunk
                    session.raw_data = raw
                    session.message = b"".join(
                        part[1:] if part.startswith(b".") else part
                        for part in raw.splitlines(keepends=True)
                    )
                    if self.behaviour.data_reply is None:
                        return
                    await say(self.behaviour.data_reply)
                elif verb == "QUIT":
                    await say("221 2.0.0 bye")
                    return
                else:
                    await say("502 5.5.1 not implemented")
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            writer.close()


StartPeer = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def start_peer(certs: Certs) -> AsyncIterator[StartPeer]:
    peers: list[Peer] = []

    async def start(
        behaviour: Behaviour | None = None,
        cert: IssuedCertificate | None = None,
        trusts: DevPKI | None = None,
    ) -> Peer:
        issued = cert or certs.peer
        context = server_context(
            issued.chain_path,
            issued.key_path,
            trust_files=[(trusts or certs.pki).trust_roots_path],
            require_client_cert=True,
        )
        peer = await Peer(context, behaviour or Behaviour()).start()
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        await peer.stop()


@pytest.fixture
def dns() -> Iterator[LocalDNS]:
    with LocalDNS() as server:
        yield server


def settings_for(certs: Certs, dns: LocalDNS, port: int, **changes: Any) -> RelaySettings:
    settings = RelaySettings(
        helo_name="mss.local.test",
        client_cert=certs.ours.chain_path,
        client_key=certs.ours.key_path,
        trust_roots=[certs.pki.trust_roots_path, certs.pki.trust_intermediates_path],
        static_routes={},
        resolver=dns.address,
        port=port,
        connect_timeout=5,
        command_timeout=10,
        dns_timeout=2,
    )
    return replace(settings, **changes)


def mx_records(dns: LocalDNS, *mx: tuple[int, str, str]) -> None:
    """MX records for DOMAIN: (preference, host, IPv4 address)."""
    dns.set(DOMAIN, "MX", [f"{preference} {host}." for preference, host, _ in mx])
    for _, host, address in mx:
        dns.set(host, "A", [address])


MESSAGE = (
    b"From: <camille.martin@local.test>\r\n"
    b"To: <jean.dupont@peer.test>\r\n"
    b"Subject: compte rendu\r\n"
    b"\r\n"
    b".une ligne qui commence par un point\r\n"
    b"..deux points\r\n"
    b".\r\n"
    b"fin\r\n"
)


async def send(
    settings: RelaySettings,
    allowed: list[str],
    *,
    recipients: list[OutboundRecipient] | None = None,
    data: bytes = MESSAGE,
    ret: str | None = "HDRS",
    envid: str | None = "env+1=x",
    smtputf8: bool = False,
    sender: str = SENDER,
) -> RelayResult:
    return await relay(
        domain=DOMAIN,
        sender=sender,
        recipients=recipients or [OutboundRecipient(GOOD, "SUCCESS,FAILURE", f"rfc822;{GOOD}")],
        data=data,
        ret=ret,
        envid=envid,
        settings=settings,
        allowed_dns=allowed,
        smtputf8=smtputf8,
    )


# --------------------------------------------------------------------------- delivery


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
async def test_delivery_through_mx_with_dsn(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer, pipelining: bool
) -> None:
    peer = await start_peer(Behaviour(pipelining=pipelining))
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    recipients = [
        OutboundRecipient(GOOD, "SUCCESS,FAILURE", f"rfc822;{GOOD}"),
        OutboundRecipient("b+x@peer.test", "never", None),
    ]
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn], recipients=recipients)

    assert result.error is None, result.error
    assert result.mx == "mx.peer.test"
    assert result.dsn_supported
    assert [(r.address, r.accepted, r.code, r.enhanced) for r in result.recipients] == [
        (GOOD, True, 250, "2.0.0"),
        ("b+x@peer.test", True, 250, "2.0.0"),
    ]
    assert result.recipients[0].text == "queued as 4F2A"
    session = peer.session
    # Nothing but EHLO and STARTTLS in clear (RFC 3207); EHLO again under TLS (§4.2).
    assert session.plain == ["EHLO mss.local.test", "STARTTLS"]
    assert session.tls[0] == "EHLO mss.local.test"
    assert session.tls[-1] == "QUIT"
    # Mutual TLS: the peer saw our server certificate as the client certificate.
    assert session.client_cert == load_certificate(certs.ours.cert_path)
    # DSN parameters (RFC 3461 §4), ENVID and ORCPT xtext-encoded.
    assert session.mail == [f"MAIL FROM:<{SENDER}> SIZE={len(MESSAGE)} RET=HDRS ENVID=env+2B1+3Dx"]
    assert session.rcpts == [
        f"RCPT TO:<{GOOD}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;{GOOD}",
        "RCPT TO:<b+x@peer.test> NOTIFY=NEVER",
    ]
    # Byte-exact message, dot-stuffed on the wire (RFC 5321 §4.5.2).
    assert session.message == MESSAGE
    assert session.raw_data is not None
    assert b"\r\n..une ligne" in session.raw_data
    assert b"\r\n...deux points\r\n" in session.raw_data
    assert b"\r\n..\r\nfin\r\n" in session.raw_data


async def test_line_endings_are_normalised(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer()
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn], data=b"a\nb\r.c")
    assert result.error is None, result.error
    assert peer.session.message == b"a\r\nb\r\n.c\r\n"
    assert peer.session.raw_data == b"a\r\nb\r\n..c\r\n"


async def test_dsn_parameters_omitted_when_not_advertised(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer(Behaviour(dsn=False))
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn])
    assert result.error is None, result.error
    assert not result.dsn_supported
    assert result.recipients[0].accepted
    assert peer.session.mail == [f"MAIL FROM:<{SENDER}> SIZE={len(MESSAGE)}"]
    assert peer.session.rcpts == [f"RCPT TO:<{GOOD}>"]


async def test_static_route_by_host_name(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer()
    routes = {DOMAIN: f"localhost:{peer.port}"}
    result = await send(settings_for(certs, dns, 1, static_routes=routes), [certs.peer_dn])
    assert result.error is None, result.error
    assert result.mx == "localhost"
    assert dns.queries == []  # the static route is checked before DNS
    assert peer.session.message == MESSAGE


async def test_static_route_by_ip_literal_checks_no_host_name(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    # The certificate has no 127.0.0.1 in its SANs: only the chain and the DN are checked.
    peer = await start_peer()
    routes = {DOMAIN: f"127.0.0.1:{peer.port}"}
    result = await send(settings_for(certs, dns, 1, static_routes=routes), [certs.peer_dn])
    assert result.error is None, result.error
    assert result.mx == "127.0.0.1"


async def test_implicit_mx(certs: Certs, dns: LocalDNS, start_peer: StartPeer) -> None:
    peer = await start_peer()
    dns.set(DOMAIN, "A", ["127.0.0.1"])  # no MX: RFC 5321 §5.1 implicit MX
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn])
    assert result.error is None, result.error
    assert result.mx == DOMAIN


async def test_8bit_and_smtputf8_parameters(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer(Behaviour(dsn=False))
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    data = "Subject: résultat\r\n\r\nhémoglobine\r\n".encode()
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn], data=data)
    assert result.error is None, result.error
    assert peer.session.mail == [f"MAIL FROM:<{SENDER}> SIZE={len(data)} BODY=8BITMIME"]

    result = await send(
        settings_for(certs, dns, peer.port), [certs.peer_dn], data=data, smtputf8=True
    )
    assert result.error is None, result.error
    assert peer.sessions[1].mail == [
        f"MAIL FROM:<{SENDER}> SIZE={len(data)} BODY=8BITMIME SMTPUTF8"
    ]


async def test_delivery_to_aiosmtpd(certs: Certs, dns: LocalDNS) -> None:
    """Interoperability with a real SMTP server (aiosmtpd): no DSN, no PIPELINING there."""
    seen: dict[str, Any] = {}

    class Handler:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            assert session.ssl is not None
            der = session.ssl["ssl_object"].getpeercert(binary_form=True)
            seen.update(
                cert=x509.load_der_x509_certificate(der),
                content=envelope.original_content,
                rcpt=envelope.rcpt_tos,
            )
            return "250 2.0.0 OK queued"

    context = server_context(
        certs.peer.chain_path,
        certs.peer.key_path,
        trust_files=[certs.pki.trust_roots_path],
        require_client_cert=True,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        decode_data=False,
    )
    controller.start()
    try:
        mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
        result = await send(settings_for(certs, dns, port), [certs.peer_dn])
    finally:
        controller.stop()
    assert result.error is None, result.error
    assert not result.dsn_supported
    assert result.recipients[0].accepted
    assert seen["content"] == MESSAGE
    assert seen["rcpt"] == [GOOD]
    assert seen["cert"] == load_certificate(certs.ours.cert_path)


# --------------------------------------------------------------------------- TLS and trust


async def test_peer_without_starttls_gets_nothing(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer(Behaviour(starttls=False))
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn])
    assert result.error is not None
    assert "peer does not offer STARTTLS" in result.error
    assert not result.permanent
    assert result.recipients == []
    assert result.mx == "mx.peer.test"  # it answered
    assert peer.session.plain == ["EHLO mss.local.test", "QUIT"]
    assert peer.session.tls == []


async def test_peer_certificate_from_another_ca(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer(cert=certs.foreign)
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn])
    assert result.error is not None
    assert result.error.endswith(
        "TLS handshake failed: peer certificate verification failed: "
        "unable to get local issuer certificate"
    )
    assert not result.permanent
    assert peer.session.tls == []
    assert peer.session.mail == []


async def test_peer_refusing_our_certificate(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer(trusts=certs.other)  # does not know our CA
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn])
    assert result.error is not None
    assert not result.permanent
    # TLS 1.3 reports the refusal after the handshake, TLS 1.2 during it.
    assert (
        "(right after the TLS handshake: does the peer trust our certificate?)" in result.error
        or "TLS handshake failed" in result.error
    )
    assert isinstance(peer.session.tls_error, ssl.SSLError)
    assert peer.session.mail == []


async def test_revoked_peer_certificate(certs: Certs, dns: LocalDNS, start_peer: StartPeer) -> None:
    revoked = certs.pki.issue_server(
        "mx.peer.test", organisation="PEER OP", structure_id="22222222222222"
    )
    certs.pki.revoke(revoked.serial, "keyCompromise")
    store = TrustStore.from_paths(
        [certs.pki.trust_roots_path], [certs.pki.trust_intermediates_path], [certs.pki.crl_dir]
    )
    peer = await start_peer(cert=revoked)
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    settings = settings_for(certs, dns, peer.port, trust_store=store)
    result = await send(settings, [certs.peer_dn])
    assert result.error is not None
    assert "rejected: certificate revoked on" in result.error
    assert "(keyCompromise)" in result.error
    assert not result.permanent
    assert peer.session.mail == []

    good = await start_peer()  # the same trust store accepts a valid certificate
    result = await send(replace(settings, port=good.port), [certs.peer_dn])
    assert result.error is None, result.error


async def test_host_name_must_match_the_certificate(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer()
    mx_records(dns, (10, "mx3.peer.test", "127.0.0.1"))  # not in the certificate's SANs
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn])
    assert result.error is not None
    assert "mx3.peer.test" in result.error
    assert "Hostname mismatch" in result.error
    assert not result.permanent
    assert peer.session.mail == []


async def test_peer_dn_not_in_liste_blanche(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer()
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, peer.port), [OTHER_DN])
    assert result.error is not None
    assert result.permanent
    peer_text = identity_of(load_certificate(certs.peer.cert_path)).subject_dn_text
    assert (
        f"peer certificate DN {peer_text} is not listed for domain peer.test in the liste blanche"
    ) in result.error
    assert peer.session.tls == ["QUIT"]  # aborted before MAIL, before the second EHLO
    assert peer.session.mail == []


async def test_liste_blanche_dn_spelling_is_normalised(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer()
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    loose = 'CN=MX.PEER.TEST, OU=22222222222222, O="PEER  OP", ST=Paris (75), C=FR'
    result = await send(settings_for(certs, dns, peer.port), [loose])
    assert result.error is None, result.error


# --------------------------------------------------------------------------- SMTP replies


async def test_per_recipient_results(certs: Certs, dns: LocalDNS, start_peer: StartPeer) -> None:
    peer = await start_peer(Behaviour(rcpt_replies={BAD: "550 5.1.1 no such mailbox"}))
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    recipients = [OutboundRecipient(BAD, None, None), OutboundRecipient(GOOD, None, None)]
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn], recipients=recipients)
    assert result.error is None
    bad, good = result.recipients
    assert (bad.address, bad.code, bad.enhanced, bad.text) == (BAD, 550, "5.1.1", "no such mailbox")
    assert bad.permanent and not bad.accepted
    assert good.address == GOOD and good.accepted and good.code == 250
    assert peer.session.message == MESSAGE


async def test_451_on_rcpt_is_temporary(certs: Certs, dns: LocalDNS, start_peer: StartPeer) -> None:
    peer = await start_peer(Behaviour(rcpt_replies={GOOD: "451 4.3.0 try again later"}))
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn])
    assert result.error is None
    (only,) = result.recipients
    assert (only.code, only.enhanced, only.permanent, only.accepted) == (451, "4.3.0", False, False)
    assert "DATA" not in peer.session.tls  # no recipient left: no DATA (RFC 5321 §3.3)


async def test_mail_from_refused(certs: Certs, dns: LocalDNS, start_peer: StartPeer) -> None:
    peer = await start_peer(Behaviour(mail_reply="553 5.7.1 sender not allowed"))
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn])
    assert result.error == "MAIL FROM refused: 553 5.7.1 sender not allowed"
    assert result.permanent
    assert result.recipients == []


async def test_message_refused_after_data(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer(Behaviour(data_reply="452 4.3.1 insufficient storage"))
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn])
    assert result.error == "message refused after DATA: 452 4.3.1 insufficient storage"
    assert not result.permanent
    assert result.recipients == []


async def test_connection_lost_after_the_message_is_not_retried_elsewhere(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer(Behaviour(data_reply=None))
    other = await start_peer()
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    routes = {DOMAIN: f"127.0.0.1:{peer.port}"}
    result = await send(settings_for(certs, dns, other.port, static_routes=routes), [certs.peer_dn])
    assert result.error is not None
    assert result.error.startswith("connection lost waiting for the reply to the end of")
    assert result.error.endswith("; the peer may have taken the message")
    assert not result.permanent
    assert peer.session.message == MESSAGE


async def test_greeting_554_is_permanent(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer(Behaviour(greeting="554 5.7.1 no service for you"))
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn])
    assert result.error == (
        f"mx.peer.test 127.0.0.1:{peer.port}: peer refused the session: "
        "554 5.7.1 no service for you"
    )
    assert result.permanent
    assert result.mx == "mx.peer.test"


async def test_size_limit_too_small(certs: Certs, dns: LocalDNS, start_peer: StartPeer) -> None:
    peer = await start_peer(Behaviour(size=100))
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn], data=b"x" * 998)
    assert result.error is not None
    assert "message of 1000 octets exceeds the peer's SIZE limit of 100 octets" in result.error
    assert result.permanent
    assert peer.session.mail == []


async def test_smtputf8_needed_but_not_offered(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer(Behaviour(smtputf8=False))
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"))
    recipients = [OutboundRecipient("zoé@peer.test", None, None)]
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn], recipients=recipients)
    assert result.error is not None
    assert "SMTPUTF8" in result.error
    assert result.permanent
    assert peer.session.mail == []


# --------------------------------------------------------------------------- routes


async def test_first_mx_down_second_used(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer()
    # 127.0.0.2 is loopback too, but nothing listens there: connection refused.
    mx_records(dns, (10, "mx2.peer.test", "127.0.0.2"), (20, "mx.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, peer.port), [certs.peer_dn])
    assert result.error is None, result.error
    assert result.mx == "mx.peer.test"
    assert peer.session.message == MESSAGE


async def test_every_mx_down_is_temporary(certs: Certs, dns: LocalDNS) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mx_records(dns, (10, "mx.peer.test", "127.0.0.2"), (20, "mx2.peer.test", "127.0.0.1"))
    result = await send(settings_for(certs, dns, port), [certs.peer_dn])
    assert not result.permanent
    assert result.mx is None
    assert result.error == (
        f"mx.peer.test 127.0.0.2:{port}: cannot connect: Connection refused; "
        f"mx2.peer.test 127.0.0.1:{port}: cannot connect: Connection refused"
    )


async def test_one_mx_refusing_permanently_and_one_down_is_temporary(
    certs: Certs, dns: LocalDNS, start_peer: StartPeer
) -> None:
    peer = await start_peer()
    mx_records(dns, (10, "mx.peer.test", "127.0.0.1"), (20, "mx2.peer.test", "127.0.0.2"))
    result = await send(settings_for(certs, dns, peer.port), [OTHER_DN])
    assert result.error is not None
    assert "not listed for domain peer.test" in result.error
    assert "Connection refused" in result.error
    assert not result.permanent  # mx2 may come back


async def test_null_mx_is_permanent(certs: Certs, dns: LocalDNS) -> None:
    dns.set(DOMAIN, "MX", ["0 ."])
    result = await send(settings_for(certs, dns, 25), [certs.peer_dn])
    assert result.permanent
    assert result.error == "peer.test publishes a null MX (RFC 7505): it accepts no mail"
    assert result.mx is None


async def test_nxdomain_is_permanent(certs: Certs, dns: LocalDNS) -> None:
    result = await send(settings_for(certs, dns, 25), [certs.peer_dn])
    assert result.permanent
    assert result.error == "MX lookup for peer.test: the domain does not exist (NXDOMAIN)"


async def test_dns_timeout_is_temporary(certs: Certs, dns: LocalDNS) -> None:
    dns.set(DOMAIN, "MX", ["10 mx.peer.test."])
    dns.drop(DOMAIN)
    result = await send(settings_for(certs, dns, 25, dns_timeout=0.5), [certs.peer_dn])
    assert not result.permanent
    assert result.error == "MX lookup for peer.test: DNS timeout, no answer"


async def test_servfail_is_temporary(certs: Certs, dns: LocalDNS) -> None:
    dns.servfail(DOMAIN)
    result = await send(settings_for(certs, dns, 25), [certs.peer_dn])
    assert not result.permanent
    assert result.error == "MX lookup for peer.test: DNS servers failed to answer (SERVFAIL)"


async def test_resolve_targets_orders_by_preference(certs: Certs, dns: LocalDNS) -> None:
    dns.set(DOMAIN, "MX", ["20 b.peer.test.", "10 a.peer.test.", "30 nowhere.peer.test."])
    dns.set("a.peer.test", "A", ["192.0.2.1"])
    dns.set("a.peer.test", "AAAA", ["2001:db8::1"])
    dns.set("b.peer.test", "A", ["192.0.2.2"])
    targets = await resolve_targets("Peer.Test.", settings_for(certs, dns, 25))
    assert targets == [  # nowhere.peer.test has no address: skipped
        RelayTarget("a.peer.test", 25, 10, ("192.0.2.1", "2001:db8::1")),
        RelayTarget("b.peer.test", 25, 20, ("192.0.2.2",)),
    ]


def test_parse_static_route() -> None:
    assert parse_static_route("smtp.peer.fr:2525") == ("smtp.peer.fr", 2525)
    assert parse_static_route("smtp.peer.fr", 587) == ("smtp.peer.fr", 587)
    assert parse_static_route("[2001:db8::1]:26") == ("2001:db8::1", 26)
    assert parse_static_route("[::1]") == ("::1", 25)
    for bad in ("host:0", "host:x", "host:", "2001:db8::1", ":25", "[::1", "[x]:25"):
        with pytest.raises(ValueError):
            parse_static_route(bad)


async def test_programming_errors_raise(certs: Certs, dns: LocalDNS) -> None:
    settings = settings_for(certs, dns, 25)
    with pytest.raises(ValueError, match="cannot be sent"):
        await send(settings, [], sender="a@b>\r\nRCPT TO:<x@y")
    with pytest.raises(ValueError, match="NOTIFY"):
        await send(settings, [], recipients=[OutboundRecipient(GOOD, "SOMETIMES", None)])
    with pytest.raises(ValueError, match="RET"):
        await send(settings, [], ret="ALL")

"""TLS contexts: real mutual-TLS handshakes over a loopback socket pair, and config errors."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certs.errors import TLSConfigError
from certs.identity import identity_of
from certs.pki import DevPKI, IssuedCertificate
from certs.tls import MSSANTE_CIPHERS, client_context, server_context

HOST = "smtp.operator.fr"


@dataclass
class Side:
    error: BaseException | None = None
    version: str | None = None
    cipher: str | None = None
    peer: bytes | None = None
    received: bytes = b""


def handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, hostname: str = HOST
) -> tuple[Side, Side]:
    """Run a TLS handshake plus one exchange of application data; report both sides."""
    server_sock, client_sock = socket.socketpair()
    server_sock.settimeout(10)
    client_sock.settimeout(10)
    server, client = Side(), Side()

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(server_sock, server_side=True) as tls:
                server.version, server.peer = tls.version(), tls.getpeercert(binary_form=True)
                server.cipher = tls.cipher()[0] if tls.cipher() else None
                tls.sendall(b"220 ready\r\n")
                server.received = tls.recv(100)
        except (ssl.SSLError, OSError) as exc:
            server.error = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(client_sock, server_hostname=hostname) as tls:
            client.version = tls.version()
            client.cipher = tls.cipher()[0] if tls.cipher() else None
            # With TLS 1.3 a refused client certificate only shows on the first read.
            client.received = tls.recv(100)
            if not client.received:
                raise ConnectionResetError("server closed the connection")
            tls.sendall(b"EHLO client\r\n")
    except (ssl.SSLError, OSError) as exc:
        client.error = exc
    finally:
        thread.join(10)
    assert not thread.is_alive()
    return server, client


@pytest.fixture(scope="module")
def mutual_server(pki: DevPKI, server_cert: IssuedCertificate) -> ssl.SSLContext:
    return server_context(
        server_cert.chain_path,
        server_cert.key_path,
        trust_files=[pki.trust_roots_path],
        require_client_cert=True,
    )


def test_mutual_tls_with_a_person_certificate(
    pki: DevPKI, mutual_server: ssl.SSLContext, person_cert: IssuedCertificate
) -> None:
    client_ctx = client_context(
        [pki.trust_roots_path], cert_file=person_cert.chain_path, key_file=person_cert.key_path
    )
    server, client = handshake(mutual_server, client_ctx)
    assert server.error is None and client.error is None
    assert client.received == b"220 ready\r\n"
    assert server.received == b"EHLO client\r\n"
    assert server.version in ("TLSv1.2", "TLSv1.3")
    assert server.peer is not None
    peer = identity_of(x509.load_der_x509_certificate(server.peer))
    assert peer.kind == "person" and peer.national_id == "810001234567"


def test_operator_to_operator_over_tls12_uses_an_mssante_suite(
    pki: DevPKI, mutual_server: ssl.SSLContext, server_cert: IssuedCertificate
) -> None:
    client_ctx = client_context(
        [pki.trust_roots_path], cert_file=server_cert.chain_path, key_file=server_cert.key_path
    )
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # as MSSanté clients may
    server, client = handshake(mutual_server, client_ctx)
    assert server.error is None and client.error is None
    assert client.version == "TLSv1.2"
    assert client.cipher in MSSANTE_CIPHERS.split(":")


def test_client_certificate_from_another_pki_is_refused(
    pki: DevPKI, other_pki: DevPKI, mutual_server: ssl.SSLContext
) -> None:
    stranger = other_pki.issue_person("810001234567", given_name="Jeanne", surname="DUPONT")
    client_ctx = client_context(
        [pki.trust_roots_path], cert_file=stranger.chain_path, key_file=stranger.key_path
    )
    server, client = handshake(mutual_server, client_ctx)
    assert isinstance(server.error, ssl.SSLCertVerificationError)
    assert "unable to get local issuer certificate" in str(server.error)
    assert client.error is not None
    assert server.received == b""


def test_client_without_certificate_is_refused_when_required(
    pki: DevPKI, mutual_server: ssl.SSLContext
) -> None:
    server, client = handshake(mutual_server, client_context([pki.trust_roots_path]))
    assert isinstance(server.error, ssl.SSLError)
    assert "peer did not return a certificate" in str(server.error)
    assert client.error is not None


def test_requested_client_certificate_is_optional(
    pki: DevPKI, server_cert: IssuedCertificate
) -> None:
    server_ctx = server_context(
        server_cert.chain_path,
        server_cert.key_path,
        trust_files=[pki.trust_roots_path],
        request_client_cert=True,
    )
    server, client = handshake(server_ctx, client_context([pki.trust_roots_path]))
    assert server.error is None and client.error is None
    assert server.peer is None


def test_client_refuses_a_server_of_another_pki_or_wrong_host(
    pki: DevPKI, other_pki: DevPKI, server_cert: IssuedCertificate
) -> None:
    foreign = other_pki.issue_server(HOST, organisation="X", structure_id="1")
    _, client = handshake(
        server_context(foreign.chain_path, foreign.key_path),
        client_context([pki.trust_roots_path]),
    )
    assert isinstance(client.error, ssl.SSLCertVerificationError)

    _, client = handshake(
        server_context(server_cert.chain_path, server_cert.key_path),
        client_context([pki.trust_roots_path]),
        hostname="other.operator.fr",
    )
    assert isinstance(client.error, ssl.SSLCertVerificationError)
    assert "Hostname mismatch" in str(client.error)


def test_contexts_require_tls12_and_offer_the_mssante_suites(
    pki: DevPKI, server_cert: IssuedCertificate
) -> None:
    for ctx in (
        server_context(server_cert.chain_path, server_cert.key_path),
        client_context([pki.trust_roots_path]),
    ):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        names = {c["name"] for c in ctx.get_ciphers()}
        assert set(MSSANTE_CIPHERS.split(":")) <= names


def test_configuration_errors_name_the_file(
    pki: DevPKI,
    tmp_path: Path,
    server_cert: IssuedCertificate,
    person_cert: IssuedCertificate,
) -> None:
    missing = tmp_path / "missing.crt"
    with pytest.raises(TLSConfigError, match=re.escape("missing.crt does not exist")):
        server_context(missing, server_cert.key_path)
    der = tmp_path / "server.der"
    der.write_bytes(
        x509.load_pem_x509_certificate(server_cert.cert_path.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
    )
    with pytest.raises(TLSConfigError, match=re.escape("server.der is not PEM")):
        server_context(der, server_cert.key_path)
    with pytest.raises(TLSConfigError, match="does not match the server certificate"):
        server_context(server_cert.cert_path, person_cert.key_path)
    with pytest.raises(
        TLSConfigError, match=re.escape("holds no PEM private key (found: CERTIFICATE")
    ):
        server_context(server_cert.cert_path, server_cert.cert_path)
    with pytest.raises(
        TLSConfigError, match=re.escape("holds no PEM certificate (found: PRIVATE KEY")
    ):
        server_context(server_cert.key_path, server_cert.key_path)
    with pytest.raises(TLSConfigError, match="needs trust_files"):
        server_context(server_cert.cert_path, server_cert.key_path, require_client_cert=True)
    with pytest.raises(TLSConfigError, match="needs trust_files"):
        client_context([])
    with pytest.raises(TLSConfigError, match=re.escape("missing.crt does not exist")):
        client_context([missing])
    with pytest.raises(TLSConfigError, match="does not match the client certificate"):
        client_context(
            [pki.trust_roots_path], cert_file=person_cert.cert_path, key_file=server_cert.key_path
        )


def test_encrypted_key_and_non_rsa_server_certificate_are_refused(
    tmp_path: Path, server_cert: IssuedCertificate
) -> None:
    key = serialization.load_pem_private_key(server_cert.key_path.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TLSConfigError, match=re.escape("encrypted.key is encrypted")):
        server_context(server_cert.cert_path, encrypted)

    ec_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    ec_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ec_key.public_key())
        .serial_number(1)
        .not_valid_before(server_cert.not_before)
        .not_valid_after(server_cert.not_after)
        .sign(ec_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "ec.crt", tmp_path / "ec.key"
    cert_file.write_bytes(ec_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(TLSConfigError, match="ECDHE-RSA suites need one"):
        server_context(cert_file, key_file)

"""TLS contexts for MSSanté SMTP/IMAP servers and operator-to-operator clients.

MSSanté requires TLS 1.2 at least and clients use one of the ECDHE-RSA suites below
(RFC 5289 §3.2 for the GCM / SHA-2 suites), so servers must offer them with an RSA
certificate. TLS 1.3 (RFC 8446) is left enabled with OpenSSL's default suites.

Certificates and keys are checked with :mod:`cryptography` before OpenSSL sees them, so a
misconfiguration gives a :class:`TLSConfigError` naming the file and the problem (missing,
not PEM, encrypted key, key not matching the certificate) rather than a bare OpenSSL error.

OpenSSL only checks chains and validity during the handshake; revocation (CRLs) and the
liste-blanche DN match are done afterwards on the peer certificate, with
:class:`certs.truststore.TrustStore` and :mod:`certs.dn`.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)

from certs._io import (
    CERT_SUFFIXES,
    StrPath,
    expand,
    load_certificates,
    parse_certificates,
    pem_labels,
    read_file,
)
from certs.errors import CertificateLoadError, TLSConfigError

__all__ = ["MSSANTE_CIPHERS", "TLSConfigError", "client_context", "server_context"]

#: The four suites MSSanté clients must use (Référentiel #1), in preference order. They apply
#: to TLS 1.2; TLS 1.3 suites are configured separately by OpenSSL and left at their defaults.
MSSANTE_CIPHERS = (
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256"
)


X509_V_FLAG_NO_CHECK_TIME = 0x200000  # openssl/x509_vfy.h


def _read(path: Path, what: str) -> bytes:
    try:
        return read_file(path, what)
    except CertificateLoadError as exc:
        raise TLSConfigError(str(exc)) from None


def _load_chain(cert_file: StrPath, what: str) -> list[x509.Certificate]:
    path = Path(cert_file)
    data = _read(path, what)
    if b"-----BEGIN" not in data:
        raise TLSConfigError(f"{what} file {path} is not PEM (expected '-----BEGIN CERTIFICATE')")
    try:
        return parse_certificates(data, f"{what} file {path}")
    except CertificateLoadError as exc:
        raise TLSConfigError(str(exc)) from None


def _load_key(key_file: StrPath, what: str = "private key") -> PrivateKeyTypes:
    path = Path(key_file)
    data = _read(path, what)
    if b"PRIVATE KEY-----" not in data:
        labels = ", ".join(sorted(set(pem_labels(data)))) or "not PEM"
        raise TLSConfigError(f"{what} file {path} holds no PEM private key (found: {labels})")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TLSConfigError(
            f"{what} file {path} is encrypted; an unencrypted PEM key is required"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TLSConfigError(f"{what} file {path} is not a usable private key: {exc}") from None


def _spki(key: PublicKeyTypes | CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_identity(
    ctx: ssl.SSLContext, cert_file: StrPath, key_file: StrPath | None, *, server: bool
) -> None:
    """Check then load a certificate chain and its key into ``ctx``."""
    role = "server certificate" if server else "client certificate"
    chain = _load_chain(cert_file, role)
    key = _load_key(key_file if key_file is not None else cert_file)
    leaf_key = chain[0].public_key()
    if _spki(leaf_key) != _spki(key.public_key()):
        key_name = key_file if key_file is not None else cert_file
        raise TLSConfigError(f"private key {key_name} does not match the {role} {cert_file}")
    if server and not isinstance(leaf_key, rsa.RSAPublicKey):
        raise TLSConfigError(
            f"{role} {cert_file} has no RSA key; the MSSanté ECDHE-RSA suites need one"
        )
    try:
        ctx.load_cert_chain(
            str(cert_file), str(key_file) if key_file is not None else None, password=None
        )
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"OpenSSL refused {role} {cert_file}: {exc}") from None


def _load_trust(ctx: ssl.SSLContext, trust_files: Sequence[StrPath]) -> int:
    """Trust the CA certificates of files or directories (PEM); returns how many."""
    pem: list[str] = []
    for path in expand(trust_files, CERT_SUFFIXES):
        try:
            certs = load_certificates(path, "trusted CA certificate")  # PEM or DER
        except CertificateLoadError as exc:
            raise TLSConfigError(str(exc)) from None
        for cert in certs:
            pem.append(cert.public_bytes(serialization.Encoding.PEM).decode("ascii"))
    if not pem:
        raise TLSConfigError(
            f"no trusted CA certificate found in {', '.join(map(str, trust_files))}"
        )
    try:
        ctx.load_verify_locations(cadata="".join(pem))
    except ssl.SSLError as exc:
        raise TLSConfigError(f"OpenSSL refused the trusted CA certificates: {exc}") from None
    return len(pem)


def _harden(ctx: ssl.SSLContext) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.set_ciphers(MSSANTE_CIPHERS)
    except ssl.SSLError as exc:  # pragma: no cover - OpenSSL built without these suites
        raise TLSConfigError(f"OpenSSL does not support the MSSanté cipher suites: {exc}") from None
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION  # CRIME, renegotiation


def server_context(
    cert_file: StrPath,
    key_file: StrPath,
    *,
    trust_files: Sequence[StrPath] = (),
    require_client_cert: bool = False,
    request_client_cert: bool = False,
    defer_validity: bool = False,
) -> ssl.SSLContext:
    """A server-side context (SMTP, submission, IMAP) with an RSA certificate.

    ``cert_file`` may hold the chain (leaf first, then intermediates) so clients receive it.
    ``require_client_cert`` (operator-to-operator SMTP) fails the handshake without a client
    certificate chaining to ``trust_files``; ``request_client_cert`` (SASL EXTERNAL on
    submission/IMAP) asks for one but accepts clients without. Either needs ``trust_files``.
    ``defer_validity`` leaves the client certificate's validity dates to the caller.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx)
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_identity(ctx, cert_file, key_file, server=True)
    if require_client_cert or request_client_cert:
        if not trust_files:
            raise TLSConfigError("verifying client certificates needs trust_files (CA roots)")
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
        if defer_validity:
            # OpenSSL's X509_V_FLAG_NO_CHECK_TIME: an expired client certificate completes
            # the handshake so that the door can refuse it with a reply naming the check;
            # the door must then run TrustStore.verify (validity dates and CRLs) itself.
            ctx.verify_flags |= ssl.VerifyFlags(X509_V_FLAG_NO_CHECK_TIME)
    if trust_files:
        _load_trust(ctx, trust_files)
    return ctx


def client_context(
    trust_files: Sequence[StrPath],
    *,
    cert_file: StrPath | None = None,
    key_file: StrPath | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client-side context verifying the server against ``trust_files`` (CA roots).

    With ``cert_file`` (chain PEM; the key may be in it when ``key_file`` is omitted) the
    client authenticates itself: operator-to-operator SMTP, or SASL EXTERNAL. The server host
    name is checked against its certificate unless ``check_hostname`` is false; pass
    ``server_hostname`` when wrapping the socket.
    """
    if not trust_files:
        raise TLSConfigError("client_context needs trust_files (CA roots) to verify servers")
    if key_file is not None and cert_file is None:
        raise TLSConfigError(f"key_file {key_file} given without cert_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(ctx)
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    _load_trust(ctx, trust_files)
    if cert_file is not None:
        _load_identity(ctx, cert_file, key_file, server=False)
    return ctx

"""Shared fixtures for the certs tests: one development PKI per test module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from certs.pki import DevPKI, IssuedCertificate

OPERATOR_DN = "CN=smtp.operator.fr, OU=31831002130002, O=Operator, ST=Paris (75), C=FR"

CertFactory = Callable[..., tuple[x509.Certificate, rsa.RSAPrivateKey]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return DevPKI.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    """An unrelated PKI: its certificates must never be accepted by ``pki``'s trust."""
    return DevPKI.create(tmp_path_factory.mktemp("other-pki"), organisation="AUTRE PKI")


@pytest.fixture(scope="module")
def server_cert(pki: DevPKI) -> IssuedCertificate:
    return pki.issue_server(
        "smtp.operator.fr",
        organisation="Operator",
        structure_id="31831002130002",
        alt_names=["mx.operator.fr"],
    )


@pytest.fixture(scope="module")
def person_cert(pki: DevPKI) -> IssuedCertificate:
    return pki.issue_person(
        "810001234567",
        given_name="Jeanne",
        surname="DUPONT",
        structure_id="10B0012345",
        organisation="CH DE TEST",
    )


@pytest.fixture(scope="module")
def org_cert(pki: DevPKI) -> IssuedCertificate:
    return pki.issue_org("LABO-APP", structure_id="34797668420072", organisation="LABORATOIRE TEST")


def _name(value: x509.Name | str) -> x509.Name:
    """A Name, or CN=<value> for a plain string."""
    if isinstance(value, x509.Name):
        return value
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])


@pytest.fixture(scope="session")
def make_cert() -> CertFactory:
    """Build an arbitrary certificate (for shapes the PKI refuses to issue)."""

    def build(
        subject: x509.Name | str,
        *,
        issuer: x509.Name | str | None = None,
        issuer_key: rsa.RSAPrivateKey | None = None,
        key: rsa.RSAPrivateKey | None = None,
        eku: Sequence[ObjectIdentifier] = (),
        ca: bool = False,
        days: int = 30,
    ) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = _name(subject)
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(_name(issuer) if issuer is not None else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
        )
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), False)
        return builder.sign(issuer_key or key, hashes.SHA256()), key

    return build

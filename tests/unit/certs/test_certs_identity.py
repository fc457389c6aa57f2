"""CertificateIdentity: what the server learns about a peer or client from its certificate."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.dn import normalize_dn
from certs.errors import CertificateLoadError
from certs.identity import identity_of, load_certificate, load_pem_chain, national_id_of
from certs.pki import DevPKI, IssuedCertificate

CertFactory = Callable[..., tuple[x509.Certificate, Any]]  # the make_cert fixture


def test_server_identity_matches_the_liste_blanche_dn(server_cert: IssuedCertificate) -> None:
    cert = load_certificate(server_cert.cert_path)
    identity = identity_of(cert)
    assert identity.kind == "server"
    assert identity.common_name == "smtp.operator.fr"
    assert identity.structure_id == "31831002130002"
    assert identity.organisation == "Operator"
    assert identity.national_id is None
    assert identity.dns_names == ("smtp.operator.fr", "mx.operator.fr")
    assert identity.subject_dn == normalize_dn(
        "CN=smtp.operator.fr, OU=31831002130002, O=Operator, ST=Paris (75), C=FR"
    )
    assert identity.subject_dn_text == server_cert.subject_dn
    assert identity.issuer_dn == normalize_dn(
        "CN=TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS,OU=IGC-SANTE TEST,O=MSSANTE DEV,C=FR"
    )
    assert identity.serial_hex == server_cert.serial
    assert identity.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert len(identity.fingerprint_sha256) == 64
    assert identity.not_after == server_cert.not_after
    assert (
        identity.not_before.tzinfo is not None
        and identity.not_before.utcoffset() == UTC.utcoffset(None)
    )


def test_person_identity_has_the_national_id(person_cert: IssuedCertificate) -> None:
    identity = identity_of(load_certificate(person_cert.cert_path))
    assert identity.kind == "person"
    assert identity.national_id == "810001234567"
    assert identity.given_name == "Jeanne" and identity.surname == "DUPONT"
    assert identity.structure_id == "10B0012345"
    assert identity.organisation == "CH DE TEST"
    assert identity.dns_names == ()
    assert identity.subject_dn == normalize_dn(person_cert.subject_dn)


def test_adeli_person_identity(pki: DevPKI) -> None:
    issued = pki.issue_person("0123456789", given_name="Paul", surname="MARTIN")
    identity = identity_of(load_certificate(issued.cert_path))
    assert identity.kind == "person" and identity.national_id == "0123456789"
    assert identity.structure_id is None and identity.organisation is None


def test_org_identity(org_cert: IssuedCertificate) -> None:
    identity = identity_of(load_certificate(org_cert.cert_path))
    assert identity.kind == "org"
    assert identity.common_name == "LABO-APP"
    assert identity.structure_id == "34797668420072"
    assert identity.organisation == "LABORATOIRE TEST"
    assert identity.national_id is None


def _name(cn: str, ou: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]
    if ou:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attributes)


@pytest.mark.parametrize(
    ("issuer_cn", "subject_cn", "eku", "kind", "national_id"),
    [
        # IGC-Santé issuers decide first.
        ("AC IGC-SANTE FORTE PERSONNES", "899700218896/CPS123", (), "person", "899700218896"),
        ("AC IGC-SANTE ELEMENTAIRE PERSONNES", "Dr Someone", (), "person", None),
        (
            "AC IGC-SANTE ELEMENTAIRE ORGANISATIONS",
            "mx.ch.fr",
            (ExtendedKeyUsageOID.SERVER_AUTH,),
            "server",
            None,
        ),
        ("AC IGC-SANTE ELEMENTAIRE ORGANISATIONS", "899700218896", (), "org", None),
        # Other issuers: EKU then subject shape.
        ("Some CA", "mx.example.fr", (ExtendedKeyUsageOID.SERVER_AUTH,), "server", None),
        ("Some CA", "0123456789", (ExtendedKeyUsageOID.CLIENT_AUTH,), "person", "0123456789"),
        ("Some CA", "Jane", (ExtendedKeyUsageOID.EMAIL_PROTECTION,), "person", None),
        ("Some CA", "APP LABO", (ExtendedKeyUsageOID.CLIENT_AUTH,), "org", None),
    ],
)
def test_kind_rule(
    make_cert: CertFactory,
    issuer_cn: str,
    subject_cn: str,
    eku: tuple[x509.ObjectIdentifier, ...],
    kind: str,
    national_id: str | None,
) -> None:
    cert, _ = make_cert(_name(subject_cn, "1234"), issuer=_name(issuer_cn), eku=eku)
    identity = identity_of(cert)
    assert identity.kind == kind
    assert identity.national_id == national_id


@pytest.mark.parametrize(
    ("cn", "expected"),
    [
        ("810001234567", "810001234567"),
        ("810001234567/ABC", "810001234567"),
        (" 0123456789 ", "0123456789"),
        ("81000123456", None),
        ("8100012345678", None),
        ("710001234567", None),
        (None, None),
    ],
)
def test_national_id_of(cn: str | None, expected: str | None) -> None:
    assert national_id_of(cn) == expected


def test_load_certificate_accepts_pem_der_and_chain(
    tmp_path: Path, server_cert: IssuedCertificate
) -> None:
    cert = load_certificate(server_cert.cert_path)
    der = tmp_path / "cert.der"
    der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    assert load_certificate(der) == cert
    assert load_certificate(server_cert.chain_path) == cert  # the leaf
    chain = load_pem_chain(server_cert.chain_path)
    assert len(chain) == 2 and chain[0] == cert
    assert chain[1].subject == cert.issuer


def test_loading_errors_name_the_file(tmp_path: Path, server_cert: IssuedCertificate) -> None:
    with pytest.raises(CertificateLoadError, match=re.escape("nope.pem does not exist")):
        load_certificate(tmp_path / "nope.pem")
    with pytest.raises(CertificateLoadError, match="is a directory"):
        load_certificate(tmp_path)
    junk = tmp_path / "junk.crt"
    junk.write_bytes(b"junk")
    with pytest.raises(
        CertificateLoadError, match=re.escape("junk.crt is neither a PEM nor a DER")
    ):
        load_certificate(junk)
    with pytest.raises(
        CertificateLoadError, match=re.escape("no PEM certificate (found: PRIVATE KEY")
    ):
        load_certificate(server_cert.key_path)
    with pytest.raises(CertificateLoadError, match=re.escape("junk.crt is not PEM")):
        load_pem_chain(junk)
    broken = tmp_path / "broken.pem"
    broken.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateLoadError, match="certificate #1 is invalid"):
        load_pem_chain(broken)
    assert issubclass(CertificateLoadError, ValueError)

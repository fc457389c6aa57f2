"""TrustStore: chain building, validity, revocation with last-good CRLs, loading errors."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.errors import TrustStoreError
from certs.pki import DevPKI, IssuedCertificate
from certs.truststore import TrustStore

CertFactory = Callable[..., tuple[x509.Certificate, Any]]  # the make_cert fixture


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def store(pki: DevPKI) -> TrustStore:
    return pki.trust_store()


@pytest.fixture()
def crl_copy(pki: DevPKI, tmp_path: Path) -> Path:
    """A private copy of the CRL directory, so tests can break it."""
    target = tmp_path / "crl"
    shutil.copytree(pki.crl_dir, target)
    return target


def copy_crls(pki: DevPKI, target: Path) -> None:
    for path in pki.crl_dir.iterdir():
        shutil.copy(path, target / path.name)


def test_valid_server_certificate_chains_to_the_root(
    pki: DevPKI, store: TrustStore, server_cert: IssuedCertificate
) -> None:
    result = store.verify(load(server_cert.cert_path))
    assert result.ok and result
    assert result.reason == "ok"
    assert result.warnings == ()
    assert [c.subject for c in result.chain] == [
        load(server_cert.cert_path).subject,
        pki.ca_certificate("organisations").subject,
        pki.ca_certificate("root").subject,
    ]


def test_intermediate_sent_by_the_peer_is_used(pki: DevPKI, person_cert: IssuedCertificate) -> None:
    roots_only = TrustStore.from_paths(roots=[pki.trust_roots_path], crls=[pki.crl_dir])
    leaf, *sent = x509.load_pem_x509_certificates(person_cert.chain_path.read_bytes())
    assert not roots_only.verify(leaf).ok
    assert "not trusted" in roots_only.verify(leaf).reason
    assert roots_only.verify(leaf, sent).ok


def test_expired_certificate_is_refused_with_its_date(pki: DevPKI, store: TrustStore) -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    issued = pki.issue_server(
        "expired.operator.fr",
        organisation="O",
        structure_id="1",
        not_before=start,
        not_after=start + timedelta(days=365),
    )
    result = store.verify(load(issued.cert_path))
    assert not result.ok
    assert result.reason == "certificate expired on 2020-12-31T00:00:00Z"


def test_not_yet_valid_certificate_is_refused(pki: DevPKI, store: TrustStore) -> None:
    start = datetime.now(UTC) + timedelta(days=30)
    issued = pki.issue_org("FUTURE", organisation="O", structure_id="1", not_before=start)
    result = store.verify(load(issued.cert_path))
    assert not result.ok
    assert result.reason.startswith("certificate not yet valid (valid from ")


def test_verification_time_can_be_given(store: TrustStore, server_cert: IssuedCertificate) -> None:
    cert = load(server_cert.cert_path)
    assert store.verify(cert, at=datetime.now(UTC) + timedelta(days=30)).ok
    late = store.verify(cert, at=cert.not_valid_after_utc + timedelta(seconds=1))
    assert late.reason.startswith("certificate expired on")
    early = store.verify(cert, at=cert.not_valid_before_utc - timedelta(seconds=1))
    assert "not yet valid" in early.reason


def test_certificate_from_another_pki_has_an_untrusted_issuer(
    store: TrustStore, other_pki: DevPKI
) -> None:
    foreign = other_pki.issue_server("smtp.operator.fr", organisation="Operator", structure_id="1")
    result = store.verify(load(foreign.cert_path), [other_pki.ca_certificate("organisations")])
    assert not result.ok
    assert result.reason.startswith(
        "issuer CN=TEST AC RACINE IGC-SANTE ELEMENTAIRE,OU=IGC-SANTE TEST,O=AUTRE PKI,C=FR"
    )
    assert result.reason.endswith("not trusted")


def test_forged_certificate_with_the_right_issuer_name_fails_signature(
    pki: DevPKI, store: TrustStore, make_cert: CertFactory
) -> None:
    forged, _ = make_cert(
        "smtp.evil.fr", issuer=pki.ca_certificate("organisations").subject
    )  # self-signed key, but claims the ORGANISATIONS CA as issuer
    result = store.verify(forged)
    assert not result.ok
    assert result.reason.startswith("signature does not verify")


def test_a_leaf_cannot_act_as_a_ca(
    store: TrustStore, person_cert: IssuedCertificate, make_cert: CertFactory
) -> None:
    person = load(person_cert.cert_path)
    key = serialization.load_pem_private_key(person_cert.key_path.read_bytes(), None)
    child, _ = make_cert("child", issuer=person.subject, issuer_key=key)
    result = store.verify(child, [person])
    assert not result.ok
    assert "is not a CA" in result.reason


def test_purpose_is_checked_against_extended_key_usage(
    store: TrustStore, person_cert: IssuedCertificate, server_cert: IssuedCertificate
) -> None:
    person = load(person_cert.cert_path)
    assert store.verify(person, purpose=ExtendedKeyUsageOID.CLIENT_AUTH).ok
    result = store.verify(person, purpose=ExtendedKeyUsageOID.SERVER_AUTH)
    assert result.reason == "certificate not valid for TLS server authentication (extendedKeyUsage)"
    assert store.verify(load(server_cert.cert_path), purpose=ExtendedKeyUsageOID.CLIENT_AUTH).ok


def test_revocation_is_seen_after_reload(pki: DevPKI) -> None:
    store = pki.trust_store()
    issued = pki.issue_person("810009999999", given_name="Rev", surname="OKE")
    cert = load(issued.cert_path)
    assert store.reload_crls() == []
    assert store.verify(cert).ok

    pki.revoke(issued.serial, x509.ReasonFlags.key_compromise)
    assert store.verify(cert).ok  # still the old CRL in memory
    assert store.reload_crls() == []
    result = store.verify(cert)
    assert not result.ok
    assert result.reason.startswith("certificate revoked on ")
    assert result.reason.endswith("(keyCompromise)")
    # Checked as of a time before the revocation, it was good.
    assert store.verify(cert, at=cert.not_valid_before_utc + timedelta(seconds=1)).ok


def test_garbage_crl_keeps_the_last_good_one(pki: DevPKI, crl_copy: Path) -> None:
    store = TrustStore.from_paths(
        roots=[pki.trust_roots_path], intermediates=[pki.trust_intermediates_path], crls=[crl_copy]
    )
    issued = pki.issue_org("LAST-GOOD", organisation="O", structure_id="1")
    pki.revoke(issued.serial, "superseded")
    copy_crls(pki, crl_copy)
    assert store.reload_crls() == []
    cert = load(issued.cert_path)
    assert "revoked" in store.verify(cert).reason

    (crl_copy / "organisations.crl.pem").write_bytes(b"<html>502 Bad Gateway</html>")
    warnings = store.reload_crls()
    assert len(warnings) == 1
    assert "organisations.crl.pem" in warnings[0]
    assert "keeping the last good CRL" in warnings[0]
    result = store.verify(cert)
    assert not result.ok and result.reason.endswith("(superseded)")

    (crl_copy / "organisations.crl.pem").unlink()
    assert any("disappeared" in w for w in store.reload_crls())
    assert "revoked" in store.verify(cert).reason


def test_crl_with_a_bad_signature_is_not_used(pki: DevPKI, crl_copy: Path) -> None:
    store = TrustStore.from_paths(
        roots=[pki.trust_roots_path], intermediates=[pki.trust_intermediates_path], crls=[crl_copy]
    )
    # A CRL that claims to come from our ORGANISATIONS CA, signed by another key.
    now = datetime.now(UTC)
    forged = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.ca_certificate("organisations").subject)
        .last_update(now)
        .next_update(now + timedelta(days=7))
        .sign(rsa.generate_private_key(public_exponent=65537, key_size=2048), hashes.SHA256())
    )
    target = crl_copy / "organisations.crl.pem"
    target.write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    warnings = store.reload_crls()
    assert any("signature does not verify" in w and "keeping the last good" in w for w in warnings)
    assert store.crl_for(pki.ca_certificate("organisations")) is not None

    with pytest.raises(
        TrustStoreError, match=re.escape("organisations.crl.pem: signature does not verify")
    ):
        TrustStore.from_paths(
            roots=[pki.trust_roots_path],
            intermediates=[pki.trust_intermediates_path],
            crls=[target],
        )


def test_crl_going_backwards_is_refused(pki: DevPKI, crl_copy: Path) -> None:
    store = TrustStore.from_paths(
        roots=[pki.trust_roots_path], intermediates=[pki.trust_intermediates_path], crls=[crl_copy]
    )
    older = (crl_copy / "root.crl.pem").read_bytes()
    pki.regenerate_crls()
    copy_crls(pki, crl_copy)
    assert store.reload_crls() == []
    newest = store.crl_for(pki.ca_certificate("root"))
    (crl_copy / "root.crl.pem").write_bytes(older)
    warnings = store.reload_crls()
    assert any("went backwards" in w for w in warnings)
    assert store.crl_for(pki.ca_certificate("root")) == newest


def test_stale_crl_is_used_but_flagged(
    pki: DevPKI, server_cert: IssuedCertificate, crl_copy: Path
) -> None:
    store = TrustStore.from_paths(
        roots=[pki.trust_roots_path], intermediates=[pki.trust_intermediates_path], crls=[crl_copy]
    )
    long_ago = datetime.now(UTC) - timedelta(days=30)
    try:
        pki.regenerate_crls(this_update=long_ago, next_update=long_ago + timedelta(days=7))
        copy_crls(pki, crl_copy)
    finally:
        pki.regenerate_crls()
    warnings = store.reload_crls()
    assert any("past its nextUpdate" in w and "still used" in w for w in warnings)
    result = store.verify(load(server_cert.cert_path))
    assert result.ok
    assert any("past its nextUpdate" in w for w in result.warnings)


def test_missing_crl_is_a_warning_or_a_failure_in_strict_mode(
    pki: DevPKI, server_cert: IssuedCertificate
) -> None:
    cert = load(server_cert.cert_path)
    lenient = TrustStore.from_paths([pki.trust_roots_path], [pki.trust_intermediates_path])
    result = lenient.verify(cert)
    assert result.ok
    assert any(w.startswith("no CRL for issuer CN=TEST AC IGC-SANTE") for w in result.warnings)

    strict = TrustStore.from_paths(
        [pki.trust_roots_path], [pki.trust_intermediates_path], strict_crl=True
    )
    result = strict.verify(cert)
    assert not result.ok
    assert result.reason == (
        "no CRL for issuer CN=TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS,OU=IGC-SANTE TEST,"
        "O=MSSANTE DEV,C=FR"
    )
    assert pki.trust_store(strict_crl=True).verify(cert).ok


def test_der_crl_and_directories_of_certificates_load(pki: DevPKI, tmp_path: Path) -> None:
    crl = x509.load_pem_x509_crl(pki.crl_path("personnes").read_bytes())
    der = tmp_path / "personnes.crl"
    der.write_bytes(crl.public_bytes(serialization.Encoding.DER))
    store = TrustStore(strict_crl=True)
    assert store.load_roots(pki.trust_roots_path.parent / "roots.pem") == 1
    assert store.load_intermediates(pki.directory / "ca" / "personnes.crt") == 1
    assert store.load_crls(der) == []
    assert store.crl_for(pki.ca_certificate("personnes")) is not None


def test_loading_errors_name_the_file(
    pki: DevPKI, tmp_path: Path, server_cert: IssuedCertificate
) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(TrustStoreError, match=re.escape("missing.pem does not exist")):
        TrustStore.from_paths(roots=[missing])
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a certificate")
    with pytest.raises(TrustStoreError, match=re.escape("garbage.pem is neither a PEM nor a DER")):
        TrustStore.from_paths(roots=[garbage])
    with pytest.raises(
        TrustStoreError, match=re.escape("holds no PEM certificate (found: PRIVATE KEY")
    ):
        TrustStore.from_paths(roots=[server_cert.key_path])
    with pytest.raises(TrustStoreError, match="is not a CA certificate"):
        TrustStore.from_paths(roots=[pki.trust_roots_path], intermediates=[server_cert.cert_path])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrustStoreError, match="no root certificate found"):
        TrustStore.from_paths(roots=[empty])
    bad_crl = tmp_path / "bad.crl"
    bad_crl.write_bytes(b"\x00\x01junk")
    with pytest.raises(TrustStoreError, match=re.escape("bad.crl is neither a PEM nor a DER CRL")):
        TrustStore.from_paths(roots=[pki.trust_roots_path], crls=[bad_crl])
    with pytest.raises(TrustStoreError, match="holds no PEM CRL"):
        TrustStore.from_paths(roots=[pki.trust_roots_path], crls=[server_cert.cert_path])

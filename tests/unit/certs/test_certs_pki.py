"""DevPKI: layout on disk, issuing each kind of certificate, revocation, reopening."""

from __future__ import annotations

import json
import re
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.dn import normalize_dn
from certs.errors import PKIError
from certs.pki import CA_NAMES, DevPKI, IssuedCertificate


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def load_crl(path: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(path.read_bytes())


def eku(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def cn(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_writes_the_igc_sante_test_hierarchy(pki: DevPKI) -> None:
    d = pki.directory
    root = load(d / "ca" / "root.crt")
    assert cn(root.subject) == "TEST AC RACINE IGC-SANTE ELEMENTAIRE"
    assert root.issuer == root.subject
    for name in ("personnes", "organisations"):
        ca = load(d / "ca" / f"{name}.crt")
        assert cn(ca.subject) == CA_NAMES[name]
        assert ca.issuer == root.subject
        ca.verify_directly_issued_by(root)
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert constraints.ca and constraints.path_length == 0
        key = ca.public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
        assert mode(d / "ca" / f"{name}.key") == 0o600
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert timedelta(days=3650) <= lifetime <= timedelta(days=3660)

    roots = x509.load_pem_x509_certificates((d / "trust" / "roots.pem").read_bytes())
    assert roots == [root]
    intermediates = x509.load_pem_x509_certificates(
        (d / "trust" / "intermediates.pem").read_bytes()
    )
    assert {cn(c.subject) for c in intermediates} == {
        CA_NAMES["personnes"],
        CA_NAMES["organisations"],
    }
    assert mode(d / "ca" / "root.key") == 0o600


def test_crls_exist_for_every_ca_with_next_update_and_number(pki: DevPKI) -> None:
    for name, path in pki.crl_paths.items():
        crl = load_crl(path)
        ca = pki.ca_certificate(name)
        assert crl.issuer == ca.subject
        assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
        assert crl.next_update_utc is not None
        assert crl.next_update_utc - crl.last_update_utc == timedelta(days=7)
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        assert number >= 1


def test_create_refuses_a_directory_that_already_holds_a_pki(pki: DevPKI) -> None:
    before = (pki.directory / "ca" / "root.crt").read_bytes()
    with pytest.raises(PKIError, match="already holds a PKI"):
        DevPKI.create(pki.directory)
    assert (pki.directory / "ca" / "root.crt").read_bytes() == before


def test_issue_server_matches_the_liste_blanche_shape(
    pki: DevPKI, server_cert: IssuedCertificate
) -> None:
    cert = load(server_cert.cert_path)
    assert server_cert.kind == "server"
    assert server_cert.subject_dn == (
        "CN=smtp.operator.fr,OU=31831002130002,O=Operator,ST=Paris (75),C=FR"
    )
    assert cert.subject.rfc4514_string() == server_cert.subject_dn
    assert cert.issuer == pki.ca_certificate("organisations").subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["smtp.operator.fr", "mx.operator.fr"]
    assert eku(cert) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    assert server_cert.serial == format(cert.serial_number, "x")
    assert server_cert.not_after == cert.not_valid_after_utc
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=1094) <= lifetime <= timedelta(days=1097)


def test_issued_key_is_private_and_matches_and_chain_has_the_intermediate(
    pki: DevPKI, server_cert: IssuedCertificate
) -> None:
    assert mode(server_cert.key_path) == 0o600
    key = serialization.load_pem_private_key(server_cert.key_path.read_bytes(), None)
    cert = load(server_cert.cert_path)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)
    chain = x509.load_pem_x509_certificates(server_cert.chain_path.read_bytes())
    assert chain == [cert, pki.ca_certificate("organisations")]


def test_issue_person_carries_the_national_id_as_cn(
    pki: DevPKI, person_cert: IssuedCertificate
) -> None:
    cert = load(person_cert.cert_path)
    subject = cert.subject
    assert person_cert.kind == "person"
    assert cn(subject) == "810001234567"
    assert subject.get_attributes_for_oid(NameOID.GIVEN_NAME)[0].value == "Jeanne"
    assert subject.get_attributes_for_oid(NameOID.SURNAME)[0].value == "DUPONT"
    assert subject.get_attributes_for_oid(NameOID.TITLE)[0].value == "Médecin"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        "10B0012345"
    )
    assert cert.issuer == pki.ca_certificate("personnes").subject
    assert eku(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION}
    # The stored text form parses back to the certificate's DN.
    assert person_cert.subject_dn.startswith("CN=810001234567,SN=DUPONT,GN=Jeanne,TITLE=")
    assert normalize_dn(person_cert.subject_dn) == normalize_dn(
        "cn=810001234567, 2.5.4.4=dupont, givenName=jeanne, T=médecin, ou=10b0012345, "
        "o=ch de test, c=fr"
    )


def test_issue_person_with_adeli_and_without_structure(pki: DevPKI) -> None:
    issued = pki.issue_person(
        "0123456789", given_name="Paul", surname="MARTIN", profession="Infirmier"
    )
    subject = load(issued.cert_path).subject
    assert cn(subject) == "0123456789"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) == []
    assert issued.cert_path.name == "person-0123456789.crt"


@pytest.mark.parametrize(
    "national_id", ["81000123456", "8100012345678", "912345678901", "8abcdefghijk", "012345678", ""]
)
def test_issue_person_refuses_malformed_national_ids(pki: DevPKI, national_id: str) -> None:
    count = len(pki.list_issued())
    with pytest.raises(ValueError, match="national identifier"):
        pki.issue_person(national_id, given_name="A", surname="B")
    assert len(pki.list_issued()) == count


def test_issue_org_is_client_auth_only(pki: DevPKI, org_cert: IssuedCertificate) -> None:
    cert = load(org_cert.cert_path)
    assert org_cert.kind == "org"
    assert (
        org_cert.subject_dn == "CN=LABO-APP,OU=34797668420072,O=LABORATOIRE TEST,ST=Paris (75),C=FR"
    )
    assert cert.issuer == pki.ca_certificate("organisations").subject
    assert eku(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


@pytest.mark.parametrize("hostname", ["", "bad host.fr", "-x.fr", "a..b", "é.fr", "x" * 64 + ".fr"])
def test_issue_server_refuses_invalid_host_names(pki: DevPKI, hostname: str) -> None:
    with pytest.raises(ValueError, match="not a valid DNS host name"):
        pki.issue_server(hostname, organisation="O", structure_id="1")


def test_issue_refuses_empty_fields_and_inverted_validity(pki: DevPKI) -> None:
    with pytest.raises(ValueError, match="organisation must not be empty"):
        pki.issue_server("h.fr", organisation=" ", structure_id="1")
    with pytest.raises(ValueError, match="structure_id must not be empty"):
        pki.issue_org("APP", organisation="O", structure_id="")
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="must be after not_before"):
        pki.issue_org("APP", organisation="O", structure_id="1", not_before=now, not_after=now)


def test_validity_overrides(pki: DevPKI) -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    issued = pki.issue_org(
        "OLD",
        organisation="O",
        structure_id="1",
        not_before=start,
        not_after=start + timedelta(days=1),
    )
    cert = load(issued.cert_path)
    assert cert.not_valid_before_utc == start
    assert cert.not_valid_after_utc == start + timedelta(days=1)
    short = pki.issue_org("SHORT", organisation="O", structure_id="1", validity=timedelta(days=2))
    assert short.not_after - short.not_before == timedelta(days=2)


def test_reissuing_the_same_subject_gets_new_files_and_serial(pki: DevPKI) -> None:
    first = pki.issue_server("dup.operator.fr", organisation="O", structure_id="1")
    second = pki.issue_server("dup.operator.fr", organisation="O", structure_id="1")
    assert first.cert_path.name == "server-dup.operator.fr.crt"
    assert second.cert_path.name == "server-dup.operator.fr-2.crt"
    assert second.key_path.name == "server-dup.operator.fr-2.key"
    assert second.chain_path.name == "server-dup.operator.fr-2.chain.pem"
    assert first.serial != second.serial
    assert load(first.cert_path) != load(second.cert_path)


def test_index_json_records_issued_certificates(pki: DevPKI, org_cert: IssuedCertificate) -> None:
    index = json.loads((pki.directory / "index.json").read_text(encoding="utf-8"))
    entry = next(e for e in index["issued"] if e["serial"] == org_cert.serial)
    assert entry["kind"] == "org"
    assert entry["subject"] == org_cert.subject_dn
    assert entry["cert"] == "issued/org-labo-app.crt"
    assert entry["revoked"] is False and entry["revocation_date"] is None
    assert pki.get(org_cert.serial) == org_cert
    assert org_cert in pki.list_issued(kind="org")
    assert all(c.kind == "person" for c in pki.list_issued(kind="person"))


def test_revoke_updates_index_and_crl(pki: DevPKI) -> None:
    issued = pki.issue_person("899700000011", given_name="Ana", surname="REVOQUEE")
    crl_before = load_crl(pki.crl_path("personnes"))
    number_before = crl_before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert crl_before.get_revoked_certificate_by_serial_number(int(issued.serial, 16)) is None

    # Serial given in the colon-separated upper-case form tools print.
    colon_form = ":".join(
        f"{int(issued.serial, 16):X}".zfill(40)[i : i + 2] for i in range(0, 40, 2)
    )
    revoked = pki.revoke(colon_form, "keyCompromise")

    assert revoked.revoked and revoked.revocation_reason == "keyCompromise"
    assert revoked.revoked_at is not None
    crl = load_crl(pki.crl_path("personnes"))
    entry = crl.get_revoked_certificate_by_serial_number(int(issued.serial, 16))
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > number_before
    # The other CA's CRL does not list it.
    orgs = load_crl(pki.crl_path("organisations"))
    assert orgs.get_revoked_certificate_by_serial_number(int(issued.serial, 16)) is None
    assert pki.get(issued.serial).revoked


def test_revoke_refusals(pki: DevPKI, org_cert: IssuedCertificate) -> None:
    issued = pki.issue_org("TO-REVOKE", organisation="O", structure_id="1")
    with pytest.raises(ValueError, match="unknown revocation reason"):
        pki.revoke(issued.serial, "because")
    with pytest.raises(ValueError, match="cannot be used"):
        pki.revoke(issued.serial, x509.ReasonFlags.remove_from_crl)
    with pytest.raises(PKIError, match="no certificate with serial 1234"):
        pki.revoke(0x1234)
    with pytest.raises(ValueError, match="not a hexadecimal"):
        pki.revoke("xyz")
    pki.revoke(int(issued.serial, 16))
    with pytest.raises(PKIError, match="already revoked"):
        pki.revoke(issued.serial)
    assert not pki.get(org_cert.serial).revoked


def test_unspecified_reason_has_no_reason_code_in_crl(pki: DevPKI) -> None:
    issued = pki.issue_org("PLAIN-REVOKE", organisation="O", structure_id="1")
    pki.revoke(issued.serial)
    entry = load_crl(pki.crl_path("organisations")).get_revoked_certificate_by_serial_number(
        int(issued.serial, 16)
    )
    assert entry is not None
    with pytest.raises(x509.ExtensionNotFound):  # RFC 5280 §5.3.1
        entry.extensions.get_extension_for_class(x509.CRLReason)


def test_reopen_sees_everything_and_keeps_issuing(
    pki: DevPKI, server_cert: IssuedCertificate
) -> None:
    reopened = DevPKI.open(pki.directory)
    assert reopened.list_issued() == pki.list_issued()
    assert reopened.ca_certificate("root") == pki.ca_certificate("root")
    issued = reopened.issue_org("AFTER-REOPEN", organisation="O", structure_id="1")
    assert load(issued.cert_path).issuer == pki.ca_certificate("organisations").subject
    assert DevPKI.open(pki.directory).get(issued.serial) == issued


def test_open_refuses_missing_or_corrupt_pki(pki: DevPKI, tmp_path: Path) -> None:
    with pytest.raises(PKIError, match="does not exist"):
        DevPKI.open(tmp_path / "nowhere")
    with pytest.raises(PKIError, match=re.escape("index.json is missing")):
        DevPKI.open(tmp_path)

    copy = tmp_path / "copy"
    shutil.copytree(pki.directory, copy)
    (copy / "index.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PKIError, match="not a valid PKI index"):
        DevPKI.open(copy)

    shutil.copy(pki.directory / "index.json", copy / "index.json")
    (copy / "ca" / "personnes.key").unlink()
    with pytest.raises(PKIError, match=re.escape("personnes.key is missing")):
        DevPKI.open(copy)

    shutil.copy(pki.directory / "ca" / "root.key", copy / "ca" / "personnes.key")
    with pytest.raises(PKIError, match="does not match"):
        DevPKI.open(copy)

    shutil.copy(pki.directory / "ca" / "personnes.key", copy / "ca" / "personnes.key")
    (copy / "ca" / "root.crt").write_text("garbage", encoding="utf-8")
    with pytest.raises(PKIError, match=re.escape("root.crt is unreadable")):
        DevPKI.open(copy)

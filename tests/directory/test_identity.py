"""Which box a proof opens, and the refusals: absent from the annuaire, disabled, unbound."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.oidc import DevIssuer
from certs.pki import DevPKI
from directory import accounts, annuaire, patients
from directory.identity import (
    AuthenticationRefused,
    Identity,
    identity_for_certificate,
    identity_for_password,
    identity_for_token,
)
from directory.tokens import TokenClaims, TokenValidator, load_jwks
from routing.identifiers import national_id_for_rpps, rpps_with_key
from storage.db import Database
from tests.directory.test_annuaire_import import _personne

DOMAINS = ["demo.mssante.fr"]
ACTIVE = national_id_for_rpps(rpps_with_key("1000000301"))
ABSENT = national_id_for_rpps(rpps_with_key("1000000302"))
ISSUER = "https://psc.dev.example/auth/realms/esante-wallet"
AUDIENCE = "mailserver-demo"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def _setup(db: Database, tmp_path: Path) -> None:
    await annuaire.import_annuaire(db, _personne(tmp_path / "a.txt", [(ACTIVE, "Martin", "Ana")]))
    async with db.session() as s, s.begin():
        for address, nid in (("ana@demo.mssante.fr", ACTIVE), ("old@demo.mssante.fr", ABSENT)):
            await accounts.add_account(
                s,
                address=address,
                kind="PER",
                operator_domains=DOMAINS,
                national_id=nid,
                password="pw-" + nid,
            )
        await accounts.add_account(
            s, address="labo@demo.mssante.fr", kind="APP", operator_domains=DOMAINS
        )


async def test_person_certificate_opens_the_per_box_while_in_the_annuaire(
    db: Database, pki: DevPKI, tmp_path: Path
) -> None:
    await _setup(db, tmp_path)
    cert = pki.issue_person(ACTIVE, given_name="Ana", surname="Martin").certificate()
    async with db.session() as s:
        ident = await identity_for_certificate(s, cert)
    assert (ident.address, ident.kind, ident.method) == (
        "ana@demo.mssante.fr",
        "PER",
        "certificate",
    )
    # The professional leaves the annuaire: the next import ends their professional identity.
    await annuaire.import_annuaire(
        db, _personne(tmp_path / "b.txt", [(ABSENT[:-1] + "0", "Autre", "X")])
    )
    async with db.session() as s:
        with pytest.raises(AuthenticationRefused, match="not active in the annuaire"):
            await identity_for_certificate(s, cert)
        with pytest.raises(AuthenticationRefused, match="not active in the annuaire"):
            await identity_for_password(s, "ana@demo.mssante.fr", "pw-" + ACTIVE)


async def test_refusals_say_why(db: Database, pki: DevPKI, tmp_path: Path) -> None:
    await _setup(db, tmp_path)
    absent = pki.issue_person(ABSENT, given_name="Old", surname="Doc").certificate()
    stranger = national_id_for_rpps(rpps_with_key("1000000399"))
    unknown = pki.issue_person(stranger, given_name="No", surname="Box").certificate()
    org = pki.issue_org("Automate", structure_id="999000017", organisation="Labo").certificate()
    async with db.session() as s:
        with pytest.raises(AuthenticationRefused, match=f"{ABSENT} is not active"):
            await identity_for_certificate(s, absent)
        with pytest.raises(AuthenticationRefused, match=f"no PER box for national id {stranger}"):
            await identity_for_certificate(s, unknown)
        with pytest.raises(AuthenticationRefused, match="not bound to any box"):
            await identity_for_certificate(s, org)
        with pytest.raises(AuthenticationRefused, match=r"^invalid credentials$"):
            await identity_for_password(s, "ana@demo.mssante.fr", "wrong")
        with pytest.raises(AuthenticationRefused, match=r"^invalid credentials$"):
            await identity_for_password(s, "nobody@demo.mssante.fr", "pw")
    async with db.session() as s, s.begin():
        await accounts.bind_certificate(s, "labo@demo.mssante.fr", org)
    async with db.session() as s:
        assert (await identity_for_certificate(s, org)).address == "labo@demo.mssante.fr"
    async with db.session() as s, s.begin():
        await accounts.set_state(s, "labo@demo.mssante.fr", "disabled")
    async with db.session() as s:
        with pytest.raises(AuthenticationRefused, match="disabled"):
            await identity_for_certificate(s, org)


async def test_patient_password_only_while_active(db: Database) -> None:
    async with db.session() as s, s.begin():
        await patients.add_patient(
            s, "146026322000196", domain="patient.mssante.fr", password="patient-pw"
        )
    async with db.session() as s:
        ident = await identity_for_password(s, "146026322000196@patient.mssante.fr", "patient-pw")
        assert ident.kind == "PAT"
    async with db.session() as s, s.begin():
        await patients.close(s, "146026322000196", domain="patient.mssante.fr")
    async with db.session() as s:
        with pytest.raises(AuthenticationRefused, match="patient box is closed"):
            await identity_for_password(s, "146026322000196@patient.mssante.fr", "patient-pw")


@pytest.fixture(scope="module")
def claims_for(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], TokenClaims]:
    """Validated claims of a development-issuer token for a national id."""
    issuer = DevIssuer.create(tmp_path_factory.mktemp("oidc") / "issuer", ISSUER)
    validator = TokenValidator(
        issuer=ISSUER, audience=AUDIENCE, keys=load_jwks(issuer.jwks_path), clock=lambda: NOW
    )

    def claims(national_id: str) -> TokenClaims:
        token = issuer.mint(national_id=national_id, audience=AUDIENCE, now=NOW)
        return validator.validate(token)

    return claims


async def test_token_opens_the_per_box_while_in_the_annuaire(
    db: Database, tmp_path: Path, claims_for: Callable[[str], TokenClaims]
) -> None:
    await _setup(db, tmp_path)
    async with db.session() as s:
        ident = await identity_for_token(s, claims_for(ACTIVE))
    assert ident == Identity(ident.account_id, "ana@demo.mssante.fr", "PER", ACTIVE, "oauth")
    await annuaire.import_annuaire(
        db, _personne(tmp_path / "b.txt", [(ABSENT[:-1] + "0", "Autre", "X")])
    )
    async with db.session() as s:
        with pytest.raises(AuthenticationRefused, match=f"{ACTIVE} is not active in the annuaire"):
            await identity_for_token(s, claims_for(ACTIVE))


async def test_token_refusals_say_why(
    db: Database, tmp_path: Path, claims_for: Callable[[str], TokenClaims]
) -> None:
    await _setup(db, tmp_path)
    stranger = national_id_for_rpps(rpps_with_key("1000000399"))
    async with db.session() as s:
        with pytest.raises(
            AuthenticationRefused,
            match=rf"^no PER box for national id {stranger} \(token of {ISSUER} for subject ",
        ):
            await identity_for_token(s, claims_for(stranger))
        with pytest.raises(AuthenticationRefused, match=f"{ABSENT} is not active in the annuaire"):
            await identity_for_token(s, claims_for(ABSENT))
    async with db.session() as s, s.begin():
        await accounts.set_state(s, "ana@demo.mssante.fr", "disabled")
    async with db.session() as s:
        with pytest.raises(AuthenticationRefused, match=r"^ana@demo.mssante.fr is disabled$"):
            await identity_for_token(s, claims_for(ACTIVE))


async def test_person_certificate_without_national_id_is_refused(db: Database) -> None:
    """A certificate typed person by its EKU alone, its CN not a national identifier."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dr Nobody")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .sign(key, hashes.SHA256())
    )
    async with db.session() as s:
        with pytest.raises(
            AuthenticationRefused, match=r"^person certificate .*Dr Nobody carries no national id"
        ):
            await identity_for_certificate(s, cert)

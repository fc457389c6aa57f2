"""Which box a proof opens, and the refusals: absent from the annuaire, disabled, unbound."""

from __future__ import annotations

from pathlib import Path

import pytest

from certs.pki import DevPKI
from directory import accounts, annuaire, patients
from directory.identity import (
    AuthenticationRefused,
    identity_for_certificate,
    identity_for_password,
)
from routing.identifiers import national_id_for_rpps, rpps_with_key
from storage.db import Database
from tests.directory.test_annuaire_import import _personne

DOMAINS = ["demo.mssante.fr"]
ACTIVE = national_id_for_rpps(rpps_with_key("1000000301"))
ABSENT = national_id_for_rpps(rpps_with_key("1000000302"))


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

"""Accounts (PER, ORG, APP) and patients: what is accepted and what is refused, and why."""

from __future__ import annotations

import pytest

from certs.pki import DevPKI
from directory import accounts, patients
from directory.errors import DirectoryError
from directory.passwords import verify_password
from routing.identifiers import national_id_for_rpps, rpps_with_key
from storage.db import Database
from storage.mailstore import folders_of

DOMAINS = ["demo.mssante.fr"]
NID = national_id_for_rpps(rpps_with_key("1000000201"))
OTHER_NID = national_id_for_rpps(rpps_with_key("1000000202"))


async def test_per_box_gets_folders_and_a_hashed_password(db: Database) -> None:
    async with db.session() as s, s.begin():
        acc = await accounts.add_account(
            s,
            address="Dr.Martin@Demo.MSSante.fr",
            kind="per",
            operator_domains=DOMAINS,
            national_id=NID,
            password="s3cret-pass",
        )
    assert acc.address == "dr.martin@demo.mssante.fr" and acc.kind == "PER"
    assert acc.password_hash and "s3cret" not in acc.password_hash
    assert verify_password("s3cret-pass", acc.password_hash)
    assert not verify_password("wrong", acc.password_hash)
    async with db.session() as s:
        specials = {f.name: f.special_use for f in await folders_of(s, acc.id)}
    assert specials == {
        "INBOX": None,
        "Sent": "\\Sent",
        "Drafts": "\\Drafts",
        "Trash": "\\Trash",
        "Junk": "\\Junk",
        "Archive": "\\Archive",
    }


@pytest.mark.parametrize(
    ("address", "kind", "nid", "message"),
    [
        ("a@elsewhere.fr", "PER", NID, "not served here"),
        ("a@demo.mssante.fr", "PER", None, "needs --national-id"),
        ("a@demo.mssante.fr", "PER", "81000000020", "12"),
        (
            "a@demo.mssante.fr",
            "PER",
            NID[:-1] + str((int(NID[-1]) + 1) % 10),
            "wrong RPPS check digit",
        ),
        ("a@demo.mssante.fr", "XYZ", None, "unknown account type"),
        ("not-an-address", "ORG", None, "exactly one '@'"),
        ("a@demo.mssante.fr", "ORG", NID, "structure identifier"),
    ],
)
async def test_bad_accounts_are_refused_with_the_reason(
    db: Database, address: str, kind: str, nid: str | None, message: str
) -> None:
    async with db.session() as s:
        with pytest.raises(DirectoryError, match=message):
            await accounts.add_account(
                s, address=address, kind=kind, operator_domains=DOMAINS, national_id=nid
            )


async def test_duplicate_account_refused(db: Database) -> None:
    async with db.session() as s, s.begin():
        await accounts.add_account(
            s, address="x@demo.mssante.fr", kind="ORG", operator_domains=DOMAINS
        )
    async with db.session() as s:
        with pytest.raises(DirectoryError, match="already exists"):
            await accounts.add_account(
                s, address="X@demo.mssante.fr", kind="APP", operator_domains=DOMAINS
            )


async def test_certificates_must_fit_the_box(db: Database, pki: DevPKI) -> None:
    mine = pki.issue_person(NID, given_name="Camille", surname="Martin").certificate()
    theirs = pki.issue_person(OTHER_NID, given_name="Paul", surname="Autre").certificate()
    org = pki.issue_org("Automate", structure_id="999000017", organisation="Labo").certificate()
    async with db.session() as s, s.begin():
        await accounts.add_account(
            s, address="dr@demo.mssante.fr", kind="PER", operator_domains=DOMAINS, national_id=NID
        )
        await accounts.add_account(
            s, address="labo@demo.mssante.fr", kind="APP", operator_domains=DOMAINS
        )
        await accounts.bind_certificate(s, "dr@demo.mssante.fr", mine)
        await accounts.bind_certificate(s, "labo@demo.mssante.fr", org)
        with pytest.raises(DirectoryError, match=f"national id {OTHER_NID}"):
            await accounts.bind_certificate(s, "dr@demo.mssante.fr", theirs)
        with pytest.raises(DirectoryError, match="needs a person certificate"):
            await accounts.bind_certificate(s, "dr@demo.mssante.fr", org)
        with pytest.raises(DirectoryError, match="needs an organisation certificate"):
            await accounts.bind_certificate(s, "labo@demo.mssante.fr", mine)
        with pytest.raises(DirectoryError, match="already bound"):
            await accounts.bind_certificate(s, "labo@demo.mssante.fr", org)
    async with db.session() as s:
        listed = {a.address: a for a in await accounts.list_accounts(s)}
    assert listed["labo@demo.mssante.fr"].certificates == 1


async def test_org_membership_and_disabling(db: Database) -> None:
    async with db.session() as s, s.begin():
        await accounts.add_account(
            s, address="dr@demo.mssante.fr", kind="PER", operator_domains=DOMAINS, national_id=NID
        )
        await accounts.add_account(
            s, address="cardio@demo.mssante.fr", kind="ORG", operator_domains=DOMAINS
        )
        await accounts.add_account(
            s, address="app@demo.mssante.fr", kind="APP", operator_domains=DOMAINS
        )
        await accounts.add_member(s, "cardio@demo.mssante.fr", "dr@demo.mssante.fr")
        with pytest.raises(DirectoryError, match="only professionals join"):
            await accounts.add_member(s, "cardio@demo.mssante.fr", "app@demo.mssante.fr")
        with pytest.raises(DirectoryError, match="is not an ORG box"):
            await accounts.add_member(s, "app@demo.mssante.fr", "dr@demo.mssante.fr")
        await accounts.set_state(s, "dr@demo.mssante.fr", "disabled")
    async with db.session() as s:
        listed = {a.address: a for a in await accounts.list_accounts(s)}
    assert listed["cardio@demo.mssante.fr"].members == ("dr@demo.mssante.fr",)
    assert listed["dr@demo.mssante.fr"].state == "disabled"
    async with db.session() as s, s.begin():
        await accounts.remove_member(s, "cardio@demo.mssante.fr", "dr@demo.mssante.fr")
        with pytest.raises(DirectoryError, match="is not a member"):
            await accounts.remove_member(s, "cardio@demo.mssante.fr", "dr@demo.mssante.fr")


async def test_patients_lifecycle(db: Database) -> None:
    async with db.session() as s, s.begin():
        with pytest.raises(DirectoryError, match="wrong key: expected 96, got 97"):
            await patients.add_patient(s, "146026322000197", domain="patient.mssante.fr")
        p = await patients.add_patient(
            s,
            "146026322000196",
            domain="patient.mssante.fr",
            personal_email="Camille@Example.org",
            password="pw",
        )
        assert p.state == "active" and p.personal_email == "camille@example.org"
        with pytest.raises(DirectoryError, match="already exists"):
            await patients.add_patient(s, "146026322000196", domain="patient.mssante.fr")
        # Opposition may precede the box: it is recorded so none is created.
        opposed = await patients.oppose(s, "192037512304512", domain="patient.mssante.fr")
        assert opposed.state == "opposed"
        await patients.close(s, "146026322000196", domain="patient.mssante.fr")
        with pytest.raises(DirectoryError, match="already closed"):
            await patients.close(s, "146026322000196", domain="patient.mssante.fr")
        with pytest.raises(DirectoryError, match="closed box is not reopened"):
            await patients.oppose(s, "146026322000196", domain="patient.mssante.fr")
        with pytest.raises(DirectoryError, match="no patient"):
            await patients.close(s, "285052A12345680", domain="patient.mssante.fr")
    async with db.session() as s:
        states = {r.ins: r.state for r in await patients.list_patients(s)}
    assert states == {"146026322000196": "closed", "192037512304512": "opposed"}

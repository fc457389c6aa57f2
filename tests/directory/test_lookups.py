"""The routing pipeline's directory lookups, each one prebuilt statement run in one trip
(storage/sync_runner.py): the same answers as the session-based helpers they replace."""

from __future__ import annotations

from directory import accounts, patients
from directory.lookups import DirectoryLookups
from routing.identifiers import national_id_for_rpps, rpps_with_key
from storage.db import Database
from storage.models import AnnuaireMailbox, AnnuairePerson, ListeBlancheEntry, PatientContact

DOMAIN = "demo.mssante.fr"
INS = "146026322000196"
DR_A = national_id_for_rpps(rpps_with_key("1000000101"))  # in PS_LibreAcces
DR_B = national_id_for_rpps(rpps_with_key("1000000102"))  # in the MSSanté extraction only
DR_C = national_id_for_rpps(rpps_with_key("1000000103"))  # in neither


async def test_every_lookup_answers_from_the_database(db: Database) -> None:
    async with db.session() as s, s.begin():
        org = await accounts.add_account(
            s, address=f"Secretariat@{DOMAIN}", kind="ORG", operator_domains=[DOMAIN]
        )
        pers = {}
        for nid, name in ((DR_A, "a"), (DR_B, "b"), (DR_C, "c")):
            pers[nid] = await accounts.add_account(
                s, address=f"dr.{name}@{DOMAIN}", kind="PER", operator_domains=[DOMAIN],
                national_id=nid,
            )  # fmt: skip
        await accounts.add_member(s, org.address, pers[DR_A].address)
        patient = await patients.add_patient(s, INS, domain="patient.mssante.fr", state="closed")
        s.add(AnnuairePerson(national_id=DR_A))
        s.add(AnnuaireMailbox(address=f"dr.b@{DOMAIN}", national_id=DR_B))
        s.add(PatientContact(patient_id=patient.account_id, address="x@other.fr", state="open"))
        s.add(PatientContact(patient_id=patient.account_id, address="y@other.fr", state="closed"))
        s.add(ListeBlancheEntry(domain="other.fr", dn_text="CN=x", dn_normalized="cn=x"))
        s.add(ListeBlancheEntry(domain="other.fr", dn_text=None, dn_normalized=None))
        s.add(ListeBlancheEntry(domain="nodn.fr", dn_text=None, dn_normalized=None))
    lookups = DirectoryLookups(db)

    box = await lookups.mailbox(f"SECRETARIAT@{DOMAIN}")
    assert box is not None and (box.account_id, box.kind, box.active) == (org.id, "ORG", True)
    assert box.patient_state is None
    pat = await lookups.mailbox(f"{INS}@patient.mssante.fr")
    assert pat is not None and (pat.kind, pat.patient_state) == ("PAT", "closed")
    assert await lookups.mailbox(f"nobody@{DOMAIN}") is None

    assert await lookups.may_send_as(pers[DR_A].id, f"secretariat@{DOMAIN}")
    assert not await lookups.may_send_as(pers[DR_B].id, f"secretariat@{DOMAIN}")
    assert not await lookups.may_send_as(pers[DR_A].id, pers[DR_B].address)  # not an ORG

    assert await lookups.is_active_professional(pers[DR_A].id)
    assert await lookups.is_active_professional(pers[DR_B].id)
    assert not await lookups.is_active_professional(pers[DR_C].id)
    assert not await lookups.is_active_professional(org.id)  # no national identifier
    assert not await lookups.is_active_professional(999_999)

    assert await lookups.contact_state(patient.account_id, "X@other.fr") == "open"
    assert await lookups.contact_state(patient.account_id, "y@other.fr") == "closed"
    assert await lookups.contact_state(patient.account_id, "z@other.fr") is None

    assert await lookups.listed_dns("OTHER.fr") == frozenset({"cn=x"})
    assert await lookups.listed_dns("nodn.fr") == frozenset()  # listed, without a DN
    assert await lookups.listed_dns("unlisted.fr") is None
    assert await lookups.is_operator_dn("cn=x")
    assert not await lookups.is_operator_dn("cn=y")

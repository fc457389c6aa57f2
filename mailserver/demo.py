"""Demo content for `mailserver init --demo`, described in DIR/demo.json.

Everything a newcomer (or a black-box test) needs to exercise the MSSanté rules on one
machine: an active professional and one absent from the annuaire, an ORG box, a laboratory
APP box with its organisation certificate, two active patients and one who opposed, and a
second "peer operator" identity on the liste blanche. Passwords are generated per install.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from certs.pki import DevPKI, IssuedCertificate
from directory import accounts, annuaire, listeblanche, patients
from directory.annuaire_layout import MSSANTE_HEADERS, PERSONNE_HEADERS
from directory.passwords import new_password
from mailserver.bootstrap import (
    DEMO_STRUCTURE_ID,
    InitOptions,
    Installation,
    config_document,
    write_dkim_keys,
)
from mailserver.config import PORT_OFFSETS, load_config
from routing.identifiers import ins_key, national_id_for_rpps, rpps_with_key
from storage.db import Database, open_database

PEER_STRUCTURE_ID = "99999999800027"
LAB_FINESS = "999000017"


@dataclass(frozen=True)
class DemoPerson:
    national_id: str
    civility: str
    first_name: str
    last_name: str
    profession_code: str
    profession_label: str
    specialty: str
    address: str


def _password() -> str:
    return new_password(12)


def _rel(base: Path, p: Path) -> str:
    return os.path.relpath(p, base)


def _write_annuaire(
    directory: Path, people: list[DemoPerson], org_box: str, org_name: str
) -> list[Path]:
    """The demo annuaire, in the published layouts (2021 headers, trailing `|`)."""
    directory.mkdir(parents=True, exist_ok=True)
    personne = directory / "PS_LibreAcces_Personne_activite_202611230000.txt"
    header = PERSONNE_HEADERS["2021"]
    with personne.open("w", encoding="utf-8") as fh:
        fh.write("|".join(header) + "|\n")
        for p in people:
            values = {
                "Type d'identifiant PP": "8",
                "Identifiant PP": p.national_id[1:],
                "Identification nationale PP": p.national_id,
                "Code civilité d'exercice": p.civility,
                "Libellé civilité d'exercice": "Docteur" if p.civility == "DR" else "",
                "Nom d'exercice": p.last_name,
                "Prénom d'exercice": p.first_name,
                "Code profession": p.profession_code,
                "Libellé profession": p.profession_label,
                "Libellé savoir-faire": p.specialty,
                "Raison sociale site": org_name,
                "Code postal (coord. structure)": "75012",
                "Libellé commune (coord. structure)": "Paris",
            }
            fh.write("|".join(values.get(h, "") for h in header) + "|\n")
    mss = directory / "Extraction_Correspondance_MSSante_202611230000.txt"
    mheader = MSSANTE_HEADERS["2021"]
    with mss.open("w", encoding="utf-8") as fh:
        fh.write("|".join(mheader) + "|\n")
        rows: list[dict[str, str]] = [
            {
                "Type de BAL": "PER",
                "Adresse BAL": p.address,
                "Type Identifiant PP": "8",
                "Identifiant PP": p.national_id[1:],
                "Identification nationale PP": p.national_id,
                "Civilité d'exercice": p.civility,
                "Nom d'exercice": p.last_name,
                "Prénom d'exercice": p.first_name,
                "Code Profession": p.profession_code,
                "Libellé Profession": p.profession_label,
                "Raison Sociale structure BAL": org_name,
            }
            for p in people
        ]
        rows.append(
            {
                "Type de BAL": "ORG",
                "Adresse BAL": org_box,
                "Service de rattachement": "Cardiologie",
                "Raison Sociale structure BAL": org_name,
            }
        )
        for row in rows:
            fh.write("|".join(row.get(h, "") for h in mheader) + "|\n")
    return [personne, mss]


def _cert_paths(c: IssuedCertificate, base: Path) -> dict[str, str]:
    return {
        "cert": _rel(base, c.cert_path),
        "key": _rel(base, c.key_path),
        "chain": _rel(base, c.chain_path),
        "subject_dn": c.subject_dn,
    }


async def create_demo(inst: Installation, db: Database, peer_domain: str) -> dict[str, Any]:
    cfg = inst.config
    base = cfg.base_dir
    domain = cfg.server.domains[0]
    patient_domain = cfg.patient_domain.name
    pki: DevPKI = inst.pki
    org_name = "Centre de santé de démonstration"

    active = DemoPerson(
        national_id_for_rpps(rpps_with_key("1000000001")),
        "DR",
        "Camille",
        "Martin",
        "10",
        "Médecin",
        "Médecine générale",
        f"camille.martin@{domain}",
    )
    absent = DemoPerson(
        national_id_for_rpps(rpps_with_key("1000000002")),
        "DR",
        "Paul",
        "Lefèvre",
        "10",
        "Médecin",
        "Cardiologie",
        f"paul.lefevre@{domain}",
    )
    annuaire_files = _write_annuaire(
        base / "demo-annuaire", [active], f"cardiologie@{domain}", org_name
    )
    for f in annuaire_files:
        await annuaire.import_annuaire(db, f)

    accounts_out: list[dict[str, Any]] = []
    pw_active, pw_absent = _password(), _password()
    cert_active = pki.issue_person(
        active.national_id,
        given_name=active.first_name,
        surname=active.last_name,
        structure_id=DEMO_STRUCTURE_ID,
        organisation=org_name,
    )
    cert_absent = pki.issue_person(
        absent.national_id,
        given_name=absent.first_name,
        surname=absent.last_name,
        structure_id=DEMO_STRUCTURE_ID,
        organisation=org_name,
    )
    cert_lab = pki.issue_org(
        "Automate LABO DEMO",
        structure_id=LAB_FINESS,
        organisation="Laboratoire de biologie de démonstration",
    )
    peer_host = f"mail.{peer_domain}"
    cert_peer = pki.issue_server(
        peer_host,
        organisation="Opérateur pair de démonstration",
        structure_id=PEER_STRUCTURE_ID,
        alt_names=["localhost"],
    )
    pw_patients = [_password(), _password()]
    ins_active = ["146026322000196", "2850" + "52A" + "123456"]
    ins_active[1] = ins_active[1] + ins_key(ins_active[1])
    ins_opposed_number = "1920375123045"
    ins_opposed = ins_opposed_number + ins_key(ins_opposed_number)

    async with db.session() as s, s.begin():
        for person, pw, cert, in_annuaire in (
            (active, pw_active, cert_active, True),
            (absent, pw_absent, cert_absent, False),
        ):
            await accounts.add_account(
                s,
                address=person.address,
                kind="PER",
                operator_domains=cfg.server.domains,
                national_id=person.national_id,
                display_name=f"Dr {person.first_name} {person.last_name}",
                password=pw,
            )
            accounts_out.append(
                {
                    "address": person.address,
                    "type": "PER",
                    "password": pw,
                    "national_id": person.national_id,
                    "in_annuaire": in_annuaire,
                    "name": f"Dr {person.first_name} {person.last_name}",
                    **_cert_paths(cert, base),
                }
            )
        org = f"cardiologie@{domain}"
        await accounts.add_account(
            s,
            address=org,
            kind="ORG",
            operator_domains=cfg.server.domains,
            structure_id=DEMO_STRUCTURE_ID,
            display_name="Service de cardiologie",
        )
        await accounts.add_member(s, org, active.address)
        accounts_out.append(
            {
                "address": org,
                "type": "ORG",
                "password": None,
                "members": [active.address],
                "name": "Service de cardiologie",
            }
        )
        lab = f"laboratoire@{domain}"
        await accounts.add_account(
            s,
            address=lab,
            kind="APP",
            operator_domains=cfg.server.domains,
            structure_id=LAB_FINESS,
            display_name="Laboratoire de biologie de démonstration",
        )
        await accounts.bind_certificate(s, lab, cert_lab.certificate())
        accounts_out.append(
            {
                "address": lab,
                "type": "APP",
                "password": None,
                "name": "Laboratoire de biologie de démonstration",
                **_cert_paths(cert_lab, base),
            }
        )
        names = [("Camille", "Dupont"), ("Jean-Baptiste", "N'Guyen")]
        for ins, pw, (first, last) in zip(ins_active, pw_patients, names, strict=True):
            email = f"{first.lower()}.{last.lower().replace(chr(39), '')}@example.org"
            await patients.add_patient(
                s,
                ins,
                domain=patient_domain,
                personal_email=email,
                password=pw,
                display_name=f"{first} {last}",
            )
            # The demo enables mail clients for patients: one app password each.
            app_password = await patients.add_app_password(s, ins, "demo mail client")
            accounts_out.append(
                {
                    "address": f"{ins}@{patient_domain}",
                    "type": "PAT",
                    "ins": ins,
                    "state": "active",
                    "password": pw,
                    "app_password": app_password,
                    "personal_email": email,
                    "name": f"{first} {last}",
                }
            )
        await patients.oppose(s, ins_opposed, domain=patient_domain)
        accounts_out.append(
            {
                "address": f"{ins_opposed}@{patient_domain}",
                "type": "PAT",
                "ins": ins_opposed,
                "state": "opposed",
                "password": None,
            }
        )
        # The liste blanche (local entries, kept across national imports): us and the peer.
        own_dn = inst.server_cert.subject_dn
        for d in (domain, patient_domain):
            await listeblanche.add_local_entry(s, d, own_dn, "this demo operator")
        await listeblanche.add_local_entry(
            s, peer_domain, cert_peer.subject_dn, "demo peer operator"
        )

    doc: dict[str, Any] = {
        "format": 1,
        "domain": domain,
        "patient_domain": patient_domain,
        "hostname": cfg.server.hostname,
        "config": "mailserver.toml",
        "listeners": {
            name: {
                "address": getattr(cfg.listeners, name).address,
                "port": getattr(cfg.listeners, name).port,
            }
            for name in PORT_OFFSETS
        },
        "trust": {
            "roots": _rel(base, pki.trust_roots_path),
            "intermediates": _rel(base, pki.trust_intermediates_path),
            "ca_bundle": _rel(base, pki.ca_bundle_path),
            "crl_dir": _rel(base, pki.crl_dir),
        },
        "server": {"hostname": cfg.server.hostname, **_cert_paths(inst.server_cert, base)},
        "accounts": accounts_out,
        "peer_operator": {
            "domain": peer_domain,
            "hostname": peer_host,
            **_cert_paths(cert_peer, base),
        },
        "annuaire_files": [_rel(base, f) for f in annuaire_files],
    }
    doc["peer_operator"].update(
        await create_demo_peer(inst, cert_peer, peer_domain, [domain, patient_domain])
    )
    path = base / "demo.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds passwords
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    return doc


# The demo peer listens on each of our ports + 1 (10026 for its inbound SMTP when ours is
# 10025): no PORT_OFFSETS value is another one + 1, so the two sets never overlap.
PEER_PORT_SHIFT = 1


async def create_demo_peer(
    inst: Installation, cert_peer: IssuedCertificate, peer_domain: str, our_domains: list[str]
) -> dict[str, Any]:
    """A second installation, DIR/peer/, serving the peer operator's domain with the peer
    certificate from the same development PKI, so that relaying between operators (both
    directions, mutual TLS, liste blanche DNs, DSNs) works on one machine. Static routes
    send each side's mail for the other's domains to its inbound port."""
    cfg = inst.config
    base = cfg.base_dir
    peer_dir = base / "peer"
    opts = InitOptions(
        directory=peer_dir,
        domain=peer_domain,
        hostname=f"mail.{peer_domain}",
        port_base=cfg.listeners.smtp_inbound.port - PORT_OFFSETS["smtp_inbound"] + PEER_PORT_SHIFT,
        patient_domain=None,
        organisation="Opérateur pair de démonstration",
        demo=True,
    )
    (peer_dir / "data").mkdir(parents=True, exist_ok=True)
    peer_doc = config_document(
        opts, cert_peer, inst.pki, write_dkim_keys(peer_dir / "dkim", "mss", peer_domain)
    )
    del peer_doc["pki"]  # the peer issues nothing: it only holds its certificate
    for name in ("imap", "imaps", "webmail"):
        peer_doc["listeners"][name]["enabled"] = False
    ours = f"127.0.0.1:{cfg.listeners.smtp_inbound.port}"
    peer_doc["relay"] = {"static_routes": {d: ours for d in our_domains}}
    (peer_dir / "mailserver.toml").write_text(
        "# The demo peer operator (`mailserver init --demo`): another operator on this machine.\n"
        + tomli_w.dumps(peer_doc),
        encoding="utf-8",
    )
    peer_inbound = f"127.0.0.1:{peer_doc['listeners']['smtp_inbound']['port']}"
    # Our side: mail for the peer's domain goes straight to its inbound port.
    ours_path = base / "mailserver.toml"
    text = ours_path.read_text(encoding="utf-8")
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    ours_doc = tomllib.loads(text)
    ours_doc.setdefault("relay", {}).setdefault("static_routes", {})[peer_domain] = peer_inbound
    ours_path.write_text(header + tomli_w.dumps(ours_doc), encoding="utf-8")

    mailbox = f"secretariat@{peer_domain}"
    peer_cfg = load_config(peer_dir / "mailserver.toml")
    peer_db = await open_database(peer_cfg.database_url)
    try:
        async with peer_db.session() as s, s.begin():
            await accounts.add_account(
                s,
                address=mailbox,
                kind="ORG",
                operator_domains=peer_cfg.server.domains,
                structure_id=PEER_STRUCTURE_ID,
                display_name="Secrétariat de l'opérateur pair",
            )
            await listeblanche.add_local_entry(s, peer_domain, cert_peer.subject_dn, "itself")
            for d in our_domains:
                await listeblanche.add_local_entry(
                    s, d, inst.server_cert.subject_dn, "the demo operator"
                )
    finally:
        await peer_db.close()
    return {
        "config": _rel(base, peer_dir / "mailserver.toml"),
        "mailbox": mailbox,
        "listeners": {
            name: {"address": "127.0.0.1", "port": peer_doc["listeners"][name]["port"]}
            for name in ("smtp_inbound", "admin", "submission", "submissions")
        },
    }

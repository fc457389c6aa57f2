"""The administration commands, as an operator types them."""

from __future__ import annotations

import hashlib
import re
import stat
from pathlib import Path

import pytest

from certs.identity import identity_of, load_certificate
from certs.truststore import TrustStore
from routing.identifiers import ins_key, is_valid_ins
from tests.cli.conftest import Install, mailserver

REAL = Path(__file__).resolve().parents[1] / "data" / "listeblanchemssante.xml"

SUBCOMMANDS = [
    [],
    ["init"],
    ["serve"],
    ["check-config"],
    ["pki"],
    ["pki", "issue"],
    ["pki", "issue", "server"],
    ["pki", "issue", "person"],
    ["pki", "issue", "org"],
    ["pki", "revoke"],
    ["pki", "list"],
    ["directory"],
    ["directory", "import-listeblanche"],
    ["directory", "import-annuaire"],
    ["directory", "show"],
    ["directory", "add-domain"],
    ["account"],
    ["account", "add"],
    ["account", "list"],
    ["account", "disable"],
    ["account", "bind-cert"],
    ["account", "add-member"],
    ["patient"],
    ["patient", "add"],
    ["patient", "oppose"],
    ["patient", "close"],
    ["patient", "list"],
]


@pytest.mark.parametrize("cmd", SUBCOMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_subcommand_has_help(cmd: list[str]) -> None:
    r = mailserver(*cmd, "--help")
    assert r.returncode == 0 and "usage: mailserver" in r.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["init"],
        ["patient", "add"],
        ["account", "add", "x@y.fr", "--type", "Z"],
        ["init", "/tmp/x", "--domain", "not a domain"],
        ["init", "/tmp/x", "--domain", "a.fr", "--port-base", "65000"],
    ],
)
def test_bad_usage_is_one_line_and_exit_2(argv: list[str]) -> None:
    r = mailserver(*argv)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_demo_json_describes_every_demo_account(install: Install) -> None:
    demo = install.demo
    by_type: dict[str, list[dict[str, object]]] = {}
    for a in demo["accounts"]:
        by_type.setdefault(a["type"], []).append(a)
    pers = by_type["PER"]
    assert sorted(p["in_annuaire"] for p in pers) == [False, True]  # type: ignore[type-var]
    for p in pers:
        cert = load_certificate(install.dir / str(p["cert"]))
        assert identity_of(cert).national_id == p["national_id"]
        assert (install.dir / str(p["key"])).exists() and p["password"]
    assert len(by_type["ORG"]) == 1 and by_type["ORG"][0]["members"]
    app = by_type["APP"][0]
    assert identity_of(load_certificate(install.dir / str(app["cert"]))).kind == "org"
    states = sorted(str(p["state"]) for p in by_type["PAT"])
    assert states == ["active", "active", "opposed"]
    assert all(is_valid_ins(str(p["ins"])) for p in by_type["PAT"])
    peer = demo["peer_operator"]
    assert identity_of(load_certificate(install.dir / peer["cert"])).kind == "server"
    # demo.json holds passwords: readable by its owner only
    assert stat.S_IMODE((install.dir / "demo.json").stat().st_mode) == 0o600

    r = mailserver("directory", "show", "-c", install.config, peer["domain"])
    assert r.returncode == 0 and peer["subject_dn"] in r.stdout
    active = next(p for p in pers if p["in_annuaire"])
    absent = next(p for p in pers if not p["in_annuaire"])
    r = mailserver("directory", "show", "-c", install.config, str(active["national_id"]))
    assert r.returncode == 0 and "active" in r.stdout and "Martin" in r.stdout
    r = mailserver("directory", "show", "-c", install.config, str(absent["national_id"]))
    assert r.returncode == 1 and "not in the annuaire" in r.stdout


def test_init_refuses_to_overwrite(install: Install) -> None:
    r = mailserver("init", install.dir, "--domain", "demo.mssante.fr")
    assert r.returncode == 1 and "already exists" in r.stderr


def test_patient_add_checks_the_ins_key(install: Install) -> None:
    r = mailserver("patient", "add", "-c", install.config, "146026322000197")
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "mailserver: INS 146026322000197 has a wrong key: expected 96, got 97"
    )
    # the demo already holds 146026322000196: a fresh INS with its right key is accepted
    ins = "2690799123456" + ins_key("2690799123456")
    r = mailserver(
        "patient",
        "add",
        "-c",
        install.config,
        ins,
        "--email",
        "p@example.org",
        "--password-stdin",
        input="pw\n",
    )
    assert r.returncode == 0, r.stderr
    r = mailserver("patient", "list", "-c", install.config)
    assert "p@example.org" in r.stdout


def test_patient_add_accepts_the_documented_example(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:

    r = mailserver("init", tmp_path / "plain", "--domain", "ops.mssante.fr")
    assert r.returncode == 0, r.stderr
    cfg = tmp_path / "plain" / "mailserver.toml"
    r = mailserver("patient", "add", "-c", cfg, "146026322000196")
    assert r.returncode == 0 and "146026322000196@patient.mssante.fr" in r.stdout


def test_listeblanche_import_show_and_refusals(install: Install, tmp_path: Path) -> None:
    digest = hashlib.sha256(REAL.read_bytes()).hexdigest()
    r = mailserver(
        "directory", "import-listeblanche", "-c", install.config, REAL, "--sha256", digest
    )
    assert r.returncode == 0, r.stderr
    assert "6554 entries, 5002 domains" in r.stdout
    r = mailserver("directory", "show", "-c", install.config, "patient.mssante.fr")
    assert "CN=smtps1.ens.atos-infogerance.fr" in r.stdout
    assert "CN=smtps2.ens.atos-infogerance.fr" in r.stdout
    half = tmp_path / "half.xml"
    half.write_bytes(REAL.read_bytes()[: REAL.stat().st_size // 2])
    r = mailserver("directory", "import-listeblanche", "-c", install.config, half)
    assert r.returncode == 1 and "truncated" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = mailserver(
        "directory", "import-listeblanche", "-c", install.config, REAL, "--sha256", "0" * 64
    )
    assert r.returncode == 1 and re.search("(?i)checksum|sha-?256", r.stderr)
    r = mailserver("directory", "show", "-c", install.config, "zenidoc.mssante.fr")
    assert r.returncode == 0 and "ADISTA" in r.stdout  # the previous list is in force
    r = mailserver("directory", "show", "-c", install.config, "nowhere.example.com")
    assert r.returncode == 1 and "not on the liste blanche" in r.stdout


def test_account_lifecycle_and_pki(install: Install) -> None:
    cfg = install.config
    from routing.identifiers import national_id_for_rpps, rpps_with_key

    nid = national_id_for_rpps(rpps_with_key("1000000777"))
    r = mailserver(
        "pki", "issue", "person", "-c", cfg, nid, "--given-name", "Anne", "--surname", "Dubois"
    )
    assert r.returncode == 0, r.stderr
    issued = dict(re.findall(r"^(\w+):\s+(.*)$", r.stdout, re.M))
    r = mailserver(
        "account",
        "add",
        "-c",
        cfg,
        "anne.dubois@demo.mssante.fr",
        "--type",
        "PER",
        "--national-id",
        nid,
        "--cert",
        issued["cert"],
        "--member-of",
        "cardiologie@demo.mssante.fr",
        "--password-stdin",
        input="secret\n",
    )
    assert r.returncode == 0, r.stderr
    r = mailserver("account", "list", "-c", cfg, "--type", "ORG")
    assert "anne.dubois@demo.mssante.fr" in r.stdout
    r = mailserver("account", "disable", "-c", cfg, "anne.dubois@demo.mssante.fr")
    assert r.returncode == 0 and "disabled" in r.stdout
    r = mailserver("account", "add", "-c", cfg, "x@other.fr", "--type", "ORG")
    assert r.returncode == 1 and "not served here" in r.stderr

    # Revocation reaches the CRL that the server's trust store reads.
    r = mailserver("pki", "revoke", "-c", cfg, issued["serial"], "--reason", "keyCompromise")
    assert r.returncode == 0, r.stderr
    trust = TrustStore.from_paths(
        [install.dir / install.demo["trust"]["roots"]],
        [install.dir / install.demo["trust"]["intermediates"]],
        [install.dir / install.demo["trust"]["crl_dir"]],
    )
    result = trust.verify(load_certificate(Path(issued["cert"])))
    assert not result.ok and "revoked" in result.reason
    r = mailserver("pki", "revoke", "-c", cfg, issued["serial"])
    assert r.returncode == 1 and "already revoked" in r.stderr
    r = mailserver("pki", "list", "-c", cfg)
    assert re.search(rf"{issued['serial']}\s+person\s+revoked", r.stdout)

"""`mailserver init`: a configuration, a development PKI, DKIM keys and a data directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from certs.pki import DevPKI, IssuedCertificate
from mailserver.config import DEFAULT_PATIENT_DOMAIN, PORT_OFFSETS, Config, load_config
from smtp.dkim import public_record

# The demo operator's made-up structure identifier (SIRET-shaped, not a real company).
DEMO_STRUCTURE_ID = "99999999900018"


@dataclass(frozen=True)
class InitOptions:
    directory: Path
    domain: str
    hostname: str
    port_base: int
    patient_domain: str | None
    organisation: str
    demo: bool
    database_url: str = ""


@dataclass(frozen=True)
class Installation:
    config: Config
    pki: DevPKI
    server_cert: IssuedCertificate


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _txt_strings(value: str) -> str:
    """RFC 1035 §3.3.14: a TXT record is character-strings of at most 255 octets each."""
    return " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))


def write_dkim_keys(directory: Path, selector: str, domain: str) -> tuple[Path, Path]:
    """RSA-2048 (RFC 6376) and Ed25519 (RFC 8463) keys plus the DNS TXT records to publish."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    rsa_path = directory / f"{selector}-rsa.key"
    ed_path = directory / f"{selector}-ed25519.key"
    pkcs8 = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    _write_private(rsa_path, rsa_key.private_bytes(serialization.Encoding.PEM, pkcs8, none))
    _write_private(ed_path, ed_key.private_bytes(serialization.Encoding.PEM, pkcs8, none))
    records = (
        f"{selector}-rsa._domainkey.{domain}. IN TXT {_txt_strings(public_record(rsa_key))}\n"
        f"{selector}-ed25519._domainkey.{domain}. IN TXT "
        f"{_txt_strings(public_record(ed_key))}\n"
    )
    (directory / f"{selector}.dns.txt").write_text(records, encoding="utf-8")
    return rsa_path, ed_path


def port_layout(base: int) -> dict[str, int]:
    return {name: base + offset for name, offset in PORT_OFFSETS.items()}


def config_document(
    opts: InitOptions, server: IssuedCertificate, pki: DevPKI, dkim: tuple[Path, Path]
) -> dict[str, Any]:
    d = opts.directory

    def rel(p: Path) -> str:
        return os.path.relpath(p, d)

    ports = port_layout(opts.port_base)
    return {
        "server": {"hostname": opts.hostname, "domains": [opts.domain], "data_dir": "data"},
        "patient_domain": {
            "enabled": opts.patient_domain is not None,
            "name": opts.patient_domain or DEFAULT_PATIENT_DOMAIN,
        },
        "database": {"url": opts.database_url},
        "tls": {
            "cert": rel(server.chain_path),
            "key": rel(server.key_path),
            "roots": [rel(pki.trust_roots_path)],
            "intermediates": [rel(pki.trust_intermediates_path)],
            "crls": [rel(pki.crl_dir)],
        },
        "listeners": {
            name: {"enabled": True, "address": "127.0.0.1", "port": port}
            for name, port in ports.items()
        },
        "limits": {},
        "auth": {"allow_plain": opts.demo, "patients_mail_clients": opts.demo},
        "dkim": {"selector": "mss", "rsa_key": rel(dkim[0]), "ed25519_key": rel(dkim[1])},
        "pki": {"dir": rel(pki.directory)},
        "logging": {"level": "INFO"},
    }


def create_installation(opts: InitOptions) -> Installation:
    d = opts.directory
    d.mkdir(parents=True, exist_ok=True)
    pki = DevPKI.create(d / "pki", organisation=opts.organisation)
    server = pki.issue_server(
        opts.hostname,
        organisation=opts.organisation,
        structure_id=DEMO_STRUCTURE_ID,
        alt_names=["localhost"],
    )
    dkim = write_dkim_keys(d / "dkim", "mss", opts.domain)
    (d / "data").mkdir(exist_ok=True)
    doc = config_document(opts, server, pki, dkim)
    header = (
        "# mailserver configuration written by `mailserver init`.\n"
        "# Relative paths are relative to this file. See README.md, section Configuration.\n"
    )
    (d / "mailserver.toml").write_text(header + tomli_w.dumps(doc), encoding="utf-8")
    return Installation(load_config(d / "mailserver.toml"), pki, server)

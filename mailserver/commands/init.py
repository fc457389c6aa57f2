"""`mailserver init DIR --domain DOMAIN [--demo] [--port-base N]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from certs.errors import CertsError
from directory.addresses import is_domain
from mailserver.bootstrap import InitOptions, create_installation, port_layout
from mailserver.commands._common import SubParsers, database
from mailserver.config import DEFAULT_PATIENT_DOMAIN, DEFAULT_PORT_BASE, PORT_OFFSETS
from mailserver.demo import PEER_PORT_SHIFT, create_demo
from mailserver.errors import CommandError
from storage.blobs import BlobStore


def register(sub: SubParsers) -> None:
    top = max(PORT_OFFSETS.values())
    p = sub.add_parser(
        "init",
        help="create a configuration, development PKI, DKIM keys and data directory",
        description="Write DIR/mailserver.toml, a development PKI in DIR/pki/, DKIM keys in "
        "DIR/dkim/ and the data directory. With --demo, also demo accounts, "
        "patients, annuaire and a peer operator, described in DIR/demo.json.",
        epilog="Port layout: every listener is at N + offset: "
        + ", ".join(f"{k} +{v}" for k, v in sorted(PORT_OFFSETS.items(), key=lambda kv: kv[1]))
        + f" (default N = {DEFAULT_PORT_BASE}, at most {65535 - top}).",
    )
    p.add_argument("directory", type=Path, metavar="DIR")
    p.add_argument(
        "--domain", required=True, help="the operator domain served (e.g. demo.mssante.fr)"
    )
    p.add_argument("--hostname", help="this server's host name (default mail.DOMAIN)")
    p.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE, metavar="N")
    p.add_argument(
        "--patient-domain",
        default=DEFAULT_PATIENT_DOMAIN,
        help=f"the patient domain served (default {DEFAULT_PATIENT_DOMAIN})",
    )
    p.add_argument("--no-patient-domain", action="store_true", help="do not serve a patient domain")
    p.add_argument(
        "--organisation",
        default="Opérateur MSSanté de démonstration",
        help="organisation name in the certificates",
    )
    p.add_argument(
        "--database-url", default="", help="database URL (default: SQLite file in DIR/data)"
    )
    p.add_argument("--demo", action="store_true", help="also create demo content and demo.json")
    p.add_argument("--peer-domain", help="demo peer operator domain (default peer-DOMAIN)")
    p.set_defaults(func=_init)


async def _init(args: argparse.Namespace) -> int:
    domain = args.domain.strip().lower()
    if not is_domain(domain):
        raise CommandError(f"--domain: {args.domain!r} is not a domain name", 2)
    # The demo peer operator listens on our ports + PEER_PORT_SHIFT.
    top = max(PORT_OFFSETS.values()) + (PEER_PORT_SHIFT if args.demo else 0)
    if not 1 <= args.port_base <= 65535 - top:
        raise CommandError(f"--port-base must be between 1 and {65535 - top}", 2)
    patient_domain = None if args.no_patient_domain else args.patient_domain.strip().lower()
    if patient_domain is not None and not is_domain(patient_domain):
        raise CommandError(f"--patient-domain: {args.patient_domain!r} is not a domain name", 2)
    if args.demo and patient_domain is None:
        raise CommandError("--demo needs the patient domain (drop --no-patient-domain)", 2)
    directory: Path = args.directory
    if (directory / "mailserver.toml").exists():
        raise CommandError(f"{directory}/mailserver.toml already exists: not overwriting it")
    if directory.exists() and any(directory.iterdir()):
        raise CommandError(f"{directory} is not empty: choose a new directory")
    opts = InitOptions(
        directory=directory.resolve(),
        domain=domain,
        hostname=(args.hostname or f"mail.{domain}").lower(),
        port_base=args.port_base,
        patient_domain=patient_domain,
        organisation=args.organisation,
        demo=args.demo,
        database_url=args.database_url,
    )
    try:
        inst = create_installation(opts)
    except (CertsError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    BlobStore(inst.config.blob_dir).ensure()
    async with database(inst.config) as db:
        if args.demo:
            await create_demo(inst, db, (args.peer_domain or f"peer-{domain}").lower())
    print(
        f"initialised {opts.directory} for {domain}"
        + (f" and {patient_domain}" if patient_domain else "")
    )
    print(f"  configuration: {opts.directory / 'mailserver.toml'}")
    print(f"  development PKI: {inst.pki.directory}")
    print("  ports: " + ", ".join(f"{k} {v}" for k, v in port_layout(opts.port_base).items()))
    if args.demo:
        print(f"  demo accounts and credentials: {opts.directory / 'demo.json'}")
    print(f"start it with: mailserver serve -c {opts.directory / 'mailserver.toml'}")
    return 0

"""`mailserver pki`: the development PKI (IGC-Santé TEST-like CAs) of this installation."""

from __future__ import annotations

import argparse

from certs.errors import CertsError
from certs.pki import DevPKI, IssuedCertificate
from mailserver.commands._common import SubParsers, add_config_arg, load
from mailserver.config import Config
from mailserver.errors import CommandError


def register(sub: SubParsers) -> None:
    p = sub.add_parser("pki", help="issue and revoke development certificates")
    s = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    issue = s.add_parser(
        "issue",
        help="issue a certificate",
        description="Issue a server, person or organisation certificate.",
    )
    kinds = issue.add_subparsers(dest="kind", required=True, metavar="KIND")

    srv = kinds.add_parser("server", help="a peer operator's SMTP host (serverAuth+clientAuth)")
    add_config_arg(srv)
    srv.add_argument("hostname")
    srv.add_argument("--organisation", required=True)
    srv.add_argument("--structure-id", required=True, help="SIRET/FINESS of the operator")
    srv.add_argument("--state", default="Paris (75)")
    srv.add_argument("--alt-name", action="append", default=[], help="extra DNS name")
    srv.set_defaults(func=_issue)

    per = kinds.add_parser("person", help="a professional (CN = national identifier 8+RPPS)")
    add_config_arg(per)
    per.add_argument("national_id", metavar="NATIONAL_ID")
    per.add_argument("--given-name", required=True)
    per.add_argument("--surname", required=True)
    per.add_argument("--profession", default="Médecin")
    per.add_argument("--structure-id")
    per.add_argument("--organisation")
    per.set_defaults(func=_issue)

    org = kinds.add_parser("org", help="a structure or APP box (OU = structure identifier)")
    add_config_arg(org)
    org.add_argument("name")
    org.add_argument("--structure-id", required=True)
    org.add_argument("--organisation", required=True)
    org.add_argument("--state", default="Paris (75)")
    org.set_defaults(func=_issue)

    rev = s.add_parser("revoke", help="revoke a certificate and update the CRLs")
    add_config_arg(rev)
    rev.add_argument("serial", help="serial number in hex (see `pki list`)")
    rev.add_argument(
        "--reason",
        default="unspecified",
        help="RFC 5280 reason, e.g. keyCompromise, superseded, cessationOfOperation",
    )
    rev.set_defaults(func=_revoke)

    ls = s.add_parser("list", help="list issued certificates")
    add_config_arg(ls)
    ls.set_defaults(func=_list)


def _open(cfg: Config) -> DevPKI:
    if cfg.pki.dir is None:
        raise CommandError(f"{cfg.source}: no development PKI configured (key 'pki.dir')", 2)
    try:
        return DevPKI.open(cfg.path(cfg.pki.dir))
    except CertsError as exc:
        raise CommandError(str(exc), 2) from None


def _show(c: IssuedCertificate) -> None:
    print(f"serial:  {c.serial}")
    print(f"subject: {c.subject_dn}")
    print(f"expires: {c.not_after.isoformat()}")
    print(f"cert:    {c.cert_path}")
    print(f"key:     {c.key_path}")
    print(f"chain:   {c.chain_path}")


def _issue(args: argparse.Namespace) -> int:
    pki = _open(load(args))
    try:
        if args.kind == "server":
            c = pki.issue_server(
                args.hostname,
                organisation=args.organisation,
                structure_id=args.structure_id,
                state=args.state,
                alt_names=args.alt_name,
            )
        elif args.kind == "person":
            c = pki.issue_person(
                args.national_id,
                given_name=args.given_name,
                surname=args.surname,
                profession=args.profession,
                structure_id=args.structure_id,
                organisation=args.organisation,
            )
        else:
            c = pki.issue_org(
                args.name,
                structure_id=args.structure_id,
                organisation=args.organisation,
                state=args.state,
            )
    except (CertsError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    _show(c)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    pki = _open(load(args))
    try:
        c = pki.revoke(args.serial, args.reason)
    except (CertsError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(f"revoked {c.serial} ({c.subject_dn}); CRLs updated in {pki.crl_dir}")
    return 0


def _list(args: argparse.Namespace) -> int:
    pki = _open(load(args))
    print(f"{'SERIAL':40} {'KIND':6} {'STATE':8} {'EXPIRES':10} SUBJECT")
    for c in pki.list_issued():
        state = "revoked" if c.revoked else "valid"
        print(f"{c.serial:40} {c.kind:6} {state:8} {c.not_after.date()} {c.subject_dn}")
    return 0

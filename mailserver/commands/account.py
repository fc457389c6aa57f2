"""`mailserver account`: professional-side boxes (PER, ORG, APP)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography import x509

from certs.errors import CertsError
from certs.identity import load_certificate
from directory import accounts
from mailserver.commands._common import (
    SubParsers,
    add_config_arg,
    add_password_args,
    database,
    load,
    read_password,
)
from mailserver.errors import CommandError


def register(sub: SubParsers) -> None:
    p = sub.add_parser("account", help="manage PER, ORG and APP boxes")
    s = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    a = s.add_parser("add", help="create a box", description="Create a PER, ORG or APP box.")
    add_config_arg(a)
    a.add_argument("address")
    a.add_argument("--type", required=True, choices=["PER", "ORG", "APP"], type=str.upper)
    a.add_argument("--national-id", help="PER: 8+RPPS or 0+ADELI")
    a.add_argument("--structure-id", help="ORG/APP: structure identifier (FINESS, SIRET...)")
    a.add_argument("--name", default="", help="display name")
    a.add_argument("--cert", type=Path, help="client certificate (PEM) to bind")
    a.add_argument(
        "--member-of",
        action="append",
        default=[],
        metavar="ORG",
        help="PER: join this ORG box (repeatable)",
    )
    add_password_args(a)
    a.set_defaults(func=_add)

    ls = s.add_parser("list", help="list boxes")
    add_config_arg(ls)
    ls.add_argument("--type", choices=["PER", "ORG", "APP"], type=str.upper)
    ls.set_defaults(func=_list)

    for name, state, text in (
        ("disable", "disabled", "disable a box (it can no longer log in)"),
        ("enable", "active", "re-enable a disabled box"),
    ):
        d = s.add_parser(name, help=text)
        add_config_arg(d)
        d.add_argument("address")
        d.set_defaults(func=_set_state, state=state)

    b = s.add_parser("bind-cert", help="bind a client certificate to a box (SASL EXTERNAL)")
    add_config_arg(b)
    b.add_argument("address")
    b.add_argument("cert", type=Path, help="client certificate (PEM)")
    b.set_defaults(func=_bind)

    for name, text in (
        ("add-member", "add a PER to an ORG box"),
        ("remove-member", "remove a PER from an ORG box"),
    ):
        m = s.add_parser(name, help=text)
        add_config_arg(m)
        m.add_argument("org")
        m.add_argument("member")
        m.set_defaults(func=_member, remove=name == "remove-member")

    pw = s.add_parser("passwd", help="set a box's password")
    add_config_arg(pw)
    pw.add_argument("address")
    add_password_args(pw)
    pw.set_defaults(func=_passwd)


def _cert(path: Path) -> x509.Certificate:
    try:
        return load_certificate(path)
    except CertsError as exc:
        raise CommandError(str(exc)) from None


async def _add(args: argparse.Namespace) -> int:
    cfg = load(args)
    password = read_password(args)
    cert = _cert(args.cert) if args.cert else None
    async with database(cfg) as db, db.session() as session, session.begin():
        acc = await accounts.add_account(
            session,
            address=args.address,
            kind=args.type,
            operator_domains=cfg.server.domains,
            national_id=args.national_id,
            structure_id=args.structure_id,
            display_name=args.name,
            password=password,
        )
        if cert is not None:
            await accounts.bind_certificate(session, acc.address, cert)
        for org in args.member_of:
            await accounts.add_member(session, org, acc.address)
    print(f"created {acc.kind} box {acc.address}")
    return 0


async def _list(args: argparse.Namespace) -> int:
    cfg = load(args)
    async with database(cfg) as db, db.session() as session:
        rows = await accounts.list_accounts(session, args.type)
    print(f"{'ADDRESS':40} {'TYPE':4} {'STATE':8} {'NATIONAL ID':12} {'PWD':3} {'CERTS':5} NAME")
    for r in rows:
        print(
            f"{r.address:40} {r.kind:4} {r.state:8} {r.national_id or '-':12} "
            f"{'yes' if r.has_password else 'no':3} {r.certificates:<5} {r.display_name}"
            + (f"  members: {', '.join(r.members)}" if r.members else "")
        )
    return 0


async def _set_state(args: argparse.Namespace) -> int:
    cfg = load(args)
    async with database(cfg) as db, db.session() as session, session.begin():
        acc = await accounts.set_state(session, args.address, args.state)
    print(f"{acc.address} is now {acc.state}")
    return 0


async def _bind(args: argparse.Namespace) -> int:
    cfg = load(args)
    cert = _cert(args.cert)
    async with database(cfg) as db, db.session() as session, session.begin():
        row = await accounts.bind_certificate(session, args.address, cert)
    print(f"bound certificate {row.subject_text} to {args.address.lower()}")
    return 0


async def _member(args: argparse.Namespace) -> int:
    cfg = load(args)
    async with database(cfg) as db, db.session() as session, session.begin():
        if args.remove:
            await accounts.remove_member(session, args.org, args.member)
        else:
            await accounts.add_member(session, args.org, args.member)
    verb = "removed from" if args.remove else "added to"
    print(f"{args.member.lower()} {verb} {args.org.lower()}")
    return 0


async def _passwd(args: argparse.Namespace) -> int:
    cfg = load(args)
    password = read_password(args)
    if password is None:
        raise CommandError("give the new password with --password-stdin or --password", 2)
    async with database(cfg) as db, db.session() as session, session.begin():
        await accounts.set_password(session, args.address, password)
    print(f"password changed for {args.address.lower()}")
    return 0

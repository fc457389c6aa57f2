"""`mailserver patient`: Mon espace santé boxes (`<INS>@<patient domain>`)."""

from __future__ import annotations

import argparse

from directory import patients
from mailserver.commands._common import (
    SubParsers,
    add_config_arg,
    add_password_args,
    database,
    load,
    read_password,
)
from mailserver.config import Config
from mailserver.errors import CommandError


def register(sub: SubParsers) -> None:
    p = sub.add_parser("patient", help="manage patient boxes of the patient domain")
    s = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    a = s.add_parser(
        "add",
        help="create a patient box",
        description="Create <INS>@<patient domain> for a qualified INS.",
    )
    add_config_arg(a)
    a.add_argument("ins", metavar="INS", help="15-character INS matricule (NIR/NIA + key)")
    a.add_argument("--email", help="personal address for notifications and one-time codes")
    a.add_argument("--name", default="", help="display name")
    add_password_args(a)
    a.set_defaults(func=_add)

    for name, text in (
        ("oppose", "record the patient's opposition (mail to them bounces)"),
        ("close", "close the patient's box (mail to them bounces)"),
    ):
        c = s.add_parser(name, help=text)
        add_config_arg(c)
        c.add_argument("ins", metavar="INS")
        c.set_defaults(func=_transition, action_name=name)

    ap = s.add_parser(
        "app-password",
        help="make a password for one of the patient's mail clients",
        description="Patients use the webmail (password + one-time code). When the operator "
        "enables mail clients for patients (auth.patients_mail_clients), each client gets its "
        "own app password, printed once.",
    )
    add_config_arg(ap)
    ap.add_argument("ins", metavar="INS")
    ap.add_argument("--label", default="", help="which client it is for (e.g. 'Thunderbird')")
    ap.set_defaults(func=_app_password)

    ls = s.add_parser("list", help="list patient boxes")
    add_config_arg(ls)
    ls.add_argument("--state", choices=list(patients.STATES))
    ls.set_defaults(func=_list)


def _domain(cfg: Config) -> str:
    if not cfg.patient_domain.enabled:
        raise CommandError(
            f"{cfg.source}: the patient domain is disabled (patient_domain.enabled = false)"
        )
    return cfg.patient_domain.name


async def _add(args: argparse.Namespace) -> int:
    cfg = load(args)
    domain = _domain(cfg)
    password = read_password(args)
    async with database(cfg) as db, db.session() as session, session.begin():
        patient = await patients.add_patient(
            session,
            args.ins,
            domain=domain,
            personal_email=args.email,
            password=password,
            display_name=args.name,
        )
    print(f"created patient box {patient.ins}@{domain}")
    return 0


async def _transition(args: argparse.Namespace) -> int:
    cfg = load(args)
    domain = _domain(cfg)
    async with database(cfg) as db, db.session() as session, session.begin():
        if args.action_name == "oppose":
            patient = await patients.oppose(session, args.ins, domain=domain)
        else:
            patient = await patients.close(session, args.ins, domain=domain)
    print(f"patient {patient.ins} is now {patient.state}")
    return 0


async def _app_password(args: argparse.Namespace) -> int:
    cfg = load(args)
    _domain(cfg)
    if not cfg.auth.patients_mail_clients:
        print(
            "note: auth.patients_mail_clients is false: this password works only once the "
            "operator enables mail clients for patients"
        )
    async with database(cfg) as db, db.session() as session, session.begin():
        password = await patients.add_app_password(session, args.ins, args.label)
    print(password)
    return 0


async def _list(args: argparse.Namespace) -> int:
    cfg = load(args)
    async with database(cfg) as db, db.session() as session:
        rows = await patients.list_patients(session, args.state)
    print(f"{'INS':15} {'STATE':8} {'CONTACTS':8} {'ADDRESS':40} PERSONAL E-MAIL")
    for r in rows:
        print(f"{r.ins:15} {r.state:8} {r.contacts:<8} {r.address:40} {r.personal_email or '-'}")
    return 0

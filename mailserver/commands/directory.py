"""`mailserver directory`: the liste blanche and annuaire caches, and lookups in them."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from directory import annuaire, listeblanche
from directory.accounts import get_account, members_of
from directory.errors import DirectoryError
from directory.patients import get_patient
from mailserver.commands._common import SubParsers, add_config_arg, database, load
from mailserver.errors import CommandError
from mailserver.progress import ProgressBar
from routing.identifiers import is_valid_ins, is_valid_national_id
from storage.db import Database


def register(sub: SubParsers) -> None:
    p = sub.add_parser("directory", help="national directory caches (liste blanche, annuaire)")
    s = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    lb = s.add_parser(
        "import-listeblanche",
        help="install a published liste blanche",
        description="Verify and atomically install the liste blanche XML file; "
        "a refused file leaves the previous list in force.",
    )
    add_config_arg(lb)
    lb.add_argument("file", type=Path)
    lb.add_argument("--sha256", metavar="HEX", help="the checksum published with the file")
    lb.set_defaults(func=_import_lb)

    an = s.add_parser(
        "import-annuaire",
        help="import annuaire extraction files",
        description="Import Extraction_Correspondance_MSSante and/or "
        "PS_LibreAcces_Personne_activite files (kind read from the "
        "header); each replaces its cache atomically.",
    )
    add_config_arg(an)
    an.add_argument("files", type=Path, nargs="+", metavar="FILE")
    an.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes that parse and load a file (default: one per core, up to "
        "4, for files of 32 MB or more; 1 = in this process)",
    )
    an.set_defaults(func=_import_an)

    show = s.add_parser("show", help="show what the caches know of a domain, address or id")
    add_config_arg(show)
    show.add_argument("what", metavar="DOMAIN|ADDRESS|IDNAT")
    show.set_defaults(func=_show)

    add = s.add_parser(
        "add-domain",
        help="register a local liste blanche entry (kept across "
        "imports), e.g. a development peer operator",
    )
    add_config_arg(add)
    add.add_argument("domain")
    add.add_argument("--dn", help="the operator certificate subject DN (RFC 4514)")
    add.add_argument("--description", default="")
    add.set_defaults(func=_add_domain)

    rm = s.add_parser("remove-domain", help="remove a local liste blanche entry")
    add_config_arg(rm)
    rm.add_argument("domain")
    rm.set_defaults(func=_remove_domain)


async def _import_lb(args: argparse.Namespace) -> int:
    cfg = load(args)
    async with database(cfg) as db:
        r = await listeblanche.import_listeblanche(db, args.file, expected_sha256=args.sha256)
    print(f"liste blanche installed: {r.entries} entries, {r.domains} domains")
    print(
        f"domains added: {len(r.added)}, removed: {len(r.removed)}, "
        f"operator DNs changed: {len(r.dn_changed)}"
    )
    for label, items in (("+", r.added), ("-", r.removed), ("~", r.dn_changed)):
        for d in items[:20]:
            print(f"  {label} {d}")
        if len(items) > 20:
            print(f"  {label} ... and {len(items) - 20} more")
    for bad in r.invalid_names[:20]:
        print(f"  warning: kept as published, but never matches a mail domain: {bad}")
    for bad in r.unparsable_dns[:20]:
        print(f"  warning: unparsable DN kept as text only: {bad}")
    return 0


async def _import_an(args: argparse.Namespace) -> int:
    cfg = load(args)
    if args.workers is not None and not 1 <= args.workers <= 64:
        raise CommandError("--workers must be between 1 and 64", 2)
    failed = 0
    async with database(cfg) as db:
        for path in args.files:
            bar = ProgressBar(path.name)
            start = time.monotonic()
            try:
                r = await annuaire.import_annuaire(db, path, progress=bar, workers=args.workers)
            except DirectoryError as exc:
                bar.finish()
                print(f"mailserver: {exc}", file=sys.stderr)
                failed += 1
                continue
            bar.finish()
            print(
                f"{path}: {r.kind}: {r.records:,} records imported from {r.lines:,} lines "
                f"in {time.monotonic() - start:.1f} s (previously {r.previous_records:,})"
            )
            for e in r.errors[:20]:
                print(f"  line {e.line_no}: skipped: {e.message}")
            if r.error_count > 20:
                print(f"  ... {r.error_count - 20} more lines skipped")
            if r.disappeared_count:
                print(
                    f"  {r.disappeared_count:,} {r.key} values disappeared since the last "
                    "import (they can no longer act as professionals):"
                )
                for k in r.disappeared[:20]:
                    print(f"    - {k}")
                if r.disappeared_count > 20:
                    print(f"    ... and {r.disappeared_count - 20} more")
    return 1 if failed else 0


async def _show_domain(db: Database, domain: str) -> bool:
    async with db.session() as s:
        entries = await listeblanche.entries_for(s, domain)
    if not entries:
        print(f"{domain}: not on the liste blanche")
        return False
    print(
        f"{domain}: on the liste blanche ({len(entries)} entr{'y' if len(entries) == 1 else 'ies'})"
    )
    for e in entries:
        print(f"  operator certificate: {e.dn_text or '(no DN listed)'}  [{e.origin}]")
        if e.description:
            print(f"    {e.description}")
    return True


async def _show(args: argparse.Namespace) -> int:
    cfg = load(args)
    what = args.what.strip()
    async with database(cfg) as db:
        if "@" in what:
            address = what.lower()
            found = False
            async with db.session() as s:
                account = await get_account(s, address)
                if account is not None:
                    found = True
                    print(
                        f"{address}: local {account.kind} box, {account.state}"
                        + (f", national id {account.national_id}" if account.national_id else "")
                    )
                    if account.kind == "ORG":
                        print(f"  members: {', '.join(await members_of(s, account.id)) or '-'}")
                    local, _, _dom = address.partition("@")
                    if account.kind == "PAT" and is_valid_ins(local):
                        patient = await get_patient(s, local)
                        if patient is not None:
                            print(f"  patient state: {patient.state}")
                for row in await annuaire.published_mailbox(s, address):
                    found = True
                    print(
                        f"{address}: published in the annuaire as {row.bal_type}: "
                        f"{row.civility} {row.first_name} {row.last_name}".rstrip()
                        + (f" ({row.national_id})" if row.national_id else "")
                        + (f", {row.structure_name}" if row.structure_name else "")
                    )
            await _show_domain(db, address.rsplit("@", 1)[1])
            return 0 if found else 1
        if is_valid_national_id(what) or (what.isdigit() and len(what) in (10, 12)):
            async with db.session() as s:
                pro = await annuaire.professional(s, what)
                active = await annuaire.is_active_professional(s, what)
            if pro is None:
                print(f"{what}: not in the annuaire cache (cannot act as a professional)")
                return 1
            print(
                f"{what}: {pro.civility} {pro.first_name} {pro.last_name}".replace("  ", " ")
                + (" — active" if active else "")
            )
            for label, values in (
                ("professions", pro.professions),
                ("specialties", pro.specialties),
                ("structures", pro.structures),
                ("MSSanté boxes", pro.mailboxes),
            ):
                if values:
                    print(f"  {label}: {', '.join(values)}")
            return 0
        return 0 if await _show_domain(db, what.lower()) else 1


async def _add_domain(args: argparse.Namespace) -> int:
    cfg = load(args)
    async with database(cfg) as db, db.session() as s, s.begin():
        await listeblanche.add_local_entry(s, args.domain, args.dn, args.description)
    print(f"{args.domain.lower()} added to the local liste blanche entries")
    return 0


async def _remove_domain(args: argparse.Namespace) -> int:
    cfg = load(args)
    async with database(cfg) as db, db.session() as s, s.begin():
        n = await listeblanche.remove_local_domain(s, args.domain)
    if not n:
        raise CommandError(f"{args.domain.lower()} has no local liste blanche entry")
    print(f"{args.domain.lower()}: {n} local entr{'y' if n == 1 else 'ies'} removed")
    return 0

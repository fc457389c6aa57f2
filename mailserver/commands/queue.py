"""`mailserver queue`: the relay queue (messages waiting for another operator, reports owed)."""

from __future__ import annotations

import argparse

from mailserver.commands._common import SubParsers, add_config_arg, database, load
from mailserver.errors import CommandError
from storage import queue
from storage.models import utcnow


def register(sub: SubParsers) -> None:
    p = sub.add_parser("queue", help="inspect and operate the relay queue")
    s = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    ls = s.add_parser("list", help="entries waiting to be relayed or reported")
    add_config_arg(ls)
    ls.add_argument("--all", action="store_true", help="include finished entries")
    ls.set_defaults(func=_list)

    r = s.add_parser("retry", help="make queued entries due now (all, or the given ids)")
    add_config_arg(r)
    r.add_argument("ids", metavar="ID", nargs="*", type=int)
    r.set_defaults(func=_retry)

    d = s.add_parser(
        "delete",
        help="drop entries without delivering or reporting them",
        description="Drop queue entries: the recipients get neither the message nor a report. "
        "Use it for mail that must not go out; `queue list` shows the ids.",
    )
    add_config_arg(d)
    d.add_argument("ids", metavar="ID", nargs="+", type=int)
    d.set_defaults(func=_delete)


async def _list(args: argparse.Namespace) -> int:
    cfg = load(args)
    async with database(cfg) as db, db.session() as session:
        entries = await queue.list_entries(session, include_done=args.all)
        counts = await queue.summary(session)
    print(f"{'ID':>6} {'STATE':7} {'TRIES':>5} {'NEXT ATTEMPT (UTC)':19} {'SENDER':32} RECIPIENT")
    for e in entries:
        what = e.state if e.state != "report" else f"{e.action or 'report'}"
        print(
            f"{e.id:>6} {what:7} {e.attempts:>5} {e.next_attempt_at:%Y-%m-%d %H:%M:%S} "
            f"{e.sender or '<>':32} {e.recipient}"
        )
        if e.last_error:
            print(f"{'':>6} last error: {e.last_error}")
    print(f"{counts.queued} queued, {counts.report} report(s) owed, {counts.done} done")
    return 0


async def _retry(args: argparse.Namespace) -> int:
    cfg = load(args)
    async with database(cfg) as db, db.session() as session, session.begin():
        n = await queue.retry_now(session, args.ids or None, utcnow())
    print(f"{n} entr{'y' if n == 1 else 'ies'} due now (the running server picks them up)")
    return 0


async def _delete(args: argparse.Namespace) -> int:
    cfg = load(args)
    async with database(cfg) as db, db.session() as session, session.begin():
        n = await queue.delete_entries(session, args.ids)
    if n == 0:
        raise CommandError(f"no pending entry with id {', '.join(map(str, args.ids))}")
    print(f"deleted {n} entr{'y' if n == 1 else 'ies'}")
    return 0

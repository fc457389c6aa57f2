"""`mailserver serve`: run every enabled door and worker, in one process or, with
`server.processes` > 1, in several under a supervisor (mailserver.supervisor)."""

from __future__ import annotations

import argparse
import asyncio

from mailserver import logs, runtime, supervisor
from mailserver.commands._common import SubParsers, add_config_arg, load


def register(sub: SubParsers) -> None:
    p = sub.add_parser(
        "serve",
        help="run the server",
        description="Run every enabled door and worker; stop cleanly on SIGTERM/SIGINT.",
    )
    add_config_arg(p)
    p.set_defaults(func=_serve)

    c = sub.add_parser("check-config", help="validate the configuration file and exit")
    add_config_arg(c)
    c.set_defaults(func=_check)


def _serve(args: argparse.Namespace) -> int:
    cfg = load(args)
    logs.configure(cfg.logging.level, with_pid=cfg.server.processes > 1)
    if cfg.server.processes > 1:
        return supervisor.supervise(cfg)
    return asyncio.run(runtime.serve(cfg))


def _check(args: argparse.Namespace) -> int:
    cfg = load(args)
    runtime.check_tls(cfg)
    print(f"{cfg.source}: ok")
    return 0

"""The `mailserver` command: set-up, serving and administration.

Every subcommand has `--help`. Refusals print one line on stderr and exit non-zero (2 for bad
usage or configuration), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from mailserver.commands import account, directory, dossier, init, patient, pki, queue, serve
from mailserver.config import ConfigError
from mailserver.errors import CommandError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: `mailserver <cmd>: error: ...`.
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mailserver",
        description="MSSanté-compatible secure mail server.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    init.register(sub)
    serve.register(sub)
    pki.register(sub)
    directory.register(sub)
    account.register(sub)
    patient.register(sub)
    queue.register(sub)
    dossier.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except ConfigError as exc:
        print(f"mailserver: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"mailserver: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("mailserver: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

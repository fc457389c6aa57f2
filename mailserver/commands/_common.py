"""Helpers shared by the subcommands: the -c option, opening the database, passwords."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from directory.errors import DirectoryError
from mailserver.config import Config, load_config
from mailserver.errors import CommandError
from storage.db import Database, DatabaseError, open_database

SubParsers = Any  # argparse's private _SubParsersAction


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path(os.environ.get("MAILSERVER_CONFIG", "mailserver.toml")),
        help="configuration file (default: $MAILSERVER_CONFIG or ./mailserver.toml)",
    )


def load(args: argparse.Namespace) -> Config:
    path: Path = args.config
    return load_config(path)


@asynccontextmanager
async def database(cfg: Config) -> AsyncIterator[Database]:
    """Open (and migrate) the configured database; refusals become CommandError."""
    try:
        db = await open_database(cfg.database_url)
    except DatabaseError as exc:
        raise CommandError(str(exc), status=2) from None
    try:
        yield db
    except DirectoryError as exc:
        raise CommandError(str(exc)) from None
    finally:
        await db.close()


def read_password(args: argparse.Namespace, *, prompt: str = "Password: ") -> str | None:
    """--password-stdin reads one line from stdin (or prompts on a terminal); --password VALUE."""
    if getattr(args, "password", None):
        return str(args.password)
    if not getattr(args, "password_stdin", False):
        return None
    pw = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
    if not pw:
        raise CommandError("empty password on standard input")
    return pw


def add_password_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    g.add_argument("--password", help="the password (visible to other local users: prefer stdin)")

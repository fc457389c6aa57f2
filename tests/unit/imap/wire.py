"""Helpers for the IMAP parser tests: run bytes through the real framer and parser."""

from __future__ import annotations

from imap.arguments import Command
from imap.commands import parse_command
from imap.framing import CommandReader, NeedContinuation, RawCommand


def frame(data: bytes | str, reader: CommandReader | None = None) -> list[RawCommand]:
    """Every command framed from ``data`` (continuation requests are skipped)."""
    reader = reader or CommandReader()
    reader.feed(data.encode("utf-8") if isinstance(data, str) else data)
    commands: list[RawCommand] = []
    while (item := reader.next_command()) is not None:
        if not isinstance(item, NeedContinuation):
            commands.append(item)
    return commands


def parse(data: bytes | str) -> Command:
    """The one command in ``data`` (CRLF added when missing), framed and parsed."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if not raw.endswith(b"\n"):
        raw += b"\r\n"
    commands = frame(raw)
    assert len(commands) == 1, commands
    return parse_command(commands[0])

"""Commands of any state: CAPABILITY, NOOP, CHECK, LOGOUT, ID, ENABLE, NAMESPACE, IDLE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imap.arguments import Command, EnableArgs
from imap.auth import capabilities

if TYPE_CHECKING:
    from imap.session import Session

__all__ = ["capability", "check", "enable", "id_", "idle", "logout", "namespace", "noop"]


async def capability(session: Session, command: Command) -> str:
    """RFC 3501 §6.1.1."""
    session.untagged(f"CAPABILITY {capabilities(session)}")
    return "CAPABILITY completed"


async def noop(session: Session, command: Command) -> str:
    """RFC 3501 §6.1.2: the session's updates are sent after the handler (Session._after)."""
    return "NOOP completed"


async def check(session: Session, command: Command) -> str:
    """RFC 3501 §6.4.1: every change is committed already."""
    return "CHECK completed"


async def logout(session: Session, command: Command) -> str:
    """RFC 3501 §6.1.3."""
    session.untagged("BYE logging out")
    session.closed = True
    return "LOGOUT completed"


async def id_(session: Session, command: Command) -> str:
    """RFC 2971."""
    session.untagged('ID ("name" "mssante-mailserver" "vendor" "MSSante")')
    return "ID completed"


async def enable(session: Session, command: Command) -> str:
    """RFC 5161; QRESYNC implies CONDSTORE (RFC 7162 §3.2.3)."""
    args = command.args
    assert isinstance(args, EnableArgs)
    enabled: list[str] = []
    for name in args.capabilities:
        if name == "CONDSTORE" and not session.condstore:
            session.condstore = True
            enabled.append(name)
        elif name == "QRESYNC" and not session.qresync:
            session.qresync = True
            if not session.condstore:
                session.condstore = True
            enabled.append(name)
    session.untagged("ENABLED" + "".join(f" {name}" for name in enabled))
    return "ENABLE completed"


async def namespace(session: Session, command: Command) -> str:
    """RFC 2342: one personal namespace, "/" as the hierarchy delimiter."""
    session.untagged('NAMESPACE (("" "/")) NIL NIL')
    return "NAMESPACE completed"


async def idle(session: Session, command: Command) -> str:
    """RFC 2177."""
    return await session.idle(command)

"""What an IMAP session is handed: per-listener settings and the shared services."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from directory.authenticate import Authenticator
from storage.changes import ChangeBus
from storage.mailstore import MailStore

__all__ = ["CommandError", "ImapServices", "ImapSettings"]

#: RFC 3501 §5.4: an authenticated client may stay idle at least 30 minutes (the default of
#: ``[limits] imap_idle_timeout``, mailserver/config.py, which refuses less).
AUTHENTICATED_TIMEOUT: Final = 30 * 60.0
#: Before login nothing is owed to the client: a short timeout frees the connection
#: (``[limits] imap_login_timeout``).
LOGIN_TIMEOUT: Final = 60.0


@dataclass(frozen=True)
class ImapSettings:
    name: str  # the listener: imap (STARTTLS) or imaps (implicit TLS)
    implicit_tls: bool
    hostname: str
    max_message_size: int  # RFC 7889 APPENDLIMIT
    connections_per_address: int
    login_timeout: float = LOGIN_TIMEOUT
    idle_timeout: float = AUTHENTICATED_TIMEOUT
    max_bad_commands: int = 20  # then * BYE: a client speaking nonsense is cut off
    max_commands_before_login: int = 50
    handshake_timeout: float = 30.0


@dataclass
class ImapServices:
    store: MailStore
    bus: ChangeBus
    tls: ssl.SSLContext
    authenticator: Authenticator
    connections: dict[str, int] = field(default_factory=dict)  # per client address
    live: set[Any] = field(default_factory=set)  # open sessions (graceful stop)


class CommandError(Exception):
    """A command refused: ``tag NO [code] text`` or ``tag BAD [code] text``."""

    def __init__(
        self, text: str, *, status: Literal["NO", "BAD"] = "NO", code: str | None = None
    ) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code

    def line(self, tag: str) -> bytes:
        code = f"[{self.code}] " if self.code else ""
        return f"{tag} {self.status} {code}{self.text}\r\n".encode("utf-8", "replace")

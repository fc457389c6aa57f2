"""What each client command carries: one frozen dataclass per command's arguments.

:func:`imap.commands.parse_command` returns a :class:`Command` whose ``args`` is one of these
(see :data:`Arguments`). They are immutable values: the session may keep, share and compare
them. Names are decoded (mailboxes from modified UTF-7, INBOX normalised), keywords upper-cased,
flags with the RFC 3501 spelling for system flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from imap.fetch import FetchAttribute
from imap.search import SearchKey
from imap.sequence import SequenceSet

__all__ = [
    "NO_ARGS",
    "STATUS_ITEMS",
    "AppendArgs",
    "Arguments",
    "AuthenticateArgs",
    "Command",
    "CopyArgs",
    "CreateArgs",
    "EnableArgs",
    "FetchArgs",
    "IdArgs",
    "ListArgs",
    "ListReturnOptions",
    "ListSelectOptions",
    "LoginArgs",
    "LsubArgs",
    "MailboxArgs",
    "NoArgs",
    "QresyncParams",
    "QuotaRootArgs",
    "RenameArgs",
    "SearchArgs",
    "SelectArgs",
    "SetQuotaArgs",
    "StatusArgs",
    "StoreArgs",
    "UidExpungeArgs",
]

#: RFC 3501 §6.3.10 status-att, RFC 7162 §7 HIGHESTMODSEQ, RFC 8438 SIZE, RFC 9208
#: DELETED / DELETED-STORAGE, RFC 7889 APPENDLIMIT.
STATUS_ITEMS: Final = frozenset(
    {
        "MESSAGES",
        "RECENT",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "HIGHESTMODSEQ",
        "SIZE",
        "DELETED",
        "DELETED-STORAGE",
        "APPENDLIMIT",
    }
)


@dataclass(frozen=True, slots=True)
class NoArgs:
    """CAPABILITY, NOOP, LOGOUT, STARTTLS, NAMESPACE, CHECK, CLOSE, UNSELECT, EXPUNGE, IDLE."""


NO_ARGS: Final = NoArgs()


@dataclass(frozen=True, slots=True)
class AuthenticateArgs:
    """AUTHENTICATE mechanism [initial-response] (RFC 3501 §6.2.2, RFC 4959 SASL-IR).

    ``mechanism`` is upper-cased; ``initial_response`` is the decoded octets (``b""`` for
    ``=``), ``None`` when absent.
    """

    mechanism: str
    initial_response: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class LoginArgs:
    """LOGIN userid password (RFC 3501 §6.2.3), decoded as UTF-8."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class EnableArgs:
    """ENABLE capability... (RFC 5161), upper-cased, duplicates dropped."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IdArgs:
    """ID (RFC 2971): ``(field, value)`` pairs, or ``None`` for ``ID NIL``."""

    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class QresyncParams:
    """QRESYNC (uidvalidity modseq [known-uids] [(known-seqs known-uids)]) (RFC 7162 §3.2.5).

    ``seq_match`` is (message sequence numbers, their UIDs) when the client sent them.
    """

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class SelectArgs:
    """SELECT / EXAMINE mailbox [(CONDSTORE | QRESYNC (...))] (RFC 3501 §6.3.1, RFC 7162)."""

    mailbox: str
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True, slots=True)
class CreateArgs:
    """CREATE mailbox [(USE (\\Sent ...))] (RFC 3501 §6.3.3, RFC 6154)."""

    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MailboxArgs:
    """One mailbox: DELETE, SUBSCRIBE, UNSUBSCRIBE, GETQUOTAROOT."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class RenameArgs:
    """RENAME existing new (RFC 3501 §6.3.5)."""

    mailbox: str
    new_name: str


@dataclass(frozen=True, slots=True)
class ListSelectOptions:
    """LIST selection options (RFC 5258, RFC 6154 SPECIAL-USE)."""

    subscribed: bool = False
    remote: bool = False
    recursive_match: bool = False
    special_use: bool = False


@dataclass(frozen=True, slots=True)
class ListReturnOptions:
    """LIST RETURN options (RFC 5258, RFC 5819 STATUS, RFC 6154 SPECIAL-USE).

    ``status`` lists the STATUS items (RFC 5819), ``None`` when STATUS was not requested.
    """

    subscribed: bool = False
    children: bool = False
    special_use: bool = False
    status: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ListArgs:
    """LIST [(select-opts)] reference pattern(s) [RETURN (...)] (RFC 3501 §6.3.8, RFC 5258).

    ``reference`` is decoded (INBOX normalised); ``patterns`` are decoded with their ``%``/``*``
    wildcards and not normalised. ``extended`` is true when the RFC 5258 syntax was used
    (selection options, several patterns or RETURN), which changes the response rules.
    """

    reference: str
    patterns: tuple[str, ...]
    select: ListSelectOptions = ListSelectOptions()
    returns: ListReturnOptions = ListReturnOptions()
    extended: bool = False


@dataclass(frozen=True, slots=True)
class LsubArgs:
    """LSUB reference pattern (RFC 3501 §6.3.9)."""

    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class StatusArgs:
    """STATUS mailbox (items) (RFC 3501 §6.3.10); items upper-cased, in order, no duplicates."""

    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AppendArgs:
    """APPEND mailbox [flags] [date-time] literal (RFC 3501 §6.3.11, RFC 3516 literal8).

    ``binary`` when the message came as literal8 (``~{n}``), which may contain NUL.
    """

    mailbox: str
    message: bytes = field(repr=False)
    flags: tuple[str, ...] = ()
    internal_date: datetime | None = None
    binary: bool = False


@dataclass(frozen=True, slots=True)
class SearchArgs:
    """SEARCH [RETURN (...)] [CHARSET x] keys (RFC 3501 §6.4.4, RFC 4731 ESEARCH).

    ``return_options`` is ``None`` for a classic SEARCH (``* SEARCH`` response), else the
    ESEARCH options (MIN, MAX, ALL, COUNT, SAVE; ``RETURN ()`` gives ``("ALL",)``).
    """

    criteria: SearchKey
    charset: str | None = None
    return_options: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class FetchArgs:
    """FETCH set items [(CHANGEDSINCE n [VANISHED])] (RFC 3501 §6.4.5, RFC 7162 §3.1.4.1)."""

    sequence: SequenceSet
    attributes: tuple[FetchAttribute, ...]
    changed_since: int | None = None
    vanished: bool = False


@dataclass(frozen=True, slots=True)
class StoreArgs:
    """STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] flags (RFC 3501 §6.4.6, RFC 7162).

    ``action``: ``"replace"`` (FLAGS), ``"add"`` (+FLAGS), ``"remove"`` (-FLAGS).
    """

    sequence: SequenceSet
    action: Literal["replace", "add", "remove"]
    flags: tuple[str, ...]
    silent: bool = False
    unchanged_since: int | None = None


@dataclass(frozen=True, slots=True)
class CopyArgs:
    """COPY / MOVE set mailbox (RFC 3501 §6.4.7, RFC 6851)."""

    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class UidExpungeArgs:
    """UID EXPUNGE set (RFC 4315 §2.1)."""

    sequence: SequenceSet


@dataclass(frozen=True, slots=True)
class QuotaRootArgs:
    """GETQUOTA quota-root (RFC 9208)."""

    root: str


@dataclass(frozen=True, slots=True)
class SetQuotaArgs:
    """SETQUOTA quota-root (resource limit ...) (RFC 9208); resources upper-cased."""

    root: str
    limits: tuple[tuple[str, int], ...]


Arguments = (
    NoArgs
    | AuthenticateArgs
    | LoginArgs
    | EnableArgs
    | IdArgs
    | SelectArgs
    | CreateArgs
    | MailboxArgs
    | RenameArgs
    | ListArgs
    | LsubArgs
    | StatusArgs
    | AppendArgs
    | SearchArgs
    | FetchArgs
    | StoreArgs
    | CopyArgs
    | UidExpungeArgs
    | QuotaRootArgs
    | SetQuotaArgs
)


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command.

    ``name`` is the upper-cased command name as sent: ``"UID"`` for the UID commands, whose
    ``uid`` is true and ``subcommand`` is ``"FETCH"``, ``"SEARCH"``... :attr:`verb` is the
    command to run in both cases.
    """

    tag: str
    name: str
    args: Arguments = NO_ARGS
    uid: bool = False
    subcommand: str | None = None

    @property
    def verb(self) -> str:
        """``subcommand`` for UID commands, else ``name``."""
        return self.subcommand if self.subcommand is not None else self.name

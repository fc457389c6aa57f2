"""The command table: which handler runs each command, and in which state (RFC 3501 §6)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from imap import auth, fetching, flags, general, mailboxes, search_command, transfer

if TYPE_CHECKING:
    from imap.session import Handler

__all__ = ["COMMANDS"]

# state: "any", "notauth" (before login only), "auth" (authenticated or selected), "selected".
COMMANDS: Final[dict[str, tuple[Handler, str]]] = {
    "CAPABILITY": (general.capability, "any"),
    "NOOP": (general.noop, "any"),
    "LOGOUT": (general.logout, "any"),
    "ID": (general.id_, "any"),
    "STARTTLS": (auth.starttls, "notauth"),
    "LOGIN": (auth.login, "notauth"),
    "AUTHENTICATE": (auth.authenticate, "notauth"),
    "ENABLE": (general.enable, "auth"),
    "NAMESPACE": (general.namespace, "auth"),
    "IDLE": (general.idle, "auth"),
    "SELECT": (mailboxes.select, "auth"),
    "EXAMINE": (mailboxes.select, "auth"),
    "CREATE": (mailboxes.create, "auth"),
    "DELETE": (mailboxes.delete, "auth"),
    "RENAME": (mailboxes.rename, "auth"),
    "SUBSCRIBE": (mailboxes.subscribe, "auth"),
    "UNSUBSCRIBE": (mailboxes.unsubscribe, "auth"),
    "LIST": (mailboxes.list_, "auth"),
    "LSUB": (mailboxes.lsub, "auth"),
    "STATUS": (mailboxes.status, "auth"),
    "APPEND": (transfer.append, "auth"),
    "GETQUOTAROOT": (mailboxes.getquotaroot, "auth"),
    "GETQUOTA": (mailboxes.getquota, "auth"),
    "SETQUOTA": (mailboxes.setquota, "auth"),
    "CHECK": (general.check, "selected"),
    "CLOSE": (transfer.close, "selected"),
    "UNSELECT": (transfer.unselect, "selected"),
    "EXPUNGE": (transfer.expunge, "selected"),
    "SEARCH": (search_command.search, "selected"),
    "FETCH": (fetching.fetch, "selected"),
    "STORE": (flags.store, "selected"),
    "COPY": (transfer.copy, "selected"),
    "MOVE": (transfer.copy, "selected"),
}

"""One IMAP connection: reading commands, the state machine, dispatch, unsolicited updates.

RFC 3501 §3 states: not authenticated → authenticated → selected → logout. The loop reads
octets into a :class:`imap.framing.CommandReader`, answers literal announcements with ``+``,
parses each command and runs its handler (``imap.auth``, ``imap.mailboxes``, ``imap.fetching``,
``imap.flags``, ``imap.search_command``, ``imap.transfer``), then, in the selected state,
sends what other sessions changed (:meth:`Session.sync`) before the tagged response, within
the limits of RFC 3501 §7.4.1 (no EXPUNGE during FETCH, STORE, SEARCH by sequence number).
Responses are buffered and written when the session waits for input, so pipelined commands
are answered in one write.

Hostile input never reaches a traceback: framing violations are ``BAD``/``NO [TOOBIG]`` or
``* BYE`` (:mod:`imap.framing`), a client piling up bad commands or commands before login is
disconnected, and idle connections time out (RFC 3501 §5.4).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Final

from directory.identity import Identity
from imap.arguments import Command
from imap.commands import parse_command, parse_done
from imap.context import CommandError, ImapServices, ImapSettings
from imap.dispatch import COMMANDS
from imap.errors import ParseError, ProtocolError, UnsupportedCharsetError
from imap.framing import CommandReader, NeedContinuation, RawCommand
from imap.responses import MAILBOX_FLAGS, flag_list, sequence_text
from imap.selected import BadSequence, SelectedMailbox
from imap.sequence import SequenceSet
from storage import audit
from storage.mailstore import AuditEntry, MailboxError

__all__ = ["Handler", "Session"]

log = logging.getLogger("imap")

Handler = Callable[["Session", Command], Awaitable[str]]

_READ_SIZE: Final = 64 * 1024
_FLUSH_AT: Final = 256 * 1024
# Before login: small literals (LOGIN arguments), little to discard (RFC 7888 §4).
_PREAUTH_LITERAL: Final = 64 * 1024
_PREAUTH_COMMAND: Final = 128 * 1024

# RFC 3501 §7.4.1: no EXPUNGE while responding to these (by sequence number).
_NO_EXPUNGE: Final = frozenset({"FETCH", "STORE", "SEARCH", "COPY"})


class Session:
    """The state of one connection and its response buffer."""

    def __init__(
        self,
        settings: ImapSettings,
        services: ImapServices,
        stream: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        remote: str,
    ) -> None:
        self.settings = settings
        self.services = services
        self.stream = stream
        self.writer = writer
        self.remote = remote
        self.tls = settings.implicit_tls
        self.reader = CommandReader(
            max_literal_size=_PREAUTH_LITERAL,
            max_command_size=_PREAUTH_COMMAND,
            max_discard=_PREAUTH_COMMAND,
        )
        self.identity: Identity | None = None
        self.patient_ins: str | None = None
        self.selected: SelectedMailbox | None = None
        self.condstore = False
        self.qresync = False
        self.saved: list[int] | None = None  # RFC 5182 SEARCH RETURN (SAVE), as UIDs
        self.closed = False
        self.wake: asyncio.Event | None = None  # set while in IDLE
        self._out: list[bytes] = []
        self._out_size = 0
        self._bad = 0
        self._preauth_commands = 0
        self._current: Command | None = None

    # -- output ----------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)

    def untagged(self, text: str) -> None:
        self.write(b"* " + text.encode("utf-8", "replace") + b"\r\n")

    def unannounced(self, flags: str) -> bool:
        """Whether ``flags`` holds a keyword the client has not been told of yet."""
        sel = self.selected
        return sel is not None and any(
            not f.startswith("\\") and f not in sel.keywords for f in flags.split()
        )

    def announce_keywords(self, flags: str) -> bool:
        """RFC 3501 §7.2.6: a keyword is listed in an untagged FLAGS before any FETCH shows
        it; True when a new FLAGS response was written."""
        sel = self.selected
        if sel is None or not self.unannounced(flags):
            return False
        sel.keywords.update(f for f in flags.split() if not f.startswith("\\"))
        listed = flag_list((*MAILBOX_FLAGS, *sorted(sel.keywords))).decode("ascii", "replace")
        self.untagged(f"FLAGS {listed}")
        return True

    async def flush(self) -> None:
        if self._out:
            self.writer.write(b"".join(self._out))
            self._out.clear()
            self._out_size = 0
        await self.writer.drain()

    async def flush_if_large(self) -> None:
        if self._out_size >= _FLUSH_AT:
            await self.flush()

    # -- state -----------------------------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        return self.identity is not None

    @property
    def account_id(self) -> int:
        assert self.identity is not None
        return self.identity.account_id

    def login(self, who: Identity) -> None:
        """Authenticated (RFC 3501 §3.2): lift the pre-login limits."""
        self.identity = who
        if who.kind == "PAT":
            self.patient_ins = who.address.split("@", 1)[0].upper()
        limit = self.settings.max_message_size
        self.reader.max_literal_size = limit
        self.reader.max_command_size = limit + _PREAUTH_COMMAND
        self.reader.max_discard = limit
        log.info(
            "%s: %s authenticated (%s) from %s",
            self.settings.name,
            who.address,
            who.method,
            self.remote,
        )

    def audit(self, action: str, **detail: object) -> AuditEntry | None:
        """An audit entry when the mailbox is a patient's (architecture.md, identity)."""
        if self.patient_ins is None or self.identity is None:
            return None
        actor = audit.Actor(self.identity.address, self.identity.method, self.remote)
        mailbox = self.selected.name if self.selected is not None else ""
        return AuditEntry(
            actor, action, self.patient_ins, object_id=mailbox, detail={"via": "imap", **detail}
        )

    def enable_condstore(self) -> None:
        """RFC 7162 §3.1: CONDSTORE-enabling commands turn it on for the session; in the
        selected state the client learns the HIGHESTMODSEQ at once (§3.1.2.1)."""
        if not self.condstore:
            self.condstore = True
            if self.selected is not None:
                self.untagged(f"OK [HIGHESTMODSEQ {self.selected.modseq}] CONDSTORE enabled")

    def select(self, selected: SelectedMailbox) -> None:
        self.unselect()
        self.selected = selected
        self.services.bus.subscribe(selected.folder_id, self)
        # What committed between the snapshot and the subscription comes at the next command.
        selected.dirty = True

    def unselect(self) -> None:
        if self.selected is not None:
            self.services.bus.unsubscribe(self.selected.folder_id, self)
            self.selected = None
            self.saved = None

    def folder_changed(self, folder_id: int) -> None:
        """Change bus callback: the store moved on (a delivery, another session)."""
        if self.selected is not None and self.selected.folder_id == folder_id:
            self.selected.dirty = True
            if self.wake is not None:
                self.wake.set()

    def ranges(self, sequence: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        """UID ranges of a command's set (``$`` is the saved search result, RFC 5182)."""
        assert self.selected is not None
        if sequence.saved:
            saved = [u for u in self.saved or () if self.selected.known(u)]
            return [(u, u) for u in saved]
        return self.selected.uid_ranges(sequence, uid)

    # -- unsolicited updates ---------------------------------------------------------------------

    async def sync(self, *, allow_expunge: bool, force: bool = False) -> None:
        """Tell the client what changed in the selected mailbox (RFC 3501 §7.3.1, §7.4.1)."""
        sel = self.selected
        if sel is None or not (force or sel.dirty):
            return
        sel.dirty = False
        changes = await self.services.store.changes_since(sel.folder_id, sel.modseq)
        updates = sel.absorb(changes, allow_expunge=allow_expunge, qresync=self.qresync)
        if updates.vanished:
            self.untagged(f"VANISHED {sequence_text(updates.vanished)}")  # RFC 7162 §3.2.10
        for seq in updates.expunged_seqs:
            self.untagged(f"{seq} EXPUNGE")
        if updates.exists is not None:
            await self._claim_recent(sel, updates.new_uids, changes.recent_uid)
            self.untagged(f"{updates.exists} EXISTS")
            self.untagged(f"{len(sel.recent)} RECENT")  # RFC 3501 §7.3.2
        for seq, uid, flags, modseq in updates.flags:
            self.announce_keywords(flags)
            extra = f" MODSEQ ({modseq})" if self.condstore else ""
            text = flag_list(sel.flags_of(uid, flags)).decode("ascii")
            self.untagged(f"{seq} FETCH (UID {uid} FLAGS {text}{extra})")

    async def _claim_recent(self, sel: SelectedMailbox, new_uids: list[int], read: int) -> None:
        """RFC 3501 §2.3.2: a read-write session told of new messages first is the one that
        sees them \\Recent; a read-only one sees those nobody has claimed, claiming none.
        ``read`` is the folder's recent mark as read with the changes (same snapshot): a
        read-only session uses it as is, a read-write one claims only when it is below the
        newest UID (otherwise another session was told first and nothing is written)."""
        if sel.readonly:
            mark = read
        else:
            mark = await self.services.store.claim_recent(
                sel.folder_id, sel.max_uid, mark=read, uidvalidity=sel.uidvalidity
            )
        sel.add_recent(new_uids, mark)

    # -- input -----------------------------------------------------------------------------------

    @property
    def timeout(self) -> float:
        return self.settings.idle_timeout if self.authenticated else self.settings.login_timeout

    async def fill(self) -> bool:
        """Read more octets; False at end of input or after the idle timeout (then BYE)."""
        await self.flush()
        try:
            async with asyncio.timeout(self.timeout):
                data = await self.stream.read(_READ_SIZE)
        except TimeoutError:
            self.untagged("BYE Autologout; idle for too long")
            return False
        if not data:
            return False
        self.reader.feed(data)
        return True

    async def next_line(self) -> RawCommand | None:
        """The client's next line inside a command (SASL responses); None at end of input."""
        while True:
            item = self.reader.next_command()
            if isinstance(item, NeedContinuation):
                self.reader.refuse_literal()
                raise CommandError("literal in a SASL response", status="BAD")
            if item is not None:
                return item
            if not await self.fill():
                self.closed = True
                return None

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, greeting: str) -> None:
        try:
            self.untagged(greeting)
            while not self.closed:
                try:
                    item = self.reader.next_command()
                except ProtocolError as exc:
                    self._framing_error(exc)
                    continue
                if item is None:
                    if not await self.fill():
                        break
                    continue
                if isinstance(item, NeedContinuation):
                    self.write(b"+ Ready for literal data\r\n")
                    await self.flush()
                    continue
                await self.execute(item)
                await self.flush_if_large()
            await self.flush()
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass
        finally:
            self.unselect()
            self.closed = True

    def _framing_error(self, exc: ProtocolError) -> None:
        code = f"[{exc.code}] " if exc.code else ""
        if exc.fatal:
            self.untagged(f"BYE {code}{exc.message}")
            self.closed = True
        elif exc.tag is not None:
            self.write(f"{exc.tag} NO {code}{exc.message}\r\n".encode())
            self._count_bad()
        else:
            self.untagged(f"BAD {code}{exc.message}")
            self._count_bad()

    def _count_bad(self) -> None:
        self._bad += 1
        if self._bad >= self.settings.max_bad_commands:
            self.untagged("BYE Too many invalid commands")
            self.closed = True

    def bad(self, tag: str | None, message: str) -> None:
        if tag is None:
            self.untagged(f"BAD {message}")
        else:
            self.write(f"{tag} BAD {message}\r\n".encode("utf-8", "replace"))
        self._count_bad()

    async def execute(self, raw: RawCommand) -> None:
        try:
            command = parse_command(raw)
        except UnsupportedCharsetError as exc:
            supported = " ".join(exc.supported)
            self.write(f"{exc.tag} NO [BADCHARSET ({supported})] {exc.message}\r\n".encode())
            return
        except ParseError as exc:
            self.bad(exc.tag, exc.message)
            return
        if not self.authenticated:
            self._preauth_commands += 1
            if self._preauth_commands > self.settings.max_commands_before_login:
                self.untagged("BYE Too many commands without logging in")
                self.closed = True
                return
        entry = COMMANDS.get(command.verb)
        if entry is None:
            self.bad(command.tag, f"command {command.verb} is not supported")
            return
        handler, state = entry
        refusal = self._state_refusal(state)
        if refusal is not None:
            self.bad(command.tag, refusal)
            return
        self._current = command
        try:
            text = await handler(self, command)
        except CommandError as exc:
            await self._after(command)
            self.write(exc.line(command.tag))
            return
        except MailboxError as exc:
            await self._after(command)
            self.write(CommandError(exc.message, code=exc.code).line(command.tag))
            return
        except BadSequence as exc:
            self.bad(command.tag, str(exc))
            return
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug or the database failing: say so, keep serving
            log.exception("%s: %s failed for %s", self.settings.name, command.verb, self.remote)
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            self.write(f"{command.tag} NO [SERVERBUG] internal error: {reason}\r\n".encode())
            return
        finally:
            self._current = None
        if not self.closed:
            await self._after(command)
        self.write(f"{command.tag} OK {text}\r\n".encode("utf-8", "replace"))

    async def _after(self, command: Command) -> None:
        if self.selected is not None and not self.closed:
            allow = command.uid or command.verb not in _NO_EXPUNGE
            await self.sync(allow_expunge=allow, force=command.verb in ("NOOP", "CHECK"))

    def _state_refusal(self, state: str) -> str | None:
        if state == "any":
            return None
        if state == "notauth":
            return "already authenticated" if self.authenticated else None
        if not self.authenticated:
            return "not authenticated: LOGIN or AUTHENTICATE first"
        if state == "selected" and self.selected is None:
            return "no mailbox selected: SELECT or EXAMINE first"
        return None

    # -- IDLE (RFC 2177) ---------------------------------------------------------------------------

    async def idle(self, command: Command) -> str:
        """``+ idling``, then updates as they happen, until ``DONE``."""
        self.write(b"+ idling\r\n")
        await self.sync(allow_expunge=True, force=True)
        await self.flush()
        wake = self.wake = asyncio.Event()
        read: asyncio.Task[bytes] | None = None
        try:
            while True:
                item = self.reader.next_command()
                if isinstance(item, NeedContinuation):
                    self.reader.refuse_literal()
                    raise CommandError("expected DONE to end IDLE", status="BAD")
                if item is not None:
                    try:
                        parse_done(item)
                    except ParseError:
                        raise CommandError("expected DONE to end IDLE", status="BAD") from None
                    return "IDLE terminated"
                if self.selected is not None and self.selected.dirty:
                    await self.sync(allow_expunge=True)
                    await self.flush()
                if read is None:
                    read = asyncio.ensure_future(self.stream.read(_READ_SIZE))
                waiter = asyncio.ensure_future(wake.wait())
                done, _ = await asyncio.wait(
                    {read, waiter},
                    timeout=self.settings.idle_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                waiter.cancel()
                wake.clear()
                if not done:
                    self.untagged("BYE Autologout; idle for too long")
                    self.closed = True
                    return "IDLE timed out"
                if read in done:
                    data = read.result()
                    read = None
                    if not data:
                        self.closed = True
                        raise ConnectionResetError("client went away during IDLE")
                    self.reader.feed(data)
        finally:
            self.wake = None
            if read is not None:
                read.cancel()

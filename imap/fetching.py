"""FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8; RFC 7162 §3.1.4, §3.2.6 CHANGEDSINCE, VANISHED).

Only the columns the items need are read, in one query per command; ENVELOPE and
BODYSTRUCTURE come from the JSON cached at delivery; BODY[section] is a slice of the blob
through the cached part spans (:mod:`imap.sections`), read once per message and only when a
section or RFC822 item asks for it. Responses stream out as they are built. Fetching a body
without PEEK sets ``\\Seen`` (in a read-write mailbox) with one STORE for all those messages.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final

from imap.arguments import Command, FetchArgs
from imap.context import CommandError
from imap.fetch import FetchAttribute, FetchBinary, FetchBinarySize, FetchBody, FetchItem
from imap.responses import body_structure, envelope, flag_list, internal_date, sequence_text
from imap.sections import apply_partial, section_content
from storage.mime import PartSpan, body_without_extensions, meta_from_json, parse_metadata

if TYPE_CHECKING:
    from imap.selected import SelectedMailbox
    from imap.session import Session

__all__ = ["fetch"]

_FLAGS: Final = FetchItem("FLAGS")
_UID: Final = FetchItem("UID")
_MODSEQ: Final = FetchItem("MODSEQ")
# Items that read the message itself, and those that set \Seen (RFC 3501 §6.4.5).
_CONTENT_ITEMS: Final = frozenset({"RFC822", "RFC822.HEADER", "RFC822.TEXT"})
_SEEN_ITEMS: Final = frozenset({"RFC822", "RFC822.TEXT"})
_COLUMNS: Final = {
    "FLAGS": ("flags",),
    "INTERNALDATE": ("internal_date",),
    "RFC822.SIZE": ("size",),
    "ENVELOPE": ("envelope", "body_structure", "blob_sha256"),
    "BODY": ("envelope", "body_structure", "blob_sha256"),
    "BODYSTRUCTURE": ("envelope", "body_structure", "blob_sha256"),
    "MODSEQ": ("modseq",),
    "UID": (),
}
# Message contents read per trip to the blob thread: at most this many, this many octets.
_BLOB_BATCH: Final = 32
_BLOB_BATCH_OCTETS: Final = 4 * 1024 * 1024

Meta = tuple[list[Any], list[Any], dict[str, PartSpan]]


class _MetaCache:
    """(envelope, body structure, parts) and their rendered ENVELOPE / BODYSTRUCTURE / BODY,
    by blob SHA-256: blobs are content-addressed, so a message's metadata never changes
    (every session fetching the same new messages decoded the same JSON again)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[Meta, dict[str, bytes]]] = OrderedDict()

    def get(self, sha256: str) -> tuple[Meta, dict[str, bytes]] | None:
        found = self._items.get(sha256)
        if found is not None:
            self._items.move_to_end(sha256)
        return found

    def put(self, sha256: str, meta: Meta) -> tuple[Meta, dict[str, bytes]]:
        entry: tuple[Meta, dict[str, bytes]] = (meta, {})
        self._items[sha256] = entry
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return entry


_META: Final = _MetaCache(4096)


class _Message:
    """One message being answered: its row, and its content and metadata when needed."""

    __slots__ = ("_cached", "data", "row")

    def __init__(self, row: Any, data: bytes | None = None) -> None:
        self.row = row
        self.data = data
        self._cached: tuple[Meta, dict[str, bytes]] | None = None

    def _entry(self) -> tuple[Meta, dict[str, bytes]]:
        if self._cached is None:
            sha = self.row.blob_sha256
            self._cached = _META.get(sha) or _META.put(sha, self._decode())
        return self._cached

    def _decode(self) -> Meta:
        """From the JSON cached in the row, or parsed again if the row predates it."""
        try:
            return meta_from_json(
                getattr(self.row, "envelope", "") or "",
                getattr(self.row, "body_structure", "") or "",
            )
        except (ValueError, TypeError):
            assert self.data is not None, "message content needed to rebuild its metadata"
            parsed = parse_metadata(self.data)
            return parsed.envelope, parsed.body_structure, parsed.parts

    def meta(self) -> Meta:
        """(envelope, body structure, parts)."""
        return self._entry()[0]

    def rendered(self, name: str) -> bytes:
        """The ENVELOPE, BODYSTRUCTURE or BODY item, rendered once per message content."""
        meta, rendered = self._entry()
        found = rendered.get(name)
        if found is None:
            if name == "ENVELOPE":
                found = b"ENVELOPE " + envelope(meta[0])
            elif name == "BODYSTRUCTURE":
                found = b"BODYSTRUCTURE " + body_structure(meta[1])
            else:
                found = b"BODY " + body_structure(body_without_extensions(meta[1]))
            rendered[name] = found
        return found


def _literal(data: bytes | None) -> bytes:
    if data is None:
        return b"NIL"
    return b"{%d}\r\n" % len(data) + data


def _needs_content(attrs: tuple[FetchAttribute, ...]) -> bool:
    return any(
        isinstance(a, FetchBody) or (isinstance(a, FetchItem) and a.name in _CONTENT_ITEMS)
        for a in attrs
    )


def _sets_seen(attrs: tuple[FetchAttribute, ...]) -> bool:
    return any(
        (isinstance(a, FetchBody) and not a.peek)
        or (isinstance(a, FetchItem) and a.name in _SEEN_ITEMS)
        for a in attrs
    )


def _columns(attrs: tuple[FetchAttribute, ...]) -> list[str]:
    columns: list[str] = []
    for a in attrs:
        if isinstance(a, FetchItem):
            columns += _COLUMNS.get(a.name, ("blob_sha256", "envelope", "body_structure"))
        else:
            columns += ("blob_sha256", "body_structure", "envelope")
    return list(dict.fromkeys(columns))


def _item(attr: FetchAttribute, m: _Message, sel: SelectedMailbox) -> bytes:
    row = m.row
    if isinstance(attr, FetchItem):
        name = attr.name
        if name == "UID":
            return b"UID %d" % row.uid
        if name == "FLAGS":
            return b"FLAGS " + flag_list(sel.flags_of(row.uid, row.flags))
        if name == "MODSEQ":
            return b"MODSEQ (%d)" % row.modseq
        if name == "INTERNALDATE":
            return b"INTERNALDATE " + internal_date(row.internal_date)
        if name == "RFC822.SIZE":
            return b"RFC822.SIZE %d" % row.size
        if name in ("ENVELOPE", "BODYSTRUCTURE", "BODY"):
            return m.rendered(name)
        assert m.data is not None
        parts = m.meta()[2]
        if name == "RFC822":
            return b"RFC822 " + _literal(m.data)
        top = parts.get("")
        if top is None:
            return name.encode() + b" NIL"
        if name == "RFC822.HEADER":
            return b"RFC822.HEADER " + _literal(m.data[top.header_start : top.header_end])
        return b"RFC822.TEXT " + _literal(m.data[top.body_start : top.body_end])
    if isinstance(attr, FetchBody):
        assert m.data is not None
        content = section_content(m.data, m.meta()[2], attr.section)
        if content is not None:
            content = apply_partial(content, attr.partial)
        return attr.response_name().encode("utf-8") + b" " + _literal(content)
    raise CommandError("BINARY is not supported", code="CANNOT")


async def fetch(session: Session, command: Command) -> str:
    args = command.args
    assert isinstance(args, FetchArgs)
    sel = session.selected
    assert sel is not None
    attrs = args.attributes
    if any(isinstance(a, FetchBinary | FetchBinarySize) for a in attrs):
        raise CommandError("BINARY is not supported", code="CANNOT")
    if args.changed_since is not None or _MODSEQ in attrs:
        session.enable_condstore()  # RFC 7162 §3.1: CONDSTORE-enabling
    if args.vanished and not session.qresync:
        raise CommandError("VANISHED needs QRESYNC enabled (RFC 7162 §3.2.6)", status="BAD")
    extra: list[FetchAttribute] = []
    if command.uid and _UID not in attrs:
        extra.append(_UID)  # RFC 3501 §6.4.8
    if (args.changed_since is not None or session.condstore) and _FLAGS in attrs:
        if _MODSEQ not in attrs:
            extra.append(_MODSEQ)  # RFC 7162 §3.1.4.1
    elif args.changed_since is not None and _MODSEQ not in attrs:
        extra.append(_MODSEQ)
    attrs = (*extra, *attrs)
    ranges = session.ranges(args.sequence, command.uid)
    store = session.services.store
    if args.vanished and args.changed_since is not None:
        gone = await store.expunged_since(sel.folder_id, args.changed_since, ranges)
        if gone:
            session.untagged(f"VANISHED (EARLIER) {sequence_text(gone)}")  # RFC 7162 §3.2.6
    if not ranges:
        return "FETCH completed"
    set_seen = not sel.readonly and _sets_seen(attrs)
    columns = _columns(attrs)
    if _needs_content(attrs):
        columns.append("size")  # to read the contents in batches of bounded size
    if set_seen:
        columns += ["flags", "modseq"]
    found = await store.rows(sel.folder_id, ranges, columns, changed_since=args.changed_since)
    numbered = list(sel.numbered(found))
    rows = [row for _seq, row in numbered]
    if set_seen:
        rows, attrs = await _mark_seen(session, rows, attrs)
        numbered = [(seq, row) for (seq, _old), row in zip(numbered, rows, strict=True)]
    content = _needs_content(attrs)
    if content:
        entry = session.audit("imap.fetch", mailbox=sel.name)
        if entry is not None and rows:
            await store.record(entry, uids=sequence_text(r.uid for r in rows))
    await _send(session, numbered, attrs, content)
    return "FETCH completed"


async def _mark_seen(
    session: Session, rows: list[Any], attrs: tuple[FetchAttribute, ...]
) -> tuple[list[Any], tuple[FetchAttribute, ...]]:
    """Set \\Seen on the messages that lack it; their FETCH then carries FLAGS."""
    sel = session.selected
    assert sel is not None
    unseen = [row.uid for row in rows if "\\Seen" not in row.flags.split()]
    if not unseen:
        return rows, attrs
    result = await session.services.store.store_flags(
        sel.folder_id, [(u, u) for u in unseen], "add", ["\\Seen"]
    )
    new = {uid: (flags, modseq) for uid, flags, modseq in result.rows}
    for uid, (_flags, modseq) in new.items():
        sel.reported[uid] = modseq
    if _FLAGS not in attrs:
        attrs = (*attrs, _FLAGS)
        if session.condstore and _MODSEQ not in attrs:
            attrs = (*attrs, _MODSEQ)
    patched = [_Patched(row, *new[row.uid]) if row.uid in new else row for row in rows]
    return patched, attrs


class _Patched:
    """A row whose flags (and MODSEQ) were just changed by the FETCH itself."""

    def __init__(self, row: Any, flags: str, modseq: int) -> None:
        self._row = row
        self.flags = flags
        self.modseq = modseq

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


async def _send(
    session: Session,
    numbered: list[tuple[int, Any]],
    attrs: tuple[FetchAttribute, ...],
    content: bool,
) -> None:
    store = session.services.store
    sel = session.selected
    assert sel is not None
    if attrs in ((_UID, _FLAGS), (_FLAGS, _UID)):
        # The resync every client does (UID FETCH 1:* (UID FLAGS)): one format, written in
        # batches (issue #5: 100,000 messages in under a second).
        batch: list[bytes] = []
        for seq, (uid, flags) in numbered:
            if session.unannounced(flags):
                session.write(b"".join(batch))  # the FLAGS response goes before this FETCH
                batch.clear()
                session.announce_keywords(flags)
            shown = f"\\Recent {flags}".rstrip() if uid in sel.recent else flags
            batch.append(b"* %d FETCH (UID %d FLAGS (%s))\r\n" % (seq, uid, shown.encode()))
            if len(batch) >= 4096:
                session.write(b"".join(batch))
                batch.clear()
                await session.flush_if_large()
        session.write(b"".join(batch))
        return
    for group in _batches(numbered, content):
        needed = [row for _, row in group if content or _needs_reparse(row, attrs)]
        octets = sum(int(row.size) for row in needed) if content else None
        # One trip to the blob thread for the batch, not one per message (none when small).
        wanted = [row.blob_sha256 for row in needed]
        blobs = await store.read_blobs(wanted, octets=octets) if wanted else {}
        for seq, row in group:
            m = _Message(row, blobs.get(row.blob_sha256) if blobs else None)
            if _FLAGS in attrs:
                session.announce_keywords(row.flags)
            items = b" ".join(_item(a, m, sel) for a in attrs)
            session.write(b"* %d FETCH (" % seq + items + b")\r\n")
            await session.flush_if_large()


def _batches(numbered: list[tuple[int, Any]], content: bool) -> list[list[tuple[int, Any]]]:
    """The messages in groups whose contents are read together: at most ``_BLOB_BATCH``
    of them and about ``_BLOB_BATCH_OCTETS`` (a message larger than that is alone)."""
    if not content:
        return [numbered[i : i + _BLOB_BATCH] for i in range(0, len(numbered), _BLOB_BATCH)]
    out: list[list[tuple[int, Any]]] = []
    current: list[tuple[int, Any]] = []
    octets = 0
    for item in numbered:
        size = int(item[1].size)
        if current and (len(current) >= _BLOB_BATCH or octets + size > _BLOB_BATCH_OCTETS):
            out.append(current)
            current, octets = [], 0
        current.append(item)
        octets += size
    if current:
        out.append(current)
    return out


def _needs_reparse(row: Any, attrs: tuple[FetchAttribute, ...]) -> bool:
    """A row without cached metadata (written before the cache existed) needs its content."""
    wants_meta = any(
        isinstance(a, FetchItem) and a.name in ("ENVELOPE", "BODY", "BODYSTRUCTURE") for a in attrs
    )
    return wants_meta and not (row.envelope and row.body_structure)

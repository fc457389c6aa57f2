"""Evaluating SEARCH keys (RFC 3501 §6.4.4, RFC 7162 §3.1.5) over message rows. Pure, no I/O.

:func:`needs` says which columns a search needs (flags, dates, sizes, MODSEQ, the cached
envelope, or the message itself for header and text keys), so the handler reads no more than
that; :func:`evaluate` then tests every candidate. Header and text keys read the message
through ``load`` (blocking: the handler runs the evaluation in a thread when they appear).

Choices: dates compare the UTC day of the internal date (the INTERNALDATE we show is UTC);
the sent date is the date written in the Date header, its zone disregarded (RFC 3501
§6.4.4); header and text matches are case-insensitive substring matches on the decoded text
(RFC 2047 encoded-words, transfer encodings and charsets decoded); ``\\Recent`` is the
session's (RFC 3501 §2.3.2), given as the UIDs recent for it.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage, Message
from email.utils import parsedate_tz
from typing import Any

from imap.search import (
    SearchAll,
    SearchAnd,
    SearchDate,
    SearchFlag,
    SearchHeader,
    SearchKey,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSequence,
    SearchSize,
    SearchText,
)
from imap.sequence import SequenceSet

__all__ = ["Candidate", "evaluate", "needs"]


@dataclass(slots=True)
class Candidate:
    """One message: its numbers and the columns read (``row`` has attributes uid, flags...)."""

    seq: int
    uid: int
    row: Any
    _message: Message | None = field(default=None, repr=False)
    _flags: frozenset[str] | None = field(default=None, repr=False)

    @property
    def flags(self) -> frozenset[str]:
        if self._flags is None:
            self._flags = frozenset(self.row.flags.split())
        return self._flags


def needs(key: SearchKey) -> set[str]:
    """Columns (``messages`` attributes) the key reads; ``blob_sha256`` for the message text."""
    match key:
        case SearchFlag():
            return {"flags"}
        case SearchDate(field="internal"):
            return {"internal_date"}
        case SearchDate():
            return {"envelope"}
        case SearchSize():
            return {"size"}
        case SearchModSeq():
            return {"modseq"}
        case SearchHeader() | SearchText():
            return {"blob_sha256"}
        case SearchNot(key=inner):
            return needs(inner)
        case SearchOr(left=left, right=right):
            return needs(left) | needs(right)
        case SearchAnd(keys=keys):
            return set().union(*(needs(k) for k in keys))
        case _:
            return set()


@dataclass(slots=True)
class _Context:
    exists: int
    max_uid: int
    saved: frozenset[int]
    load: Callable[[str], bytes]
    recent: frozenset[int] = frozenset()
    sets: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


def _in(ranges: list[tuple[int, int]], number: int) -> bool:
    return any(lo <= number <= hi for lo, hi in ranges)


def _message(candidate: Candidate, ctx: _Context) -> Message:
    if candidate._message is None:
        data = ctx.load(candidate.row.blob_sha256)
        candidate._message = email.message_from_bytes(data, policy=email.policy.default)
    return candidate._message


def _header_values(message: Message, name: str) -> list[str]:
    """RFC 3501 §6.4.4: the field "contains the specified string": its text as written
    (unfolded, so "user@domain.org (RealFrom)" keeps its comment) and as decoded (RFC 2047
    encoded words read as their text)."""
    wanted = name.lower()
    values = [" ".join(str(v).split()) for k, v in message.raw_items() if k.lower() == wanted]
    for decoded in message.get_all(name, []) or []:
        try:
            values.append(str(decoded))
        except Exception:  # a header the email package cannot decode: the raw text serves
            continue
    return values


def _body_texts(message: Message) -> list[str]:
    texts: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        if part.get_content_maintype() == "text" and isinstance(part, EmailMessage):
            try:
                texts.append(str(part.get_content()))
                continue
            except Exception:  # unknown charset, bad encoding: fall back to raw octets
                pass
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            texts.append(payload.decode("utf-8", "replace"))
    return texts


def _sent_date(envelope_json: str) -> date | None:
    try:
        value = json.loads(envelope_json)[0]
    except (ValueError, IndexError, TypeError):
        return None
    parsed = parsedate_tz(value) if isinstance(value, str) else None
    if parsed is None:
        return None
    try:
        return date(parsed[0], parsed[1], parsed[2])
    except ValueError:
        return None


def _compare(day: date | None, op: str, wanted: date) -> bool:
    if day is None:
        return False
    if op == "before":
        return day < wanted
    if op == "on":
        return day == wanted
    return day >= wanted


def _matches(key: SearchKey, c: Candidate, ctx: _Context) -> bool:
    match key:
        case SearchAll():
            return True
        case SearchFlag(flag=flag, present=present):
            if flag == "\\Recent":  # RECENT, OLD, NEW (RFC 3501 §6.4.4)
                return (c.uid in ctx.recent) == present
            return (flag in c.flags) == present
        case SearchAnd(keys=keys):
            return all(_matches(k, c, ctx) for k in keys)
        case SearchOr(left=left, right=right):
            return _matches(left, c, ctx) or _matches(right, c, ctx)
        case SearchNot(key=inner):
            return not _matches(inner, c, ctx)
        case SearchSequence(sequence=sequence, uid=uid):
            if sequence.saved:  # RFC 5182 $: the saved result, kept as UIDs
                return c.uid in ctx.saved
            return _in(_resolved(sequence, uid, ctx), c.uid if uid else c.seq)
        case SearchSize(larger=larger, size=size):
            return bool(c.row.size > size if larger else c.row.size < size)
        case SearchModSeq(modseq=modseq):
            return bool(c.row.modseq >= modseq)
        case SearchDate(field="internal", op=op, date=wanted):
            return _compare(c.row.internal_date.date(), op, wanted)
        case SearchDate(op=op, date=wanted):
            return _compare(_sent_date(c.row.envelope), op, wanted)
        case SearchHeader(field=name, value=value):
            values = _header_values(_message(c, ctx), name)
            needle = value.casefold()
            return any(needle in v.casefold() for v in values)
        case SearchText(where=where, value=value):
            message = _message(c, ctx)
            needle = value.casefold()
            texts = _body_texts(message)
            if where == "text":
                texts += [f"{k}: {v}" for k, v in message.items()]
            return any(needle in t.casefold() for t in texts)
    return False


def _resolved(sequence: SequenceSet, uid: bool, ctx: _Context) -> list[tuple[int, int]]:
    cache_key = id(sequence) * 2 + uid
    found = ctx.sets.get(cache_key)
    if found is None:
        found = sequence.resolve(ctx.max_uid if uid else ctx.exists)
        ctx.sets[cache_key] = found
    return found


def evaluate(
    key: SearchKey,
    candidates: Sequence[Candidate],
    *,
    exists: int,
    max_uid: int,
    load: Callable[[str], bytes],
    saved: Sequence[int] | None = None,
    recent: Iterable[int] = (),
) -> list[Candidate]:
    """The candidates matching ``key`` (in the given order); ``recent``: the UIDs that are
    ``\\Recent`` for the session."""
    ctx = _Context(exists, max_uid, frozenset(saved or ()), load, frozenset(recent))
    return [c for c in candidates if _matches(key, c, ctx)]

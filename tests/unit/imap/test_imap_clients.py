"""Whole client sessions as Thunderbird, Apple Mail, Outlook, mutt, mbsync and imaptest send them.

The client side of each session is fed to one CommandReader in chunks of every size (one octet,
a few octets, everything at once); the continuation requests, SASL lines and the IDLE ``DONE``
are handled the way the session layer will handle them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from imap.arguments import (
    AppendArgs,
    AuthenticateArgs,
    Command,
    CopyArgs,
    CreateArgs,
    EnableArgs,
    FetchArgs,
    IdArgs,
    ListArgs,
    ListReturnOptions,
    ListSelectOptions,
    LoginArgs,
    LsubArgs,
    MailboxArgs,
    QresyncParams,
    SearchArgs,
    SelectArgs,
    StatusArgs,
    StoreArgs,
    UidExpungeArgs,
)
from imap.commands import parse_command, parse_done, parse_sasl_response
from imap.fetch import FetchBody, FetchItem, Partial, Section
from imap.framing import CommandReader, NeedContinuation
from imap.search import SearchAnd, SearchFlag, SearchHeader, SearchNot, SearchOr
from imap.search import SearchSequence as Seq
from imap.sequence import SequenceSet

TB_HEADERS = (
    "From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups "
    "In-Reply-To Content-Type Reply-To"
)
MESSAGE = b"From: camille.martin@demo.mssante.fr\r\nSubject: CR\r\n\r\nBonjour\r\n"


def s(text: str) -> SequenceSet:
    return SequenceSet.parse(text)


def run_session(client: bytes, chunking: str) -> tuple[list[Command | bytes | None], int]:
    """Feed ``client`` in chunks; return what the session layer would get, and the number of
    continuation requests sent. SASL responses appear as bytes/None, DONE as "DONE" commands."""
    reader = CommandReader(max_literal_size=10_000)
    rng = random.Random(len(client))
    if chunking == "octets":
        chunks = [client[i : i + 1] for i in range(len(client))]
    elif chunking == "random":
        chunks = []
        i = 0
        while i < len(client):
            size = rng.randint(1, 40)
            chunks.append(client[i : i + size])
            i += size
    else:
        chunks = [client]
    results: list[Command | bytes | None] = []
    continuations = 0
    mode = "command"
    for chunk in chunks:
        reader.feed(chunk)
        while (item := reader.next_command()) is not None:
            if isinstance(item, NeedContinuation):
                continuations += 1
                continue
            if mode == "sasl":
                results.append(parse_sasl_response(item))
                mode = "command"
            elif mode == "idle":
                parse_done(item)
                results.append(Command("", "DONE"))
                mode = "command"
            else:
                command = parse_command(item)
                results.append(command)
                if command.name == "IDLE":
                    mode = "idle"
                elif isinstance(command.args, AuthenticateArgs) and (
                    command.args.initial_response is None
                ):
                    mode = "sasl"
    assert not reader.in_command
    return results, continuations


CHUNKINGS = ["whole", "random", "octets"]


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_thunderbird(chunking: str) -> None:
    client = (
        b"1 capability\r\n"
        b"2 authenticate PLAIN\r\n"
        b"AGNhbWlsbGUAc2VjcmV0\r\n"
        b'3 ID ("name" "Thunderbird" "version" "115.5.0")\r\n'
        b"4 enable CONDSTORE\r\n"
        b'5 list (subscribed) "" "*" return (special-use)\r\n'
        b'6 list "" "*" return (special-use)\r\n'
        b'7 select "INBOX" (CONDSTORE)\r\n'
        b"8 UID fetch 1:* (FLAGS) (CHANGEDSINCE 20050715194045000)\r\n"
        b"9 UID fetch 5:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS ("
        + TB_HEADERS.encode()
        + b")])\r\n"
        b"10 UID fetch 5 (UID RFC822.SIZE BODY.PEEK[])\r\n"
        b"11 uid store 5 +Flags (\\Seen)\r\n"
        b"12 IDLE\r\n"
        b"DONE\r\n"
        b'13 getquotaroot "INBOX"\r\n'
        b'14 uid move 5 "Trash"\r\n'
        b"15 UID SEARCH CHARSET UTF-8 UNDELETED SUBJECT {6+}\r\nh\xc3\xa9llo\r\n"
        b'16 append "Sent" (\\Seen) {%d}\r\n' % len(MESSAGE) + MESSAGE + b"\r\n"
        b'17 STATUS "Drafts" (UIDNEXT MESSAGES UNSEEN RECENT)\r\n'
        b"18 logout\r\n"
    )
    results, continuations = run_session(client, chunking)
    assert continuations == 1
    assert [getattr(r, "verb", r) for r in results] == [
        "CAPABILITY",
        "AUTHENTICATE",
        b"\x00camille\x00secret",
        "ID",
        "ENABLE",
        "LIST",
        "LIST",
        "SELECT",
        "FETCH",
        "FETCH",
        "FETCH",
        "STORE",
        "IDLE",
        "DONE",
        "GETQUOTAROOT",
        "MOVE",
        "SEARCH",
        "APPEND",
        "STATUS",
        "LOGOUT",
    ]
    commands = {c.tag: c for c in results if isinstance(c, Command)}
    assert commands["3"].args == IdArgs((("name", "Thunderbird"), ("version", "115.5.0")))
    assert commands["4"].args == EnableArgs(("CONDSTORE",))
    assert commands["5"].args == ListArgs(
        "",
        ("*",),
        ListSelectOptions(subscribed=True),
        ListReturnOptions(special_use=True),
        extended=True,
    )
    assert commands["7"].args == SelectArgs("INBOX", condstore=True)
    assert commands["8"].args == FetchArgs(s("1:*"), (FetchItem("FLAGS"),), 20050715194045000)
    assert commands["9"].args == FetchArgs(
        s("5:*"),
        (
            FetchItem("UID"),
            FetchItem("RFC822.SIZE"),
            FetchItem("FLAGS"),
            FetchBody(Section(text="HEADER.FIELDS", headers=tuple(TB_HEADERS.split())), peek=True),
        ),
    )
    assert commands["9"].uid
    assert commands["11"].args == StoreArgs(s("5"), "add", ("\\Seen",))
    assert commands["13"].args == MailboxArgs("INBOX")
    assert commands["14"].args == CopyArgs(s("5"), "Trash")
    assert commands["15"].args == SearchArgs(
        SearchAnd((SearchFlag("\\Deleted", False), SearchHeader("Subject", "héllo"))), "UTF-8"
    )
    assert commands["16"].args == AppendArgs("Sent", MESSAGE, ("\\Seen",))
    assert commands["17"].args == StatusArgs("Drafts", ("UIDNEXT", "MESSAGES", "UNSEEN", "RECENT"))


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_apple_mail(chunking: str) -> None:
    apple_headers = (
        "date subject from to cc message-id in-reply-to references x-priority "
        "x-uniform-type-identifier x-universally-unique-identifier"
    )
    client = (
        b'1.1 ID ("name" "Mac OS X Mail" "version" "16.0 (3731.700.6)" "os" "Mac OS X" '
        b'"os-version" "13.5 (22G74)" "vendor" "Apple Inc.")\r\n'
        b"2.2 AUTHENTICATE PLAIN AGNhbWlsbGUAc2VjcmV0\r\n"
        b"3.3 ENABLE QRESYNC\r\n"
        b'4.4 LIST "" ""\r\n'
        b'5.5 LIST "" "*" RETURN (CHILDREN SPECIAL-USE)\r\n'
        b"6.6 SELECT INBOX (QRESYNC (1234567 987 1:57))\r\n"
        b"7.7 UID FETCH 1:57 (FLAGS) (CHANGEDSINCE 987 VANISHED)\r\n"
        b"8.8 UID FETCH 58:* (INTERNALDATE UID RFC822.SIZE FLAGS MODSEQ "
        b"BODY.PEEK[HEADER.FIELDS (" + apple_headers.encode() + b")])\r\n"
        b"9.9 UID FETCH 57 (BODYSTRUCTURE BODY.PEEK[HEADER])\r\n"
        b"10.10 UID FETCH 57 BODY.PEEK[1]<0.32768>\r\n"
        b"11.11 UID STORE 57 +FLAGS.SILENT (\\Seen)\r\n"
        b'12.12 UID MOVE 57 "Deleted Messages"\r\n'
        b'13.13 APPEND "Sent Messages" (\\Seen) "05-Jan-2024 10:00:00 +0100" {%d}\r\n'
        % len(MESSAGE)
        + MESSAGE
        + b"\r\n"
        b"14.14 IDLE\r\n"
        b"done\r\n"
        b'15.15 STATUS "Drafts" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)\r\n'
        b"16.16 NOOP\r\n"
        b"17.17 LOGOUT\r\n"
    )
    results, continuations = run_session(client, chunking)
    assert continuations == 1
    commands = {c.tag: c for c in results if isinstance(c, Command) and c.tag}
    assert len(results) == 18
    assert commands["1.1"].args == IdArgs(
        (
            ("name", "Mac OS X Mail"),
            ("version", "16.0 (3731.700.6)"),
            ("os", "Mac OS X"),
            ("os-version", "13.5 (22G74)"),
            ("vendor", "Apple Inc."),
        )
    )
    assert commands["2.2"].args == AuthenticateArgs("PLAIN", b"\x00camille\x00secret")
    assert commands["4.4"].args == ListArgs("", ("",))
    assert commands["5.5"].args == ListArgs(
        "", ("*",), returns=ListReturnOptions(children=True, special_use=True), extended=True
    )
    assert commands["6.6"].args == SelectArgs(
        "INBOX", qresync=QresyncParams(1234567, 987, s("1:57"))
    )
    assert commands["7.7"].args == FetchArgs(s("1:57"), (FetchItem("FLAGS"),), 987, True)
    fetch_args = commands["8.8"].args
    assert isinstance(fetch_args, FetchArgs)
    assert fetch_args.attributes[:5] == tuple(
        FetchItem(n) for n in ("INTERNALDATE", "UID", "RFC822.SIZE", "FLAGS", "MODSEQ")
    )
    assert fetch_args.attributes[5] == FetchBody(
        Section(text="HEADER.FIELDS", headers=tuple(apple_headers.split())), peek=True
    )
    assert commands["10.10"].args == FetchArgs(
        s("57"), (FetchBody(Section((1,)), True, Partial(0, 32768)),)
    )
    assert commands["11.11"].args == StoreArgs(s("57"), "add", ("\\Seen",), silent=True)
    assert commands["12.12"].args == CopyArgs(s("57"), "Deleted Messages")
    assert commands["13.13"].args == AppendArgs(
        "Sent Messages",
        MESSAGE,
        ("\\Seen",),
        datetime(2024, 1, 5, 9, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=1))),
    )


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_outlook(chunking: str) -> None:
    client = (
        b'A0001 LOGIN "camille.martin@demo.mssante.fr" "p@ss w0rd"\r\n'
        b"A0002 CAPABILITY\r\n"
        b'A0003 LIST "" "*"\r\n'
        b'A0004 LSUB "" "*"\r\n'
        b'A0005 SELECT "INBOX"\r\n'
        b"A0006 UID FETCH 1:* (UID FLAGS)\r\n"
        b"A0007 UID FETCH 1:100 (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER])\r\n"
        b"A0008 UID FETCH 42 (UID RFC822.SIZE BODY.PEEK[])\r\n"
        b'A0009 UID COPY 42 "&AMk-l&AOk-ments supprim&AOk-s"\r\n'
        b"A0010 UID STORE 42 +FLAGS.SILENT (\\Deleted)\r\n"
        b"A0011 EXPUNGE\r\n"
        b'A0012 CREATE "Archive/2024"\r\n'
        b'A0013 SUBSCRIBE "Archive/2024"\r\n'
        b"A0014 LOGOUT\r\n"
    )
    results, continuations = run_session(client, chunking)
    assert continuations == 0
    commands = {c.tag: c for c in results if isinstance(c, Command)}
    assert commands["A0001"].args == LoginArgs("camille.martin@demo.mssante.fr", "p@ss w0rd")
    assert commands["A0004"].args == LsubArgs("", "*")
    assert commands["A0007"].args == FetchArgs(
        s("1:100"),
        (
            FetchItem("UID"),
            FetchItem("FLAGS"),
            FetchItem("RFC822.SIZE"),
            FetchItem("INTERNALDATE"),
            FetchBody(Section(text="HEADER"), peek=True),
        ),
    )
    assert commands["A0009"].args == CopyArgs(s("42"), "Éléments supprimés")
    assert commands["A0012"].args == CreateArgs("Archive/2024")
    assert commands["A0014"].verb == "LOGOUT"


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_mutt(chunking: str) -> None:
    mutt_headers = (
        "DATE FROM SENDER SUBJECT TO CC MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION "
        "IN-REPLY-TO REPLY-TO LINES LIST-POST X-LABEL X-ORIGINAL-TO"
    )
    client = (
        b"a0000 CAPABILITY\r\n"
        b"a0001 LOGIN {30}\r\ncamille.martin@demo.mssante.fr {7}\r\ns\xc3\xa9cret\r\n"
        b'a0002 LIST "" ""\r\n'
        b'a0003 SELECT "INBOX" (CONDSTORE)\r\n'
        b"a0004 UID FETCH 1:38 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS ("
        + mutt_headers.encode()
        + b")])\r\n"
        b"a0005 UID STORE 5 +FLAGS.SILENT (\\Seen)\r\n"
        b"a0006 UID SEARCH CHARSET UTF-8 SUBJECT {6}\r\nh\xc3\xa9llo\r\n"
        b'a0007 APPEND "Sent" (\\Seen) {%d}\r\n' % len(MESSAGE) + MESSAGE + b"\r\n"
        b'a0008 STATUS "INBOX" (MESSAGES)\r\n'
        b"a0009 UID EXPUNGE 5\r\n"
        b"a0010 CLOSE\r\n"
        b"a0011 LOGOUT\r\n"
    )
    results, continuations = run_session(client, chunking)
    assert continuations == 4
    commands = {c.tag: c for c in results if isinstance(c, Command)}
    assert commands["a0001"].args == LoginArgs("camille.martin@demo.mssante.fr", "sécret")
    assert commands["a0006"].args == SearchArgs(SearchHeader("Subject", "héllo"), "UTF-8")
    assert commands["a0009"].args == UidExpungeArgs(s("5"))
    assert commands["a0004"].args == FetchArgs(
        s("1:38"),
        (
            FetchItem("UID"),
            FetchItem("FLAGS"),
            FetchItem("INTERNALDATE"),
            FetchItem("RFC822.SIZE"),
            FetchBody(
                Section(text="HEADER.FIELDS", headers=tuple(mutt_headers.split())), peek=True
            ),
        ),
    )


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_mbsync(chunking: str) -> None:
    client = (
        b"1 CAPABILITY\r\n"
        b"2 AUTHENTICATE PLAIN AGNhbWlsbGUAc2VjcmV0\r\n"
        b"3 NAMESPACE\r\n"
        b'4 LIST "" "*"\r\n'
        b'5 SELECT "INBOX"\r\n'
        b"6 UID FETCH 1:1000000000 (UID FLAGS)\r\n"
        b"7 UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (X-TUID)])\r\n"
        b"8 UID FETCH 3 (BODY.PEEK[])\r\n"
        b'9 APPEND "INBOX" (\\Seen) "01-Jan-2024 12:00:00 +0000" {%d+}\r\n'
        % len(MESSAGE)
        + MESSAGE
        + b"\r\n"
        b"10 UID SEARCH HEADER X-TUID nLZ0EVBddAQp\r\n"
        b"11 UID STORE 3 +FLAGS.SILENT \\Deleted\r\n"
        b"12 UID EXPUNGE 3\r\n"
        b"13 CLOSE\r\n"
        b'14 CREATE "Archive"\r\n'
        b"15 LOGOUT\r\n"
    )
    results, continuations = run_session(client, chunking)
    assert continuations == 0
    commands = {c.tag: c for c in results if isinstance(c, Command)}
    assert commands["6"].args == FetchArgs(
        s("1:1000000000"), (FetchItem("UID"), FetchItem("FLAGS"))
    )
    assert commands["9"].args == AppendArgs(
        "INBOX", MESSAGE, ("\\Seen",), datetime(2024, 1, 1, 12, tzinfo=UTC)
    )
    assert commands["10"].args == SearchArgs(SearchHeader("X-TUID", "nLZ0EVBddAQp"))
    assert commands["11"].args == StoreArgs(s("3"), "add", ("\\Deleted",), silent=True)
    assert commands["12"].args == UidExpungeArgs(s("3"))


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_imaptest(chunking: str) -> None:
    client = (
        b"1 LOGIN user1 pass\r\n"
        b'2 SELECT "INBOX"\r\n'
        b"3 FETCH 1:* (FLAGS)\r\n"
        b"4 STORE 1:5 +FLAGS (\\Deleted)\r\n"
        b"5 SEARCH OR FLAGGED SEEN NOT DELETED\r\n"
        b"6 FETCH 1:3 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (From To)] "
        b"BODYSTRUCTURE ENVELOPE)\r\n"
        b"7 APPEND INBOX (\\Seen $MDNSent) {%d}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n"
        b"8 EXPUNGE\r\n"
        b"9 CHECK\r\n"
        b'10 COPY 1:2 "INBOX"\r\n'
        b"11 SEARCH 2:4 UID 1:* SMALLER 100000\r\n"
        b"12 LOGOUT\r\n"
    )
    results, continuations = run_session(client, chunking)
    assert continuations == 1
    commands = {c.tag: c for c in results if isinstance(c, Command)}
    assert commands["5"].args == SearchArgs(
        SearchAnd(
            (
                SearchOr(SearchFlag("\\Flagged"), SearchFlag("\\Seen")),
                SearchNot(SearchFlag("\\Deleted")),
            )
        )
    )
    assert commands["7"].args == AppendArgs("INBOX", MESSAGE, ("\\Seen", "$MDNSent"))
    search_args = commands["11"].args
    assert isinstance(search_args, SearchArgs)
    assert isinstance(search_args.criteria, SearchAnd)
    assert search_args.criteria.keys[:2] == (Seq(s("2:4")), Seq(s("1:*"), uid=True))

"""imap.commands: parse_command for every command, and its errors (RFC 3501 §6, §9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from imap.arguments import (
    NO_ARGS,
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
    QuotaRootArgs,
    RenameArgs,
    SearchArgs,
    SelectArgs,
    SetQuotaArgs,
    StatusArgs,
    StoreArgs,
    UidExpungeArgs,
)
from imap.commands import parse_command, parse_done, parse_sasl_response
from imap.errors import ParseError
from imap.fetch import FetchItem
from imap.framing import RawCommand, RawLiteral
from imap.search import SearchAll
from imap.sequence import SequenceSet
from imap.utf7 import UndecodableName

from .wire import parse


def seq(text: str) -> SequenceSet:
    return SequenceSet.parse(text)


def list_args(line: str) -> ListArgs:
    args = parse(line).args
    assert isinstance(args, ListArgs)
    return args


def bad(line: str | bytes) -> ParseError:
    with pytest.raises(ParseError) as exc:
        parse(line)
    return exc.value


# -- command line structure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "CAPABILITY",
        "NOOP",
        "LOGOUT",
        "STARTTLS",
        "NAMESPACE",
        "CHECK",
        "CLOSE",
        "UNSELECT",
        "EXPUNGE",
        "IDLE",
    ],
)
def test_commands_without_arguments(name: str) -> None:
    assert parse(f"a1 {name}") == Command("a1", name, NO_ARGS)
    assert parse(f"a1 {name.lower()}").name == name
    error = bad(f"a1 {name} extra")
    assert error.tag == "a1"
    assert "unexpected characters after command" in error.message


def test_command_and_tag() -> None:
    command = parse("A0001.x-7 noop")
    assert command.tag == "A0001.x-7"
    assert command.verb == "NOOP"
    assert not command.uid and command.subcommand is None


@pytest.mark.parametrize(
    ("line", "tag", "message"),
    [
        ("", None, "empty command line"),
        ("a", "a", "missing command name"),
        ("a ", "a", "invalid command name"),
        ("a FOO", "a", "unknown command FOO"),
        ("a  NOOP", "a", "invalid command name"),
        ("a NOOP ", "a", "unexpected characters after command"),
        ("+ NOOP", None, "missing or invalid tag"),
        ("* NOOP", None, "missing or invalid tag"),
        ("a+b NOOP", None, "invalid tag"),
        ("(a NOOP", None, "missing or invalid tag"),
        ("a NOOP1", "a", "invalid command name"),
        ("a UID", "a", "unknown command UID"),
        ("a UID LIST", "a", "unknown command UID LIST"),
        ("a UID 1:* FLAGS", "a", "unknown command UID"),
        ("a\tNOOP", None, "invalid tag"),
        ("a NO\x00OP", "a", "invalid command name"),
    ],
)
def test_malformed_command_lines(line: str, tag: str | None, message: str) -> None:
    with pytest.raises(ParseError) as exc:
        parse_command(RawCommand.from_line(line))
    assert exc.value.tag == tag
    assert message in exc.value.message


def test_uid_commands() -> None:
    command = parse("a UID fetch 1:* FLAGS")
    assert (command.name, command.uid, command.subcommand, command.verb) == (
        "UID",
        True,
        "FETCH",
        "FETCH",
    )
    assert parse("a uid expunge 3:5").args == UidExpungeArgs(seq("3:5"))
    assert bad("a UID EXPUNGE").message == "missing arguments for EXPUNGE"


# -- authentication --------------------------------------------------------------------------------


def test_login_forms() -> None:
    assert parse("a LOGIN fred secret").args == LoginArgs("fred", "secret")
    assert parse('a LOGIN "fred@example.org" "p a\\"s\\\\s"').args == LoginArgs(
        "fred@example.org", 'p a"s\\s'
    )
    # mutt / Thunderbird send non-ASCII passwords as literals.
    assert parse("a LOGIN {4+}\r\nfred {7+}\r\nsécret").args == LoginArgs("fred", "sécret")


def test_login_password_is_hidden_from_repr() -> None:
    assert "secret" not in repr(parse("a LOGIN fred secret"))


def test_login_errors() -> None:
    assert bad("a LOGIN fred").message.startswith("expected a space")
    assert bad('a LOGIN "fr\xe9d" x').message == (
        "8-bit characters in quoted string (use a literal)"
    )
    assert "not valid UTF-8" in bad(b"a LOGIN {2+}\r\n\xff\xfe x").message
    assert bad("a LOGIN {3+}\r\na\x00b x").message == "NUL octet in literal"
    assert "invalid escape" in bad('a LOGIN "a\\nb" x').message
    assert bad('a LOGIN "abc').message == "unterminated quoted string"


def test_authenticate() -> None:
    assert parse("a AUTHENTICATE plain").args == AuthenticateArgs("PLAIN", None)
    # RFC 4959 SASL-IR.
    assert parse("a AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0").args == AuthenticateArgs(
        "PLAIN", b"\x00fred\x00secret"
    )
    assert parse("a AUTHENTICATE EXTERNAL =").args == AuthenticateArgs("EXTERNAL", b"")
    assert parse("a AUTHENTICATE XOAUTH2 dXNlcj1h").args == AuthenticateArgs("XOAUTH2", b"user=a")
    assert bad("a AUTHENTICATE PLAIN AGZy!").message == "invalid base64 in initial response"
    assert bad("a AUTHENTICATE PLAIN AGZ").message == "invalid base64 in initial response"
    assert bad("a AUTHENTICATE").message == "missing arguments for AUTHENTICATE"


def test_sasl_response_lines() -> None:
    assert parse_sasl_response(RawCommand.from_line("AGZyZWQAc2VjcmV0")) == b"\x00fred\x00secret"
    assert parse_sasl_response(RawCommand.from_line("")) == b""
    assert parse_sasl_response(RawCommand.from_line("*")) is None
    with pytest.raises(ParseError, match="invalid base64"):
        parse_sasl_response(RawCommand.from_line("a b"))
    with pytest.raises(ParseError, match="literal"):
        parse_sasl_response(RawCommand((b"{3}", b""), (RawLiteral(b"abc"),)))


def test_enable() -> None:
    assert parse("a ENABLE CONDSTORE qresync CONDSTORE").args == EnableArgs(
        ("CONDSTORE", "QRESYNC")
    )
    assert parse("a ENABLE UTF8=ACCEPT").args == EnableArgs(("UTF8=ACCEPT",))
    assert bad("a ENABLE").message == "missing arguments for ENABLE"


def test_id() -> None:
    assert parse("a ID NIL").args == IdArgs(None)
    assert parse("a ID ()").args == IdArgs(())
    assert parse('a ID ("name" "mutt" "version" NIL)').args == IdArgs(
        (("name", "mutt"), ("version", None))
    )
    assert bad('a ID ("name")').message.startswith("expected a space")
    assert "longer than 30" in bad(f'a ID ("{"n" * 31}" "x")').message
    pairs = " ".join(f'"k{i}" "v"' for i in range(31))
    assert "more than 30" in bad(f"a ID ({pairs})").message
    assert "'(' or NIL" in bad("a ID FOO").message


# -- mailboxes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("inbox", ["INBOX", "inbox", '"InBoX"', "{5+}\r\ninBOX"])
def test_inbox_is_case_insensitive(inbox: str) -> None:
    assert parse(f"a SELECT {inbox}").args == SelectArgs("INBOX")


def test_other_names_keep_their_case_and_are_decoded() -> None:
    assert parse("a SELECT Inbox/Sub").args == SelectArgs("Inbox/Sub")
    assert parse('a EXAMINE "Envoy&AOk-s"').args == SelectArgs("Envoyés")
    assert parse('a SELECT ""').args == SelectArgs("")


def test_invalid_mailbox_names() -> None:
    # Printable but not modified UTF-7: still an astring, so the command runs (and finds
    # no such folder: NO, not BAD, imaptest atoms); the reason travels with the name.
    args = parse('a SELECT "Envoy&AOk"').args
    assert isinstance(args, SelectArgs) and isinstance(args.mailbox, UndecodableName)
    assert args.mailbox == "Envoy&AOk" and args.mailbox.reason.startswith("unterminated '&'")
    atom = parse("a SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}").args
    assert isinstance(atom, SelectArgs) and isinstance(atom.mailbox, UndecodableName)
    assert "8-bit characters" in bad(b"a SELECT {7+}\r\nEnvoy\xc3\xa9").message
    assert "invalid mailbox name" in bad(b"a SELECT {7+}\r\nEnvoy&\x01").message
    assert "expected a mailbox name" in bad("a SELECT (x)").message


def test_select_condstore_and_qresync() -> None:
    assert parse("a SELECT INBOX (CONDSTORE)").args == SelectArgs("INBOX", condstore=True)
    # RFC 7162 §3.2.5 examples.
    assert parse(
        "A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))"
    ).args == SelectArgs(
        "INBOX", qresync=QresyncParams(67890007, 20050715194045000, seq("41,43:211,214:541"))
    )
    assert parse(
        "B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 "
        "(1:15,20:30 41:61,81:91)))"
    ).args == SelectArgs(
        "INBOX",
        qresync=QresyncParams(
            67890007,
            90060115194045000,
            seq("41:211,214:541"),
            (seq("1:15,20:30"), seq("41:61,81:91")),
        ),
    )
    assert parse("a EXAMINE INBOX (QRESYNC (1 2 (1:3 4:6)))").args == SelectArgs(
        "INBOX", qresync=QresyncParams(1, 2, None, (seq("1:3"), seq("4:6")))
    )
    assert parse("a SELECT INBOX (QRESYNC (1 2) CONDSTORE)").args == SelectArgs(
        "INBOX", condstore=True, qresync=QresyncParams(1, 2)
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a SELECT INBOX ()", "expected a select parameter"),
        ("a SELECT INBOX (FOO)", "unknown select parameter FOO"),
        ("a SELECT INBOX (QRESYNC (0 1))", "QRESYNC uidvalidity out of range"),
        ("a SELECT INBOX (QRESYNC (1 0))", "QRESYNC mod-sequence out of range"),
        ("a SELECT INBOX (QRESYNC (1 9223372036854775808))", "out of range"),
        ("a SELECT INBOX (QRESYNC (1 2 1:*))", "'*' and '$' are not allowed"),
        ("a SELECT INBOX (QRESYNC (1 2 $))", "'*' and '$' are not allowed"),
        ("a SELECT INBOX (QRESYNC (1 2 3 (1:2)))", "expected a space"),
        ("a SELECT INBOX (QRESYNC (1 2) QRESYNC (1 2))", "QRESYNC given twice"),
        ("a SELECT INBOX (CONDSTORE", "expected ')'"),
    ],
)
def test_select_parameter_errors(line: str, message: str) -> None:
    assert message in bad(line).message


def test_create_delete_rename_subscribe() -> None:
    assert parse('a CREATE "Archives/2024"').args == CreateArgs("Archives/2024")
    assert parse('a CREATE "Sent" (USE (\\Sent))').args == CreateArgs("Sent", ("\\Sent",))
    assert parse("a CREATE x (USE (\\junk \\Archive \\X-Custom))").args == CreateArgs(
        "x", ("\\Junk", "\\Archive", "\\X-Custom")
    )
    assert parse("a CREATE x (USE ())").args == CreateArgs("x")
    assert "unknown create parameter" in bad("a CREATE x (FOO)").message
    assert "special-use attribute" in bad("a CREATE x (USE (Sent))").message
    assert parse("a DELETE Trash").args == MailboxArgs("Trash")
    assert parse('a RENAME "Old" "New/&AOk-"').args == RenameArgs("Old", "New/é")
    assert parse("a SUBSCRIBE inbox").args == MailboxArgs("INBOX")
    assert parse('a UNSUBSCRIBE "a b"').args == MailboxArgs("a b")
    assert bad("a RENAME x").message.startswith("expected a space")


def test_list_basic() -> None:
    assert parse('a LIST "" "*"').args == ListArgs("", ("*",))
    assert parse('a LIST "" ""').args == ListArgs("", ("",))
    assert parse("a LIST ~/Mail/ %").args == ListArgs("~/Mail/", ("%",))
    assert parse('a list "" INBOX.%').args == ListArgs("", ("INBOX.%",))
    assert parse('a LIST "" "Envoy&AOk-s/*"').args == ListArgs("", ("Envoyés/*",))
    assert parse('a LIST "" {1+}\r\n*').args == ListArgs("", ("*",))
    assert parse('a LIST "" [Gmail]/%').args == ListArgs("", ("[Gmail]/%",))


def test_list_extended() -> None:
    # RFC 5258 examples.
    assert parse('A02 LIST (SUBSCRIBED) "" "*"').args == ListArgs(
        "", ("*",), ListSelectOptions(subscribed=True), extended=True
    )
    assert parse('A03 LIST () "" "%" RETURN (CHILDREN)').args == ListArgs(
        "", ("%",), returns=ListReturnOptions(children=True), extended=True
    )
    assert list_args('A04 LIST (REMOTE) "" "%" RETURN (CHILDREN)').select == ListSelectOptions(
        remote=True
    )
    assert parse('C04 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)').args == (
        ListArgs(
            "",
            ("%",),
            ListSelectOptions(subscribed=True, recursive_match=True),
            ListReturnOptions(children=True),
            extended=True,
        )
    )
    assert parse('BBB LIST "" ("INBOX" "Drafts" "Sent/%")').args == ListArgs(
        "", ("INBOX", "Drafts", "Sent/%"), extended=True
    )
    # RFC 5819 LIST-STATUS and RFC 6154 SPECIAL-USE.
    assert parse(
        'A01 LIST "" % RETURN (STATUS (MESSAGES UNSEEN) SPECIAL-USE SUBSCRIBED)'
    ).args == ListArgs(
        "",
        ("%",),
        returns=ListReturnOptions(subscribed=True, special_use=True, status=("MESSAGES", "UNSEEN")),
        extended=True,
    )
    assert list_args('t1 LIST (SPECIAL-USE) "" "*"').select == ListSelectOptions(special_use=True)
    assert parse('a LIST "" "*" RETURN ()').args == ListArgs("", ("*",), extended=True)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('a LIST (RECURSIVEMATCH) "" "%"', "RECURSIVEMATCH needs another selection option"),
        ('a LIST (REMOTE RECURSIVEMATCH) "" "%"', "RECURSIVEMATCH needs another"),
        ('a LIST (FOO) "" "%"', "unknown LIST selection option FOO"),
        ('a LIST "" "%" RETURN (FOO)', "unknown LIST return option FOO"),
        ('a LIST "" "%" FOO (CHILDREN)', "expected RETURN"),
        ('a LIST "" "%" RETURN (STATUS (BOGUS))', "unknown status item BOGUS"),
        ('a LIST "" ()', "expected a mailbox pattern"),
        ('a LIST ""', "expected a space"),
        ('a LIST "" "%" RETURN (CHILDREN', "expected ')'"),
    ],
)
def test_list_errors(line: str, message: str) -> None:
    assert message in bad(line).message


def test_lsub() -> None:
    assert parse('a LSUB "" "*"').args == LsubArgs("", "*")
    assert parse("a LSUB #news. comp.mail.*").args == LsubArgs("#news.", "comp.mail.*")


def test_status() -> None:
    assert parse("a STATUS blurdybloop (UIDNEXT MESSAGES)").args == StatusArgs(
        "blurdybloop", ("UIDNEXT", "MESSAGES")
    )
    assert parse(
        'a STATUS "INBOX" (messages recent uidnext uidvalidity unseen highestmodseq size '
        "deleted deleted-storage appendlimit messages)"
    ).args == StatusArgs(
        "INBOX",
        (
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
        ),
    )
    assert "unknown status item FOO" in bad("a STATUS x (FOO)").message
    assert "expected a status item" in bad("a STATUS x ()").message


# -- APPEND ----------------------------------------------------------------------------------------


def test_append_forms() -> None:
    args = parse(b"A003 APPEND saved-messages (\\Seen) {5}\r\nhello").args
    assert args == AppendArgs("saved-messages", b"hello", ("\\Seen",))
    args = parse(b'a APPEND "Sent" (\\Seen $MDNSent) "14-Jul-2024 09:05:00 +0200" {3+}\r\nabc').args
    assert args == AppendArgs(
        "Sent",
        b"abc",
        ("\\Seen", "$MDNSent"),
        datetime(2024, 7, 14, 9, 5, tzinfo=timezone(timedelta(hours=2))),
    )
    args = parse(b'a APPEND INBOX " 1-Feb-1994 21:52:25 -0800" {0+}\r\n\r\n').args
    assert isinstance(args, AppendArgs)
    assert args.message == b"" and args.flags == ()
    assert args.internal_date == datetime(1994, 2, 2, 5, 52, 25, tzinfo=UTC)
    assert parse(b"a APPEND INBOX () {1+}\r\nx").args == AppendArgs("INBOX", b"x")


def test_append_message_is_hidden_from_repr() -> None:
    assert "secret-body" not in repr(parse(b"a APPEND INBOX {11+}\r\nsecret-body"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'a APPEND INBOX "hello"', "expected a date-time"),
        (b"a APPEND INBOX hello", "expected the message as a literal"),
        (b"a APPEND INBOX", "expected a space"),
        (b"a APPEND INBOX (\\Seen {1+}\r\nx", "expected a flag near '{1+}'"),
        (b'a APPEND INBOX "31-Feb-2024 10:00:00 +0000" {1+}\r\nx', "invalid date-time"),
        (b'a APPEND INBOX "1-Foo-2024 10:00:00 +0000" {1+}\r\nx', "invalid date-time"),
        (b'a APPEND INBOX "01-Jan-2024 10:00:00 +0099" {1+}\r\nx', "invalid date-time"),
        (b'a APPEND INBOX "01-Jan-2024 10:00:00" {1+}\r\nx', "expected a date-time"),
        (b"a APPEND INBOX {1+}\r\nx {1+}\r\ny", "MULTIAPPEND is not supported"),
        (b"a APPEND INBOX {1+}\r\nxyz", "unexpected characters after command"),
    ],
)
def test_append_errors(line: bytes, message: str) -> None:
    assert message in bad(line).message


def test_literal8_only_for_message_data() -> None:
    assert "literal8" in bad(b"a LOGIN ~{3+}\r\nabc x").message
    assert "literal8" in bad(b"a SELECT ~{3+}\r\nabc").message


# -- FETCH / STORE / COPY / MOVE -------------------------------------------------------------------


def test_fetch_modifiers() -> None:
    args = parse("s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)").args
    assert args == FetchArgs(seq("1:*"), (FetchItem("FLAGS"),), 12345, True)
    args = parse("a FETCH 1:* (UID FLAGS) (CHANGEDSINCE 1)").args
    assert args == FetchArgs(seq("1:*"), (FetchItem("UID"), FetchItem("FLAGS")), 1)
    assert "VANISHED needs UID FETCH" in bad("a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)").message
    assert "VANISHED needs UID FETCH" in bad("a UID FETCH 1 FLAGS (VANISHED)").message
    assert "out of range" in bad("a FETCH 1 FLAGS (CHANGEDSINCE 0)").message
    assert "unknown FETCH modifier" in bad("a FETCH 1 FLAGS (PARTIAL 1:5)").message


def test_store_forms() -> None:
    assert parse("A003 STORE 2:4 +FLAGS (\\Deleted)").args == StoreArgs(
        seq("2:4"), "add", ("\\Deleted",)
    )
    assert parse("a UID STORE 5 +Flags (\\Seen)").args == StoreArgs(seq("5"), "add", ("\\Seen",))
    assert parse("a STORE 1 -FLAGS.SILENT (\\Seen \\Flagged)").args == StoreArgs(
        seq("1"), "remove", ("\\Seen", "\\Flagged"), silent=True
    )
    assert parse("a STORE 1:* FLAGS ()").args == StoreArgs(seq("1:*"), "replace", ())
    # RFC 3501 §9: flags without parentheses (mbsync).
    assert parse("a UID STORE 3 +FLAGS.SILENT \\Deleted $Junk").args == StoreArgs(
        seq("3"), "add", ("\\Deleted", "$Junk"), silent=True
    )
    # RFC 7162 §3.1.3.
    assert parse("a STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)").args == (
        StoreArgs(seq("7,5,9"), "add", ("\\Deleted",), True, 320162338)
    )
    assert parse("a STORE 1 (UNCHANGEDSINCE 0) FLAGS (x)").args == StoreArgs(
        seq("1"), "replace", ("x",), unchanged_since=0
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a STORE 1 FLAG (\\Seen)", "expected FLAGS, +FLAGS or -FLAGS"),
        ("a STORE 1 +FLAGSX (\\Seen)", "expected FLAGS, +FLAGS or -FLAGS"),
        ("a STORE 1 X-GM-LABELS (x)", "expected FLAGS"),
        ("a STORE 1 +FLAGS", "expected a space"),
        ("a STORE 1 +FLAGS (\\Seen", "')' or a space in flag list"),
        ("a STORE 1 +FLAGS (\\)", "expected a flag name"),
        ("a STORE 1 +FLAGS (a(b))", "')' or a space in flag list"),
        ("a STORE 1 (FOO 1) +FLAGS (x)", "unknown STORE modifier FOO"),
        ("a STORE 0 +FLAGS (x)", "invalid sequence set '0'"),
        ("a STORE +FLAGS (x)", "expected a sequence set"),
    ],
)
def test_store_errors(line: str, message: str) -> None:
    assert message in bad(line).message


def test_copy_move() -> None:
    assert parse("A003 COPY 2:4 MEETING").args == CopyArgs(seq("2:4"), "MEETING")
    assert parse('a UID MOVE 42:69 "Deleted Messages"').args == CopyArgs(
        seq("42:69"), "Deleted Messages"
    )
    assert parse("a MOVE $ Trash").args == CopyArgs(seq("$"), "Trash")
    assert parse("a UID COPY 1 inbox").args == CopyArgs(seq("1"), "INBOX")
    assert bad("a COPY 1").message.startswith("expected a space")


def test_search_command_shape() -> None:
    assert parse("a SEARCH ALL").args == SearchArgs(SearchAll())
    assert parse("a UID SEARCH RETURN () ALL").args == SearchArgs(SearchAll(), None, ("ALL",))
    assert parse("a SEARCH CHARSET us-ascii ALL").args == SearchArgs(SearchAll(), "us-ascii")


# -- QUOTA -----------------------------------------------------------------------------------------


def test_quota_commands() -> None:
    assert parse('a GETQUOTA ""').args == QuotaRootArgs("")
    assert parse('a GETQUOTA "User quota"').args == QuotaRootArgs("User quota")
    assert parse("a GETQUOTAROOT INBOX").args == MailboxArgs("INBOX")
    assert parse('a SETQUOTA "" (STORAGE 512 message 1000)').args == SetQuotaArgs(
        "", (("STORAGE", 512), ("MESSAGE", 1000))
    )
    assert parse('a SETQUOTA "" ()').args == SetQuotaArgs("", ())
    assert "expected quota limit" in bad('a SETQUOTA "" (STORAGE x)').message


# -- IDLE ------------------------------------------------------------------------------------------


def test_idle_and_done() -> None:
    assert parse("a IDLE") == Command("a", "IDLE")
    parse_done(RawCommand.from_line("DONE"))
    parse_done(RawCommand.from_line("done"))
    for line in ("DONE ", "DONEX", "a DONE", ""):
        with pytest.raises(ParseError, match="expected DONE"):
            parse_done(RawCommand.from_line(line))
    with pytest.raises(ParseError) as exc:
        parse_done(RawCommand.from_line("b NOOP"))
    assert exc.value.tag == "b"


# -- lexical details -------------------------------------------------------------------------------


def test_quoted_string_escapes_and_controls() -> None:
    assert parse('a LOGIN "tab\there" x').args == LoginArgs("tab\there", "x")
    assert "invalid character" in bad(b'a LOGIN "a\rb" x').message
    assert "invalid escape" in bad('a LOGIN "a\\x" x').message
    assert bad('a LOGIN "a\\').message == "unterminated quoted string"


def test_literal_must_end_the_line() -> None:
    raw = RawCommand((b"a LOGIN {3} x",))
    with pytest.raises(ParseError, match="must end the line"):
        parse_command(raw)
    # A literal announcement with no literal data (a hand-built RawCommand).
    with pytest.raises(ParseError, match="must end the line"):
        parse_command(RawCommand((b"a LOGIN {3}",)))


def test_errors_never_leak_raw_control_characters() -> None:
    error = bad(b"a SELECT (\x1b[31m")
    assert "\x1b" not in error.message

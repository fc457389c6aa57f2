"""Client commands: :func:`parse_command` (RFC 3501 §6, §9 and extensions).

:func:`parse_command` turns a framed :class:`imap.framing.RawCommand` into a :class:`Command`
whose ``args`` is one of the ``*Args`` dataclasses of :mod:`imap.arguments` (see
:data:`Arguments` there for which command gets which). Every malformed command raises
:class:`imap.errors.ParseError` carrying the command's tag when it has a valid one.

Commands outside the command grammar have their own helpers: :func:`parse_done` (the ``DONE``
line ending IDLE, RFC 2177 §3) and :func:`parse_sasl_response` (the client's lines during
AUTHENTICATE, RFC 3501 §6.2.2).
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode
from collections.abc import Callable
from datetime import datetime
from typing import Final, Literal

from imap.arguments import (
    NO_ARGS,
    STATUS_ITEMS,
    AppendArgs,
    Arguments,
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
from imap.errors import ParseError
from imap.fetch import parse_fetch_attributes
from imap.framing import RawCommand, tag_of
from imap.search import parse_search_program, parse_search_return
from imap.sequence import SequenceSet
from imap.tokens import (
    BACKSLASH,
    DQUOTE,
    LPAREN,
    RPAREN,
    SP,
    Lexer,
    show,
)

__all__ = ["parse_command", "parse_done", "parse_sasl_response"]

#: RFC 6154 use-attr (upper-case -> canonical spelling).
_SPECIAL_USE: Final = {
    name.upper(): name
    for name in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}
# RFC 2971: field strings up to 30 octets, values up to 1024, at most 30 pairs.
_ID_MAX_FIELD: Final = 30
_ID_MAX_VALUE: Final = 1024
_ID_MAX_PAIRS: Final = 30

_TAG: Final = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
# RFC 3501 §9 command = tag SP (command-any / ...), then for UID: "UID" SP (copy / fetch / ...).
_HEAD: Final = re.compile(
    rb'([^\x00-\x20\x7f-\xff(){%*"\\+]+) ([A-Za-z]+)(?= |\Z)(?: ([A-Za-z]+)(?= |\Z))?'
)
# RFC 3501 §9 store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]).
_STORE_ATT: Final = re.compile(rb"([+-]?)FLAGS(\.SILENT)?", re.IGNORECASE)
_SEARCH_RETURN: Final = re.compile(rb"RETURN ", re.IGNORECASE)
_SEARCH_CHARSET: Final = re.compile(rb"CHARSET ", re.IGNORECASE)
# RFC 4959 / RFC 3501 §9 base64.
_BASE64: Final = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


# -- per-command parsers ------------------------------------------------------------------------
# Each one gets the lexer just after the command name (and its space, when the command takes
# arguments) and whether it runs under UID; it parses to the end of the command.


def _no_args(lex: Lexer, uid: bool) -> Arguments:
    lex.expect_end()
    return NO_ARGS


def _authenticate(lex: Lexer, uid: bool) -> Arguments:
    mechanism = lex.keyword("a SASL mechanism name")
    response: bytes | None = None
    if lex.skip_sp():
        # RFC 4959: initial-response = base64 / "=" (empty response).
        response = _decode_base64(lex.line[lex.pos :], "initial response")
        lex.pos = len(lex.line)
    lex.expect_end()
    return AuthenticateArgs(mechanism, response)


def _decode_base64(data: bytes, what: str) -> bytes:
    if data == b"=":
        return b""
    if not data or _BASE64.fullmatch(data) is None:
        raise ParseError(None, f"invalid base64 in {what}")
    try:
        return b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ParseError(None, f"invalid base64 in {what}") from None


def _login(lex: Lexer, uid: bool) -> Arguments:
    username = lex.text_astring("user name")
    lex.sp()
    password = lex.text_astring("password")
    lex.expect_end()
    return LoginArgs(username, password)


def _enable(lex: Lexer, uid: bool) -> Arguments:
    # RFC 5161: "ENABLE" 1*(SP capability); capability = ("AUTH=" auth-type) / atom.
    capabilities: list[str] = []
    while True:
        capability = lex.keyword("a capability name")
        if capability not in capabilities:
            capabilities.append(capability)
        if not lex.skip_sp():
            break
    lex.expect_end()
    return EnableArgs(tuple(capabilities))


def _id_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _id(lex: Lexer, uid: bool) -> Arguments:
    # RFC 2971: id-params-list = "(" *(string SP nstring) ")" / nil. Field names are
    # accepted as astrings too (lenient), values as nstrings.
    if lex.peek() != LPAREN:
        if lex.keyword("'(' or NIL") != "NIL":
            raise ParseError(None, "expected '(' or NIL after ID")
        lex.expect_end()
        return IdArgs(None)
    lex.pos += 1
    params: list[tuple[str, str | None]] = []
    if not lex.accept(RPAREN):
        while True:
            name = lex.astring("an ID field name")
            lex.sp()
            value = lex.nstring("an ID value or NIL")
            if len(name) > _ID_MAX_FIELD:
                raise ParseError(None, f"ID field name longer than {_ID_MAX_FIELD} octets")
            if value is not None and len(value) > _ID_MAX_VALUE:
                raise ParseError(None, f"ID value longer than {_ID_MAX_VALUE} octets")
            params.append((_id_text(name), None if value is None else _id_text(value)))
            if len(params) > _ID_MAX_PAIRS:
                raise ParseError(None, f"more than {_ID_MAX_PAIRS} ID field-value pairs")
            if lex.close_or_sp():
                break
    lex.expect_end()
    return IdArgs(tuple(params))


def _known_set(lex: Lexer, what: str) -> SequenceSet:
    """A sequence set of known numbers: no ``*`` nor ``$`` (RFC 7162 §3.2.5)."""
    sequence = lex.sequence_set()
    if sequence.saved or sequence.has_star:
        raise ParseError(None, f"'*' and '$' are not allowed in QRESYNC {what}")
    return sequence


def _qresync(lex: Lexer) -> QresyncParams:
    # RFC 7162 §7: "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids]
    # [SP seq-match-data] ")"; seq-match-data = "(" known-sequence-set SP known-uid-set ")".
    lex.expect(LPAREN)
    uidvalidity = lex.nz_number("QRESYNC uidvalidity")
    lex.sp()
    modseq = lex.mod_sequence("QRESYNC mod-sequence")
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None
    if lex.skip_sp():
        if lex.peek() != LPAREN:
            known_uids = _known_set(lex, "known UIDs")
            if not lex.skip_sp():
                lex.expect(RPAREN)
                return QresyncParams(uidvalidity, modseq, known_uids)
        lex.expect(LPAREN)
        sequences = _known_set(lex, "known sequence set")
        lex.sp()
        uids = _known_set(lex, "known UID set")
        lex.expect(RPAREN)
        seq_match = (sequences, uids)
    lex.expect(RPAREN)
    return QresyncParams(uidvalidity, modseq, known_uids, seq_match)


def _select(lex: Lexer, uid: bool) -> Arguments:
    mailbox = lex.mailbox()
    condstore = False
    qresync: QresyncParams | None = None
    if lex.skip_sp():
        # RFC 4466 select-params = SP "(" select-param *(SP select-param) ")".
        lex.expect(LPAREN)
        while True:
            param = lex.keyword("a select parameter")
            if param == "CONDSTORE":
                condstore = True
            elif param == "QRESYNC":
                if qresync is not None:
                    raise ParseError(None, "QRESYNC given twice")
                lex.sp()
                qresync = _qresync(lex)
            else:
                raise ParseError(None, f"unknown select parameter {show(param)}")
            if lex.close_or_sp():
                break
    lex.expect_end()
    return SelectArgs(mailbox, condstore, qresync)


def _special_use_attr(lex: Lexer) -> str:
    if not lex.accept(BACKSLASH):
        raise lex.fail_expected("a special-use attribute like \\Sent")
    name = "\\" + lex.atom("a special-use attribute")
    return _SPECIAL_USE.get(name.upper(), name)


def _create(lex: Lexer, uid: bool) -> Arguments:
    mailbox = lex.mailbox()
    uses: list[str] = []
    if lex.skip_sp():
        # RFC 4466 create-params; RFC 6154 create-param =/ "USE" SP "(" [use-attr
        # *(SP use-attr)] ")".
        lex.expect(LPAREN)
        while True:
            param = lex.keyword("a create parameter")
            if param != "USE":
                raise ParseError(None, f"unknown create parameter {show(param)}")
            lex.sp()
            lex.expect(LPAREN)
            if not lex.accept(RPAREN):
                while True:
                    attr = _special_use_attr(lex)
                    if attr not in uses:
                        uses.append(attr)
                    if lex.close_or_sp():
                        break
            if lex.close_or_sp():
                break
    lex.expect_end()
    return CreateArgs(mailbox, tuple(uses))


def _mailbox(lex: Lexer, uid: bool) -> Arguments:
    mailbox = lex.mailbox()
    lex.expect_end()
    return MailboxArgs(mailbox)


def _rename(lex: Lexer, uid: bool) -> Arguments:
    mailbox = lex.mailbox()
    lex.sp()
    new_name = lex.mailbox("new mailbox name")
    lex.expect_end()
    return RenameArgs(mailbox, new_name)


def _status_items(lex: Lexer) -> tuple[str, ...]:
    """ "(" status-att *(SP status-att) ")" (RFC 3501 §9, RFC 5819)."""
    lex.expect(LPAREN)
    items: list[str] = []
    while True:
        item = lex.keyword("a status item")
        if item not in STATUS_ITEMS:
            raise ParseError(None, f"unknown status item {show(item)}")
        if item not in items:
            items.append(item)
        if lex.close_or_sp():
            return tuple(items)


def _list_select(lex: Lexer) -> ListSelectOptions:
    # RFC 5258 list-select-opts; RFC 6154 adds SPECIAL-USE. RECURSIVEMATCH needs a base
    # option (SUBSCRIBED, SPECIAL-USE): alone or with REMOTE only it is a BAD (RFC 5258).
    lex.expect(LPAREN)
    options: set[str] = set()
    if not lex.accept(RPAREN):
        while True:
            option = lex.keyword("a LIST selection option")
            if option not in ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"):
                raise ParseError(None, f"unknown LIST selection option {show(option)}")
            options.add(option)
            if lex.close_or_sp():
                break
    if "RECURSIVEMATCH" in options and not options & {"SUBSCRIBED", "SPECIAL-USE"}:
        raise ParseError(None, "RECURSIVEMATCH needs another selection option (RFC 5258)")
    return ListSelectOptions(
        subscribed="SUBSCRIBED" in options,
        remote="REMOTE" in options,
        recursive_match="RECURSIVEMATCH" in options,
        special_use="SPECIAL-USE" in options,
    )


def _list_return(lex: Lexer) -> ListReturnOptions:
    # RFC 5258 list-return-opts = "RETURN" SP "(" [return-option *(SP return-option)] ")";
    # RFC 5819 status-option = "STATUS" SP "(" status-att *(SP status-att) ")".
    lex.expect(LPAREN)
    options: set[str] = set()
    status: tuple[str, ...] | None = None
    if not lex.accept(RPAREN):
        while True:
            option = lex.keyword("a LIST return option")
            if option == "STATUS":
                lex.sp()
                status = _status_items(lex)
            elif option in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"):
                options.add(option)
            else:
                raise ParseError(None, f"unknown LIST return option {show(option)}")
            if lex.close_or_sp():
                break
    return ListReturnOptions(
        subscribed="SUBSCRIBED" in options,
        children="CHILDREN" in options,
        special_use="SPECIAL-USE" in options,
        status=status,
    )


def _list(lex: Lexer, uid: bool) -> Arguments:
    extended = False
    select = ListSelectOptions()
    if lex.peek() == LPAREN:
        select = _list_select(lex)
        extended = True
        lex.sp()
    reference = lex.mailbox("reference name")
    lex.sp()
    if lex.accept(LPAREN):
        extended = True
        patterns = [lex.list_mailbox()]
        while not lex.accept(RPAREN):
            lex.sp()
            patterns.append(lex.list_mailbox())
    else:
        patterns = [lex.list_mailbox()]
    returns = ListReturnOptions()
    if lex.skip_sp():
        if lex.keyword("RETURN") != "RETURN":
            raise ParseError(None, "expected RETURN after the LIST patterns")
        lex.sp()
        returns = _list_return(lex)
        extended = True
    lex.expect_end()
    return ListArgs(reference, tuple(patterns), select, returns, extended)


def _lsub(lex: Lexer, uid: bool) -> Arguments:
    reference = lex.mailbox("reference name")
    lex.sp()
    pattern = lex.list_mailbox()
    lex.expect_end()
    return LsubArgs(reference, pattern)


def _status(lex: Lexer, uid: bool) -> Arguments:
    mailbox = lex.mailbox()
    lex.sp()
    items = _status_items(lex)
    lex.expect_end()
    return StatusArgs(mailbox, items)


def _append(lex: Lexer, uid: bool) -> Arguments:
    mailbox = lex.mailbox()
    lex.sp()
    flags: tuple[str, ...] = ()
    internal_date: datetime | None = None
    if lex.peek() == LPAREN:
        flags = lex.flag_list()
        lex.sp()
    if lex.peek() == DQUOTE:
        internal_date = lex.date_time()
        lex.sp()
    if not lex.at_literal():
        raise lex.fail_expected("the message as a literal")
    literal = lex.literal(allow_binary=True)
    if not lex.at_end():
        if lex.peek() == SP:
            raise ParseError(None, "only one message per APPEND (MULTIAPPEND is not supported)")
        lex.expect_end()
    return AppendArgs(mailbox, literal.data, flags, internal_date, literal.binary)


def _search(lex: Lexer, uid: bool) -> Arguments:
    return_options: tuple[str, ...] | None = None
    charset: str | None = None
    # RFC 4731 search =/ "SEARCH" [search-return-opts] SP search-program, and RFC 3501
    # §9 search = "SEARCH" [SP "CHARSET" SP astring] 1*(SP search-key).
    if lex.match(_SEARCH_RETURN) is not None:
        return_options = parse_search_return(lex)
        lex.sp()
    if lex.match(_SEARCH_CHARSET) is not None:
        name = lex.astring("a charset name")
        if not name.isascii():
            raise ParseError(None, "invalid charset name")
        charset = name.decode("ascii")
        lex.sp()
    criteria = parse_search_program(lex, charset)
    return SearchArgs(criteria, charset, return_options)


def _fetch(lex: Lexer, uid: bool) -> Arguments:
    sequence = lex.sequence_set()
    lex.sp()
    attributes = parse_fetch_attributes(lex)
    changed_since: int | None = None
    vanished = False
    if lex.skip_sp():
        # RFC 4466 fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")";
        # RFC 7162 §7 CHANGEDSINCE mod-sequence-value, VANISHED (UID FETCH only).
        lex.expect(LPAREN)
        while True:
            modifier = lex.keyword("a FETCH modifier")
            if modifier == "CHANGEDSINCE":
                lex.sp()
                changed_since = lex.mod_sequence("CHANGEDSINCE value")
            elif modifier == "VANISHED":
                vanished = True
            else:
                raise ParseError(None, f"unknown FETCH modifier {show(modifier)}")
            if lex.close_or_sp():
                break
        if vanished and (not uid or changed_since is None):
            raise ParseError(None, "VANISHED needs UID FETCH with CHANGEDSINCE (RFC 7162)")
    lex.expect_end()
    return FetchArgs(sequence, attributes, changed_since, vanished)


def _store(lex: Lexer, uid: bool) -> Arguments:
    sequence = lex.sequence_set()
    lex.sp()
    unchanged_since: int | None = None
    if lex.accept(LPAREN):
        # RFC 4466 store-modifiers; RFC 7162 §7 "UNCHANGEDSINCE" SP mod-sequence-valzer.
        while True:
            modifier = lex.keyword("a STORE modifier")
            if modifier != "UNCHANGEDSINCE":
                raise ParseError(None, f"unknown STORE modifier {show(modifier)}")
            lex.sp()
            unchanged_since = lex.mod_sequence("UNCHANGEDSINCE value", allow_zero=True)
            if lex.close_or_sp():
                break
        lex.sp()
    att = lex.match(_STORE_ATT)
    if att is None or lex.peek() not in (SP, -1):
        raise lex.fail_expected("FLAGS, +FLAGS or -FLAGS")
    sign = att[:1]
    action: Literal["replace", "add", "remove"] = (
        "add" if sign == b"+" else "remove" if sign == b"-" else "replace"
    )
    silent = att.upper().endswith(b".SILENT")
    lex.sp()
    if lex.peek() == LPAREN:
        flags = lex.flag_list()
    else:
        # RFC 3501 §9: flag *(SP flag) without parentheses.
        found = [lex.flag()]
        while lex.skip_sp():
            flag = lex.flag()
            if flag not in found:
                found.append(flag)
        flags = tuple(found)
    lex.expect_end()
    return StoreArgs(sequence, action, flags, silent, unchanged_since)


def _copy(lex: Lexer, uid: bool) -> Arguments:
    sequence = lex.sequence_set()
    lex.sp()
    mailbox = lex.mailbox()
    lex.expect_end()
    return CopyArgs(sequence, mailbox)


def _expunge(lex: Lexer, uid: bool) -> Arguments:
    if not uid:
        lex.expect_end()
        return NO_ARGS
    sequence = lex.sequence_set()
    lex.expect_end()
    return UidExpungeArgs(sequence)


def _getquota(lex: Lexer, uid: bool) -> Arguments:
    root = lex.text_astring("quota root")
    lex.expect_end()
    return QuotaRootArgs(root)


def _setquota(lex: Lexer, uid: bool) -> Arguments:
    # RFC 9208: setquota = "SETQUOTA" SP quota-root-name SP setquota-list; setquota-list =
    # "(" [setquota-resource *(SP setquota-resource)] ")"; setquota-resource = resource-name SP
    # resource-limit (number64).
    root = lex.text_astring("quota root")
    lex.sp()
    lex.expect(LPAREN)
    limits: list[tuple[str, int]] = []
    if not lex.accept(RPAREN):
        while True:
            resource = lex.keyword("a quota resource name")
            lex.sp()
            limits.append((resource, lex.number("quota limit", maximum=2**63 - 1)))
            if lex.close_or_sp():
                break
    lex.expect_end()
    return SetQuotaArgs(root, tuple(limits))


_Parser = Callable[[Lexer, bool], Arguments]

# Commands that take no argument: their name may end the line.
_BARE: Final[frozenset[str]] = frozenset(
    {
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
    }
)

_COMMANDS: Final[dict[str, _Parser]] = {
    **dict.fromkeys(_BARE, _no_args),
    "EXPUNGE": _expunge,  # bare, or UID EXPUNGE set
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "ENABLE": _enable,
    "ID": _id,
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _create,
    "DELETE": _mailbox,
    "RENAME": _rename,
    "SUBSCRIBE": _mailbox,
    "UNSUBSCRIBE": _mailbox,
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _copy,  # RFC 6851: the same arguments as COPY
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _mailbox,
    "SETQUOTA": _setquota,
}

#: RFC 3501 §6.4.8, RFC 4315 §2.1 (UID EXPUNGE), RFC 6851 (UID MOVE).
_UID_COMMANDS: Final = frozenset({"FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE"})


def _parse(lex: Lexer) -> tuple[str, str, Arguments, bool, str | None]:
    head = _HEAD.match(lex.line)
    if head is None:
        return _bad_head(lex)
    tag = head.group(1).decode("ascii")
    name = head.group(2).decode("ascii").upper()
    try:
        if name == "UID":
            subcommand = (head.group(3) or b"").decode("ascii").upper()
            if subcommand not in _UID_COMMANDS:
                lex.pos = min(head.end(2) + 1, len(lex.line))
                shown = subcommand or lex.near()
                raise ParseError(None, f"unknown command UID {show(shown)}")
            lex.pos = head.end(3)
            _arguments_follow(lex, subcommand)
            return tag, name, _COMMANDS[subcommand](lex, True), True, subcommand
        parse = _COMMANDS.get(name)
        if parse is None:
            raise ParseError(None, f"unknown command {show(name)}")
        lex.pos = head.end(2)
        if name not in _BARE:
            _arguments_follow(lex, name)
        return tag, name, parse(lex, False), False, None
    except ParseError as exc:
        raise exc.with_tag(tag) from None


def _arguments_follow(lex: Lexer, name: str) -> None:
    """The space between a command name and its arguments."""
    if lex.at_end():
        raise ParseError(None, f"missing arguments for {name}")
    lex.sp()


def _bad_head(lex: Lexer) -> tuple[str, str, Arguments, bool, str | None]:
    """Say what is wrong with a line that does not start with a tag and a command name."""
    tag_match = lex.match(_TAG)
    if tag_match is None:
        if lex.at_end():
            raise ParseError(None, "empty command line")
        raise ParseError(None, "missing or invalid tag")
    tag = tag_match.decode("ascii")
    if lex.peek() != SP:
        if lex.at_end():
            raise ParseError(tag, "missing command name")
        raise ParseError(None, "invalid tag")
    lex.pos += 1
    raise ParseError(tag, f"invalid command name {lex.near()}")


def parse_command(raw: RawCommand) -> Command:
    """Parse a framed command; :class:`ParseError` (with the tag when known) if malformed."""
    tag, name, args, uid, subcommand = _parse(Lexer(raw))
    return Command(tag, name, args, uid, subcommand)


def parse_done(raw: RawCommand) -> None:
    """The line ending IDLE must be ``DONE`` (RFC 2177 §3, case-insensitive); else ParseError.

    On anything else the session ends the IDLE with a tagged ``BAD``, as common servers do.
    """
    line = raw.lines[0] if raw.lines else b""
    if raw.literals or line.upper() != b"DONE":
        raise ParseError(tag_of(line), "expected DONE to end IDLE")


def parse_sasl_response(raw: RawCommand) -> bytes | None:
    """A client line during AUTHENTICATE (RFC 3501 §6.2.2): decoded octets, ``None`` for ``*``.

    ``*`` cancels the exchange (answer ``tag BAD``); an empty line is an empty response.
    """
    if raw.literals:
        raise ParseError(None, "literal in SASL response")
    line = raw.lines[0] if raw.lines else b""
    if line == b"*":
        return None
    if not line:
        return b""
    return _decode_base64(line, "SASL response")

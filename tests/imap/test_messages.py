"""Reading and changing mail over IMAP with real clients (issue #5: tests in CI)."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

from tests.imap.running_imap import CAMILLE, ImapServer, message

PASSWORD_OF = "password"


def _folder(c: object, prefix: str = "t") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    c.create_folder(name)  # type: ignore[attr-defined]
    return name


def _fill(c: object, folder: str, count: int) -> None:
    for i in range(count):
        c.append(folder, message(CAMILLE, CAMILLE, f"Message {i}", f"corps {i}\n"))  # type: ignore[attr-defined]


def test_delivered_message_matches_the_email_parser(imap_server: ImapServer) -> None:
    subject = f"Résultats {uuid.uuid4().hex[:6]}"
    data = message(CAMILLE, CAMILLE, subject, "Bonjour,\nvoici le compte rendu.\n", b"%PDF-1.4 x")
    imap_server.deliver(CAMILLE, data)
    c = imap_server.client()
    c.select_folder("INBOX")
    uids = c.search(["SUBJECT", subject], charset="UTF-8")
    assert len(uids) == 1
    uid = uids[0]
    got = c.fetch([uid], ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "BODY.PEEK[]",
                          "BODY.PEEK[1]", "BODY.PEEK[2.MIME]", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
                          "BODY.PEEK[TEXT]<0.10>", "FLAGS"])[uid]  # fmt: skip
    stored = got[b"BODY[]"]
    parsed = message_from_bytes(stored, policy=default)
    assert got[b"RFC822.SIZE"] == len(stored)
    assert parsed["Subject"] == subject
    env = got[b"ENVELOPE"]
    assert env.message_id.decode() == parsed["Message-ID"]
    assert env.from_[0].mailbox + b"@" + env.from_[0].host == CAMILLE.encode()
    structure = got[b"BODYSTRUCTURE"]
    assert structure.is_multipart
    parts = [p for p in parsed.walk() if not p.is_multipart()]
    assert [(bytes(s[0]).lower(), bytes(s[1]).lower()) for s in structure[0]] == [
        tuple(p.get_content_type().encode().split(b"/")) for p in parts
    ]
    text_part = parts[0]
    assert got[b"BODY[1]"].decode() == text_part.get_payload()
    assert b"application/pdf" in got[b"BODY[2.MIME]"].lower()
    assert got[b"BODY[HEADER.FIELDS (SUBJECT)]"].startswith(b"Subject: ")
    assert got[b"BODY[HEADER.FIELDS (SUBJECT)]"].endswith(b"\r\n\r\n")
    top_text = stored.split(b"\r\n\r\n", 1)[1]
    assert got[b"BODY[TEXT]<0>"] == top_text[:10]
    assert b"\\Seen" not in got[b"FLAGS"]  # PEEK
    c.fetch([uid], ["BODY[1]"])
    assert b"\\Seen" in c.get_flags([uid])[uid]  # BODY[] without PEEK sets \Seen
    c.logout()


def test_flags_store_and_fetch(imap_server: ImapServer) -> None:
    c = imap_server.client()
    folder = _folder(c)
    _fill(c, folder, 3)
    c.select_folder(folder)  # the first SELECT after the APPENDs: all three are \Recent
    uids = c.search("ALL")
    added = c.add_flags(uids[:2], [b"\\Flagged", b"$Label1"])
    assert set(added[uids[0]]) == {b"\\Recent", b"\\Flagged", b"$Label1"}
    c.remove_flags(uids[:1], [b"$Label1", b"\\Recent"])  # \Recent cannot be removed
    c.set_flags(uids[2:], [b"\\Answered"])
    flags = c.get_flags(uids)
    assert set(flags[uids[0]]) == {b"\\Recent", b"\\Flagged"}
    assert set(flags[uids[1]]) == {b"\\Recent", b"\\Flagged", b"$Label1"}
    assert set(flags[uids[2]]) == {b"\\Recent", b"\\Answered"}
    assert c.search(["FLAGGED", "NOT", "KEYWORD", "$Label1"]) == uids[:1]
    c.logout()


def test_copy_move_expunge_with_uidplus(imap_server: ImapServer) -> None:
    c = imap_server.client()
    source, target = _folder(c), _folder(c)
    _fill(c, source, 4)
    c.select_folder(source)
    uids = c.search("ALL")
    raw = imap_server.raw()
    raw.login(CAMILLE, imap_server.account(CAMILLE)["password"])
    raw.send(f"s SELECT {source}\r\nc UID COPY {uids[0]}:{uids[1]} {target}\r\n".encode())
    raw.until(b"s")
    done = raw.until(b"c")[-1]
    assert re.match(rb"c OK \[COPYUID \d+ \d+:\d+ 1:2\]", done), done
    raw.send(f"m UID MOVE {uids[2]} {target}\r\n".encode())
    lines = raw.until(b"m")
    assert re.match(rb"\* OK \[COPYUID \d+ \d+ 3\]", lines[0]), lines
    assert lines[1] == b"* 3 EXPUNGE" and lines[-1].startswith(b"m OK"), lines
    raw.close()
    c.noop()
    assert c.search("ALL") == [uids[0], uids[1], uids[3]]
    c.delete_messages(uids[:2])
    c.uid_expunge(uids[:1])  # RFC 4315 §2.1: only the listed \Deleted message goes
    assert c.search("ALL") == [uids[1], uids[3]]
    c.expunge()
    assert c.search("ALL") == [uids[3]]
    status = c.folder_status(target, ["MESSAGES", "UIDNEXT"])
    assert status[b"MESSAGES"] == 3 and status[b"UIDNEXT"] == 4
    c.logout()


def test_append_with_flags_and_date_gives_appenduid(imap_server: ImapServer) -> None:
    c = imap_server.client()
    folder = _folder(c)
    when = datetime(2026, 1, 15, 8, 30, 0, tzinfo=UTC)
    result = c.append(folder, message(CAMILLE, CAMILLE, "Brouillon"), [b"\\Draft", b"\\Seen"], when)
    assert re.match(rb"\[APPENDUID \d+ 1\]", result), result
    c.select_folder(folder)
    got = c.fetch([1], ["FLAGS", "INTERNALDATE"])[1]
    assert set(got[b"FLAGS"]) == {b"\\Recent", b"\\Draft", b"\\Seen"}  # first SELECT
    assert got[b"INTERNALDATE"].replace(tzinfo=None) == when.replace(tzinfo=None) or (
        got[b"INTERNALDATE"].astimezone(UTC) == when
    )
    typ, data = c._imap.append("Nowhere-" + uuid.uuid4().hex, None, None, b"Subject: x\r\n\r\ny")
    assert typ == "NO" and b"TRYCREATE" in data[0]
    c.logout()


def test_search_keys(imap_server: ImapServer) -> None:
    c = imap_server.client()
    folder = _folder(c)
    c.append(folder, message(CAMILLE, "dr.a@demo.mssante.fr", "Échographie", "foie normal\n"))
    c.append(folder, message(CAMILLE, "dr.b@demo.mssante.fr", "Biologie", "glycémie 1,02\n" * 50))
    c.append(folder, message(CAMILLE, "dr.a@demo.mssante.fr", "Radio", "thorax\n"))
    c.select_folder(folder)
    c.add_flags([3], [b"\\Seen"])
    assert c.search(["TO", "dr.a@"]) == [1, 3]
    assert c.search(["SUBJECT", "Échographie"], charset="UTF-8") == [1]
    assert c.search(["BODY", "glycémie"], charset="UTF-8") == [2]
    assert c.search(["TEXT", "thorax"]) == [3]
    assert c.search(["LARGER", "1000"]) == [2]
    assert c.search(["UNSEEN"]) == [1, 2]
    assert c.search(["OR", "SUBJECT", "Radio", "SUBJECT", "Biologie"]) == [2, 3]
    assert c.search(["SENTON", "23-Nov-2026"]) == [1, 2, 3]
    assert c.search(["SINCE", "1-Jan-2000", "NOT", "UID", "2"]) == [1, 3]
    assert c.search(["HEADER", "Message-ID", "@test"]) == [1, 2, 3]
    raw = imap_server.raw()
    raw.login(CAMILLE, imap_server.account(CAMILLE)["password"])
    raw.send(f"s SELECT {folder}\r\n".encode())
    raw.until(b"s")
    raw.send(b"e UID SEARCH RETURN (MIN MAX COUNT ALL) ALL\r\n")
    assert raw.until(b"e")[0] == b'* ESEARCH (TAG "e") UID MIN 1 MAX 3 COUNT 3 ALL 1:3'
    raw.send(b"e2 SEARCH RETURN (COUNT) SUBJECT nothing-like-this\r\n")
    assert raw.until(b"e2")[0] == b'* ESEARCH (TAG "e2") COUNT 0'
    raw.send(b"k SEARCH CHARSET KOI8-R ALL\r\n")
    assert raw.until(b"k")[-1].startswith(b"k NO [BADCHARSET")
    raw.send(b"v SEARCH RETURN (SAVE) SUBJECT Radio\r\nf FETCH $ (UID)\r\n")
    raw.until(b"v")
    assert raw.until(b"f")[0] == b"* 3 FETCH (UID 3)"
    raw.close()
    c.logout()


def test_condstore_changedsince_returns_only_the_changed(imap_server: ImapServer) -> None:
    c = imap_server.client()
    folder = _folder(c)
    _fill(c, folder, 30)
    info = c.select_folder(folder)
    modseq = info[b"HIGHESTMODSEQ"]
    for uid in range(3, 23, 2):  # 10 flag changes
        c.add_flags([uid], [b"\\Flagged"])
    changed = c.fetch(c.search("ALL"), ["FLAGS"], modifiers=[f"CHANGEDSINCE {modseq}"])
    assert sorted(changed) == list(range(3, 23, 2))
    assert all(b"MODSEQ" in v for v in changed.values())
    c.logout()


def test_qresync_select_reports_vanished_and_changed(imap_server: ImapServer) -> None:
    c = imap_server.client()
    folder = _folder(c)
    _fill(c, folder, 6)
    c.enable("QRESYNC")
    info = c.select_folder(folder)
    validity, modseq = info[b"UIDVALIDITY"], info[b"HIGHESTMODSEQ"]
    c.close_folder()
    other = imap_server.client()
    other.select_folder(folder)
    other.delete_messages([2, 4])
    other.expunge()
    other.add_flags([5], [b"\\Answered"])
    other.logout()
    raw = imap_server.raw()
    raw.login(CAMILLE, imap_server.account(CAMILLE)["password"])
    raw.send(b"e1 ENABLE QRESYNC\r\n")
    assert raw.until(b"e1")[0] == b"* ENABLED QRESYNC"
    raw.send(f"s1 SELECT {folder} (QRESYNC ({validity} {modseq}))\r\n".encode())
    lines = raw.until(b"s1")
    assert b"* VANISHED (EARLIER) 2,4" in lines, lines
    assert any(re.match(rb"\* 3 FETCH \(UID 5 FLAGS \(\\Answered\) MODSEQ \(\d+\)\)", x)
               for x in lines), lines  # fmt: skip
    assert b"* 4 EXISTS" in lines and lines[-1].startswith(b"s1 OK [READ-WRITE]")
    # UID FETCH ... (CHANGEDSINCE m VANISHED) (RFC 7162 §3.2.6).
    raw.send(f"f1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)\r\n".encode())
    lines = raw.until(b"f1")
    assert lines[0] == b"* VANISHED (EARLIER) 2,4" and lines[-1].startswith(b"f1 OK")
    raw.close()


def test_two_sessions_stay_consistent(imap_server: ImapServer) -> None:
    a = imap_server.client()
    folder = _folder(a)
    _fill(a, folder, 3)
    b = imap_server.client()
    a.select_folder(folder)
    b.select_folder(folder)
    b.add_flags([2], [b"\\Flagged"])
    b.delete_messages([1])
    b.expunge()
    raw = imap_server.raw()
    raw.login(CAMILLE, imap_server.account(CAMILLE)["password"])
    raw.send(f"s SELECT {folder}\r\n".encode())
    raw.until(b"s")
    b.add_flags([3], [b"\\Seen"])
    b.delete_messages([2])
    b.expunge()
    # RFC 3501 §7.4.1: no EXPUNGE while answering FETCH by sequence number...
    raw.send(b"f FETCH 1:* (FLAGS)\r\n")
    lines = raw.until(b"f")
    assert not any(b"EXPUNGE" in x for x in lines), lines
    assert b"* 2 FETCH (UID 3 FLAGS (\\Seen))" in lines, lines
    # ... and at the next NOOP.
    raw.send(b"n NOOP\r\n")
    lines = raw.until(b"n")
    assert b"* 1 EXPUNGE" in lines, lines
    # The other imapclient session, on NOOP, learns both changes.
    responses = a.noop()[1]
    assert (1, b"EXPUNGE") in responses or any(r[1] == b"EXPUNGE" for r in responses)
    assert a.search("ALL") == [3]  # UID SEARCH: the UID of the one message left
    # RFC 3501 §2.3.2: \Recent for a, which selected first, and for a alone.
    assert a.fetch([3], ["FLAGS"])[3][b"FLAGS"] == (b"\\Recent", b"\\Seen")
    assert b.fetch([3], ["FLAGS"])[3][b"FLAGS"] == (b"\\Seen",)
    a.logout()
    b.logout()
    raw.close()


def test_idle_receives_an_smtp_delivery_within_a_second(imap_server: ImapServer) -> None:
    c = imap_server.client()
    info = c.select_folder("INBOX")
    exists = info[b"EXISTS"]
    c.idle()
    started = time.monotonic()
    imap_server.deliver(CAMILLE, message(CAMILLE, CAMILLE, "Réveil IDLE"))
    delivered = time.monotonic()
    responses = c.idle_check(timeout=5)
    woke = time.monotonic()
    c.idle_done()
    assert (exists + 1, b"EXISTS") in responses, responses
    assert woke - delivered < 1.0, (woke - delivered, delivered - started)
    c.logout()


def test_list_status_and_special_use(imap_server: ImapServer) -> None:
    c = imap_server.client()
    parent = _folder(c, "Dossiers")
    c.create_folder(f"{parent}/Cardio")
    names = {name: flags for flags, _delim, name in c.list_folders()}
    assert b"\\Sent" in names["Sent"] and b"\\Trash" in names["Trash"]
    assert b"\\HasChildren" in names[parent]
    assert [n for _f, _d, n in c.list_folders(parent + "/", "%")] == [f"{parent}/Cardio"]
    raw = imap_server.raw()
    raw.login(CAMILLE, imap_server.account(CAMILLE)["password"])
    raw.send(b'l1 LIST "" "*" RETURN (SPECIAL-USE STATUS (MESSAGES UIDNEXT))\r\n')
    lines = raw.until(b"l1")
    assert any(x.startswith(b'* STATUS "INBOX" (MESSAGES ') for x in lines), lines
    raw.send(b'l2 LIST (SPECIAL-USE) "" "*"\r\n')
    lines = raw.until(b"l2")
    assert len([x for x in lines if x.startswith(b"* LIST")]) == 5, lines
    c.rename_folder(parent, parent + "-old")
    names = [n for _f, _d, n in c.list_folders()]
    assert f"{parent}-old/Cardio" in names and parent not in names
    c.delete_folder(f"{parent}-old/Cardio")
    c.unsubscribe_folder("Junk")
    assert "Junk" not in [n for _f, _d, n in c.list_sub_folders()]
    c.subscribe_folder("Junk")
    assert c.namespace().personal[0][1] == "/"
    raw.close()
    c.logout()


def test_quota_root_and_unicode_folder_names(imap_server: ImapServer) -> None:
    c = imap_server.client()
    name = f"Résultats-{uuid.uuid4().hex[:4]}"
    c.create_folder(name)
    assert name in [n for _f, _d, n in c.list_folders()]
    roots, _quotas = c.get_quota_root("INBOX")
    assert roots.mailbox == "INBOX"
    c.logout()

"""What imaptest found (docs/imap-conformance.md F1, F3, F4, F5, F9) and the IMAP timeouts, as a
client sees them: \\Recent, UIDVALIDITY after DELETE + CREATE, subscriptions as names,
CHILDINFO, names that are not modified UTF-7, and the autologout before login."""

from __future__ import annotations

import re
import time
import tomllib
import uuid
from collections.abc import Iterator

import pytest
import tomli_w

from tests.cli.conftest import mailserver, make_install
from tests.conftest import BACKENDS
from tests.imap.running_imap import CAMILLE, ImapServer, RawClient, message
from tests.smtp.running import edit_config, start_server

LOGIN_TIMEOUT = 3  # seconds: this module's server says BYE to a silent client that soon


@pytest.fixture(scope="module", params=BACKENDS)
def imap_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ImapServer]:
    root = tmp_path_factory.mktemp("imapconf")
    install = make_install(root, request.param, request)
    edit_config(install, limits={"imap_login_timeout": LOGIN_TIMEOUT})
    running = start_server(install, root / "server.log")
    yield ImapServer(running)
    running.stop()


def _raw(imap_server: ImapServer) -> RawClient:
    raw = imap_server.raw()
    raw.login(CAMILLE, imap_server.account(CAMILLE)["password"])
    return raw


def _ask(raw: RawClient, command: str) -> list[bytes]:
    """Send ``t <command>``; the untagged lines, after checking the tagged OK."""
    raw.send(f"t {command}\r\n".encode())
    lines = raw.until(b"t")
    assert lines[-1].startswith(b"t OK"), lines
    return lines[:-1]


def _refused(raw: RawClient, command: str) -> bytes:
    raw.send(f"t {command}\r\n".encode())
    tagged = raw.until(b"t")[-1]
    assert tagged.startswith(b"t NO"), tagged
    return tagged


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- F1 \Recent (RFC 3501 §2.3.2) -----------------------------------------------------------------


def test_recent_belongs_to_the_first_read_write_session(imap_server: ImapServer) -> None:
    c = imap_server.client()
    folder = _name("Recent")
    c.create_folder(folder)
    for i in range(2):
        c.append(folder, message(CAMILLE, CAMILLE, f"r{i}"))
    first, second = _raw(imap_server), _raw(imap_server)
    # EXAMINE shows them recent but leaves them so (RFC 3501 §6.3.2).
    assert b"* 2 RECENT" in _ask(first, f"EXAMINE {folder}")
    _ask(first, "CLOSE")
    assert c.folder_status(folder, ["RECENT"])[b"RECENT"] == 2
    # The first SELECT claims them: \Recent in FLAGS, SEARCH RECENT / NEW / OLD.
    assert b"* 2 RECENT" in _ask(first, f"SELECT {folder}")
    assert _ask(first, "FETCH 1 (FLAGS)") == [b"* 1 FETCH (FLAGS (\\Recent))"]
    assert b"* SEARCH 1 2" in _ask(first, "SEARCH RECENT")
    assert c.folder_status(folder, ["RECENT"])[b"RECENT"] == 0  # nobody else gets them
    assert b"* 0 RECENT" in _ask(second, f"SELECT {folder}")
    assert b"* SEARCH 1 2" in _ask(second, "SEARCH OLD")
    assert _ask(second, "FETCH 1 (FLAGS)") == [b"* 1 FETCH (FLAGS ())"]
    # New mail: the first session told of it claims it (RFC 3501 §7.3.2 RECENT after EXISTS).
    c.append(folder, message(CAMILLE, CAMILLE, "r3"))
    assert _ask(first, "NOOP")[-2:] == [b"* 3 EXISTS", b"* 3 RECENT"]
    assert _ask(second, "NOOP")[-2:] == [b"* 3 EXISTS", b"* 0 RECENT"]
    # \Recent cannot be stored nor removed; it goes with the message.
    assert _ask(first, "STORE 1 FLAGS (\\Seen \\Recent)") == [
        b"* 1 FETCH (FLAGS (\\Recent \\Seen))"
    ]
    assert b"* 3 FETCH (FLAGS ())" in _ask(second, "STORE 3 +FLAGS (\\Recent)")
    assert b"* SEARCH 2 3" in _ask(first, "SEARCH NEW")
    _ask(first, "STORE 2 +FLAGS.SILENT (\\Deleted)")
    _ask(first, "EXPUNGE")
    assert b"* SEARCH 1 2" in _ask(first, "SEARCH RECENT")
    for raw in (first, second):
        raw.close()
    c.logout()


# -- F3 UIDVALIDITY (RFC 3501 §2.3.1.1) -----------------------------------------------------------


def test_uidvalidity_is_never_reused_for_a_name(imap_server: ImapServer) -> None:
    c = imap_server.client()
    folder = _name("Again")
    seen: list[int] = []
    for _ in range(3):  # within the same second: the clock alone would give the same value
        c.create_folder(folder)
        seen.append(c.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])
        c.delete_folder(folder)
    assert len(set(seen)) == 3 and seen == sorted(seen), seen
    c.logout()


# -- F4/F5 subscriptions (RFC 3501 §6.3.6-9, RFC 5258 §3.5) ---------------------------------------


def test_the_default_folders_start_subscribed(imap_server: ImapServer) -> None:
    raw = _raw(imap_server)
    lines = _ask(raw, 'LIST (SUBSCRIBED) "" "*"')
    for name in ("INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"):
        assert any(line.endswith(f' "/" "{name}"'.encode()) for line in lines), (name, lines)
    raw.close()


def test_subscriptions_are_names_not_folders(imap_server: ImapServer) -> None:
    raw = _raw(imap_server)
    base = _name("Abo")
    _ask(raw, f"CREATE {base}/child")
    _ask(raw, f"CREATE {base}/other")
    assert _ask(raw, f'LSUB "" {base}*') == []  # CREATE does not subscribe
    _ask(raw, f"SUBSCRIBE {base}/child")
    # LSUB %: the unsubscribed parent of a subscribed child shows as \Noselect (§6.3.9).
    assert _ask(raw, f'LSUB "" {base}%') == [
        f'* LSUB (\\Noselect \\HasChildren) "/" "{base}"'.encode()
    ]
    assert _ask(raw, f'LSUB "" {base}/%') == [
        f'* LSUB (\\HasNoChildren) "/" "{base}/child"'.encode()
    ]
    # RECURSIVEMATCH: the parent comes with CHILDINFO (RFC 5258 §3.5), the child alone when
    # the pattern reaches it.
    assert _ask(raw, f'LIST (SUBSCRIBED RECURSIVEMATCH) "" {base}%') == [
        f'* LIST (\\HasChildren) "/" "{base}" ("CHILDINFO" ("SUBSCRIBED"))'.encode()
    ]
    assert _ask(raw, f'LIST (SUBSCRIBED RECURSIVEMATCH) "" {base}*') == [
        f'* LIST (\\HasNoChildren \\Subscribed) "/" "{base}/child"'.encode()
    ]
    # DELETE keeps the subscription; a name that never existed may be subscribed (§6.3.6).
    _ask(raw, f"DELETE {base}/child")
    _ask(raw, f"SUBSCRIBE {base}/later")
    assert _ask(raw, f'LIST (SUBSCRIBED) "" {base}/*') == [
        f'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" "{base}/child"'.encode(),
        f'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" "{base}/later"'.encode(),
    ]
    assert _ask(raw, f'LIST "" {base}/*') == [
        f'* LIST (\\HasNoChildren) "/" "{base}/other"'.encode()
    ]
    _ask(raw, f"UNSUBSCRIBE {base}/child")
    _ask(raw, f"UNSUBSCRIBE {base}/later")
    assert _ask(raw, f'LSUB "" {base}*') == []
    assert b"[CANNOT]" in _refused(raw, f'SUBSCRIBE "{base}/*"')  # not a name (wildcard)
    raw.close()


def test_renamed_folders_keep_their_subscription(imap_server: ImapServer) -> None:
    raw = _raw(imap_server)
    old, new = _name("Avant"), _name("Apres")
    _ask(raw, f"CREATE {old}/sub")
    _ask(raw, f"SUBSCRIBE {old}/sub")
    _ask(raw, f"RENAME {old} {new}")
    assert _ask(raw, f'LSUB "" {new}/*') == [f'* LSUB (\\HasNoChildren) "/" "{new}/sub"'.encode()]
    assert _ask(raw, f'LSUB "" {old}*') == []
    raw.close()


# -- F9 names that are not modified UTF-7 (RFC 3501 §5.1.3, §9) -----------------------------------


def test_a_name_that_is_not_modified_utf7_is_refused_not_a_syntax_error(
    imap_server: ImapServer,
) -> None:
    raw = _raw(imap_server)
    atom = "!#$&'+,-.0123456789:;<=>?@^_`|[}"  # a valid atom, an invalid &-run
    assert b"[NONEXISTENT]" in _refused(raw, f"SELECT {atom}")
    assert _ask(raw, f'LIST "" {atom}%*') == []
    tagged = _refused(raw, 'CREATE "Envoy&AOk"')
    assert b"[CANNOT]" in tagged and b"unterminated" in tagged
    assert _ask(raw, "NOOP") == []  # still connected
    raw.close()


# -- timeouts (RFC 3501 §5.4) --------------------------------------------------------------------


def test_a_silent_client_is_logged_out_before_login(imap_server: ImapServer) -> None:
    raw = imap_server.raw()
    started = time.monotonic()
    assert raw.closed(timeout=LOGIN_TIMEOUT + 20)
    assert time.monotonic() - started >= LOGIN_TIMEOUT - 0.5
    assert re.search(rb"\* BYE [^\r\n]*idle", raw.buf), raw.buf


def test_an_authenticated_timeout_under_30_minutes_is_refused(imap_server: ImapServer) -> None:
    install = imap_server.running.install
    doc = tomllib.loads(install.config.read_text())
    doc["limits"]["imap_idle_timeout"] = 600
    short = install.dir / "short-timeout.toml"  # beside the original: same relative paths
    short.write_text(tomli_w.dumps(doc))
    r = mailserver("check-config", "-c", short)
    assert r.returncode == 2, r.stderr
    assert "limits.imap_idle_timeout" in r.stderr and "Traceback" not in r.stderr

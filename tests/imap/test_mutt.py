"""mutt in batch mode against the IMAP door (issue #5): it logs in over IMAPS trusting the dev
CA, reads a message and moves it to another folder; imaplib then finds it moved.

mutt is a full-screen program: it runs under ``script`` (a pseudo-terminal, no user), its
keys pushed from the muttrc, so it needs no one at the keyboard."""

from __future__ import annotations

import imaplib
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.imap.running_imap import CAMILLE, ImapServer, message
from tests.tools import require


@pytest.fixture(autouse=True)
def _mutt_installed() -> None:
    require(None if shutil.which("mutt") else "mutt is not installed (Debian mutt)")
    require(None if shutil.which("script") else "script is not installed (util-linux)")


def _muttrc(imap_server: ImapServer, tmp: Path, subject: str, target: str) -> Path:
    trust = imap_server.running.path(imap_server.running.install.demo["trust"]["ca_bundle"])
    read = tmp / "read.eml"
    keys = (
        f"<limit>~s {subject}<enter>"  # the one message of this test
        f"<display-message><exit>"  # read it (the pager fetches the body: \Seen)
        f"<pipe-message>cat > {read}<enter>"  # and keep what mutt read
        f"<save-message>={target}<enter>"  # move it (save + delete)
        "<sync-mailbox><quit>"
    )
    rc = tmp / "muttrc"
    rc.write_text(
        f"""set imap_user="{CAMILLE}"
set imap_pass="{imap_server.account(CAMILLE)["password"]}"
set imap_authenticators="login"
set folder="imaps://localhost:{imap_server.tls_port}/"
set spoolfile="+INBOX"
set ssl_ca_certificates_file="{trust}"
set certificate_file="{tmp}/certificates"
set header_cache=""
set message_cachedir=""
set record=""
set confirmappend=no
set confirmcreate=no
set delete=yes
set move=no
set mark_old=no
set wait_key=no
set quit=yes
push "{keys}"
"""
    )
    return rc


def _uids_with(c: imaplib.IMAP4, folder: str, subject: str) -> list[bytes]:
    typ, _ = c.select(folder, readonly=True)
    assert typ == "OK"
    typ, data = c.uid("SEARCH", "SUBJECT", subject)
    assert typ == "OK"
    return data[0].split()


def test_mutt_reads_a_message_and_moves_it(imap_server: ImapServer, tmp_path: Path) -> None:
    subject = f"Mutt-{uuid.uuid4().hex[:8]}"
    target = f"Dossier-{uuid.uuid4().hex[:6]}"
    client = imap_server.client()
    client.create_folder(target)
    client.append("INBOX", message(CAMILLE, CAMILLE, subject, body="Resultats normaux\n"))
    client.logout()

    rc = _muttrc(imap_server, tmp_path, subject, target)
    run = subprocess.run(
        ["script", "-qec", f"mutt -n -F {rc}", "/dev/null"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env={"TERM": "dumb", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    screen = run.stdout.decode(errors="replace")
    assert run.returncode == 0, screen[-2000:]

    assert b"Resultats normaux" in (tmp_path / "read.eml").read_bytes()  # what mutt read
    c = imap_server.imaps()
    c.login(CAMILLE, imap_server.account(CAMILLE)["password"])
    try:
        assert _uids_with(c, "INBOX", subject) == []
        moved = _uids_with(c, target, subject)
        assert len(moved) == 1
        _, data = c.uid("FETCH", moved[0], "(FLAGS)")
        assert b"\\Seen" in data[0]  # read in mutt before it was moved
    finally:
        c.logout()

"""mbsync (isync) against the IMAP door: a two-way sync of 1,024 messages, then a second sync
that transfers nothing (issue #5: tests in CI)."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.imap.running_imap import CAMILLE, ImapServer
from tests.tools import require


@pytest.fixture(autouse=True)
def _mbsync_installed() -> None:
    require(None if shutil.which("mbsync") else "mbsync is not installed (Debian isync)")


COUNT = 1024  # 8 messages appended, then copied 7 times onto themselves


def _config(imap_server: ImapServer, tmp: Path, folder: str) -> Path:
    trust = imap_server.running.path(imap_server.running.install.demo["trust"]["ca_bundle"])
    config = tmp / "mbsyncrc"
    (tmp / "mail").mkdir()
    config.write_text(
        f"""IMAPAccount demo
Host localhost
Port {imap_server.tls_port}
User {CAMILLE}
Pass "{imap_server.account(CAMILLE)["password"]}"
SSLType IMAPS
SystemCertificates no
CertificateFile {trust}
AuthMechs PLAIN

IMAPStore remote
Account demo

MaildirStore local
Path {tmp}/mail/
Inbox {tmp}/mail/INBOX
SubFolders Verbatim

Channel demo
Far :remote:
Near :local:
Patterns {folder}
Create Both
Expunge Both
SyncState *
Sync All
"""
    )
    return config


def _mbsync(config: Path) -> str:
    r = subprocess.run(
        ["mbsync", "-V", "-c", str(config), "demo"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def test_mbsync_two_way_sync_of_a_thousand_messages(
    imap_server: ImapServer, tmp_path: Path
) -> None:
    folder = f"Sync-{uuid.uuid4().hex[:6]}"
    c = imap_server.client()
    c.create_folder(folder)
    for i in range(8):
        c.append(folder, f"Subject: m{i}\r\nMessage-ID: <{i}.{folder}@t>\r\n\r\nbody\r\n".encode())
    c.select_folder(folder)
    for _ in range(7):
        c.copy(c.search("ALL"), folder)  # one transaction each: quick to fill
    c.close_folder()
    config = _config(imap_server, tmp_path, folder)
    started = time.monotonic()
    _mbsync(config)
    first = time.monotonic() - started
    maildir = tmp_path / "mail" / folder
    assert len(list((maildir / "cur").iterdir()) + list((maildir / "new").iterdir())) == COUNT
    # Local changes go up: a new message, a flag, a deletion.
    (maildir / "new" / "local.1:2,").write_bytes(b"Subject: local\r\n\r\nfrom the laptop\r\n")
    one = sorted((maildir / "cur").iterdir()) or sorted((maildir / "new").iterdir())
    one[0].rename(one[0].parent.parent / "cur" / (one[0].name.split(":")[0] + ":2,FS"))
    _mbsync(config)
    c.select_folder(folder)
    assert len(c.search("ALL")) == COUNT + 1
    assert len(c.search(["FLAGGED"])) == 1

    # A sync with nothing new transfers nothing: neither side changes.
    def state() -> tuple[object, ...]:
        status = c.folder_status(folder, ["MESSAGES", "UIDNEXT", "HIGHESTMODSEQ"])
        files = sorted(p.name for d in ("cur", "new") for p in (maildir / d).iterdir())
        return tuple(sorted(status.items())), tuple(files)

    c.close_folder()
    before = state()
    _mbsync(config)
    assert state() == before
    c.logout()
    assert first < 120

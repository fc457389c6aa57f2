"""`server.processes = 2`: one supervisor, two server processes sharing the listeners.

What a user of the server notices: it is ready once, with the same addresses; connections
are served by both processes; an IMAP IDLE session wakes for mail delivered by the other
process; failed logins count against the limits whichever process saw them; SIGTERM stops
everything cleanly; and if the supervisor is killed, its processes do not linger.
"""

from __future__ import annotations

import imaplib
import os
import re
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Install, make_install
from tests.imap.running_imap import CAMILLE, ImapServer, message
from tests.smtp.running import Running, edit_config, start_server


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _serve_two(install: Install, log: Path) -> Iterator[Running]:
    edit_config(install, server={"processes": 2})
    running = start_server(install, log)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def two(install: Install, tmp_path: Path) -> Iterator[Running]:
    """Two processes on each database (the change notes meet LISTEN/NOTIFY there)."""
    yield from _serve_two(install, tmp_path / "serve.log")


@pytest.fixture
def sqlite_install(tmp_path: Path, request: pytest.FixtureRequest) -> Install:
    """The supervisor's own behaviour does not depend on the database: SQLite only."""
    return make_install(tmp_path, "sqlite", request)


@pytest.fixture
def two_sqlite(sqlite_install: Install, tmp_path: Path) -> Iterator[Running]:
    yield from _serve_two(sqlite_install, tmp_path / "serve.log")


def pids_that(running: Running, pattern: str) -> set[int]:
    return {int(m) for m in re.findall(rf"\[(\d+)\] [\w.]+: {pattern}", running.logs())}


def test_both_processes_serve_and_idle_wakes_across_them(two: Running) -> None:
    workers = children(two.proc.pid)
    assert len(workers) == 2
    assert len(re.findall(r" ready ", two.logs())) == 1  # once, from the supervisor
    assert "(2 processes, database " in two.logs()
    imap = ImapServer(two)
    watcher = imap.client()
    exists = watcher.select_folder("INBOX")[b"EXISTS"]
    watcher.idle()
    seen = 0
    try:
        # New connections go to whichever process accepts first; keep sending until both
        # have delivered some (the log says which process authenticated each session).
        for n in range(1, 41):
            imap.deliver(CAMILLE, message(CAMILLE, CAMILLE, f"Processus {n}"))
            deadline = time.monotonic() + 5
            while seen < n and time.monotonic() < deadline:
                for response in watcher.idle_check(timeout=1):
                    if response[1] == b"EXISTS":
                        seen = int(response[0]) - exists
            assert seen == n, f"IDLE saw {seen} of {n} deliveries"
            if n >= 4 and pids_that(two, "submission: .* authenticated") == set(workers):
                break
        assert pids_that(two, "submission: .* authenticated") == set(workers), two.logs()
    finally:
        watcher.idle_done()
        watcher.logout()


def test_failed_logins_count_in_every_process(two_sqlite: Running) -> None:
    two = two_sqlite
    """limits.auth_failures_per_account is 5: five wrong passwords on separate connections,
    whichever processes took them, and the right one is refused too."""
    imap = ImapServer(two)
    for _ in range(5):
        c = imap.starttls()
        with pytest.raises(imaplib.IMAP4.error):
            c.login(CAMILLE, "not the password")
        c.logout()
    for _ in range(4):  # a few tries: each may land on either process
        c = imap.starttls()
        with pytest.raises(imaplib.IMAP4.error, match="too many failed"):
            c.login(CAMILLE, imap.account(CAMILLE)["password"])
        c.logout()
    s = smtplib.SMTP("127.0.0.1", two.port("submission"), timeout=30)
    s.starttls(context=imap.context())
    with pytest.raises(smtplib.SMTPAuthenticationError, match="too many failed"):
        s.login(CAMILLE, imap.account(CAMILLE)["password"])
    s.quit()


def test_sigterm_stops_all_processes_cleanly(two_sqlite: Running) -> None:
    two = two_sqlite
    workers = children(two.proc.pid)
    two.proc.send_signal(signal.SIGTERM)
    assert two.proc.wait(30) == 0
    assert not any(alive(p) for p in workers)
    log = two.logs()
    assert log.count("mailserver: stopped") == 3 and "Traceback" not in log
    leftover = [
        p for w in workers for p in Path(tempfile.gettempdir()).glob(f"mailserver-*/{w}.sock")
    ]
    assert not leftover  # the notes directory went with the processes


def test_processes_stop_when_the_supervisor_is_killed(two_sqlite: Running) -> None:
    two = two_sqlite
    workers = children(two.proc.pid)
    os.kill(two.proc.pid, signal.SIGKILL)
    two.proc.wait(10)
    deadline = time.monotonic() + 30
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers), two.logs()
    assert "supervisor process is gone" in two.logs()


def test_a_killed_process_is_started_again(two_sqlite: Running) -> None:
    two = two_sqlite
    first, second = children(two.proc.pid)
    os.kill(second, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = children(two.proc.pid)
        if len(now) == 2 and second not in now:
            break
        time.sleep(0.1)
    assert len(now) == 2 and first in now and second not in now, two.logs()
    assert "exited with status -9: restarting" in two.logs()
    imap = ImapServer(two)
    for _ in range(4):  # whichever process takes the connection serves it
        imap.login().logout()


def test_sigterm_during_start_up_stops_without_ready(
    sqlite_install: Install, tmp_path: Path
) -> None:
    install = sqlite_install
    edit_config(install, server={"processes": 2})
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailserver", "serve", "-c", str(install.config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(children(proc.pid)) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # forked, not serving yet (opening the database)
    try:
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()  # its processes follow (lifeline)
            proc.wait()
    text = (tmp_path / "serve.log").read_text()
    assert " ready " not in text and "Traceback" not in text, text

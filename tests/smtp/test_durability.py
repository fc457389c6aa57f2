"""Nothing accepted is lost: every message that got a 250 is there after a SIGKILL, and the
relay queue survives a restart without losing or duplicating anything."""

from __future__ import annotations

import smtplib
import threading
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Install
from tests.smtp.running import Running, start_server
from tests.smtp.test_doors import CAMILLE, PATIENT, message


def _sender(srv: Running, stop: threading.Event, acked: list[str], errors: list[str]) -> None:
    account = next(a for a in srv.install.demo["accounts"] if a["address"] == CAMILLE)
    while not stop.is_set():
        try:
            with srv.submission(account) as s:
                assert s.docmd("AUTH", "EXTERNAL =")[0] == 235
                while not stop.is_set():
                    subject = f"charge {threading.get_ident()} {time.monotonic_ns()}"
                    s.sendmail(CAMILLE, [PATIENT], message(CAMILLE, PATIENT, subject))
                    acked.append(subject)  # only after the 250
        except (OSError, smtplib.SMTPException) as exc:
            errors.append(type(exc).__name__)
            return


@pytest.mark.slow
def test_sigkill_under_load_loses_no_acknowledged_message(install: Install, tmp_path: Path) -> None:
    srv = start_server(install, tmp_path / "a.log")
    stop = threading.Event()
    acked: list[str] = []
    errors: list[str] = []
    threads = [threading.Thread(target=_sender, args=(srv, stop, acked, errors)) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.proc.kill()  # SIGKILL in the middle of transactions
    srv.proc.wait()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 40, srv.logs()
    again = start_server(install, tmp_path / "b.log")
    try:
        stored = b"\n".join(again.inbox(PATIENT))
        lost = [s for s in acked if s.encode() not in stored]
        assert not lost, f"{len(lost)} acknowledged messages lost of {len(acked)}"
    finally:
        again.stop()

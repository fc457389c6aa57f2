"""`mailserver serve`: ready with its addresses, /healthz and /metrics, clean stop."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.cli.conftest import Install


def start(config: Path) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailserver", "serve", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if " ready " in line:
            return proc, lines
    proc.kill()
    pytest.fail("server never logged ready:\n" + "".join(lines))


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def test_serve_ready_health_metrics_and_clean_stop(install: Install) -> None:
    proc, lines = start(install.config)
    try:
        port = install.demo["listeners"]["admin"]["port"]
        assert re.search(rf"ready admin=http://127\.0\.0\.1:{port}", lines[-1])
        status, ctype, body = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert json.loads(body)["database"] == install.backend
        status, ctype, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        # The demo's content is visible in the metrics.
        assert 'mailserver_patients{state="opposed"} 1.0' in body
        assert 'mailserver_accounts{kind="PER",state="active"} 2.0' in body
        assert "mailserver_listeblanche_domains 3.0" in body
        assert "mailserver_database_up 1.0" in body
        status, _, body = get(f"http://127.0.0.1:{port}/nope")
        assert status == 404 and "/healthz" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stopped" in out and "Traceback" not in out


def test_sigint_also_stops_cleanly_and_port_is_released(install: Install) -> None:
    proc, _ = start(install.config)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    proc2, _ = start(install.config)  # the port is free again at once
    proc2.send_signal(signal.SIGTERM)
    assert proc2.wait(timeout=30) == 0


def test_two_instances_side_by_side(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """--port-base gives each instance its own ports: both serve at once."""
    from tests.cli.conftest import make_install

    first = make_install(tmp_path / "a", "sqlite", request)
    second = make_install(tmp_path / "b", "sqlite", request)
    procs: list[subprocess.Popen[str]] = []
    try:
        for inst in (first, second):  # one at a time: a failed start stops the other
            procs.append(start(inst.config)[0])
        for inst in (first, second):
            port = inst.demo["listeners"]["admin"]["port"]
            assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=30) == 0

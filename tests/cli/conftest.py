"""Black-box fixtures: the real `mailserver` command in a subprocess, real installations."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailserver.config import PORT_OFFSETS
from tests.conftest import BACKENDS
from tests.pg import PostgresServer


def mailserver(
    *args: str | Path, input: str | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailserver", *map(str, args)],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _my_bases() -> list[int]:
    """Port bases for this test process: above the default installation's 10000, below
    Linux's ephemeral range (32768+, where other fixtures' probes land), and disjoint between
    pytest-xdist workers, since an installation holds its ports only once its server starts,
    seconds after the pick."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker) if worker.isdigit() else 0
    return [b for i, b in enumerate(range(11000, 32000, 1000)) if i % count == index % count]


def free_port_base() -> int:
    """A base N such that every listener port N + offset is free right now."""
    bases = _my_bases()
    for _ in range(200):
        base = random.choice(bases)
        ok = True
        # The demo peer operator listens on each port + 1 (mailserver/demo.py).
        for offset in [o + shift for o in PORT_OFFSETS.values() for shift in (0, 1)]:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", base + offset))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


@dataclass
class Install:
    dir: Path
    backend: str
    demo: dict[str, Any]

    @property
    def config(self) -> Path:
        return self.dir / "mailserver.toml"

    def account(self, type_: str, **match: object) -> dict[str, Any]:
        for a in self.demo["accounts"]:
            if a["type"] == type_ and all(a.get(k) == v for k, v in match.items()):
                return dict(a)
        raise KeyError((type_, match))


def make_install(root: Path, backend: str, request: pytest.FixtureRequest) -> Install:
    args: list[str | Path] = [
        "init",
        root / "inst",
        "--domain",
        "demo.mssante.fr",
        "--demo",
        "--port-base",
        str(free_port_base()),
    ]
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("pg_server")
        args += ["--database-url", server.create_database(f"cli_{os.getpid()}_{root.name}")]
    r = mailserver(*args)
    assert r.returncode == 0, r.stderr
    demo = json.loads((root / "inst" / "demo.json").read_text())
    return Install(root / "inst", backend, demo)


@pytest.fixture(params=BACKENDS)
def install(request: pytest.FixtureRequest, tmp_path: Path) -> Install:
    """A fresh `mailserver init --demo` installation on each database backend."""
    return make_install(tmp_path, request.param, request)


@pytest.fixture(scope="module", params=BACKENDS)
def _template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Install:
    return make_install(tmp_path_factory.mktemp("template"), request.param, request)


@pytest.fixture
def install_copy(_template: Install, tmp_path: Path) -> Install:
    """A private copy of a module-wide installation (same database): for tests that only
    edit files, e.g. configuration refusals."""
    import shutil

    shutil.copytree(_template.dir, tmp_path / "inst", symlinks=True)
    return Install(tmp_path / "inst", _template.backend, _template.demo)

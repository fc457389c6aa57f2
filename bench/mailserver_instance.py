"""Our server for the benchmarks: a fresh `mailserver init --demo` (embedded SQLite unless a
database URL is given), boxes created in bulk, and `mailserver serve` as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import tomli_w

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from directory.accounts import add_account  # noqa: E402
from directory.patients import add_patient  # noqa: E402
from mailserver.config import load_config  # noqa: E402
from routing.identifiers import ins_key  # noqa: E402
from storage.db import open_database  # noqa: E402
from tests.cli.conftest import free_port_base  # noqa: E402

__all__ = ["Instance", "generate_ins"]


def _mailserver(*args: str | Path, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mailserver", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"mailserver {' '.join(map(str, args))} failed:\n{done.stderr}")
    return done.stdout


def generate_ins(count: int) -> Iterator[str]:
    """``count`` distinct, valid INS matricules (women born in Paris, 1950-1999)."""
    n = 0
    for year in range(50, 100):
        for month in range(1, 13):
            for order in range(1, 1000):
                if n >= count:
                    return
                number = f"2{year:02d}{month:02d}75056{order:03d}"
                yield number + ins_key(number)
                n += 1


class Instance:
    """One installation under ``root``; :meth:`start` / :meth:`stop` the server."""

    def __init__(self, root: Path, *, database_url: str | None = None) -> None:
        self.dir = root / "inst"
        args: list[str | Path] = ["init", self.dir, "--domain", "demo.mssante.fr", "--demo",
                                  "--port-base", str(free_port_base())]  # fmt: skip
        if database_url:
            args += ["--database-url", database_url]
        _mailserver(*args)
        self.demo: dict[str, Any] = json.loads((self.dir / "demo.json").read_text())
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "server.log"

    @property
    def config(self) -> Path:
        return self.dir / "mailserver.toml"

    def path(self, relative: str) -> Path:
        return self.dir / relative

    def port(self, listener: str) -> int:
        return int(self.demo["listeners"][listener]["port"])

    def account(self, address: str) -> dict[str, Any]:
        return next(a for a in self.demo["accounts"] if a["address"] == address)

    def edit_config(self, **sections: dict[str, Any]) -> None:
        doc = tomllib.loads(self.config.read_text())
        for name, values in sections.items():
            doc.setdefault(name, {}).update(values)
        self.config.write_text(tomli_w.dumps(doc))

    # --- bulk directory work (before timing) ----------------------------------------------

    def add_boxes(self, addresses: Iterable[str], kind: str = "ORG") -> None:
        asyncio.run(self._add_boxes(list(addresses), kind))

    async def _add_boxes(self, addresses: list[str], kind: str) -> None:
        cfg = load_config(self.config)
        db = await open_database(cfg.database_url)
        try:
            async with db.session() as s, s.begin():
                for i, address in enumerate(addresses):
                    await add_account(s, address=address, kind=kind,
                                      operator_domains=list(cfg.server.domains),
                                      structure_id=f"9999{i:010d}")  # fmt: skip
        finally:
            await db.close()

    def add_patients(self, inss: Iterable[str], batch: int = 1000) -> int:
        return asyncio.run(self._add_patients(list(inss), batch))

    async def _add_patients(self, inss: list[str], batch: int) -> int:
        cfg = load_config(self.config)
        db = await open_database(cfg.database_url)
        try:
            for start in range(0, len(inss), batch):
                async with db.session() as s, s.begin():
                    for ins in inss[start : start + batch]:
                        await add_patient(s, ins, domain=cfg.patient_domain.name)
        finally:
            await db.close()
        return len(inss)

    def count_messages(self) -> int:
        """Messages stored in every mailbox (SQLite installs only)."""
        db = self.dir / "data" / "mailserver.db"
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])

    # --- the server process ----------------------------------------------------------------

    def start(self, timeout: float = 60) -> int:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailserver", "serve", "-c", str(self.config)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready " in self.log.read_text(errors="replace"):
                return self.proc.pid
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise SystemExit("the server never logged ready:\n" + self.log.read_text()[-3000:])

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

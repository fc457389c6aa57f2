"""Benchmark: importing a PS_LibreAcces_Personne_activite file of N lines (default 2,000,000).

Runs the real command, `mailserver directory import-annuaire`, twice per database (a first
import into an empty cache, then a re-import that replaces it and computes who disappeared)
and reports wall time and the importer's peak RSS. PostgreSQL is a throwaway server started
from Debian's binaries (as for the tests).

    .venv/bin/python bench/annuaire_import.py [--lines 2000000] [--backend sqlite|postgresql]

Targets (issue #2): ≤ 60 s and ≤ 300 MB peak RSS for 2,000,000 lines, on both databases.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gen_annuaire import write_personne_activite  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402


def run(argv: list[str], log: Path) -> tuple[float, float, str]:
    """Run a command; return (wall seconds, its peak RSS in MB, its output)."""
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    wall = time.monotonic() - start
    text = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{text}")
    return wall, usage.ru_maxrss / 1024, text  # ru_maxrss is in KB on Linux


def bench(backend: str, data: Path, work: Path, pg: PostgresServer | None) -> None:
    mailserver = str(ROOT / ".venv" / "bin" / "mailserver")
    inst = work / f"inst-{backend}"
    init = [mailserver, "init", str(inst), "--domain", "bench.mssante.fr", "--port-base", "40000"]
    if pg is not None:
        init += ["--database-url", pg.create_database(f"bench_{int(time.time())}")]
    subprocess.run(init, check=True, capture_output=True)
    cmd = [mailserver, "directory", "import-annuaire", "-c", str(inst / "mailserver.toml")]
    for label in ("first import", "re-import"):
        wall, rss, out = run([*cmd, str(data)], work / "import.log")
        print(
            f"| {backend} | {label} | {wall:.1f} s | {rss:.0f} MB |    {out.splitlines()[0]}",
            flush=True,
        )
    shutil.rmtree(inst, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    ap.add_argument("--data", type=Path, help="reuse this generated file")
    args = ap.parse_args()
    backends = args.backend or ["sqlite", "postgresql"]
    work = Path(tempfile.mkdtemp(prefix="bench-annuaire-"))
    pg: PostgresServer | None = None
    try:
        data = args.data or work / f"PS_LibreAcces_Personne_activite_{args.lines}.txt"
        if not data.exists():
            t = time.monotonic()
            write_personne_activite(data, args.lines)
            print(
                f"generated {data} ({data.stat().st_size / 1e6:.0f} MB) in "
                f"{time.monotonic() - t:.0f} s",
                flush=True,
            )
        print(f"machine: {os.cpu_count()} CPUs; {args.lines:,} lines")
        print("| database | run | wall time | importer peak RSS |")
        print("|---|---|---|---|")
        for backend in backends:
            if backend == "postgresql":
                pg = PostgresServer(durable=True)
                pg.start()
            bench(backend, data, work, pg)
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: importing a PS_LibreAcces_Personne_activite file of N lines (default 2,000,000).

Runs the real command, `mailserver directory import-annuaire`, twice per database (a first
import into an empty cache, then a re-import that replaces it and computes who disappeared)
and reports wall time and the peak RSS of the importer with its worker processes.
PostgreSQL is a throwaway server started from Debian's binaries (as for the tests).

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


def _tree_rss_kb(root: int) -> int:
    """Resident memory of `root` and all its descendants (the import's worker processes)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss[int(entry.name)] = int(line.split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(rss.get(pid, 0) for pid in tree)


def run(argv: list[str], log: Path) -> tuple[float, float, str]:
    """Run a command; return (wall seconds, peak RSS of its process tree in MB, output)."""
    start = time.monotonic()
    peak = 0
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            peak = max(peak, _tree_rss_kb(proc.pid))
            time.sleep(0.2)
    wall = time.monotonic() - start
    text = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{text}")
    return wall, peak / 1024, text


def bench(
    backend: str, data: Path, work: Path, pg: PostgresServer | None, workers: int | None
) -> None:
    mailserver = str(ROOT / ".venv" / "bin" / "mailserver")
    inst = work / f"inst-{backend}"
    init = [mailserver, "init", str(inst), "--domain", "bench.mssante.fr", "--port-base", "40000"]
    if pg is not None:
        init += ["--database-url", pg.create_database(f"bench_{int(time.time())}")]
    subprocess.run(init, check=True, capture_output=True)
    cmd = [mailserver, "directory", "import-annuaire", "-c", str(inst / "mailserver.toml")]
    if workers is not None:
        cmd += ["--workers", str(workers)]
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
    ap.add_argument("--workers", type=int, help="passed to import-annuaire (default: automatic)")
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
        print("| database | run | wall time | peak RSS (importer + workers) |")
        print("|---|---|---|---|")
        for backend in backends:
            if backend == "postgresql":
                pg = PostgresServer(durable=True)
                pg.start()
            bench(backend, data, work, pg, args.workers)
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

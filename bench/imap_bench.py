"""imaptest benchmark: our IMAP server against a private Dovecot, same parameters, same run.

Both servers run on this machine with implicit TLS (the same development-PKI server
certificate), one user with the same password, checked at the same cost: our scrypt hash
(n=2^14, r=8) and, for Dovecot, the BLF-CRYPT cost whose check takes closest to it, both
timed on this machine at start (2026-12-07: scrypt 77 ms, BLF-CRYPT cost 9 34 ms, cost 10
68 ms; ``--dovecot-cost`` forces one), a fresh mailbox each, and imaptest
in its default stress profile (LOGIN, LIST, STATUS, SELECT, FETCH, FETCH2, STORE, DELETE,
EXPUNGE, APPEND, LOGOUT) with the same ``clients=``/``secs=``/``seed=``/``mbox=``, in two
profiles: ``default`` (every client logs out and in again after each cycle, so password
checks weigh a lot) and ``session`` (``logout=0``: clients stay logged in, the IMAP work
alone). The figure is imaptest's command total divided by the seconds run. Dovecot:
Debian's ``dovecot-imapd`` started with ``dovecot -c FILE`` from a temporary directory
(maildir, passwd-file, ``mail_fsync = optimized``, its default service settings: one imap
process per connection; ``mail_max_userip_connections`` raised from 10 since every imaptest
client is the same user). imaptest is built outside the repository (see
docs/imap-conformance.md); pass its path.

    .venv/bin/python bench/imap_bench.py --imaptest /work/ext/imaptest-23/src/imaptest \\
        [--clients 20] [--secs 30] [--only ours|dovecot] [--dovecot-cost N] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import json
import math
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.imap_mbox import write_mbox  # noqa: E402

USER = "camille.martin@demo.mssante.fr"
NOBODY = 65534


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_imap(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    while True:
        try:
            imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx).logout()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Ours:
    """``mailserver init --demo`` in ``root``, ``mailserver serve`` as a subprocess."""

    def __init__(self, root: Path, port_base: int, processes: int | None = None) -> None:
        self.dir = root / "ours"
        subprocess.run([sys.executable, "-m", "mailserver", "init", str(self.dir), "--domain",
                        "demo.mssante.fr", "--demo", "--port-base", str(port_base)],
                       cwd=ROOT, check=True, capture_output=True)  # fmt: skip
        self.demo = json.loads((self.dir / "demo.json").read_text())
        self.password = next(a["password"] for a in self.demo["accounts"] if a["address"] == USER)
        self.port = self.demo["listeners"]["imaps"]["port"]
        cfg_path = self.dir / "mailserver.toml"
        cfg = tomllib.loads(cfg_path.read_text())
        cfg.setdefault("limits", {})["connections_per_address"] = 50_000
        cfg["logging"] = {"level": "WARNING"}
        if processes:
            cfg["server"]["processes"] = processes
        cfg_path.write_text(tomli_w.dumps(cfg))
        self.config = cfg_path
        self.proc: subprocess.Popen[bytes] | None = None
        #: Python run before the CLI in the server process (experiments, e.g. imap_idle.py)
        self.prelude = ""

    def cert_and_key(self) -> tuple[Path, Path]:
        s = self.demo["server"]
        return self.dir / s["chain"], self.dir / s["key"]

    def start(self) -> None:
        log = (self.dir / "serve.log").open("wb")
        cmd = [sys.executable, "-m", "mailserver", "serve", "-c", str(self.config)]
        if self.prelude:
            code = f"{self.prelude}\nimport sys\nfrom mailserver.cli import main\nsys.exit(main())"
            cmd = [sys.executable, "-c", code, "serve", "-c", str(self.config)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)
        wait_imap(self.port)

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc else []

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Dovecot:
    """A private Dovecot IMAP server: its own base_dir, config, maildirs, passwd-file."""

    def __init__(
        self, root: Path, port: int, password: str, cert: Path, key: Path, cost: int
    ) -> None:
        self.root = root / "dovecot"
        self.port = port
        for d in ("run", "state", "mail"):
            (self.root / d).mkdir(parents=True, mode=0o755)
        os.chown(self.root / "mail", NOBODY, NOBODY)
        hashed = bcrypt_hash(password, cost)
        (self.root / "passwd").write_text(f"{USER}:{hashed}::::::\n")
        shutil.copy(cert, self.root / "cert.pem")
        shutil.copy(key, self.root / "key.pem")
        (self.root / "key.pem").chmod(0o600)
        self.config = self.root / "dovecot.conf"
        r = self.root
        self.config.write_text(f"""\
# written by bench/imap_bench.py
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
info_log_path = {r}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{r}/cert.pem
ssl_key = <{r}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
first_valid_uid = 100
mail_location = maildir:{r}/mail/%u
mail_fsync = optimized
passdb {{
  driver = passwd-file
  args = {r}/passwd
}}
userdb {{
  driver = static
  args = uid={NOBODY} gid={NOBODY} home={r}/mail/%u
}}
protocol imap {{
  # default 10: imaptest's clients all log in as one user from one address
  mail_max_userip_connections = 10000
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""")

    def start(self) -> None:
        subprocess.run(["dovecot", "-c", str(self.config)], check=True)
        wait_imap(self.port)

    def master_pid(self) -> int:
        return int((self.root / "run" / "master.pid").read_text())

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            subprocess.run(
                ["dovecot", "-c", str(self.config), "stop"], timeout=30, capture_output=True
            )


def bcrypt_hash(password: str, cost: int) -> str:
    cmd = ["doveadm", "pw", "-s", "BLF-CRYPT", "-r", str(cost), "-p", password]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def doveadm_check_seconds(hashed: str, password: str, runs: int = 8) -> float:
    """One ``doveadm pw -t`` minus one of a {PLAIN} hash (the process start-up), averaged."""

    def timed(h: str) -> float:
        started = time.perf_counter()
        for _ in range(runs):
            cmd = ["doveadm", "pw", "-t", h, "-p", password]
            subprocess.run(cmd, check=True, capture_output=True)
        return (time.perf_counter() - started) / runs

    return max(0.0, timed(hashed) - timed("{PLAIN}" + password))


def matching_cost(password: str) -> tuple[int, float, float]:
    """The BLF-CRYPT cost whose check time is closest to our scrypt check's (each cost
    doubles the time), with both times: the servers pay the same for each LOGIN."""
    from directory.passwords import hash_password, verify_password

    ours = hash_password(password)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        verify_password(password, ours)
        times.append(time.perf_counter() - started)
    scrypt = sorted(times)[2]
    at_9 = doveadm_check_seconds(bcrypt_hash(password, 9), password)
    cost = min(range(4, 16), key=lambda c: abs(math.log2(at_9 * 2 ** (c - 9) / scrypt)))
    return cost, scrypt, at_9 * 2 ** (cost - 9)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes and their descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    seen = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                todo += [int(c) for c in children]
    return total


def run_imaptest(imaptest: str, port: int, password: str, args: argparse.Namespace,
                 mbox: Path, log: Path, profile: str) -> dict[str, object]:  # fmt: skip
    cmd = [imaptest, "host=127.0.0.1", f"port={port}", "ssl=any-cert", f"user={USER}",
           f"pass={password}", f"mbox={mbox}", f"clients={args.clients}", f"secs={args.secs}",
           f"seed={args.seed}", "box=INBOX"]  # fmt: skip
    if profile == "session":
        cmd.append("logout=0")
    env = dict(os.environ, LD_LIBRARY_PATH="/usr/lib/dovecot")
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.secs + 120)
    wall = time.monotonic() - started
    out = done.stdout + done.stderr
    log.write_text(out)
    lines = out.splitlines()
    at = max(i for i, ln in enumerate(lines) if ln.startswith("Totals:"))
    names = lines[at + 1].split()
    counts: list[int] = []
    # the last line of numbers after Totals: holds the counters
    for ln in reversed(lines[at:]):
        if re.fullmatch(r"[\d\s]+", ln.strip()):
            counts = [int(x) for x in ln.split()]
            break
    per = dict(zip(names, counts, strict=False))
    errors = [ln for ln in lines if ln.startswith("Error:")]
    kinds: dict[str, int] = {}
    for e in errors:
        kind = re.sub(r"\[\d+\]|\d+", "N", e)[:90]
        kinds[kind] = kinds.get(kind, 0) + 1
    total = sum(per.values())
    return {"ops": total, "ops_per_s": total / args.secs, "per_command": per, "wall": wall,
            "errors": len(errors), "error_kinds": kinds, "exit": done.returncode}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--imaptest", required=True)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--secs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=["ours", "dovecot"])
    ap.add_argument("--profiles", nargs="+", default=["default", "session"],
                    choices=["default", "session"])  # fmt: skip
    ap.add_argument(
        "--profile",
        type=Path,
        help="cProfile our server's main thread (the event loop) into this file, and print "
        "the top functions",
    )
    ap.add_argument("--dovecot-cost", type=int, help="BLF-CRYPT cost (default: as costly as ours)")
    ap.add_argument("--prelude", type=Path, help="Python run in our server before it starts")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--processes", type=int, help="our server.processes (default: as shipped)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="imapbench-", dir="/tmp"))
    root.chmod(0o755)
    mbox = write_mbox(root / "bench.mbox", 2000)
    ours = Ours(root, port_base=free_port() // 1000 * 1000 % 50000 + 10000,
                processes=args.processes)  # fmt: skip
    cert, key = ours.cert_and_key()
    if args.profile:
        ours.prelude = (
            "import atexit, cProfile\n"
            "_p = cProfile.Profile()\n"
            "_p.enable()\n"
            f"atexit.register(lambda: (_p.disable(), _p.dump_stats({str(args.profile)!r})))"
        )
    if args.prelude:
        ours.prelude = args.prelude.read_text()
    cost = args.dovecot_cost
    if cost is None:
        cost, ours_s, theirs_s = matching_cost(ours.password)
        print(f"password check: our scrypt {ours_s * 1000:.0f} ms, Dovecot BLF-CRYPT cost "
              f"{cost} ~{theirs_s * 1000:.0f} ms")  # fmt: skip
    dovecot = Dovecot(root, free_port(), ours.password, cert, key, cost)
    results: dict[tuple[str, str], dict[str, object]] = {}
    try:
        for profile in args.profiles:
            for name, server in (("dovecot", dovecot), ("ours", ours)):
                if args.only and args.only != name:
                    continue
                server.start()
                pids = ours.pids() if name == "ours" else [dovecot.master_pid()]
                cpu0 = cpu_seconds(pids)
                res = run_imaptest(args.imaptest, server.port, ours.password, args, mbox,
                                   root / f"imaptest-{profile}-{name}.log", profile)  # fmt: skip
                res["server_cpu_s"] = round(cpu_seconds(pids) - cpu0, 1)
                server.stop()
                results[(profile, name)] = res
                print(f"{profile:8} {name:8} {res['ops']:>7} commands in {args.secs} s = "
                      f"{res['ops_per_s']:8.1f} ops/s, server CPU {res['server_cpu_s']} s, "
                      f"imaptest errors {res['errors']}")  # fmt: skip
                print(f"         {res['per_command']}")
                kinds = res["error_kinds"]
                assert isinstance(kinds, dict)
                for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:5]:
                    print(f"         {n} x {kind}")
            if (profile, "ours") in results and (profile, "dovecot") in results:
                a, b = results[(profile, "ours")], results[(profile, "dovecot")]
                ratio = float(a["ops_per_s"]) / float(b["ops_per_s"])  # type: ignore[arg-type]
                print(f"{profile}: ratio ours/dovecot = {ratio:.2f}x "
                      f"(clients={args.clients} secs={args.secs})")  # fmt: skip
    finally:
        ours.stop()
        dovecot.stop()
        if args.profile and args.profile.exists():
            import pstats

            stats = pstats.Stats(str(args.profile))
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")


if __name__ == "__main__":
    main()

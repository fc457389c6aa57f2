"""N concurrent authenticated IDLE sessions in one server process: RSS, and delivery latency.

A fresh ``mailserver init --demo`` installation with ``limits.connections_per_address``
raised; ``--users`` ORG boxes ``idle00001@demo.mssante.fr``... are created in the database
before the server starts (``directory.accounts.add_account``). Every login costs one scrypt
check (n=2^14: ~0.09 s of CPU here, run in the server's event loop), which would make 10,000
logins take a quarter of an hour on this machine; so the bench boxes get a cheap scrypt hash
(n=2^4, same format, same code path): this benchmark measures IDLE, not password hashing.

Then one asyncio client opens N implicit-TLS connections (round robin over the boxes),
``LOGIN``, ``SELECT INBOX``, ``IDLE``; the server's VmRSS is read from /proc before and after.
Then ``--deliveries`` messages are submitted over SMTP (submissions, camille.martin, PLAIN),
one at a time, each to a random box; the latency is from the start of the SMTP transaction
(MAIL FROM on an already authenticated connection) to the moment the last IDLE session of
that box has received its ``* n EXISTS``; also from the SMTP ``250`` to that moment.

    .venv/bin/python bench/imap_idle.py [--connections 10000] [--users 2000] [--deliveries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import random
import resource
import shutil
import smtplib
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import update  # noqa: E402

from bench.imap_bench import USER, Ours, free_port  # noqa: E402
from directory.accounts import add_account  # noqa: E402
from mailserver.config import load_config  # noqa: E402
from storage.db import open_database  # noqa: E402
from storage.models import Account  # noqa: E402

PASSWORD = "idle-bench-password"


def cheap_hash(password: str) -> str:
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=16, r=8, p=1, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")  # noqa: E731
    return f"$scrypt$n=16,r=8,p=1${b64(salt)}${b64(key)}"


async def create_boxes(config: Path, count: int) -> list[str]:
    cfg = load_config(config)
    db = await open_database(cfg.database_url)
    addresses = [f"idle{i:05d}@demo.mssante.fr" for i in range(1, count + 1)]
    hashed = cheap_hash(PASSWORD)
    for start in range(0, count, 500):
        async with db.session() as s, s.begin():
            for addr in addresses[start : start + 500]:
                await add_account(s, address=addr, kind="ORG", operator_domains=cfg.server.domains,
                                  structure_id="99999999900018")  # fmt: skip
            await s.execute(update(Account).where(Account.address.in_(addresses[start:start + 500]))
                            .values(password_hash=hashed))  # fmt: skip
    return addresses


def vmrss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Session:
    def __init__(self, address: str) -> None:
        self.address = address
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.exists = 0
        self.event = asyncio.Event()

    async def open(self, port: int, ctx: ssl.SSLContext) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        await self.reader.readline()
        await self._command(f"a LOGIN {self.address} {PASSWORD}", "a ")
        await self._command("b SELECT INBOX", "b ")
        self.writer.write(b"c IDLE\r\n")
        await self.writer.drain()
        line = await self.reader.readline()
        if not line.startswith(b"+"):
            raise RuntimeError(f"IDLE refused: {line!r}")

    async def _command(self, text: str, tag: str) -> None:
        assert self.reader and self.writer
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line.endswith(b" EXISTS\r\n"):
                self.exists = int(line.split()[1])
            if line.startswith(tag.encode()):
                if not line.startswith(f"{tag}OK".encode()):
                    raise RuntimeError(f"{text.split()[1]} failed: {line!r}")
                return

    async def listen(self) -> None:
        assert self.reader
        while True:
            line = await self.reader.readline()
            if not line:
                return
            if line.endswith(b" EXISTS\r\n"):
                self.exists = int(line.split()[1])
                self.event.set()


def smtp_client(port: int, password: str) -> smtplib.SMTP_SSL:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    smtp = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=60)
    smtp.login(USER, password)
    return smtp


def submit(smtp: smtplib.SMTP_SSL, to: str, n: int) -> float:
    """One message on the open submission connection; returns when its 250 arrived."""
    body = (f"From: {USER}\r\nTo: {to}\r\nSubject: idle bench {n}\r\n"
            f"Message-ID: <idle-{n}-{time.time_ns()}@demo.mssante.fr>\r\n"
            f"\r\nbonjour {n}\r\n")  # fmt: skip
    smtp.sendmail(USER, [to], body.encode())
    return time.perf_counter()


async def run(args: argparse.Namespace, ours: Ours, addresses: list[str]) -> None:
    assert ours.proc is not None
    pid = ours.proc.pid
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    await asyncio.sleep(2)
    base_kb = vmrss_kb(pid)
    print(f"server pid {pid}: VmRSS {base_kb / 1024:.0f} MB before any IMAP session")
    sessions = [Session(addresses[i % len(addresses)]) for i in range(args.connections)]
    sem = asyncio.Semaphore(args.parallel)
    failures: list[str] = []
    opened = 0
    started = time.perf_counter()

    async def opener(s: Session) -> None:
        nonlocal opened
        async with sem:
            try:
                await asyncio.wait_for(s.open(ours.port, ctx), 120)
                opened += 1
                if opened % 1000 == 0:
                    elapsed = time.perf_counter() - started
                    print(f"  {opened:,} sessions in IDLE after {elapsed:.0f} s,"
                          f" server VmRSS {vmrss_kb(pid) / 1024:.0f} MB", flush=True)  # fmt: skip
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(opener(s) for s in sessions))
    live = [s for s in sessions if s.writer is not None and s.reader is not None]
    ramp = time.perf_counter() - started
    await asyncio.sleep(3)
    rss_kb = vmrss_kb(pid)
    per = (rss_kb - base_kb) / max(1, len(live))
    print(f"{len(live):,} IDLE sessions (of {args.connections:,}; {len(failures)} failed) "
          f"opened in "
          f"{ramp:.0f} s; server VmRSS {rss_kb / 1024:.0f} MB "
          f"(+{(rss_kb - base_kb) / 1024:.0f} MB, {per:.1f} KB per session)")  # fmt: skip
    if failures:
        kinds: dict[str, int] = {}
        for f in failures:
            kinds[f[:100]] = kinds.get(f[:100], 0) + 1
        for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:5]:
            print(f"  {n} x {k}")
    listeners = [asyncio.create_task(s.listen()) for s in live]
    by_user: dict[str, list[Session]] = {}
    for s in live:
        by_user.setdefault(s.address, []).append(s)
    rng = random.Random(11)
    latencies: list[float] = []
    after_250: list[float] = []
    lost = 0
    submissions_port = ours.demo["listeners"]["submissions"]["port"]
    smtp = await asyncio.to_thread(smtp_client, submissions_port, ours.password)
    for n in range(args.deliveries):
        user = rng.choice(list(by_user))
        targets = by_user[user]
        for s in targets:
            s.event.clear()
        t0 = time.perf_counter()
        accepted = await asyncio.to_thread(submit, smtp, user, n)
        try:
            await asyncio.wait_for(asyncio.gather(*(s.event.wait() for s in targets)), 10)
            now = time.perf_counter()
            latencies.append(now - t0)
            after_250.append(max(0.0, now - accepted))
        except TimeoutError:
            lost += 1
        await asyncio.sleep(args.pause)
    smtp.quit()
    latencies.sort()
    after_250.sort()
    if after_250:
        q = lambda v: after_250[min(len(after_250) - 1, int(v * len(after_250)))]  # noqa: E731
        print(f"  from the SMTP 250 to the last EXISTS: p50 {q(0.5) * 1000:.0f} ms, "
              f"p99 {q(0.99) * 1000:.0f} ms")  # fmt: skip
    if latencies:
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
        print(f"{len(latencies)} deliveries seen by every IDLE session of the recipient "
              f"({len(by_user[user])} per box), {lost} not within 10 s: "
              f"p50 {p(0.5) * 1000:.0f} ms, "
              f"p99 {p(0.99) * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms, "
              f"mean {statistics.mean(latencies) * 1000:.0f} ms")  # fmt: skip
    print(f"server VmRSS at the end: {vmrss_kb(pid) / 1024:.0f} MB")
    for t in listeners:
        t.cancel()
    for s in live:
        if s.writer:
            s.writer.transport.abort()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--deliveries", type=int, default=200)
    ap.add_argument("--pause", type=float, default=0.05, help="seconds between deliveries")
    ap.add_argument("--parallel", type=int, default=50, help="connections being opened at once")
    ap.add_argument(
        "--ssl-read-buffer",
        type=int,
        help="experiment: set asyncio.sslproto.SSLProtocol.max_size (256 KiB by default in "
        "Python 3.11, allocated per TLS connection) in the server process",
    )
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = (
        min(hard, args.connections + 1000)
        if hard != resource.RLIM_INFINITY
        else args.connections + 1000
    )
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))  # the server inherits it
    root = Path(tempfile.mkdtemp(prefix="imapidle-", dir="/tmp"))
    ours = Ours(root, port_base=free_port() // 1000 * 1000 % 50000 + 10000)
    try:
        t = time.perf_counter()
        addresses = asyncio.run(create_boxes(ours.config, min(args.users, args.connections)))
        print(f"{len(addresses):,} boxes created in {time.perf_counter() - t:.0f} s; "
              f"fd limit {resource.getrlimit(resource.RLIMIT_NOFILE)}")  # fmt: skip
        if args.ssl_read_buffer:
            ours.prelude = (
                "import asyncio.sslproto\n"
                f"asyncio.sslproto.SSLProtocol.max_size = {args.ssl_read_buffer}"
            )
            print(f"server: asyncio SSLProtocol.max_size = {args.ssl_read_buffer}")
        ours.start()
        asyncio.run(run(args, ours, addresses))
    finally:
        ours.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

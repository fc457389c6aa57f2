"""Benchmark: inbound mail from a peer operator over mutual TLS, our server against Postfix
delivering to Dovecot over LMTP, in the same run on the same machine (issue #3, Performance).

Both sides get the same load from the same generator (bench/smtp_load.py): ``--sessions``
concurrent sessions (20), each STARTTLS with the demo peer operator's certificate, reusing
its connection for its share of ``--messages`` transactions, MAIL/RCPT/DATA pipelined, one
local recipient per message spread over 20 boxes, messages of ``--size`` bytes (2 KB and
100 KB by default).

- **Ours**: ``mailserver init --demo`` in a temporary directory, embedded SQLite (WAL), 20 ORG
  boxes added, ``mailserver serve`` as a subprocess with its shipped defaults (only
  ``limits.connections_per_address`` raised for the load). Every peer check runs (chain,
  CRL, liste blanche domain and DN) and the 250 comes after the blob is fsynced and the
  delivery committed: accepted = delivered.
- **Postfix + Dovecot**: a private Postfix (tests/peers/postfix.py) with our server's
  certificate, requiring a client certificate from the same CA (``smtpd_tls_req_ccert``),
  ``virtual_transport`` = LMTP on the UNIX socket of a private Dovecot (bench/dovecot.py)
  that stores into maildirs with its default fsync. Postfix answers 250 once its queue file
  is fsynced; the message is delivered when Dovecot has written it, so its throughput is
  counted until the last message is in a maildir.

Reported per side and size: messages/s (delivered into the mailboxes), accepted/s (last 250),
CPU seconds of the server side (our process; Postfix's and Dovecot's process trees, reaped
children included, from /proc), CPU ms per message, p50/p99 transaction latency (MAIL sent →
250 after the data), and the ratio ours / Postfix+Dovecot.

    .venv/bin/python -m bench.smtp_inbound [--messages 2000] [--size 2048 --size 102400]
        [--sessions 20] [--only ours|postfix] [--profile DIR]

``--profile DIR`` also records our server with py-spy during its runs (``pip install py-spy``
into the venv; not a project dependency) and prints the top functions. Runs as root (the
private Postfix and Dovecot need it). Not collected by pytest (``bench/`` is outside
``testpaths``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.dovecot import DovecotLMTP, dovecot_missing  # noqa: E402
from bench.mailserver_instance import Instance  # noqa: E402
from bench.smtp_load import Job, LoadResult, make_body, percentile, run_load  # noqa: E402
from tests.peers.postfix import PostfixPeer, descendants, postfix_missing  # noqa: E402
from tests.peers.postfix import process_tree_cpu as tree_cpu  # noqa: E402

PEER_SENDER = "dr.durand@peer-demo.mssante.fr"
BOXES = [f"boite{i:02d}@demo.mssante.fr" for i in range(1, 21)]
POSTFIX = "postfix+dovecot"


@dataclass
class Row:
    target: str
    size: int
    messages: int
    accepted_s: float  # until the last 250
    delivered_s: float  # until the last message is in its mailbox
    cpu: float
    result: LoadResult

    @property
    def rate(self) -> float:
        return self.messages / self.delivered_s

    @property
    def accept_rate(self) -> float:
        return self.messages / self.accepted_s


def build_jobs(count: int, size: int, tag: str) -> list[Job]:
    now = format_datetime(datetime.datetime.now(datetime.UTC))
    jobs = []
    body = None
    for i in range(count):
        rcpt = BOXES[i % len(BOXES)]
        head = (
            f"From: Dr Durand <{PEER_SENDER}>\r\nTo: <{rcpt}>\r\n"
            f"Subject: Compte rendu {tag} {i}\r\nDate: {now}\r\n"
            f"Message-ID: <{tag}.{i}.{time.monotonic_ns()}@peer-demo.mssante.fr>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        ).encode()
        if body is None:
            body = make_body(max(64, size - len(head)))
        jobs.append(Job(PEER_SENDER, (rcpt,), head + body))
    return jobs


class Profiler:
    """``py-spy record --gil`` on our server (samples only the thread holding the GIL, i.e.
    where Python CPU time goes), collapsed stacks."""

    def __init__(self, pid: int, out: Path) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(exe).exists():
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
        argv = [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "200"]
        argv += ["--gil", "--nonblocking", "--output", str(out)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let it attach

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# Where a sample's time goes, first match wins (substrings of the collapsed stack).
_CATEGORIES = [
    ("background workers (relay, filing: queue polling)", ("work_loop", "RelayWorker")),
    ("blob write + fsync, MIME metadata (thread)", ("_prepare (storage/delivery",)),
    ("aiosqlite worker thread (sqlite3 calls)", ("aiosqlite/core.py", "aiosqlite/cursor")),
    ("SQLAlchemy ORM/Core (Python)", ("sqlalchemy",)),
    ("DKIM verification", ("dkim",)),
    ("TLS (ssl module)", ("ssl.py", "sslproto")),
    ("SMTP protocol (aiosmtpd, smtp/server.py)", ("aiosmtpd", "smtp/server.py")),
    ("asyncio event loop", ("asyncio", "selectors")),
]


def summarise_profile(path: Path, top: int = 20) -> str:
    own: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    cats: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        n = int(count_text)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            if any(f"({pkg}/" in f for pkg in ("smtp", "routing", "storage", "directory")):
                ours[f] += n
        cats[next((c for c, keys in _CATEGORIES if any(k in stack for k in keys)), "other")] += n
    if not total:
        return "(no samples)"
    lines = [f"{total} samples (GIL held); by area:"]
    lines += [f"  {100 * n / total:5.1f}%  {c}" for c, n in cats.most_common()]
    lines.append("self time:")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("inclusive time, project frames:")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in ours.most_common(top)]
    return "\n".join(lines)


@dataclass
class Target:
    name: str
    port: int
    pids: Callable[[], list[int]]  # the server side's processes, for CPU accounting
    delivered: Callable[[], int] | None  # messages in the mailboxes (None: 250 = delivered)
    expected: int = 0  # what ``delivered`` must reach at the end of the current run


def measure(
    target: Target,
    ctx: ssl.SSLContext,
    jobs: Sequence[Job],
    sessions: int,
    server_name: str,
    size: int,
) -> Row:
    target.expected += len(jobs)
    cpu0 = tree_cpu(target.pids())
    result = asyncio.run(run_load("127.0.0.1", target.port, ctx, jobs, sessions=sessions,
                                  server_hostname=server_name))  # fmt: skip
    accepted_at = time.perf_counter()
    if result.errors:
        raise SystemExit(f"{target.name}: {len(result.errors)} session errors: {result.errors[0]}")
    if target.delivered is not None:
        deadline = time.monotonic() + 600
        while target.delivered() < target.expected:
            if time.monotonic() > deadline:
                raise SystemExit(f"{target.name}: {target.delivered()} of {target.expected} "
                                 "delivered")  # fmt: skip
            time.sleep(0.01)
    done_at = time.perf_counter()
    cpu1 = tree_cpu(target.pids())
    return Row(target.name, size, len(jobs), accepted_at - result.started,
               done_at - result.started, cpu1 - cpu0, result)  # fmt: skip


def table(rows: list[Row]) -> str:
    head = (
        "| size | server | messages | msg/s (delivered) | msg/s (accepted) | CPU s | CPU ms/msg "
        "| p50 ms | p99 ms |"
    )
    out = [head, "|" + "---|" * 9]
    for r in rows:
        lat = r.result.latencies
        out.append(
            f"| {r.size // 1024} KB | {r.target} | {r.messages} | {r.rate:.0f} | "
            f"{r.accept_rate:.0f} | {r.cpu:.1f} | {1000 * r.cpu / r.messages:.1f} | "
            f"{1000 * percentile(lat, 50):.1f} | {1000 * percentile(lat, 99):.1f} |"
        )
    by_size: dict[int, dict[str, Row]] = collections.defaultdict(dict)
    for r in rows:
        by_size[r.size][r.target] = r
    for size, pair in by_size.items():
        if "ours" in pair and POSTFIX in pair:
            ours, theirs = pair["ours"], pair[POSTFIX]
            out.append(
                f"\n{size // 1024} KB: ours / Postfix+Dovecot = {ours.rate / theirs.rate:.2f}x "
                f"throughput, {ours.cpu / ours.messages / (theirs.cpu / theirs.messages):.2f}x "
                "CPU per message"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=2000, help="per size and server")
    ap.add_argument("--size", type=int, action="append", help="message size in bytes")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=200, help="messages before measuring")
    ap.add_argument("--only", choices=["ours", "postfix"])
    ap.add_argument("--profile", type=Path, help="py-spy our server into this directory")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--processes", type=int, help="our server.processes (default: as shipped)")
    args = ap.parse_args(argv)
    sizes = args.size or [2048, 102400]
    if args.only != "ours":
        for missing in (postfix_missing(), dovecot_missing()):
            if missing:
                raise SystemExit(missing)

    work = Path(tempfile.mkdtemp(prefix="bench-smtp-", dir="/tmp"))
    print(f"work directory {work}; {os.cpu_count()} CPUs", flush=True)
    inst = Instance(work)
    inst.add_boxes(BOXES)
    inst.edit_config(limits={"connections_per_address": 1000})
    if args.processes:
        inst.edit_config(server={"processes": args.processes})
    peer = inst.demo["peer_operator"]
    server = inst.demo["server"]
    ca = inst.path(inst.demo["trust"]["ca_bundle"])
    ctx = ssl.create_default_context(cafile=str(ca))  # both present our server certificate
    ctx.load_cert_chain(inst.path(peer["chain"]), inst.path(peer["key"]))

    dovecot: DovecotLMTP | None = None
    postfix: PostfixPeer | None = None
    targets: list[Target] = []
    rows: list[Row] = []
    try:
        if args.only != "postfix":
            pid = inst.start()
            targets.append(Target("ours", inst.port("smtp_inbound"),
                                  lambda: [pid, *descendants(pid)], None))  # fmt: skip
        if args.only != "ours":
            dc = dovecot = DovecotLMTP("bench-dovecot").start()
            pf = postfix = PostfixPeer(
                domain="demo.mssante.fr",
                hostname=server["hostname"],
                chain=inst.path(server["chain"]),
                key=inst.path(server["key"]),
                ca_file=ca,
                name="bench",
                settings={"virtual_transport": f"lmtp:unix:{dovecot.lmtp_socket}"},
            ).start()
            targets.append(Target(POSTFIX, postfix.port,
                                  lambda: pf.processes() + dc.processes(), dc.count))  # fmt: skip
        for size in sizes:
            for target in targets:
                warm = build_jobs(args.warmup, size, f"warm{size}")
                measure(target, ctx, warm, args.sessions, server["hostname"], size)
                prof = None
                if args.profile and target.name == "ours":
                    args.profile.mkdir(parents=True, exist_ok=True)
                    prof = Profiler(targets[0].pids()[0], args.profile / f"ours-{size}.txt")
                meas = build_jobs(args.messages, size, f"run{size}")
                rows.append(measure(target, ctx, meas, args.sessions, server["hostname"], size))
                if prof is not None:
                    prof.stop()
                print(f"  {target.name} {size} B done", flush=True)
        if args.only != "postfix":
            stored = inst.count_messages()
            expected = targets[0].expected
            print(f"our mailboxes hold {stored} messages (expected {expected})")
            if stored != expected:
                raise SystemExit("message count mismatch")
    finally:
        inst.stop()
        if postfix is not None:
            postfix.close()
        if dovecot is not None:
            dovecot.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{datetime.date.today()}, {os.cpu_count()} CPUs, {args.sessions} sessions, "
          f"mutual TLS, {args.messages} messages per run")  # fmt: skip
    print(table(rows))
    if args.profile:
        for size in sizes:
            f = args.profile / f"ours-{size}.txt"
            if f.exists():
                print(f"\nprofile of our server at {size} B ({f}):")
                print(summarise_profile(f))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

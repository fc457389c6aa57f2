"""Benchmark: laboratory results delivered and filed into the patients' dossiers (issue #4,
Performance).

A fresh ``mailserver init --demo`` (embedded SQLite; bench/mailserver_instance.py), ``N``
patients created in bulk before timing, then the demo laboratory's APP box
(``laboratoire@demo.mssante.fr``, STARTTLS + ``AUTH EXTERNAL`` with its organisation
certificate, as bench/lab_burst.py does) sends ``N`` messages in **one** connection,
MAIL/RCPT/DATA pipelined, each to a different patient. Every message is what a laboratory
sends (tests/xdm_fixtures.py): a text part and an ``IHE_XDM.ZIP`` holding METADATA.XML, a CDA
R2 N3 laboratory report (LOINC 11502-2) for that patient's INS (its own uniqueId) and its PDF
rendition ``DOC0001.PDF`` (``pdf_bytes(size=100 KB)``, distinct per patient). The server's
filing worker files one dossier document (CDA + rendition) per message.

    .venv/bin/python -m bench.filing_bench [--messages 10000] [--pdf-size 102400]
        [--compressible-pdf] [--profile FILE] [--keep]

The PDF is padded with incompressible bytes (bench/lab_burst.py ``make_pdf``: like a scanned
report, whose streams are already compressed), so the archive is ~100 KB and the message
~140 KB on the wire. ``--compressible-pdf`` uses tests/xdm_fixtures.py ``pdf_bytes``
instead, whose padding is ``%`` repeated: deflated ~200:1 in the ZIP, above the configured
compression-ratio bound (100), so every archive is refused as a zip bomb (code
``archive-bomb``, a notice to the laboratory) and nothing is filed.

Measured:

* delivery: messages/s from writing the first MAIL to reading the last 250; SMTP transaction
  latency p50/p99 (MAIL to its 250);
* filing: documents/s from the first job finished to the last (``filing_jobs.finished_at``),
  and overall from the first MAIL until the queue is empty;
* delivery-to-dossier latency p50/p99/max per message, two ways: ``finished_at -
  created_at`` of its filing job as the server stamps them (created in the delivery
  transaction; finished is stamped by the worker *before* the transaction that files the
  batch commits), and "observed": when this benchmark, polling the database every 0.2 s,
  first sees the job finished (committed, i.e. visible in the dossier) minus ``created_at``
  (so up to 0.2 s too high);
* backlog: ``SELECT count(*) FROM filing_jobs WHERE state='queued'`` every second (leased
  jobs being filed still count), its maximum, and the drain time from the last 250 until it
  is 0;
* errors (SMTP refusals, failed or retried jobs, refused attachments, notices, ERROR lines in
  the server log) must all be 0, and exactly N documents must be filed, one per patient, each
  with its rendition.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import sqlite3
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.lab_burst import make_pdf  # noqa: E402
from bench.mailserver_instance import Instance, generate_ins  # noqa: E402
from bench.smtp_inbound import Profiler, summarise_profile  # noqa: E402
from bench.smtp_load import Job, LoadResult, percentile, run_session  # noqa: E402
from tests import xdm_fixtures as fx  # noqa: E402
from tests.peers.postfix import descendants, process_tree_cpu  # noqa: E402

LAB = "laboratoire@demo.mssante.fr"
FIXTURE_MESSAGE_ID = b"<20240315110500.42@labo-lilas.mssante.fr>"


# --- the messages ----------------------------------------------------------------------------


def result_message(ins: str, number: int, pdf_size: int, random_pdf: bool) -> bytes:
    """The laboratory's message for ``ins``: text + IHE_XDM.ZIP (CDA N3 + DOC0001.PDF)."""
    report_id = f"CRBIO-BENCH-{number:06d}"
    cda = fx.cda_lab_report(ins=ins, document_id=("1.2.250.1.999.1.1.9", report_id))
    docs = fx.lab_docs(
        unique_id=f"1.2.250.1.999.1.1.9^{report_id}", patient_id=fx.patient_cx(ins), content=cda
    )
    if random_pdf:
        pdf = make_pdf(pdf_size, ins)
    else:
        pdf = fx.pdf_bytes(f"Compte rendu de biologie - INS {ins}", size=pdf_size)
    archive = fx.xdm_zip(docs, extra={"IHE_XDM/SUBSET01/DOC0001.PDF": pdf})
    data = fx.mime_message(
        [fx.Part(archive)],
        recipient_ins=ins,
        sender=LAB,
        subject=f"XDM/1.0/DDM+CR de biologie (dossier {number:06d})",
    )
    # every message its own Message-ID, as real sending software does
    own = f"<resultat.{number}.{time.monotonic_ns()}@demo.mssante.fr>".encode()
    assert FIXTURE_MESSAGE_ID in data
    data = data.replace(FIXTURE_MESSAGE_ID, own, 1)
    assert data.endswith(b"\r\n") and b"\r\n." not in data  # no dot-stuffing needed
    return data


def make_jobs(inss: list[str], domain: str, pdf_size: int, random_pdf: bool) -> Iterator[Job]:
    for number, ins in enumerate(inss):
        data = result_message(ins, number, pdf_size, random_pdf)
        yield Job(LAB, (f"{ins.lower()}@{domain}",), data)


@dataclass
class SendClock:
    """When the first MAIL was written and each 250 read (the load generator asks for the
    next job right after the previous one's 250)."""

    first_mail: float = 0.0  # perf_counter
    acked: list[float] = field(default_factory=list)  # perf_counter of each 250


def timed(jobs: Iterable[Job], clock: SendClock) -> Iterator[Job]:
    first = True
    for job in jobs:
        if first:
            clock.first_mail = time.perf_counter()
            first = False
        yield job
        clock.acked.append(time.perf_counter())


# --- watching the database -------------------------------------------------------------------


def _epoch(value: str | None) -> float | None:
    """A UTCDateTime column as SQLite stores it (naive UTC text) -> seconds since the epoch."""
    if value is None:
        return None
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC).timestamp()


class Watcher(threading.Thread):
    """Polls the server's database (its own read connection, WAL: it never blocks a writer):
    every 0.2 s which jobs are finished (first time seen, wall clock), every 1 s the queued
    backlog and the load average."""

    def __init__(self, db: Path, t0: float) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.t0 = t0  # perf_counter origin of the timeline
        self.seen: dict[int, float] = {}  # job id -> wall time first seen finished
        self.backlog: list[tuple[float, int, int, float]] = []  # (t, queued, jobs, load1)
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.db, timeout=30, isolation_level=None)
            next_sample = 0.0
            while not self.stop.is_set():
                now = time.perf_counter()
                wall = time.time()
                for (job_id,) in conn.execute(
                    "SELECT id FROM filing_jobs WHERE finished_at IS NOT NULL"
                ):
                    if job_id not in self.seen:
                        self.seen[job_id] = wall
                if now >= next_sample:
                    queued, total = conn.execute(
                        "SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FROM filing_jobs"
                    ).fetchone()
                    self.backlog.append((now - self.t0, queued, total, os.getloadavg()[0]))
                    next_sample = now + 1.0
                self.stop.wait(0.2)
            conn.close()
        except Exception as exc:  # reported, the run fails
            self.error = f"{type(exc).__name__}: {exc}"

    def last(self) -> tuple[float, int, int, float]:
        return self.backlog[-1] if self.backlog else (0.0, -1, -1, 0.0)


def refile(inst: Instance, db_path: Path, work: Path) -> tuple[int, float, float]:
    """Filing capacity: with the server stopped, empty the dossier and queue every job
    again, restart, time the worker draining the queue with no delivery competing."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM dossier_documents")
        conn.execute(
            "UPDATE filing_jobs SET state = 'queued', attempts = 0, next_attempt_at = ?, "
            "finished_at = NULL, outcome = '', last_error = NULL",
            (now,),
        )
    inst.log = work / "server-refile.log"  # start() waits for "ready" in a fresh log
    inst.start()
    t0 = time.perf_counter()
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    try:
        while True:
            (queued,) = conn.execute(
                "SELECT count(*) FROM filing_jobs WHERE state = 'queued'"
            ).fetchone()
            if queued == 0:
                break
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        (docs,) = conn.execute("SELECT count(*) FROM dossier_documents").fetchone()
    finally:
        conn.close()
    inst.stop()
    return docs, seconds, os.getloadavg()[0]


# --- the run ---------------------------------------------------------------------------------


def _fmt_ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--pdf-size", type=int, default=100 * 1024)
    ap.add_argument(
        "--compressible-pdf",
        dest="random_pdf",
        action="store_false",
        help="pdf_bytes padding (refused as a zip bomb, see above)",
    )
    ap.add_argument("--drain-timeout", type=float, default=1800, help="seconds after the burst")
    ap.add_argument(
        "--refile",
        action="store_true",
        help="then re-file every job with the server otherwise idle (capacity)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--profile", type=Path, help="py-spy the server into this file")
    args = ap.parse_args(argv)
    n_msgs = args.messages

    work = Path(tempfile.mkdtemp(prefix="bench-filing-", dir="/tmp"))
    print(f"work directory {work}; {os.cpu_count()} CPUs; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)  # fmt: skip
    run_started = time.perf_counter()
    inst = Instance(work)
    db_path = inst.path("data/mailserver.db")
    errors: list[str] = []
    try:
        inss = list(generate_ins(n_msgs))
        t = time.perf_counter()
        inst.add_patients(inss)
        created = time.perf_counter() - t
        print(f"{n_msgs} patients created in {created:.1f} s", flush=True)
        domain = inst.demo["patient_domain"]
        sample = result_message(inss[0], 0, args.pdf_size, args.random_pdf)
        jobs: Iterable[Job]
        if len(sample) * n_msgs < 2e9:  # build them all beforehand: no client CPU in the run
            t = time.perf_counter()
            jobs = list(make_jobs(inss, domain, args.pdf_size, args.random_pdf))
            print(f"{n_msgs} messages of ~{len(sample)} bytes built in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)  # fmt: skip
        else:
            jobs = make_jobs(inss, domain, args.pdf_size, args.random_pdf)

        lab = inst.account(LAB)
        ctx = ssl.create_default_context(cafile=str(inst.path(inst.demo["trust"]["ca_bundle"])))
        ctx.load_cert_chain(inst.path(lab["chain"]), inst.path(lab["key"]))
        pid = inst.start()
        cpu0 = process_tree_cpu([pid, *descendants(pid)])
        prof = Profiler(pid, args.profile) if args.profile else None
        load_before = os.getloadavg()

        clock = SendClock()
        result = LoadResult(sessions=1)
        origin = time.perf_counter()
        watcher = Watcher(db_path, origin)
        watcher.start()
        result.started = origin
        try:
            asyncio.run(run_session("127.0.0.1", inst.port("submission"), ctx,
                                    timed(jobs, clock), result, helo="automate.labo.test",
                                    auth_external=True,
                                    server_hostname=inst.demo["server"]["hostname"]))  # fmt: skip
        except Exception as exc:
            errors.append(f"SMTP after {len(result.latencies)} messages: "
                          f"{type(exc).__name__}: {exc}")  # fmt: skip
        result.finished = time.perf_counter()
        last_250 = clock.acked[-1] if clock.acked else result.finished
        sent = len(result.latencies)
        print(f"burst done: {sent} messages in {last_250 - clock.first_mail:.1f} s; "
              f"backlog {watcher.last()[1]} queued", flush=True)  # fmt: skip

        # Drain: until every delivered message's job exists and none is queued.
        deadline = time.perf_counter() + args.drain_timeout
        drained_at = None
        last_report = time.perf_counter()
        while time.perf_counter() < deadline and watcher.is_alive():
            _t, queued, total, _load = watcher.last()
            if total >= sent and queued == 0:
                drained_at = time.perf_counter()
                break
            if time.perf_counter() - last_report > 30:
                print(f"  draining: {queued} queued", flush=True)
                last_report = time.perf_counter()
            time.sleep(0.2)
        if drained_at is None:
            errors.append(f"the filing queue did not drain within {args.drain_timeout:.0f} s")
            drained_at = time.perf_counter()
        # The watcher samples at most every 0.2 s (drain time is up to 0.2 s too high).
        time.sleep(0.5)  # a last look at the finished jobs
        watcher.stop.set()
        watcher.join(10)
        if watcher.error:
            errors.append(f"watcher: {watcher.error}")
        if prof is not None:
            prof.stop()
        cpu = process_tree_cpu([pid, *descendants(pid)]) - cpu0
        load_after = os.getloadavg()
    finally:
        inst.stop()

    # --- figures from the database (server stopped) ----------------------------------------
    with sqlite3.connect(db_path) as conn:
        job_rows = conn.execute(
            "SELECT id, state, attempts, last_error, outcome, created_at, finished_at "
            "FROM filing_jobs"
        ).fetchall()
        n_docs, n_patients, n_renditions = conn.execute(
            "SELECT count(*), count(DISTINCT patient_id), count(rendition_blob_sha256) "
            "FROM dossier_documents"
        ).fetchone()
        stored = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    log_text = inst.log.read_text(errors="replace")
    refiled = None
    if args.refile:
        try:
            refiled = refile(inst, db_path, work)
        finally:
            inst.stop()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)

    states: dict[str, int] = {}
    db_lat: list[float] = []
    seen_lat: list[float] = []
    finished: list[float] = []
    refused = retried = 0
    for job_id, state, _attempts, last_error, outcome, created_at, finished_at in job_rows:
        states[state] = states.get(state, 0) + 1
        if last_error:
            retried += 1
        if outcome and json.loads(outcome).get("refused"):
            refused += 1
        c, f = _epoch(created_at), _epoch(finished_at)
        if c is not None and f is not None:
            db_lat.append(f - c)
            finished.append(f)
            if job_id in watcher.seen:
                seen_lat.append(watcher.seen[job_id] - c)
    error_lines = [ln for ln in log_text.splitlines() if " ERROR " in ln or "Traceback" in ln]
    if states.get("failed"):
        errors.append(f"{states['failed']} filing jobs failed")
    if states.get("notify") or refused:
        errors.append(f"{refused} jobs refused something ({states.get('notify', 0)} notices owed)")
    if retried:
        errors.append(f"{retried} jobs were retried (last_error set)")
    if error_lines:
        errors.append(f"{len(error_lines)} ERROR lines in the server log, first: {error_lines[0]}")
    if len(job_rows) != n_msgs:
        errors.append(f"{len(job_rows)} filing jobs for {n_msgs} messages")
    if (n_docs, n_patients, n_renditions) != (n_msgs, n_msgs, n_msgs):
        errors.append(f"{n_docs} documents filed for {n_patients} patients, "
                      f"{n_renditions} with their rendition; {n_msgs} expected")  # fmt: skip

    # --- report ------------------------------------------------------------------------------
    sent = len(result.latencies)
    delivery_s = last_250 - clock.first_mail
    overall_s = drained_at - clock.first_mail
    filing_span = (max(finished) - min(finished)) if len(finished) > 1 else float("nan")
    backlog_max = max((b[1] for b in watcher.backlog), default=0)
    loads = [b[3] for b in watcher.backlog]
    kind = "random (incompressible)" if args.random_pdf else "pdf_bytes (compressible)"
    print()
    print(f"{dt.date.today()}, {os.cpu_count()} CPUs, SQLite, one connection, N = {n_msgs}; "
          f"messages of {len(sample)} bytes (XDM: CDA N3 + {args.pdf_size // 1024} KB PDF, "
          f"{kind} padding); patients created in {created:.0f} s; whole run "
          f"{time.perf_counter() - run_started:.0f} s")  # fmt: skip
    print(f"load average (1 min) before {load_before[0]:.2f}, during "
          f"{min(loads, default=0):.2f}-{max(loads, default=0):.2f}, after "
          f"{load_after[0]:.2f}; server CPU {cpu:.0f} s "
          f"({1000 * cpu / max(sent, 1):.0f} ms/message, delivery + filing)")  # fmt: skip
    print()
    print("| delivered | delivery s | msg/s | SMTP p50 ms | SMTP p99 ms | filed docs | "
          "filing docs/s (first→last job) | docs/s overall (to empty queue) | "
          "backlog max | drain after last 250 s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {sent} / {n_msgs} | {delivery_s:.1f} | {sent / delivery_s:.1f} | "
          f"{_fmt_ms(percentile(result.latencies, 50))} | "
          f"{_fmt_ms(percentile(result.latencies, 99))} | {n_docs} | "
          f"{len(finished) / filing_span:.1f} | {n_docs / overall_s:.1f} | {backlog_max} | "
          f"{drained_at - last_250:.1f} |")  # fmt: skip
    print()
    print("| delivery → dossier latency | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|")
    measures = [
        ("finished_at − created_at (server stamps)", db_lat),
        ("observed committed − created_at (0.2 s polling)", seen_lat),
    ]
    for label, values in measures:
        print(f"| {label} | {_fmt_ms(percentile(values, 50))} | "
              f"{_fmt_ms(percentile(values, 99))} | "
              f"{_fmt_ms(max(values, default=float('nan')))} |")  # fmt: skip
    print()
    print(f"messages stored {stored}; jobs {len(job_rows)} {states}; documents {n_docs} for "
          f"{n_patients} patients, {n_renditions} with rendition")  # fmt: skip
    step = max(1, len(watcher.backlog) // 20)
    timeline = ", ".join(f"{t:.0f}s:{q}" for t, q, _n, _l in watcher.backlog[::step])
    print(f"backlog (queued jobs) over time: {timeline}")
    if refiled is not None:
        docs, seconds, load = refiled
        print(f"re-filing alone (every job queued again, dossier emptied, server restarted "
              f"with nothing else to do): {docs} documents in {seconds:.1f} s = "
              f"{docs / seconds:.1f} documents/s (load average {load:.2f})")  # fmt: skip
        if docs != n_msgs:
            errors.append(f"re-filing filed {docs} documents, {n_msgs} expected")
    if args.profile:
        print(f"\nprofile of the server ({args.profile}):")
        print(summarise_profile(args.profile))
    if errors:
        print("\nERRORS:")
        for e in errors:
            print(f"  {e}")
        return 1
    print("\nerrors: 0")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

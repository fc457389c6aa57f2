"""Benchmark: a laboratory burst (issue #3, Performance).

The demo laboratory's APP box (``laboratoire@demo.mssante.fr``) authenticates on the
submission port with its organisation certificate (STARTTLS, ``AUTH EXTERNAL``) and sends
``--messages`` results (10,000), each a ``multipart/mixed`` message with a text part and a
``--pdf-size`` PDF report (100 KB, distinct per patient), to as many different patients, in
**one** SMTP connection, MAIL/RCPT/DATA pipelined. Every transaction must get its 250; the
run fails at the first refusal.

The patients are created beforehand in bulk (the directory functions ``mailserver patient
add`` uses, 1,000 per transaction), not timed with the burst. Our server runs as a
subprocess of a fresh ``mailserver init --demo`` (embedded SQLite unless ``--postgresql``,
which starts a throwaway, durable PostgreSQL from Debian's binaries).

    .venv/bin/python -m bench.lab_burst [--messages 10000] [--pdf-size 102400] [--postgresql]
        [--profile FILE]

Reported: patients creation time, burst duration, messages/s, MB/s, CPU seconds of the
server, p50/p99 transaction latency, and the count of messages found in the patients'
boxes afterwards (SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import hashlib
import os
import shutil
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.mailserver_instance import Instance, generate_ins  # noqa: E402
from bench.smtp_inbound import Profiler, summarise_profile  # noqa: E402
from bench.smtp_load import Job, LoadResult, percentile, run_session  # noqa: E402
from tests.peers.postfix import descendants, process_tree_cpu  # noqa: E402

LAB = "laboratoire@demo.mssante.fr"


def make_pdf(size: int, ins: str) -> bytes:
    """A small valid PDF (one page saying whose result it is) padded to ``size`` bytes with
    an unreferenced stream of pseudo-random bytes (standing in for an embedded scan)."""
    text = f"BT /F1 14 Tf 72 720 Td (Compte rendu de biologie - INS {ins}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]

    def assemble(filler: bytes) -> bytes:
        objs = [*objects, b"<< /Length %d >>\nstream\n" % len(filler) + filler + b"\nendstream"]
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(objs, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
        out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
            len(objs) + 1,
            xref,
        )
        return bytes(out)

    seed = hashlib.sha256(ins.encode()).digest()
    overhead = len(assemble(b""))
    need = max(0, size - overhead)
    noise = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest()
                     for i in range(need // 32 + 2))  # fmt: skip
    pdf = assemble(noise[:need])
    return assemble(noise[: need - (len(pdf) - size)])  # the /Length digits: exact size


def result_message(ins: str, patient: str, pdf_size: int, number: int) -> bytes:
    boundary = f"=_resultat_{number:06d}"
    pdf = base64.encodebytes(make_pdf(pdf_size, ins)).replace(b"\n", b"\r\n")
    head = (
        f"From: Laboratoire de biologie <{LAB}>\r\n"
        f"To: <{patient}>\r\n"
        f"Subject: =?utf-8?q?Vos_r=C3=A9sultats_d=27analyses?= (dossier {number:06d})\r\n"
        f"Date: {format_datetime(datetime.datetime.now(datetime.UTC))}\r\n"
        f"Message-ID: <resultat.{number}.{time.monotonic_ns()}@demo.mssante.fr>\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "Bonjour,\r\n\r\nVos r=C3=A9sultats sont joints =C3=A0 ce message.\r\n\r\n"
        "Le laboratoire\r\n"
        f"--{boundary}\r\n"
        "Content-Type: application/pdf; name=resultats.pdf\r\n"
        "Content-Disposition: attachment; filename=resultats.pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
    ).encode()
    return head + pdf + f"--{boundary}--\r\n".encode()


def jobs(inss: list[str], patient_domain: str, pdf_size: int) -> Iterator[Job]:
    for number, ins in enumerate(inss):
        patient = f"{ins.lower()}@{patient_domain}"
        yield Job(LAB, (patient,), result_message(ins, patient, pdf_size, number))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--pdf-size", type=int, default=100 * 1024)
    ap.add_argument("--postgresql", action="store_true", help="PostgreSQL instead of SQLite")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--profile", type=Path, help="py-spy the server into this file")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-lab-", dir="/tmp"))
    print(f"work directory {work}; {os.cpu_count()} CPUs", flush=True)
    pg = None
    url = None
    if args.postgresql:
        from tests.pg import PostgresServer

        pg = PostgresServer(durable=True)
        pg.start()
        url = pg.create_database("bench_lab")
    inst = Instance(work, database_url=url)
    try:
        inss = list(generate_ins(args.messages))
        t0 = time.perf_counter()
        inst.add_patients(inss)
        created = time.perf_counter() - t0
        print(f"{len(inss)} patients created in {created:.1f} s", flush=True)
        before = 0 if args.postgresql else inst.count_messages()

        lab = inst.account(LAB)
        ctx = ssl.create_default_context(cafile=str(inst.path(inst.demo["trust"]["ca_bundle"])))
        ctx.load_cert_chain(inst.path(lab["chain"]), inst.path(lab["key"]))
        pid = inst.start()
        pids = [pid, *descendants(pid)]
        cpu0 = process_tree_cpu(pids)
        prof = Profiler(pid, args.profile) if args.profile else None
        result = LoadResult(sessions=1)
        sample = result_message(inss[0], "x@patient.mssante.fr", args.pdf_size, 0)
        result.started = time.perf_counter()
        error = None
        try:
            asyncio.run(run_session("127.0.0.1", inst.port("submission"), ctx,
                                    jobs(inss, inst.demo["patient_domain"], args.pdf_size),
                                    result, helo="automate.labo.test", auth_external=True,
                                    server_hostname=inst.demo["server"]["hostname"]))  # fmt: skip
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        result.finished = time.perf_counter()
        if prof is not None:
            prof.stop()
        cpu = process_tree_cpu([pid, *descendants(pid)]) - cpu0
        stored = None if args.postgresql else inst.count_messages() - before
    finally:
        inst.stop()
        if pg is not None:
            pg.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    n = len(result.latencies)
    mb = n * len(sample) / 1e6
    lat = result.latencies
    print()
    print(f"{datetime.date.today()}, {os.cpu_count()} CPUs, "
          f"{'PostgreSQL' if args.postgresql else 'SQLite'}, one connection, "
          f"messages of {len(sample)} bytes ({args.pdf_size // 1024} KB PDF)")  # fmt: skip
    print("| messages sent | refused/errors | duration | msg/s | MB/s | CPU s | p50 ms | p99 ms "
          "| messages stored |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {n} / {args.messages} | {0 if error is None else 1} | {result.elapsed:.1f} s | "
          f"{n / result.elapsed:.1f} | {mb / result.elapsed:.1f} | {cpu:.1f} | "
          f"{1000 * percentile(lat, 50):.1f} | {1000 * percentile(lat, 99):.1f} | "
          f"{'n/a' if stored is None else stored} |")  # fmt: skip
    if args.profile:
        print(f"\nprofile of the server ({args.profile}):")
        print(summarise_profile(args.profile))
    if error is not None:
        print(f"ERROR after {n} messages: {error}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

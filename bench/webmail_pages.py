"""Benchmark: patient webmail page latency (issue #6, Performance).

Target: every page renders in **≤ 200 ms p99** for a patient with 1,000 messages and 500
documents.

    .venv/bin/python -m bench.webmail_pages [--messages 1000] [--documents 500]
        [--requests 200] [--concurrency 10] [--profile DIR] [--keep] [--processes N]

A fresh ``mailserver init --demo`` (embedded SQLite; bench/mailserver_instance.py). Before the
server starts, the demo patient 146026322000196 is filled through the storage API (what
``MessageStore.store`` and the filing worker do, without the pipeline): ``messages`` messages
in INBOX from the demo professional and the demo laboratory (``XDM/1.0/DDM+`` subjects, one in
three with a PDF attachment, one in four with an HTML alternative, two in three read), each
with its ``message.deliver`` audit event, written with ``BlobStore.put`` + ``parse_metadata``
+ ``append_message`` in transactions of 250; then ``documents`` dossier documents
(``storage.dossier.file_documents``, a distinct PDF blob each, provenance one of the messages
with an attachment, each with its ``document.file`` audit event).

Then ``mailserver serve`` runs as a subprocess and this process logs in over HTTPS like a
patient (password, then the one-time code read from DATA/outbox) with httpx (``verify=False``)
and requests each page ``requests`` times one after the other, then again with
``concurrency`` clients sharing the session (``requests`` requests in all per page). Latency
is from sending the request to having read the whole body; every answer must be a 200. The
lists are paged (50 rows): the first and last pages of the inbox and the dossier, the first
page and page 20 of the access log (which has more than 1,500 events by then).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from bench.mailserver_instance import Instance  # noqa: E402
from mailserver.config import load_config  # noqa: E402
from storage import audit  # noqa: E402
from storage.blobs import BlobStore  # noqa: E402
from storage.db import open_database  # noqa: E402
from storage.delivery import append_message, record_blob  # noqa: E402
from storage.dossier import Provenance, file_documents  # noqa: E402
from storage.mime import parse_metadata  # noqa: E402
from storage.models import Account, Folder  # noqa: E402
from tests.xdm_fixtures import pdf_bytes  # noqa: E402
from webmail.dossier import Author, SavedAttachment  # noqa: E402

PATIENT = "146026322000196@patient.mssante.fr"
INS = "146026322000196"
CAMILLE = "camille.martin@demo.mssante.fr"
LAB = "laboratoire@demo.mssante.fr"
TARGET_MS = 200.0
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
PAGE_SIZE = 50  # webmail/context.py WebmailSettings.page_size: inbox, dossier, access log

DOC_TYPES = [
    ("11502-2", "CR d'examens biologiques", "Laboratoire Demo", "Biologie médicale"),
    ("11488-4", "Note de consultation", "Cabinet Demo", "Médecine générale"),
    ("18748-4", "CR d'imagerie médicale", "Centre d'imagerie Demo", "Radiologie"),
    ("34133-9", "Synthèse d'épisode de soin", "Hôpital Demo", "Médecine interne"),
]


# --- filling the patient -------------------------------------------------------------------


def make_message(n: int, now: datetime) -> tuple[bytes, bool]:
    lab = n % 2 == 0
    sender = LAB if lab else CAMILLE
    m = EmailMessage()
    m["From"] = f"Laboratoire Demo <{sender}>" if lab else f"Dr Camille Martin <{sender}>"
    m["To"] = PATIENT
    what = "Résultats d'analyses" if lab else "Compte rendu de consultation"
    m["Subject"] = f"XDM/1.0/DDM+ {what} n° {n + 1}"
    m["Date"] = (now - timedelta(hours=1000 - n)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    m["Message-ID"] = f"<bench-{n}@demo.mssante.fr>"
    body = (
        "Bonjour,\n\nVeuillez trouver ci-joint "
        + what.lower()
        + ".\n\n"
        + "Ligne de compte rendu sans donnée réelle. " * 20
        + "\n\nCordialement,\n"
    )
    m.set_content(body)
    if n % 4 == 1:
        m.add_alternative(
            f"<html><body><p>Bonjour,</p><p><b>{what}</b> n° {n + 1}.</p>"
            + "<p>Paragraphe de texte.</p>" * 20
            + "</body></html>",
            subtype="html",
        )
    attached = n % 3 == 0
    if attached:
        m.add_attachment(
            pdf_bytes(f"{what} {n + 1}", size=40_000),
            maintype="application",
            subtype="pdf",
            filename=f"compte-rendu-{n + 1}.pdf",
        )
    return m.as_bytes(policy=default.clone(linesep="\r\n")), attached


async def fill(inst: Instance, messages: int, documents: int, batch: int = 250) -> None:
    cfg = load_config(inst.config)
    db = await open_database(cfg.database_url)
    blobs = BlobStore(cfg.blob_dir)
    now = datetime.now(UTC)
    try:
        async with db.session() as s:
            patient_id = await s.scalar(select(Account.id).where(Account.address == PATIENT))
            assert patient_id is not None, "demo patient missing"
            inbox = await s.scalar(
                select(Folder.id).where(Folder.account_id == patient_id, Folder.name == "INBOX")
            )
            assert inbox is not None
        with_attachment: list[tuple[int, str, str]] = []  # (uid, message_id, sender)
        t = time.perf_counter()
        for start in range(0, messages, batch):
            prepared = []
            for n in range(start, min(messages, start + batch)):
                data, attached = make_message(n, now)
                prepared.append((n, blobs.put(data), parse_metadata(data), attached))
            async with db.write() as s:
                for n, ref, meta, attached in prepared:
                    await record_blob(s, ref)
                    msg = await append_message(s, inbox, ref, meta, flags="\\Seen" if n % 3 else "")
                    sender = LAB if n % 2 == 0 else CAMILLE
                    audit.record(
                        s,
                        audit.Actor(sender, "certificate", "127.0.0.1"),
                        "message.deliver",
                        object_type="message",
                        object_id=f"{inbox}:{msg.uid}",
                        patient_ins=INS,
                        detail={"message_id": meta.message_id, "sender": sender},
                    )
                    if attached:
                        with_attachment.append((msg.uid, meta.message_id or "", sender))
        print(f"  {messages} messages in {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        for start in range(0, documents, batch):
            prepared = []
            for i in range(start, min(documents, start + batch)):
                code, display, institution, specialty = DOC_TYPES[i % len(DOC_TYPES)]
                doc = SavedAttachment(
                    unique_id=f"1.2.250.1.999.1.{i + 1}",
                    mime_type="application/pdf",
                    title=f"{display} du patient, document {i + 1}",
                    author=Author("810000000001", "Dr Camille Martin", institution, specialty),
                    creation_time=now - timedelta(days=documents - i),
                    type_code=code,
                    type_display=display,
                    class_code="REPORTS",
                    format_code="urn:ihe:iti:xds:2017:mimeTypeSufficient",
                )
                content = blobs.put(pdf_bytes(f"{display} {i + 1}", size=20_000))
                uid, message_id, sender = with_attachment[i % len(with_attachment)]
                prov = Provenance(message_id, inbox, uid, sender, sender, "certificate", INS)
                prepared.append((doc, content, prov))
            async with db.write() as s:
                for doc, content, prov in prepared:
                    await record_blob(s, content)
                    result = await file_documents(s, patient_id, [(doc, content, None)], prov, now)
                    assert result.filed, result
        print(f"  {documents} documents in {time.perf_counter() - t:.1f} s", flush=True)
    finally:
        await db.close()


# --- the patient's browser -----------------------------------------------------------------


def last_code(outbox: Path, to: str) -> str:
    for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
        m = BytesParser(policy=default).parsebytes(path.read_bytes())
        if m["To"] == to and isinstance(m, EmailMessage):
            found = re.search(r"est : (\d{6})", str(m.get_content()))
            if found:
                return found.group(1)
    raise SystemExit(f"no login code for {to} in {outbox}")


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    if not found:
        raise SystemExit("no CSRF field in:\n" + html[:2000])
    return found.group(1)


async def login(c: httpx.AsyncClient, inst: Instance) -> None:
    account = inst.account(PATIENT)
    page = await c.get("/connexion")
    r = await c.post(
        "/connexion",
        data={
            "csrf": csrf_of(page.text),
            "identifiant": PATIENT,
            "mot_de_passe": account["password"],
        },
    )
    if r.status_code != 303:
        raise SystemExit(f"password step: {r.status_code}\n{r.text[:2000]}")
    page = await c.get("/connexion/code")
    outbox = load_config(inst.config).data_dir / "outbox"
    code = last_code(outbox, account["personal_email"])
    r = await c.post("/connexion/code", data={"csrf": csrf_of(page.text), "code": code})
    if r.status_code != 303 or r.headers.get("location") != "/messages":
        raise SystemExit(f"code step: {r.status_code}\n{r.text[:2000]}")


@dataclass
class Result:
    page: str
    mode: str
    times: list[float]  # ms
    size: int

    def pct(self, p: float) -> float:
        xs = sorted(self.times)
        return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


async def timed_get(c: httpx.AsyncClient, url: str) -> tuple[float, int]:
    t = time.perf_counter()
    r = await c.get(url)
    body = r.content
    elapsed = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise SystemExit(f"GET {url}: {r.status_code}\n{r.text[:2000]}")
    return elapsed, len(body)


async def sequential(c: httpx.AsyncClient, url: str, n: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(n):
        ms, size = await timed_get(c, url)
        times.append(ms)
    return times, size


async def concurrent(clients: list[httpx.AsyncClient], url: str, n: int) -> tuple[list[float], int]:
    times: list[float] = []
    size = 0
    remaining = n

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal remaining, size
        while remaining > 0:
            remaining -= 1
            ms, size = await timed_get(c, url)
            times.append(ms)

    await asyncio.gather(*(worker(c) for c in clients))
    return times, size


def client(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, verify=False, timeout=60)


async def measure(
    inst: Instance, pages: dict[str, str], n: int, concurrency: int, warmup: int
) -> list[Result]:
    base = f"https://127.0.0.1:{inst.port('webmail')}"
    results: list[Result] = []
    async with client(base) as c:
        await login(c, inst)
        for url in pages.values():
            await sequential(c, url, warmup)
        for name, url in pages.items():
            times, size = await sequential(c, url, n)
            results.append(Result(name, "sequential", times, size))
            print(f"  {name} sequential: p99 {results[-1].pct(99):.0f} ms", flush=True)
        others = [client(base) for _ in range(concurrency)]
        try:
            for o in others:
                o.cookies = c.cookies  # the same session, as several tabs would share it
            for name, url in pages.items():
                times, size = await concurrent(others, url, n)
                results.append(Result(name, f"{concurrency} clients", times, size))
                p99 = results[-1].pct(99)
                print(f"  {name} {concurrency} clients: p99 {p99:.0f} ms", flush=True)
        finally:
            for o in others:
                await o.aclose()
    return results


async def profile(inst: Instance, pid: int, pages: dict[str, str], out: Path, n: int) -> None:
    """py-spy record (--gil, raw collapsed stacks) while one client requests each page."""
    out.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    base = f"https://127.0.0.1:{inst.port('webmail')}"
    async with client(base) as c:
        await login(c, inst)
        for name, url in pages.items():
            target = out / f"{name.replace(' ', '_')}.txt"
            proc = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--gil",
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "-o",
                    str(target),
                    "--pid",
                    str(pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            await asyncio.sleep(1.0)
            await sequential(c, url, n)
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
            print(f"  profile of {name}: {target}", flush=True)


def table(results: list[Result]) -> str:
    lines = [
        "| page | clients | requests | size | p50 ms | p95 ms | p99 ms | max ms | ≤ 200 ms p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        p99 = r.pct(99)
        lines.append(
            f"| {r.page} | {r.mode} | {len(r.times)} | {r.size / 1024:.0f} KB "
            f"| {r.pct(50):.0f} | {r.pct(95):.0f} | {p99:.0f} | {max(r.times):.0f} "
            f"| {'yes' if p99 <= TARGET_MS else '**no**'} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--documents", type=int, default=500)
    ap.add_argument("--requests", type=int, default=200, help="per page and mode")
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--profile", type=Path, help="py-spy raw profiles of each page here")
    ap.add_argument("--keep", action="store_true", help="keep the installation")
    ap.add_argument("--processes", type=int, help="our server.processes (default: as shipped)")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="webmail-bench-"))
    print(f"installation in {root}", flush=True)
    inst = Instance(root)
    if args.processes:
        inst.edit_config(server={"processes": args.processes})
    try:
        asyncio.run(fill(inst, args.messages, args.documents))
        db = inst.dir / "data" / "mailserver.db"
        with sqlite3.connect(db) as conn:
            (patient_id,) = conn.execute(
                "SELECT id FROM accounts WHERE address = ?", (PATIENT,)
            ).fetchone()
            (message_id,) = conn.execute(
                "SELECT m.id FROM messages m JOIN folders f ON f.id = m.folder_id "
                "WHERE f.account_id = ? AND f.name = 'INBOX' AND m.message_id = ?",
                (patient_id, f"<bench-{(args.messages // 2) // 3 * 3}@demo.mssante.fr>"),
            ).fetchone()
            (document_id,) = conn.execute(
                "SELECT id FROM dossier_documents WHERE patient_id = ? ORDER BY id LIMIT 1 "
                f"OFFSET {args.documents // 2}",
                (patient_id,),
            ).fetchone()
        last = max(1, -(-args.messages // PAGE_SIZE))
        last_documents = max(1, -(-args.documents // PAGE_SIZE))
        pages = {
            "inbox, first page": "/messages",
            "inbox, last page": f"/messages?page={last}",
            "message with a PDF": f"/messages/{message_id}",
            "dossier, first page": "/dossier",
            "dossier, last page": f"/dossier?page={last_documents}",
            "document": f"/dossier/{document_id}",
            "access log, first page": "/acces",
            "access log, page 20": "/acces?page=20",
            "account": "/compte",
        }
        pid = inst.start()
        load_before = os.getloadavg()
        started = time.perf_counter()
        results = asyncio.run(measure(inst, pages, args.requests, args.concurrency, args.warmup))
        load_after = os.getloadavg()
        print()
        print(
            f"{args.messages} messages, {args.documents} documents; {args.requests} requests "
            f"per page and mode; {time.perf_counter() - started:.0f} s; load average "
            f"{load_before[0]:.1f} before, {load_after[0]:.1f} after "
            f"(1-min; 5-min {load_after[1]:.1f})"
        )
        print(table(results))
        if args.profile:
            slow = {r.page for r in results if r.pct(99) > TARGET_MS}
            chosen = {k: v for k, v in pages.items() if k in slow} or pages
            asyncio.run(profile(inst, pid, chosen, args.profile, max(50, args.requests // 2)))
    finally:
        inst.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

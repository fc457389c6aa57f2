"""A 100,000-message mailbox: ``UID FETCH 1:* (UID FLAGS)`` time and a CONDSTORE resync.

A fresh ``mailserver init --demo`` installation (embedded SQLite);
the folder ``Large`` of camille.martin is filled through the storage layer directly (500
distinct messages put in the blob store, content-addressed so stored once, metadata from
``storage.mime.parse_metadata``; 100,000 ``messages`` rows). ``--fill api`` goes through
``storage.delivery.append_message`` (one UPDATE ... RETURNING per message: ~180 messages/s
here, 9 minutes for 100,000); the default ``--fill bulk`` inserts the same rows with UIDs and
MODSEQs 1..N in multi-row INSERTs and sets the folder's UIDNEXT/HIGHESTMODSEQ once. Then
the server is started and, over imaplib with implicit TLS:

1. ``SELECT Large`` (timed), then ``UID FETCH 1:* (UID FLAGS)`` timed 3 times (target ≤ 1 s);
2. ``STORE`` of 10 flag changes on 10 random messages, then
   ``UID FETCH 1:* (FLAGS) (CHANGEDSINCE n)`` with ``n`` the HIGHESTMODSEQ before them: must
   return exactly those 10 (RFC 7162 §3.1.4.1), timed.

    .venv/bin/python bench/imap_large.py [--messages 100000] [--fill bulk|api] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import (  # noqa: E402
    insert,
    select,
    update,
)

from bench.imap_bench import USER, Ours, free_port  # noqa: E402
from bench.imap_mbox import message  # noqa: E402
from mailserver.config import load_config  # noqa: E402
from storage.blobs import BlobStore  # noqa: E402
from storage.db import open_database  # noqa: E402
from storage.delivery import append_message, record_blob  # noqa: E402
from storage.mailstore import create_folder  # noqa: E402
from storage.mime import meta_to_json, parse_metadata  # noqa: E402
from storage.models import Account, Folder, Message, utcnow  # noqa: E402


async def fill(config: Path, count: int, batch: int, mode: str) -> float:
    cfg = load_config(config)
    db = await open_database(cfg.database_url)
    blobs = BlobStore(cfg.blob_dir)
    rng = random.Random(7)
    samples = []
    for n in range(500):
        data = message(rng, n).encode()
        samples.append((blobs.put(data), parse_metadata(data)))
    started = time.perf_counter()
    async with db.session() as s, s.begin():
        account_id = await s.scalar(select(Account.id).where(Account.address == USER))
        assert account_id is not None
        folder = await create_folder(s, account_id, "Large")
        folder_id = folder.id
        for ref, _ in samples:
            await record_blob(s, ref)
    done = 0
    if mode == "bulk":
        jsons = [meta_to_json(meta) for _, meta in samples]
        now = utcnow()
        while done < count:
            rows = []
            for i in range(done, min(count, done + batch)):
                ref, meta = samples[i % len(samples)]
                envelope, structure = jsons[i % len(samples)]
                rows.append({"folder_id": folder_id, "uid": i + 1, "modseq": i + 1,
                             "flags": "\\Seen" if i % 3 else "", "internal_date": now,
                             "size": ref.size, "blob_sha256": ref.sha256,
                             "message_id": meta.message_id, "envelope": envelope,
                             "body_structure": structure, "created_at": now})  # fmt: skip
            async with db.session() as s, s.begin():
                await s.execute(insert(Message), rows)
            done = min(count, done + batch)
            print(f"\r  filled {done:,}/{count:,}", end="", flush=True)
        async with db.session() as s, s.begin():
            await s.execute(update(Folder).where(Folder.id == folder_id)
                            .values(uidnext=count + 1, highestmodseq=count + 1))  # fmt: skip
    while done < count:
        async with db.session() as s, s.begin():
            for i in range(done, min(count, done + batch)):
                ref, meta = samples[i % len(samples)]
                flags = "\\Seen" if i % 3 else ""
                await append_message(s, folder_id, ref, meta, flags=flags)
        done = min(count, done + batch)
        print(f"\r  filled {done:,}/{count:,}", end="", flush=True)
    print()
    elapsed = time.perf_counter() - started
    await db.close() if hasattr(db, "close") else None
    return elapsed


def _connect(port: int, password: str) -> imaplib.IMAP4_SSL:
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
    c.login(USER, password)
    return c


def raw_fetch_time(port: int, password: str, command: bytes) -> tuple[float, int]:
    """The same command on a bare TLS socket (no imaplib parsing): seconds until the tagged
    OK has arrived, and the bytes received."""
    import socket
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port))) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(f"a LOGIN {USER} {password}\r\nb SELECT Large\r\n".encode())
        while not f.readline().startswith(b"b "):
            pass
        t = time.perf_counter()
        sock.sendall(b"c " + command + b"\r\n")
        received = 0
        buf = b""
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
            buf = (buf + chunk)[-200:]
            if (b"\r\nc OK" in buf or buf.startswith(b"c OK")) and buf.endswith(b"\r\n"):
                break
        return time.perf_counter() - t, received


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--fill", choices=["bulk", "api"], default="bulk")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="imaplarge-", dir="/tmp"))
    ours = Ours(root, port_base=free_port() // 1000 * 1000 % 50000 + 10000)
    try:
        elapsed = asyncio.run(fill(ours.config, args.messages, args.batch, args.fill))
        print(f"fill: {args.messages:,} messages in {elapsed:.1f} s "
              f"({args.messages / elapsed:,.0f}/s), --fill {args.fill}")  # fmt: skip
        ours.start()
        c = _connect(ours.port, ours.password)
        c.enable("CONDSTORE")
        t = time.perf_counter()
        typ, data = c.select("Large")
        select_s = time.perf_counter() - t
        exists = int(data[0])
        print(f"SELECT Large: {exists:,} EXISTS in {select_s:.3f} s")
        times = []
        for _ in range(3):
            t = time.perf_counter()
            typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
            times.append(time.perf_counter() - t)
            assert typ == "OK", data
            lines = [d for d in data if d]
            assert len(lines) == exists, (len(lines), exists)
        print("UID FETCH 1:* (UID FLAGS): " + ", ".join(f"{x:.3f} s" for x in times)
              + f" ({len(lines):,} responses; best {min(times):.3f} s)")  # fmt: skip
        raw = [raw_fetch_time(ours.port, ours.password, b"UID FETCH 1:* (UID FLAGS)")
               for _ in range(3)]  # fmt: skip
        print("same on a bare socket (server + TLS only): "
              + ", ".join(f"{x:.3f} s" for x, _ in raw) + f" ({raw[0][1]:,} bytes)")  # fmt: skip
        m = re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(c.untagged_responses.get("OK", [])))
        typ, st = c.status("Large", "(HIGHESTMODSEQ)")
        before = int(re.search(rb"HIGHESTMODSEQ (\d+)", st[0]).group(1))  # type: ignore[union-attr]
        assert m is None or int(m.group(1)) == before
        rng = random.Random(3)
        chosen = sorted(rng.sample(range(1, exists + 1), 10))
        for uid in chosen:
            typ, _ = c.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Flagged)")
            assert typ == "OK"
        t = time.perf_counter()
        typ, data = c.uid("FETCH", "1:*", f"(FLAGS) (CHANGEDSINCE {before})")
        resync_s = time.perf_counter() - t
        got = sorted(int(re.search(rb"UID (\d+)", d).group(1)) for d in data if d)  # type: ignore[union-attr]
        verdict = "OK" if got == chosen else f"MISMATCH: expected {chosen}"
        print(f"CHANGEDSINCE {before}: {len(got)} responses in {resync_s:.3f} s, UIDs {got} "
              f"-> {verdict}")  # fmt: skip
        c.logout()
    finally:
        ours.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

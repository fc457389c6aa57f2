"""The SMTP load generator of the benchmarks: concurrent sessions over STARTTLS with a client
certificate, pipelined transactions, per-transaction latency.

A small asyncio client of its own (the relay client's job, without its checks): each session
connects, reads the greeting, EHLO, STARTTLS, EHLO again, optionally ``AUTH EXTERNAL``, then
runs its share of transactions on the same connection, MAIL + RCPT + DATA pipelined
(RFC 2920) as MTAs do. A transaction's latency is from writing MAIL to reading the 250 that
follows the end of the data. The same generator drives our server and Postfix, so its own
cost is the same on both sides.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "Job",
    "LoadResult",
    "SmtpError",
    "make_body",
    "percentile",
    "run_load",
    "run_session",
]


class SmtpError(Exception):
    pass


@dataclass(frozen=True)
class Job:
    """One transaction: envelope and the message, already CRLF-terminated and dot-stuffed."""

    mail_from: str
    rcpts: tuple[str, ...]
    data: bytes


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, one per transaction
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    sessions: int = 0

    @property
    def elapsed(self) -> float:
        return self.finished - self.started


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def make_body(size: int, seed: bytes = b"") -> bytes:
    """Base64 text lines (76 characters + CRLF) totalling about ``size`` bytes: never a
    leading dot, so no stuffing is needed."""
    raw = (seed or os.urandom(48)) * (size // 48 + 2)
    text = base64.encodebytes(raw[: size * 3 // 4 + 3]).replace(b"\n", b"\r\n")
    body = text[:size].rsplit(b"\r\n", 1)[0] + b"\r\n"
    return body + b"=" * max(0, size - len(body) - 2) + b"\r\n"  # exactly ``size`` bytes


class _Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise SmtpError("connection closed by the server")
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if len(line) < 4 or line[3:4] != b"-":
                break
        return int(lines[-1][:3]), "\n".join(lines)

    async def command(self, line: str, expect: int) -> str:
        self.writer.write(line.encode() + b"\r\n")
        code, text = await self.reply()
        if code != expect:
            raise SmtpError(f"{line.split()[0]}: {text}")
        return text


async def run_session(
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    jobs: Iterable[Job],
    result: LoadResult,
    *,
    helo: str,
    auth_external: bool,
    server_hostname: str | None,
) -> None:
    """One connection running ``jobs`` in order (an iterable: it may generate them lazily);
    latencies go to ``result``; the first refusal raises :class:`SmtpError`."""
    reader, writer = await asyncio.open_connection(host, port)
    s = _Session(reader, writer)
    try:
        code, text = await s.reply()
        if code != 220:
            raise SmtpError(f"greeting: {text}")
        await s.command(f"EHLO {helo}", 250)
        await s.command("STARTTLS", 220)
        await writer.start_tls(ctx, server_hostname=server_hostname)
        features = await s.command(f"EHLO {helo}", 250)
        pipelining = "PIPELINING" in features.upper()
        if auth_external:
            await s.command("AUTH EXTERNAL =", 235)
        for job in jobs:
            t0 = time.perf_counter()
            head = [f"MAIL FROM:<{job.mail_from}> SIZE={len(job.data)}"]
            head += [f"RCPT TO:<{r}>" for r in job.rcpts]
            head.append("DATA")
            if pipelining:  # RFC 2920 §3.1: MAIL, RCPT and DATA in one write
                writer.write("".join(c + "\r\n" for c in head).encode())
                replies = [await s.reply() for _ in head]
            else:
                replies = []
                for c in head:
                    writer.write(c.encode() + b"\r\n")
                    replies.append(await s.reply())
            if [c for c, _ in replies[:-1]] != [250] * (len(head) - 1) or replies[-1][0] != 354:
                raise SmtpError("; ".join(t for _, t in replies))
            writer.write(job.data)
            writer.write(b".\r\n")
            code, text = await s.reply()
            if code != 250:
                raise SmtpError(f"end of DATA: {text}")
            result.latencies.append(time.perf_counter() - t0)
        writer.write(b"QUIT\r\n")
        await s.reply()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def run_load(
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    jobs: Sequence[Job],
    *,
    sessions: int,
    helo: str = "load.bench.test",
    auth_external: bool = False,
    server_hostname: str | None = None,
    on_start: Callable[[], None] | None = None,
) -> LoadResult:
    """Spread ``jobs`` over ``sessions`` concurrent connections (round robin) and run them."""
    result = LoadResult(sessions=sessions)
    shares = [list(jobs[i::sessions]) for i in range(sessions)]
    if on_start is not None:
        on_start()
    result.started = time.perf_counter()

    async def one(share: list[Job]) -> None:
        try:
            await run_session(host, port, ctx, share, result, helo=helo,
                           auth_external=auth_external,
                           server_hostname=server_hostname)  # fmt: skip
        except (OSError, ssl.SSLError, SmtpError, asyncio.IncompleteReadError) as exc:
            result.errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(one(s) for s in shares if s))
    result.finished = time.perf_counter()
    return result

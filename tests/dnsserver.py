"""A tiny authoritative DNS server for tests (UDP and TCP on 127.0.0.1).

::

    with LocalDNS({("peer.test", "MX"): ["10 mx.peer.test."],
                   ("mx.peer.test", "A"): ["127.0.0.1"]}) as dns:
        resolver = f"127.0.0.1:{dns.port}"

It answers from a fixed table keyed by ``(name, type)``: names are case-insensitive, with or
without the final dot; values are presentation-format rdata (RFC 1035 §5.1) whose names are
taken as absolute (``"10 mx.peer.test"`` is fine). A TXT value not written in quotes is one
string, cut into 255-octet character-strings (RFC 1035 §3.3.14, RFC 6376 §3.6.2.2 for long
DKIM keys). A name with records of other types only gets an empty NOERROR answer (NODATA);
a name not in the table gets NXDOMAIN (RFC 1035 §4.1.1 RCODE 3). :meth:`LocalDNS.servfail`
and :meth:`LocalDNS.drop` make a name fail (SERVFAIL) or go unanswered (the client times
out). UDP answers too big for the client's buffer are truncated (TC bit, RFC 1035 §4.2.1)
so the client retries over TCP (RFC 7766), which is served on the same port.

The server runs in a thread, so it works the same from synchronous and asynchronous tests
(``with`` or ``async with``; or :meth:`start` / :meth:`stop`).
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

__all__ = ["LocalDNS", "Records"]

#: ``(name, type)`` -> presentation-format values, e.g. ``("peer.test", "MX"): ["10 mx"]``.
Records = Mapping[tuple[str, str], Sequence[str]]

_UDP_DEFAULT_PAYLOAD = 512  # RFC 1035 §4.2.1, without EDNS
_TCP_TIMEOUT = 5.0


def _key(name: str) -> str:
    return name.strip().rstrip(".").lower()


class LocalDNS:
    """An authoritative server for a table of records; see the module docstring."""

    def __init__(self, records: Records | None = None, *, ttl: int = 300) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], list[dns.rdata.Rdata]] = {}
        self._servfail: set[str] = set()
        self._drop: set[str] = set()
        for (name, rdtype), values in (records or {}).items():
            self.set(name, rdtype, values)
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.queries: list[tuple[str, str]] = []  # (name, type) in arrival order
        self.errors: list[Exception] = []  # unexpected failures while answering

    # ------------------------------------------------------------ the table

    def set(self, name: str, rdtype: str, values: Iterable[str]) -> None:
        """Replace the records of one (name, type); an empty list leaves the name known.

        Values are parsed here, so a malformed one raises in the test, not in the server.
        """
        kind = dns.rdatatype.from_text(rdtype.upper())
        parsed = [self._rdata(kind, value) for value in values]
        with self._lock:
            self._records[(_key(name), dns.rdatatype.to_text(kind))] = parsed

    def servfail(self, name: str) -> None:
        """Answer SERVFAIL (RFC 1035 §4.1.1 RCODE 2) for every query about ``name``."""
        with self._lock:
            self._servfail.add(_key(name))

    def drop(self, name: str) -> None:
        """Never answer queries about ``name`` (the client times out)."""
        with self._lock:
            self._drop.add(_key(name))

    # ------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        if self._udp is None:
            raise RuntimeError("LocalDNS is not started")
        return int(self._udp.getsockname()[1])

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"``, the form the relay settings take."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> LocalDNS:
        if self._thread is not None:
            raise RuntimeError("LocalDNS is already started")
        self._udp, self._tcp = self._bind()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="LocalDNS", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=5)
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()
        self._udp = self._tcp = None

    def __enter__(self) -> LocalDNS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalDNS:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def _bind() -> tuple[socket.socket, socket.socket]:
        """A UDP socket on an OS-chosen port and a TCP listener on the same port."""
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind(("127.0.0.1", udp.getsockname()[1]))
            except OSError:  # that port is taken for TCP: try another one
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            return udp, tcp
        raise RuntimeError("could not find a port free for both UDP and TCP")

    # ------------------------------------------------------------ serving

    def _serve(self) -> None:
        assert self._udp is not None and self._tcp is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._udp, selectors.EVENT_READ)
            selector.register(self._tcp, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.05):
                    try:
                        if key.fileobj is self._udp:
                            self._serve_udp(self._udp)
                        else:
                            self._serve_tcp(self._tcp)
                    except Exception as exc:  # keep serving; the test can look at .errors
                        self.errors.append(exc)

    def _serve_udp(self, sock: socket.socket) -> None:
        try:
            wire, peer = sock.recvfrom(65535)
        except OSError:
            return
        response = self._answer(wire)
        if response is None:
            return
        limit = _UDP_DEFAULT_PAYLOAD
        if response.edns >= 0:  # RFC 6891 §6.2.3: the requestor's UDP payload size
            limit = max(_UDP_DEFAULT_PAYLOAD, response.payload)
        try:
            data = response.to_wire(max_size=limit)
        except dns.exception.TooBig:  # RFC 1035 §4.2.1: truncate, the client retries on TCP
            response.answer = []
            response.flags |= dns.flags.TC
            data = response.to_wire()
        sock.sendto(data, peer)

    def _serve_tcp(self, listener: socket.socket) -> None:
        # RFC 1035 §4.2.2: each message is preceded by its two-octet length. One query per
        # connection is enough for the resolvers the tests use.
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(_TCP_TIMEOUT)
            try:
                header = self._recv_exactly(conn, 2)
                wire = self._recv_exactly(conn, struct.unpack("!H", header)[0])
            except (OSError, EOFError):
                return
            response = self._answer(wire)
            if response is None:
                return
            data = response.to_wire()
            try:
                conn.sendall(struct.pack("!H", len(data)) + data)
            except OSError:
                return

    @staticmethod
    def _recv_exactly(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _answer(self, wire: bytes) -> dns.message.Message | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if len(query.question) != 1:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        name = _key(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((name, rdtype))
            if name in self._drop:
                return None
            failing = name in self._servfail
            known = any(key[0] == name for key in self._records)
            values = list(self._records.get((name, rdtype), []))
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA  # RFC 1035 §4.1.1: authoritative answer
        if failing:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif not known:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif values and question.rdclass == dns.rdataclass.IN:
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, question.rdtype)
            for value in values:
                rrset.add(value, self.ttl)
            response.answer.append(rrset)
        return response

    @staticmethod
    def _rdata(rdtype: dns.rdatatype.RdataType, value: str) -> dns.rdata.Rdata:
        if rdtype == dns.rdatatype.TXT and not value.lstrip().startswith('"'):
            raw = value.encode("utf-8")
            chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
            return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)
        return dns.rdata.from_text(
            dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False
        )

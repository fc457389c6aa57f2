"""Postfix as a peer operator, both directions, end to end (issue "SMTP doors", Tests).

A private Postfix instance (tests/peers/postfix.py) plays the demo's peer operator
``peer-demo.mssante.fr`` with the certificate ``mailserver init --demo`` issued for it: it
relays its users' mail to our inbound door over mutual TLS, and it is the next hop our relay
worker uses for that domain (a static route), requiring our client certificate. Every test
runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import smtplib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from certs.pki import DevPKI
from tests.cli.conftest import Install, make_install
from tests.conftest import BACKENDS
from tests.peers.postfix import NextHop, PostfixPeer, postfix_missing
from tests.smtp.running import Running, edit_config, start_server
from tests.smtp.test_doors import CAMILLE, message
from tests.tools import require

PEER_USER = "dr.durand@peer-demo.mssante.fr"


@dataclass
class Pair:
    srv: Running
    postfix: PostfixPeer


def _require_postfix() -> None:
    require(postfix_missing())


def _postfix_for(install: Install, *, chain: str | Path | None = None,
                 key: str | Path | None = None, name: str = "peer") -> PostfixPeer:  # fmt: skip
    """A Postfix for the demo's peer operator domain, routing our domains to our inbound."""
    demo = install.demo
    peer = demo["peer_operator"]
    return PostfixPeer(
        domain=peer["domain"],
        hostname=peer["hostname"],
        chain=chain or install.dir / peer["chain"],
        key=key or install.dir / peer["key"],
        ca_file=install.dir / demo["trust"]["ca_bundle"],
        next_hop=NextHop(
            domains=(demo["domain"], demo["patient_domain"]),
            port=int(demo["listeners"]["smtp_inbound"]["port"]),
            tls_name=demo["server"]["hostname"],
        ),
        name=name,
    )


def _route_to(install: Install, postfix: PostfixPeer) -> None:
    domain = install.demo["peer_operator"]["domain"]
    edit_config(install, relay={"static_routes": {domain: f"127.0.0.1:{postfix.port}"},
                                "retry_initial": 1.0, "retry_max": 2.0,
                                "poll_interval": 0.2})  # fmt: skip


# Interoperating with Postfix does not depend on the database; the doors' PostgreSQL paths
# are covered by test_doors.py. One backend keeps CI under its 20 minutes.
ONE_BACKEND = ["sqlite"] if "sqlite" in BACKENDS else BACKENDS[:1]


@pytest.fixture(scope="module", params=ONE_BACKEND)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    _require_postfix()
    root = tmp_path_factory.mktemp("postfix-peer")
    install = make_install(root, request.param, request)
    postfix = _postfix_for(install)
    try:
        _route_to(install, postfix)
        postfix.start()
        srv = start_server(install, root / "server.log")
        try:
            yield Pair(srv, postfix)
        finally:
            srv.stop()
    finally:
        postfix.close()


def _acct(install: Install, address: str) -> dict[str, Any]:
    return next(a for a in install.demo["accounts"] if a["address"] == address)


def _submit(srv: Running, to: str, data: bytes, *, rcpt_options: list[str] | None = None,
            envid: str | None = None) -> None:  # fmt: skip
    """Camille submits with her certificate (SASL EXTERNAL)."""
    with srv.submission(_acct(srv.install, CAMILLE)) as s:
        code, text = s.docmd("AUTH", "EXTERNAL =")
        assert code == 235, text
        s.sendmail(CAMILLE, [to], data, [f"ENVID={envid}"] if envid else [],
                   rcpt_options or [])  # fmt: skip


def _wait_for(srv: Running, address: str, needle: bytes, timeout: float = 30) -> bytes | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in srv.inbox(address):
            if needle in m:
                return m
        time.sleep(0.2)
    return None


# --- Postfix relays to us ------------------------------------------------------------------


def test_postfix_relays_to_our_inbound_over_mutual_tls(pair: Pair) -> None:
    srv, postfix = pair.srv, pair.postfix
    subject = f"Avis de Postfix {time.monotonic_ns()}"
    postfix.inject(PEER_USER, [CAMILLE], message(PEER_USER, CAMILLE, subject))
    stored = _wait_for(srv, CAMILLE, subject.encode())
    assert stored is not None, postfix.log()[-3000:] + srv.logs()[-3000:]
    parsed = BytesParser(policy=default).parsebytes(stored)
    assert parsed["From"] == PEER_USER
    ours = (parsed.get_all("Received") or [""])[0]  # the newest: ours
    assert "from mail.peer-demo.mssante.fr" in ours and "with ESMTPS" in ours
    assert "using TLSv1" in ours
    results = parsed["Authentication-Results"]
    assert "x-tls=pass" in results
    assert "peer certificate CN=mail.peer-demo.mssante.fr" in results
    # Postfix checked our certificate ("secure": chain and name) and presented its own.
    line = postfix.wait_log(r"Verified TLS connection established to 127\.0\.0\.1")
    assert line is not None, postfix.log()[-3000:]
    sent = postfix.wait_log(rf"to=<{CAMILLE}>.*status=sent")
    assert sent is not None and "250 2." in sent


def test_postfix_with_an_unlisted_certificate_is_refused(pair: Pair) -> None:
    install = pair.srv.install
    pki = DevPKI.open(install.dir / "pki")
    rogue = pki.issue_server("mail.rogue-peer.test", organisation="Opérateur non listé",
                             structure_id="99999999700036", alt_names=["localhost"])  # fmt: skip
    before = len(pair.srv.inbox(CAMILLE))
    with _postfix_for(install, chain=rogue.chain_path, key=rogue.key_path, name="rogue") as other:
        subject = f"Usurpation {time.monotonic_ns()}"
        other.inject(PEER_USER, [CAMILLE], message(PEER_USER, CAMILLE, subject))
        line = other.wait_log(rf"to=<{CAMILLE}>.*status=bounced")
        assert line is not None, other.log()[-3000:]
        # Our reply, as Postfix logged it: the 5.7.1 reason names the check.
        assert "said: 550 5.7.1 certificate DN CN=mail.rogue-peer.test" in line
        assert "is not listed for sender domain peer-demo.mssante.fr" in line
        assert "in reply to MAIL FROM command" in line
        # The peer's user gets Postfix's bounce with our reason.
        bounce = other.wait_delivered(1, matching=b"Undelivered Mail Returned to Sender")
        assert bounce and b"5.7.1" in bounce[0] and b"mail.rogue-peer.test" in bounce[0]
    assert len(pair.srv.inbox(CAMILLE)) == before


# --- we relay to Postfix -------------------------------------------------------------------


def test_we_relay_to_postfix_and_it_reports_delivery(pair: Pair) -> None:
    """Postfix speaks DSN: NOTIFY=SUCCESS travels with the message, and Postfix's own
    "delivered" report comes back to Camille over mutual TLS (null sender, RFC 3461 §6)."""
    srv, postfix = pair.srv, pair.postfix
    subject = f"Adressage {time.monotonic_ns()}"
    _submit(srv, PEER_USER, message(CAMILLE, PEER_USER, subject),
            rcpt_options=["NOTIFY=SUCCESS,FAILURE"], envid="dossier-7")  # fmt: skip
    got = postfix.wait_delivered(1, matching=subject.encode())
    assert got, postfix.log()[-3000:] + srv.logs()[-3000:]
    delivered = BytesParser(policy=default).parsebytes(got[0])
    assert delivered["Delivered-To"] == PEER_USER
    assert "DKIM-Signature" in delivered  # signed for the other operator
    # Postfix's Received line: our client certificate, verified against our CA.
    theirs = (delivered.get_all("Received") or [""])[0]
    assert 'Client CN "mail.demo.mssante.fr"' in theirs and "(verified OK)" in theirs, theirs
    assert "from mail.demo.mssante.fr" in theirs
    assert postfix.wait_log(r"Trusted TLS connection established from") is not None

    report = _wait_for(srv, CAMILLE, b"Original-Envelope-Id: dossier-7")
    assert report is not None, postfix.log()[-3000:] + srv.logs()[-3000:]
    dsn = BytesParser(policy=default).parsebytes(report)
    assert dsn.get_content_type() == "multipart/report"
    text = report.decode(errors="replace")
    assert "Reporting-MTA: dns; mail.peer-demo.mssante.fr" in text
    assert "Action: delivered" in text and f"rfc822; {PEER_USER}" in text
    assert "peer certificate CN=mail.peer-demo.mssante.fr" in dsn["Authentication-Results"]


def test_we_say_relayed_when_postfix_does_not_speak_dsn(pair: Pair) -> None:
    """RFC 3461 §6.2.3.2: a next hop without DSN cannot report, so we send "relayed"."""
    srv, postfix = pair.srv, pair.postfix
    postfix.set(smtpd_discard_ehlo_keywords="dsn")
    postfix.restart()
    try:
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as s:
            s.ehlo("check.test")
            assert "dsn" not in s.esmtp_features
        subject = f"Sans DSN {time.monotonic_ns()}"
        _submit(srv, PEER_USER, message(CAMILLE, PEER_USER, subject),
                rcpt_options=["NOTIFY=SUCCESS"], envid="dossier-8")  # fmt: skip
        assert postfix.wait_delivered(1, matching=subject.encode()), postfix.log()[-3000:]
        report = _wait_for(srv, CAMILLE, b"Original-Envelope-Id: dossier-8")
        assert report is not None, srv.logs()[-3000:]
        text = report.decode(errors="replace")
        assert "Action: relayed" in text and f"Final-Recipient: rfc822; {PEER_USER}" in text
        assert f"Reporting-MTA: dns; {srv.install.demo['hostname']}" in text
    finally:
        postfix.unset("smtpd_discard_ehlo_keywords")
        postfix.restart()


# --- restart with a full relay queue --------------------------------------------------------


@pytest.mark.slow
def test_relay_queue_survives_restart_exactly_once(install: Install, tmp_path: Path) -> None:
    """Messages queued for a peer that is down survive our restart and, once the peer is up,
    each arrives exactly once (Message-IDs counted at Postfix)."""
    _require_postfix()
    postfix = _postfix_for(install, name="restart")  # not started: the peer is down
    try:
        _route_to(install, postfix)
        srv = start_server(install, tmp_path / "first.log")
        sent: list[str] = []
        try:
            for i in range(12):
                rcpt = f"dest{i % 4}@{install.demo['peer_operator']['domain']}"
                data = message(CAMILLE, rcpt, f"Relance {i}")
                mid = BytesParser(policy=default).parsebytes(data)["Message-ID"]
                _submit(srv, rcpt, data)
                sent.append(mid)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # every entry has failed once at least
                pending = [e for e in srv.queue() if e.state == "queued"]
                if len(pending) == len(sent) and all(e.attempts >= 1 for e in pending):
                    break
                time.sleep(0.2)
            assert len(pending) == len(sent) and all(e.last_error for e in pending), srv.logs()
        finally:
            srv.stop()
        assert srv.proc.returncode == 0, srv.logs()[-3000:]

        again = start_server(install, tmp_path / "second.log")
        try:
            postfix.start()  # the peer comes back
            got = postfix.wait_delivered(len(sent), timeout=60)
            assert len(got) >= len(sent), postfix.log()[-3000:] + again.logs()[-3000:]
            deadline = time.monotonic() + 20
            while any(e.state == "queued" for e in again.queue()):
                assert time.monotonic() < deadline, again.logs()[-3000:]
                time.sleep(0.2)
            time.sleep(2)  # room for a duplicate to show up
            counts = Counter(postfix.message_ids())
            assert sorted(counts) == sorted(sent), "lost or foreign messages"
            assert all(n == 1 for n in counts.values()), f"duplicated: {counts}"
            assert postfix.queued() == 0
        finally:
            again.stop()
    finally:
        postfix.close()

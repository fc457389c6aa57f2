"""The demo's peer operator (DIR/peer/, made by `init --demo`): relaying between two
operators on one machine, both directions over mutual TLS, as the README's demo shows."""

from __future__ import annotations

import dataclasses
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

from tests.cli.conftest import Install
from tests.smtp.running import Running, serving, start_server

__all__ = ["serving"]


def _peer_install(install: Install) -> Install:
    return dataclasses.replace(install, dir=install.dir / "peer", backend="sqlite")


def test_demo_relays_to_its_peer_and_the_peer_reports_delivery(
    install: Install, serving: list[Running], tmp_path: Path
) -> None:
    peer = start_server(_peer_install(install), tmp_path / "peer.log")
    serving.append(peer)
    ours = start_server(install, tmp_path / "ours.log")
    serving.append(ours)
    camille = install.account("PER", in_annuaire=True)
    mailbox = install.demo["peer_operator"]["mailbox"]
    with ours.submission() as s:
        s.login(camille["address"], camille["password"])
        s.mail(camille["address"], ["ENVID=demo-peer-1"])
        code, _ = s.rcpt(mailbox, ["NOTIFY=SUCCESS,FAILURE"])
        assert code == 250
        s.data(
            f"From: {camille['address']}\r\nTo: {mailbox}\r\nSubject: Adressage\r\n"
            "Message-ID: <demo-peer-1@demo.mssante.fr>\r\n\r\nBonjour.\r\n"
        )
    # Our relay -> the peer's inbound (mutual TLS, our DN listed on the peer's liste blanche).
    received = peer.wait_inbox(mailbox, 1)
    assert len(received) == 1, ours.logs() + peer.logs()
    assert b"Subject: Adressage" in received[0]
    assert b"DKIM-Signature:" in received[0]
    assert install.demo["server"]["subject_dn"].split(",")[0].encode() in received[0]
    # The peer speaks DSN: it reports the delivery itself, relaying the report back to our
    # inbound with its own certificate (the other direction).
    reports = ours.wait_inbox(camille["address"], 1)
    assert len(reports) == 1, ours.logs() + peer.logs()
    dsn = BytesParser(policy=default).parsebytes(reports[0])
    assert dsn.get_content_type() == "multipart/report"
    text = reports[0].decode(errors="replace")
    assert "Action: delivered" in text and f"Final-Recipient: rfc822; {mailbox}" in text
    assert "Reporting-MTA: dns; mail.peer-demo.mssante.fr" in text
    assert "Original-Envelope-Id: demo-peer-1" in text

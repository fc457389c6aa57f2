"""Two nodes sharing one PostgreSQL database: a delivery made through one node's SMTP door
wakes an IDLE session on the other node (LISTEN/NOTIFY, architecture.md storage model)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailserver.config import PORT_OFFSETS
from tests.cli.conftest import Install, free_port_base, make_install
from tests.conftest import BACKENDS
from tests.imap.running_imap import CAMILLE, ImapServer, message
from tests.smtp.running import Running, edit_config, start_server

pytestmark = pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs PostgreSQL")


@pytest.fixture
def two_nodes(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[ImapServer, ImapServer]]:
    first = make_install(tmp_path / "a", "postgresql", request)
    shutil.copytree(first.dir, tmp_path / "b" / "inst", symlinks=True)
    nodes: list[Running] = []
    try:
        nodes.append(start_server(first, tmp_path / "a.log"))
        base = free_port_base()  # once the first node holds its ports
        ports = {name: base + offset for name, offset in PORT_OFFSETS.items()}
        demo = dict(first.demo)
        demo["listeners"] = {n: {"address": "127.0.0.1", "port": p} for n, p in ports.items()}
        second = Install(tmp_path / "b" / "inst", "postgresql", demo)
        edit_config(second, listeners=demo["listeners"])
        edit_config(second, storage={"blob_dir": str(first.dir / "data" / "blobs")})
        nodes.append(start_server(second, tmp_path / "b.log"))
        yield ImapServer(nodes[0]), ImapServer(nodes[1])
    finally:
        for node in nodes:
            node.stop()


def test_idle_on_one_node_wakes_for_a_delivery_on_another(
    two_nodes: tuple[ImapServer, ImapServer],
) -> None:
    node_a, node_b = two_nodes
    c = node_b.client()
    exists = c.select_folder("INBOX")[b"EXISTS"]
    c.idle()
    node_a.deliver(CAMILLE, message(CAMILLE, CAMILLE, "Deux noeuds"))
    delivered = time.monotonic()
    responses = c.idle_check(timeout=5)
    woke = time.monotonic()
    c.idle_done()
    assert (exists + 1, b"EXISTS") in responses, responses
    assert woke - delivered < 1.0
    # A flag change made on node A reaches node B's session too.
    a = node_a.client()
    a.select_folder("INBOX")
    uid = a.search("ALL")[-1]
    c.idle()
    a.add_flags([uid], [b"\\Flagged"])
    responses = c.idle_check(timeout=5)
    c.idle_done()
    assert any(r[1] == b"FETCH" for r in responses), responses
    a.logout()
    c.logout()

"""Fixtures of the IMAP black-box tests: one real server per module and database backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.conftest import (
    install,  # noqa: F401 (a demo installation per backend)
    make_install,
)
from tests.conftest import BACKENDS
from tests.imap.running_imap import ImapServer
from tests.smtp.running import start_server


@pytest.fixture(scope="module", params=BACKENDS)
def imap_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ImapServer]:
    root = tmp_path_factory.mktemp("imap")
    running = start_server(make_install(root, request.param, request), root / "server.log")
    yield ImapServer(running)
    running.stop()

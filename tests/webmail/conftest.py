"""Fixtures: a demo installation per backend (per module) and its webmail in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mailserver.config import load_config
from mailserver.mail import build_mail_side
from mailserver.runtime import check_tls
from mailserver.webmailside import build_webmail_side
from storage.db import open_database
from tests.cli.conftest import Install, make_install
from tests.conftest import BACKENDS
from tests.webmail.site import Site


@pytest.fixture(scope="module", params=BACKENDS)
def installed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Install:
    return make_install(tmp_path_factory.mktemp("webmail"), request.param, request)


async def open_site(install: Install, address: str = "198.51.100.7") -> Site:
    cfg = load_config(install.config)
    db = await open_database(cfg.database_url)
    mail = build_mail_side(cfg, db, check_tls(cfg))
    side = build_webmail_side(cfg, db, mail)
    transport = httpx.ASGITransport(app=side.app, client=(address, 40000))
    client = httpx.AsyncClient(transport=transport, base_url="https://testserver")
    return Site(install, cfg, db, mail, side, client)


@pytest.fixture
async def site(installed: Install) -> AsyncIterator[Site]:
    s = await open_site(installed)
    try:
        yield s
    finally:
        await s.client.aclose()
        await s.db.close()


@pytest.fixture
async def fresh_site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    """A private installation, for tests that close a box."""
    backend = BACKENDS[0]
    s = await open_site(make_install(tmp_path, backend, request))
    try:
        yield s
    finally:
        await s.client.aclose()
        await s.db.close()

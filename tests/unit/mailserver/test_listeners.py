"""Listening sockets: connections accepted on them send small replies at once (no Nagle)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, cast

import pytest

from mailserver.config import Config, ListenerSection
from mailserver.runtime import bind_listener


class _Cfg:
    source = Path("mailserver.toml")


def _cfg() -> Config:
    return cast(Config, _Cfg())


def _on(port: int) -> ListenerSection:
    """A listener on loopback; port 0 (not a valid setting) asks the kernel for a free one."""
    return ListenerSection.model_construct(address="127.0.0.1", port=port)


async def test_accepted_connections_have_nagle_off() -> None:
    """Every door (SMTP, IMAP, webmail) serves a socket from ``bind_listener`` through
    asyncio; a reply written in two parts must not wait for the client's delayed ACK
    (the webmail's pages took 40 ms more each before)."""
    sock = bind_listener(_cfg(), "webmail", _on(0))
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw: Any = writer.get_extra_info("socket")
        seen.set_result(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    try:
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(seen, 5) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_a_port_in_use_names_the_key() -> None:
    first = bind_listener(_cfg(), "imap", _on(0))
    try:
        port = first.getsockname()[1]
        with pytest.raises(Exception, match=r"listeners\.imap\.port.*address already in use"):
            bind_listener(_cfg(), "imap", _on(port))
    finally:
        first.close()

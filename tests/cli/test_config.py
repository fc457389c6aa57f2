"""Bad configuration: one clear line naming the key or file, exit status 2, no traceback."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import pytest

from tests.cli.conftest import Install, mailserver


def _edit(install_copy: Install, old: str, new: str) -> None:
    text = install_copy.config.read_text()
    assert old in text, old
    install_copy.config.write_text(text.replace(old, new, 1))


def _refused(r: object, pattern: str) -> None:
    out = r.stderr  # type: ignore[attr-defined]
    assert r.returncode == 2, out  # type: ignore[attr-defined]
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize(
    ("old", "new", "pattern"),
    [
        ("[limits]\n", "[limits]\nmax_recipent = 10\n", r"unknown key 'limits\.max_recipent'"),
        ("port = 10080", 'port = "eighty"', r"listeners\.admin\.port"),
        ('[logging]\nlevel = "INFO"', '[logging]\nlevel = "LOUD"', r"logging\.level"),
        ("[server]\n", "[server]\nflavour = 1\n", r"unknown key 'server\.flavour'"),
        ("[limits]\n", "[limits]\nmax_line_length = 10\n", r"limits\.max_line_length"),
        ("[server]\n", "server = 1\n[server2]\n", r"TOML|server"),
    ],
)
def test_invalid_values_name_the_key(
    install_copy: Install, old: str, new: str, pattern: str
) -> None:
    text = install_copy.config.read_text()
    if "port = 10080" in old:
        old = re.search(
            r"\[listeners\.admin\]\nenabled = true\naddress = \"127\.0\.0\.1\"\n"
            r"port = \d+",
            text,
        ).group(0)  # type: ignore[union-attr]
        new = old.rsplit("=", 1)[0] + '= "eighty"'
    _edit(install_copy, old, new)
    _refused(mailserver("check-config", "-c", install_copy.config), pattern)
    _refused(mailserver("serve", "-c", install_copy.config, timeout=30), pattern)


def test_unreadable_certificate_file_is_named(install_copy: Install) -> None:
    key = install_copy.dir / install_copy.demo["server"]["key"]
    key.unlink()
    _refused(
        mailserver("serve", "-c", install_copy.config, timeout=30),
        rf"tls\.key.*{re.escape(key.name)}",
    )


def test_certificate_not_matching_its_key_is_refused(install_copy: Install) -> None:
    server_key = install_copy.dir / install_copy.demo["server"]["key"]
    peer_key = install_copy.dir / install_copy.demo["peer_operator"]["key"]
    shutil.copy(peer_key, server_key)
    _refused(mailserver("serve", "-c", install_copy.config, timeout=30), r"(?i)key")


def test_missing_configuration_file(tmp_path: Path) -> None:
    _refused(mailserver("serve", "-c", tmp_path / "nope.toml"), r"nope\.toml.*cannot read")


def test_port_in_use_names_the_listener(install_copy: Install) -> None:
    port = install_copy.demo["listeners"]["admin"]["port"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        _refused(
            mailserver("serve", "-c", install_copy.config, timeout=30),
            rf"listeners\.admin\.port.*127\.0\.0\.1:{port}.*already in use",
        )


def test_unreachable_database_is_one_line(install_copy: Install) -> None:
    _edit(
        install_copy,
        'url = ""'
        if 'url = ""' in install_copy.config.read_text()
        else re.search(r'url = "postgresql://[^"]+"', install_copy.config.read_text()).group(0),  # type: ignore[union-attr]
        'url = "postgresql://nobody@127.0.0.1:1/none"',
    )
    _refused(mailserver("serve", "-c", install_copy.config, timeout=30), r"(?i)database")

"""Bad configuration: one clear line naming the key or file, exit status 2, no traceback."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.cli.conftest import Install, mailserver


def _edit(install: Install, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to the parsed configuration and write it back."""
    doc = tomllib.loads(install.config.read_text())
    change(doc)
    install.config.write_text(tomli_w.dumps(doc))


def _refused(r: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert re.search(pattern, lines[0]), lines[0]


def _set(section: str, key: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        target = doc
        for part in section.split("."):
            target = target.setdefault(part, {})
        target[key] = value

    return change


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (_set("limits", "max_recipent", 10), r"unknown key 'limits\.max_recipent'"),
        (_set("server", "flavour", 1), r"unknown key 'server\.flavour'"),
        (_set("listeners.admin", "port", "eighty"), r"key 'listeners\.admin\.port'"),
        (_set("listeners.admin", "port", 70000), r"key 'listeners\.admin\.port'.*65535"),
        (_set("logging", "level", "LOUD"), r"key 'logging\.level'"),
        (_set("limits", "max_line_length", 10), r"key 'limits\.max_line_length'"),
        (_set("server", "domains", []), r"key 'server\.domains'"),
        (lambda doc: doc.pop("tls"), r"missing key 'tls'"),
    ],
)
def test_invalid_values_name_the_key(
    install_copy: Install, change: Callable[[dict[str, Any]], None], pattern: str
) -> None:
    _edit(install_copy, change)
    _refused(mailserver("check-config", "-c", install_copy.config), pattern)
    _refused(mailserver("serve", "-c", install_copy.config, timeout=30), pattern)


def test_broken_toml_names_the_file(install_copy: Install) -> None:
    install_copy.config.write_text("[server\nhostname = 1\n")
    _refused(
        mailserver("serve", "-c", install_copy.config, timeout=30),
        rf"{re.escape(str(install_copy.config))}: not valid TOML",
    )


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
    _refused(
        mailserver("serve", "-c", install_copy.config, timeout=30),
        rf"private key .*{re.escape(server_key.name)} does not match the server certificate",
    )


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
    _edit(install_copy, _set("database", "url", "postgresql://nobody@127.0.0.1:1/none"))
    _refused(mailserver("serve", "-c", install_copy.config, timeout=30), r"(?i)database")

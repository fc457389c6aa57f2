"""Fixtures shared by the directory tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certs.pki import DevPKI


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevPKI]:
    """A development PKI, made once per module (CA keys are slow to generate)."""
    yield DevPKI.create(tmp_path_factory.mktemp("pki") / "pki")

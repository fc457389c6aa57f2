"""The content-addressed blob store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from storage.blobs import BlobError, BlobStore


def test_put_get_and_deduplicate(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    body = b"From: a@b\r\n\r\nbonjour\r\n"
    ref = store.put(body)
    assert ref.sha256 == hashlib.sha256(body).hexdigest() and ref.size == len(body)
    assert store.get(ref.sha256) == body
    again = store.put(body)
    assert again == ref
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert files == [store.path_of(ref.sha256)]  # one copy, no temporary left behind


def test_missing_and_corrupted_blobs_are_reported(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    ref = store.put(b"x" * 1000)
    assert store.verify(ref.sha256)
    store.path_of(ref.sha256).write_bytes(b"tampered")
    assert not store.verify(ref.sha256)
    with pytest.raises(BlobError, match="missing"):
        store.get("0" * 64)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "g" * 64, "0" * 63])
def test_addresses_that_are_not_digests_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(BlobError, match="not a blob address"):
        BlobStore(tmp_path).path_of(bad)

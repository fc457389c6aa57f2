"""imap.fetching: contents read in bounded batches; metadata decoded once per content."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from imap import fetching
from storage.mime import meta_to_json, parse_metadata

_DATA = b"From: a@x.fr\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n"


def _row(uid: int, size: int = 10, sha: str = "a" * 64) -> Any:
    envelope, structure = meta_to_json(parse_metadata(_DATA))
    return SimpleNamespace(
        uid=uid, size=size, blob_sha256=sha, envelope=envelope, body_structure=structure
    )


def test_batches_are_bounded_by_count_and_octets() -> None:
    small = [(n, _row(n)) for n in range(1, 71)]
    assert [len(b) for b in fetching._batches(small, True)] == [32, 32, 6]
    big = fetching._BLOB_BATCH_OCTETS // 2 + 1
    large = [(n, _row(n, size=big)) for n in range(1, 4)]
    assert [len(b) for b in fetching._batches(large, True)] == [1, 1, 1]
    huge = [(1, _row(1, size=10 * fetching._BLOB_BATCH_OCTETS)), (2, _row(2))]
    assert [len(b) for b in fetching._batches(huge, True)] == [1, 1]
    assert fetching._batches([], True) == []


def test_metadata_is_decoded_and_rendered_once_per_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fetching, "_META", fetching._MetaCache(2))
    decoded: list[str] = []
    real = fetching.meta_from_json

    def counting(envelope: str, structure: str) -> Any:
        decoded.append(envelope)
        return real(envelope, structure)

    monkeypatch.setattr(fetching, "meta_from_json", counting)
    first = fetching._Message(_row(1)).rendered("ENVELOPE")
    again = fetching._Message(_row(2)).rendered("ENVELOPE")  # same blob, another message
    assert first == again and first.startswith(b"ENVELOPE (")
    assert len(decoded) == 1
    fetching._Message(_row(3, sha="b" * 64)).meta()
    fetching._Message(_row(4, sha="c" * 64)).meta()  # the cache holds two: "a" goes
    fetching._Message(_row(5)).meta()
    assert len(decoded) == 4

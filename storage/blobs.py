"""Content-addressed blob store: message bodies and documents, stored once.

A blob is durable before its database row is committed: the file is written to a temporary
name, fsynced, renamed into place and its directory fsynced (so the rename itself survives a
crash). Callers commit the metadata only after `put` returns.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


class BlobError(Exception):
    """A blob is missing or does not match its address."""


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    size: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Files under `root/ab/cd/<sha256>`; blocking I/O (run it in a thread on the event loop)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def path_of(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise BlobError(f"not a blob address: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> BlobRef:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        ref = BlobRef(digest, len(data))
        if target.exists() and target.stat().st_size == len(data):
            return ref  # same content already durable: content addressing deduplicates
        new_dirs: list[Path] = []
        parent = target.parent
        while not parent.exists():
            new_dirs.append(parent)
            parent = parent.parent
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        for d in reversed(new_dirs):  # make freshly created directories durable too
            _fsync_dir(d.parent)
        return ref

    def get(self, sha256: str) -> bytes:
        try:
            return self.path_of(sha256).read_bytes()
        except FileNotFoundError:
            raise BlobError(f"blob {sha256} is missing from {self.root}") from None

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).exists()

    def verify(self, sha256: str) -> bool:
        """True when the stored bytes still hash to their address."""
        return hashlib.sha256(self.get(sha256)).hexdigest() == sha256

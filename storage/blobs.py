"""Content-addressed blob store: message bodies and documents, stored once.

A blob is durable before its database row is committed: the file is written to a temporary
name, fsynced, renamed into place and its directory fsynced (so the rename itself survives a
crash). Callers commit the metadata only after `put` returns.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path


class BlobError(Exception):
    """A blob is missing or does not match its address."""


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    size: int


def _make_dirs(path: str) -> list[str]:
    """Create ``path`` and its missing parents; the ones created, deepest first."""
    if os.path.isdir(path):
        return []
    new_dirs: list[str] = []
    missing = path
    while not os.path.exists(missing):
        new_dirs.append(missing)
        missing = os.path.dirname(missing)
    os.makedirs(path, exist_ok=True)
    return new_dirs


def _fsync_dir(path: Path | str) -> None:
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
        return Path(self._directory_of(sha256), sha256)

    def _directory_of(self, sha256: str) -> str:
        """``root/ab/cd``: the directory of a (valid) address."""
        return os.path.join(self.root, sha256[:2], sha256[2:4])

    def put(self, data: bytes) -> BlobRef:
        digest = hashlib.sha256(data).hexdigest()
        ref = BlobRef(digest, len(data))
        # Plain strings and os calls: this runs once per delivered message.
        parent = self._directory_of(digest)
        target = os.path.join(parent, digest)
        try:
            if os.stat(target).st_size == len(data):
                return ref  # same content already durable: content addressing deduplicates
        except FileNotFoundError:
            pass
        new_dirs = _make_dirs(parent)
        # A temporary name of our own (this content, process and thread), made with O_EXCL;
        # mkstemp only if a crashed predecessor left one behind.
        tmp = os.path.join(parent, f".tmp-{digest[:16]}-{os.getpid()}-{threading.get_ident()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-")
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(parent)
        for d in reversed(new_dirs):  # make freshly created directories durable too
            _fsync_dir(os.path.dirname(d))
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

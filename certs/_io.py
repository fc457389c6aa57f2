"""File helpers shared by the certs modules (private)."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography import x509

from certs.errors import CertificateLoadError

StrPath = str | os.PathLike[str]

_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)

#: File name endings read when a directory of certificates is given.
CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")
#: File name endings read when a directory of CRLs is given.
CRL_SUFFIXES = (".pem", ".crl", ".der")


def read_file(path: Path, what: str) -> bytes:
    """Read a file, raising :class:`CertificateLoadError` that names it and the problem."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertificateLoadError(f"{what} file {path} does not exist") from None
    except IsADirectoryError:
        raise CertificateLoadError(f"{what} file {path} is a directory") from None
    except OSError as exc:
        raise CertificateLoadError(f"cannot read {what} file {path}: {exc.strerror}") from None


def pem_labels(data: bytes) -> list[str]:
    """The ``-----BEGIN <label>-----`` labels present in PEM data (RFC 7468 §2)."""
    return [m.group(1).decode("ascii") for m in _PEM_LABEL.finditer(data)]


def pem_blocks(data: bytes, label: str) -> list[bytes]:
    """Every complete PEM block with the given label, in file order."""
    wanted = label.encode("ascii")
    return [m.group(0) for m in _PEM_BLOCK.finditer(data) if m.group(1) == wanted]


def parse_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    """Certificates in PEM data (one or more) or a single DER certificate."""
    if b"-----BEGIN" in data:
        blocks = pem_blocks(data, "CERTIFICATE")
        if not blocks:
            labels = ", ".join(sorted(set(pem_labels(data)))) or "nothing usable"
            raise CertificateLoadError(f"{source} holds no PEM certificate (found: {labels})")
        certificates = []
        for number, block in enumerate(blocks, start=1):
            try:
                certificates.append(x509.load_pem_x509_certificate(block))
            except ValueError as exc:
                raise CertificateLoadError(
                    f"{source}: PEM certificate #{number} is invalid ({exc})"
                ) from None
        return certificates
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise CertificateLoadError(f"{source} is neither a PEM nor a DER certificate") from None


def load_certificates(path: StrPath, what: str = "certificate") -> list[x509.Certificate]:
    """Certificates from one file (PEM bundle or DER)."""
    file = Path(path)
    return parse_certificates(read_file(file, what), f"{what} file {file}")


def expand(paths: Iterable[StrPath], suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Files named by ``paths``; a directory stands for its files with one of ``suffixes``."""
    for item in paths:
        path = Path(item)
        if path.is_dir():
            yield from sorted(
                p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(suffixes)
            )
        else:
            yield path


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically, the new file created with ``mode``.

    The temporary file is created in the same directory (so ``os.replace`` is atomic) with
    its final permissions from the start: a private key is never readable by others.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise

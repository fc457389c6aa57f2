"""Exceptions raised by the :mod:`certs` package (all derive from :class:`CertsError`)."""

from __future__ import annotations

__all__ = [
    "CertificateLoadError",
    "CertsError",
    "PKIError",
    "TLSConfigError",
    "TrustStoreError",
]


class CertsError(Exception):
    """Base class of every error raised by :mod:`certs`."""


class CertificateLoadError(CertsError, ValueError):
    """A certificate file is missing, unreadable or not a certificate; the message names it."""


class PKIError(CertsError):
    """The development PKI directory is missing, corrupt, or refuses an operation."""


class TrustStoreError(CertsError):
    """A trust anchor, intermediate or CRL file cannot be used; the message names the file."""


class TLSConfigError(CertsError):
    """A TLS context cannot be built from the given files; the message names the file."""

"""Address syntax for the directory: routing's rule, refused as a DirectoryError."""

from __future__ import annotations

from directory.errors import DirectoryError
from routing import addresses
from routing.addresses import domain_of, is_domain

__all__ = ["domain_of", "is_domain", "normalize_address"]


def normalize_address(address: str) -> str:
    """Lowercase and check an address; raises DirectoryError naming what is wrong."""
    try:
        return addresses.normalize_address(address)
    except addresses.InvalidAddress as exc:
        raise DirectoryError(str(exc)) from None

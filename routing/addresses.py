"""Mail address syntax as every door and the directory see it.

Pure functions, no I/O. Addresses are compared lowercased: MSSanté boxes use dot-atom local
parts and the directory stores them in lower case.
"""

from __future__ import annotations

import re

__all__ = ["InvalidAddress", "domain_of", "is_domain", "normalize_address"]

# RFC 5321 §4.1.2 dot-atom local parts (quoted local parts are not used for MSSanté boxes).
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class InvalidAddress(ValueError):
    """An address that is not a usable mailbox; the message says what is wrong."""


def is_domain(domain: str) -> bool:
    """RFC 1035 §2.3.1 host name: dot-separated labels, at least two, ≤ 253 characters."""
    labels = domain.split(".")
    return len(domain) <= 253 and len(labels) >= 2 and all(_LABEL.match(lb) for lb in labels)


def normalize_address(address: str) -> str:
    """Lowercase and check an address; raises InvalidAddress naming what is wrong."""
    addr = address.strip()
    if addr.count("@") != 1:
        raise InvalidAddress(f"invalid address {address!r}: it must contain exactly one '@'")
    local, domain = addr.rsplit("@", 1)
    domain = domain.lower()
    if not local or len(local) > 64 or not _LOCAL.match(local):
        raise InvalidAddress(f"invalid address {address!r}: bad local part {local!r}")
    if not is_domain(domain):
        raise InvalidAddress(f"invalid address {address!r}: bad domain {domain!r}")
    return f"{local.lower()}@{domain}"


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[1].lower()

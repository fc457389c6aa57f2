"""What the rules answer: a route for a recipient, or a refusal with its SMTP status.

Every refusal carries the basic reply code, the RFC 3463 enhanced status and a reason in
plain words; doors print it as is (SMTP) or translate the reason (webmail).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Destination", "Refusal", "Route", "Sender", "SenderKind"]


@dataclass(frozen=True)
class Refusal:
    code: int  # RFC 5321 §4.2 reply code: 4xx temporary, 5xx permanent
    status: str  # RFC 3463 enhanced status code, e.g. "5.7.1"
    reason: str

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def reply(self) -> str:
        """The SMTP reply line (without CRLF)."""
        return f"{self.code} {self.status} {self.reason}"


class Destination(Enum):
    LOCAL = "local"  # a professional, ORG or APP box of this operator
    PATIENT = "patient"  # a Mon espace santé box hosted here
    RELAY = "relay"  # a box of another MSSanté operator (domain on the liste blanche)


@dataclass(frozen=True)
class Route:
    address: str  # normalised recipient
    destination: Destination
    account_id: int | None = None  # local and patient boxes


class SenderKind(Enum):
    PER = "PER"  # a professional's own box
    ORG = "ORG"  # a team or service box
    APP = "APP"  # a software system (laboratory, hospital platform)
    PAT = "PAT"  # a patient of this operator (Mon espace santé)
    PEER = "PEER"  # mail relayed by another operator: the sender is one of its users


@dataclass(frozen=True)
class Sender:
    """Who a transaction is from, as the doors established it."""

    address: str  # envelope sender, normalised; "" for the null sender (DSNs)
    kind: SenderKind
    account_id: int | None = None  # the authenticated box (submission, webmail)
    authenticated_as: str | None = None  # the box whose credentials were used
    method: str = ""  # "certificate", "oauth", "password", "peer-tls"
    peer: str | None = None  # TLS peer identity (subject DN) for peers and certificates

    @property
    def is_patient(self) -> bool:
        return self.kind is SenderKind.PAT

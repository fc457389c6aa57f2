"""The operator's settings the rules read, and the facts lookups hand them.

Plain values: `mailserver` builds the policy from the configuration, the pipeline gathers the
facts from the directory, and the rules in `routing.rules` decide from both.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PATIENT_DOMAIN", "PATIENT_MAX_MESSAGE_SIZE", "Mailbox", "Policy"]

# mssante.md §4: Mon espace santé boxes live under this domain, with a 25 MB limit per message.
PATIENT_DOMAIN = "patient.mssante.fr"
PATIENT_MAX_MESSAGE_SIZE = 25 * 1024 * 1024


@dataclass(frozen=True)
class Policy:
    operator_domains: frozenset[str]  # professional domains hosted here (lowercase)
    patient_domain: str | None = None  # the patient domain when this operator hosts it
    patient_max_message_size: int = PATIENT_MAX_MESSAGE_SIZE
    max_message_size: int = 50 * 1024 * 1024  # server-wide limit (SIZE, RFC 1870)
    max_recipients: int = 1000

    @property
    def patient_domain_name(self) -> str:
        """The patient domain, hosted here or not (a patient sender is recognised by it)."""
        return self.patient_domain or PATIENT_DOMAIN

    def is_local_domain(self, domain: str) -> bool:
        return domain in self.operator_domains or domain == self.patient_domain


@dataclass(frozen=True)
class Mailbox:
    """A box of this operator, as the rules need to see it."""

    account_id: int
    address: str
    kind: str  # PER | ORG | APP | PAT
    active: bool  # account state (a disabled box receives nothing)
    patient_state: str | None = None  # PAT only: active | opposed | closed

"""In-memory stand-ins for the protocols `routing.pipeline` needs (no database, no disk).

`FakeDirectory` satisfies `routing.pipeline.DirectoryLookups` and `FakeStore` satisfies
`routing.pipeline.MessageStore`; both record how they were called so a test can check what
the pipeline asked and what it made durable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routing.pipeline import DeliveryPlan
from routing.policy import Mailbox
from routing.rules import ContactState

__all__ = ["FakeDirectory", "FakeStore", "Who"]


@dataclass
class FakeDirectory:
    """Mailboxes, the liste blanche, ORG membership, the annuaire and patients' contacts."""

    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    liste_blanche: dict[str, frozenset[str]] = field(default_factory=dict)  # domain -> DNs
    members: set[tuple[int, str]] = field(default_factory=set)  # (member account, ORG address)
    inactive_professionals: set[int] = field(default_factory=set)
    contacts: dict[tuple[int, str], ContactState] = field(default_factory=dict)
    contact_lookups: list[tuple[int, str]] = field(default_factory=list)
    annuaire_lookups: list[int] = field(default_factory=list)

    def add(self, box: Mailbox) -> Mailbox:
        self.mailboxes[box.address] = box
        return box

    async def mailbox(self, address: str) -> Mailbox | None:
        return self.mailboxes.get(address.lower())

    async def listed_dns(self, domain: str) -> frozenset[str] | None:
        return self.liste_blanche.get(domain.lower())

    async def is_operator_dn(self, dn: str) -> bool:
        return any(dn in dns for dns in self.liste_blanche.values())

    async def may_send_as(self, account_id: int, address: str) -> bool:
        return (account_id, address.lower()) in self.members

    async def is_active_professional(self, account_id: int) -> bool:
        self.annuaire_lookups.append(account_id)
        return account_id not in self.inactive_professionals

    async def contact_state(self, patient_account_id: int, address: str) -> ContactState | None:
        self.contact_lookups.append((patient_account_id, address))
        return self.contacts.get((patient_account_id, address.lower()))

    def list_domain(self, domain: str, *dns: str) -> None:
        self.liste_blanche[domain] = frozenset(dns)


@dataclass
class FakeStore:
    """Keeps every plan it is asked to make durable; ``fail`` simulates a full disk."""

    plans: list[DeliveryPlan] = field(default_factory=list)
    fail: Exception | None = None

    async def store(self, plan: DeliveryPlan) -> None:
        if self.fail is not None:
            raise self.fail
        self.plans.append(plan)


@dataclass(frozen=True)
class Who:
    """An authenticated identity (satisfies `routing.pipeline.Principal`)."""

    account_id: int
    address: str
    kind: str
    method: str = "certificate"

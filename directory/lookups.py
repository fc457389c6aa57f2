"""The directory as the routing pipeline sees it (`routing.pipeline.DirectoryLookups`).

Each lookup opens a short session of its own. The liste blanche changes once a day, so its
answers are cached for a minute; mailbox, annuaire and contact answers are read fresh, since
a closed patient box or a struck-off professional must take effect at once.
"""

from __future__ import annotations

import time
from typing import Literal

from sqlalchemy import bindparam, exists, select

from directory.annuaire import is_active_professional
from directory.listeblanche import entries_for
from routing.policy import Mailbox
from storage.db import Database
from storage.models import Account, ListeBlancheEntry, OrgMember, Patient, PatientContact

__all__ = ["DirectoryLookups"]

LISTE_BLANCHE_TTL = 60.0

# Built once (one lookup per RCPT): the statement keeps its cache key between executions.
_MAILBOX = (
    select(Account.id, Account.address, Account.kind, Account.state, Patient.state)
    .outerjoin(Patient, Patient.account_id == Account.id)
    .where(Account.address == bindparam("address"))
)


class DirectoryLookups:
    def __init__(self, db: Database, *, ttl: float = LISTE_BLANCHE_TTL) -> None:
        self.db = db
        self.ttl = ttl
        self._dns: dict[str, tuple[float, frozenset[str] | None]] = {}
        self._operator_dns: tuple[float, frozenset[str]] | None = None

    def forget_liste_blanche(self) -> None:
        """Drop cached liste blanche answers (after an import)."""
        self._dns.clear()
        self._operator_dns = None

    async def mailbox(self, address: str) -> Mailbox | None:
        async with self.db.read() as s:
            row = (await s.execute(_MAILBOX, {"address": address.lower()})).first()
        if row is None:
            return None
        account_id, found, kind, state, patient_state = row
        return Mailbox(
            account_id=account_id,
            address=found,
            kind=kind,
            active=state == "active",
            patient_state=patient_state if kind == "PAT" else None,
        )

    async def listed_dns(self, domain: str) -> frozenset[str] | None:
        domain = domain.lower()
        now = time.monotonic()
        cached = self._dns.get(domain)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        async with self.db.session() as s:
            entries = await entries_for(s, domain)
        answer = frozenset(e.dn_normalized for e in entries if e.dn_normalized) if entries else None
        self._dns[domain] = (now, answer)
        return answer

    async def is_operator_dn(self, dn: str) -> bool:
        now = time.monotonic()
        if self._operator_dns is None or now - self._operator_dns[0] >= self.ttl:
            async with self.db.session() as s:
                rows = await s.scalars(
                    select(ListeBlancheEntry.dn_normalized)
                    .where(ListeBlancheEntry.dn_normalized.is_not(None))
                    .distinct()
                )
                self._operator_dns = (now, frozenset(r for r in rows if r))
        return dn in self._operator_dns[1]

    async def may_send_as(self, account_id: int, address: str) -> bool:
        """A PER may send as an ORG box it belongs to (mssante.md §2)."""
        async with self.db.session() as s:
            return bool(
                await s.scalar(
                    select(
                        exists()
                        .where(OrgMember.member_id == account_id)
                        .where(OrgMember.org_id == Account.id)
                        .where(Account.address == address.lower())
                        .where(Account.kind == "ORG")
                        .where(Account.state == "active")
                    )
                )
            )

    async def is_active_professional(self, account_id: int) -> bool:
        async with self.db.session() as s:
            account = await s.get(Account, account_id)
            if account is None or account.national_id is None:
                return False
            return await is_active_professional(s, account.national_id)

    async def contact_state(
        self, patient_account_id: int, address: str
    ) -> Literal["open", "closed"] | None:
        async with self.db.read() as s:
            state = await s.scalar(
                select(PatientContact.state).where(
                    PatientContact.patient_id == patient_account_id,
                    PatientContact.address == address.lower(),
                )
            )
        if state == "open":
            return "open"
        if state == "closed":
            return "closed"
        return None

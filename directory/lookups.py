"""The directory as the routing pipeline sees it (`routing.pipeline.DirectoryLookups`).

Each lookup is one trip to the database: a prebuilt Core statement run by the database's
:class:`storage.sync_runner.SyncRunner` (a lookup by key is quick: on the event loop itself on
SQLite, ``run_sync`` on PostgreSQL), not an async session whose every step wakes the event
loop. The liste blanche
changes once a day, so its answers are cached for a minute; mailbox, annuaire and contact
answers are read fresh, since a closed patient box or a struck-off professional must take
effect at once.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, Literal

from sqlalchemy import Connection, Executable, bindparam, exists, select

from directory.annuaire import in_annuaire
from directory.listeblanche import domain_key
from routing.policy import Mailbox
from storage.db import Database
from storage.models import (
    Account,
    ListeBlancheEntry,
    OrgMember,
    Patient,
    PatientContact,
)
from storage.sync_runner import SyncRunner

__all__ = ["DirectoryLookups"]

LISTE_BLANCHE_TTL = 60.0

# Built once (one lookup per RCPT): the statement keeps its cache key between executions.
_MAILBOX = (
    select(Account.id, Account.address, Account.kind, Account.state, Patient.state)
    .outerjoin(Patient, Patient.account_id == Account.id)
    .where(Account.address == bindparam("address"))
)
_LISTED_DNS = select(ListeBlancheEntry.dn_normalized).where(
    ListeBlancheEntry.domain == bindparam("domain")
)
_OPERATOR_DNS = (
    select(ListeBlancheEntry.dn_normalized)
    .where(ListeBlancheEntry.dn_normalized.is_not(None))
    .distinct()
)
_MAY_SEND_AS = select(
    exists()
    .where(OrgMember.member_id == bindparam("member"))
    .where(OrgMember.org_id == Account.id)
    .where(Account.address == bindparam("address"))
    .where(Account.kind == "ORG")
    .where(Account.state == "active")
)
# mssante.md §3: the account's national identifier is in the annuaire cache.
_ACTIVE_PROFESSIONAL = select(
    Account.national_id.is_not(None) & in_annuaire(Account.national_id)
).where(Account.id == bindparam("account"))
_CONTACT_STATE = select(PatientContact.state).where(
    PatientContact.patient_id == bindparam("patient"),
    PatientContact.address == bindparam("address"),
)


# The operations, run by the SyncRunner with their statement and parameters bound.
def _first(stmt: Executable, params: dict[str, Any], conn: Connection) -> Any:
    return conn.execute(stmt, params).first()


def _scalar(stmt: Executable, params: dict[str, Any], conn: Connection) -> Any:
    return conn.scalar(stmt, params)


def _column(stmt: Executable, params: dict[str, Any], conn: Connection) -> list[Any]:
    return list(conn.scalars(stmt, params))


class DirectoryLookups:
    def __init__(self, db: Database, *, ttl: float = LISTE_BLANCHE_TTL) -> None:
        self.db = db
        self.run = SyncRunner.shared(db)
        self.ttl = ttl
        self._dns: dict[str, tuple[float, frozenset[str] | None]] = {}
        self._operator_dns: tuple[float, frozenset[str]] | None = None

    def forget_liste_blanche(self) -> None:
        """Drop cached liste blanche answers (after an import)."""
        self._dns.clear()
        self._operator_dns = None

    async def mailbox(self, address: str) -> Mailbox | None:
        row = await self.run.read(
            partial(_first, _MAILBOX, {"address": address.lower()}), quick=True
        )
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
        params = {"domain": domain_key(domain)}
        dns = await self.run.read(partial(_column, _LISTED_DNS, params), quick=True)
        answer = frozenset(str(dn) for dn in dns if dn) if dns else None
        self._dns[domain] = (now, answer)
        return answer

    async def is_operator_dn(self, dn: str) -> bool:
        now = time.monotonic()
        if self._operator_dns is None or now - self._operator_dns[0] >= self.ttl:
            dns = await self.run.read(partial(_column, _OPERATOR_DNS, {}))
            self._operator_dns = (now, frozenset(str(r) for r in dns if r))
        return dn in self._operator_dns[1]

    async def may_send_as(self, account_id: int, address: str) -> bool:
        """A PER may send as an ORG box it belongs to (mssante.md §2)."""
        params = {"member": account_id, "address": address.lower()}
        return bool(await self.run.read(partial(_scalar, _MAY_SEND_AS, params), quick=True))

    async def is_active_professional(self, account_id: int) -> bool:
        params = {"account": account_id}
        return bool(await self.run.read(partial(_scalar, _ACTIVE_PROFESSIONAL, params), quick=True))

    async def contact_state(
        self, patient_account_id: int, address: str
    ) -> Literal["open", "closed"] | None:
        params = {"patient": patient_account_id, "address": address.lower()}
        state = await self.run.read(partial(_scalar, _CONTACT_STATE, params), quick=True)
        if state == "open":
            return "open"
        if state == "closed":
            return "closed"
        return None

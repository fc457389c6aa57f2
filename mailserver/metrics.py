"""Prometheus metrics (text exposition format), gathered from the stores at scrape time."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from sqlalchemy import func, select

from storage.db import Database
from storage.models import (
    Account,
    AnnuaireImport,
    ListeBlancheEntry,
    Patient,
    QueueEntry,
)

VERSION = "0.1.0"


class Metrics:
    """One registry per server (not the global one), so tests can run several servers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.info = Gauge("mailserver_build_info", "Build information", ["version"], registry=r)
        self.info.labels(VERSION).set(1)
        self.start_time = Gauge(
            "mailserver_start_time_seconds", "Start time (Unix seconds)", registry=r
        )
        self.start_time.set(time.time())
        self.database_up = Gauge(
            "mailserver_database_up", "1 when the database answered the last scrape", registry=r
        )
        self.listeblanche_domains = Gauge(
            "mailserver_listeblanche_domains", "Distinct domains on the liste blanche", registry=r
        )
        self.annuaire_records = Gauge(
            "mailserver_annuaire_records",
            "Records in the active annuaire cache",
            ["kind"],
            registry=r,
        )
        self.accounts = Gauge(
            "mailserver_accounts", "Mailboxes by type and state", ["kind", "state"], registry=r
        )
        self.patients = Gauge(
            "mailserver_patients", "Patient boxes by state", ["state"], registry=r
        )
        self.queue = Gauge(
            "mailserver_relay_queue", "Relay queue entries by state", ["state"], registry=r
        )
        self.http_requests = Counter(
            "mailserver_admin_http_requests",
            "Admin HTTP requests",
            ["path", "status"],
            registry=r,
        )

    async def refresh(self, db: Database) -> None:
        """Read the counts from the database; on failure mark the database down."""
        try:
            async with db.session() as s:
                domains = await s.scalar(
                    select(func.count(func.distinct(ListeBlancheEntry.domain)))
                )
                imports = (
                    await s.execute(
                        select(AnnuaireImport.kind, AnnuaireImport.records).where(
                            AnnuaireImport.active.is_(True)
                        )
                    )
                ).all()
                acc = (
                    await s.execute(
                        select(Account.kind, Account.state, func.count()).group_by(
                            Account.kind, Account.state
                        )
                    )
                ).all()
                pat = (
                    await s.execute(select(Patient.state, func.count()).group_by(Patient.state))
                ).all()
                queue = (
                    await s.execute(
                        select(QueueEntry.state, func.count()).group_by(QueueEntry.state)
                    )
                ).all()
        except Exception:  # any driver error: report the database as down, keep serving
            self.database_up.set(0)
            return
        self.database_up.set(1)
        self.listeblanche_domains.set(domains or 0)
        self.annuaire_records.clear()
        for kind, records in imports:
            self.annuaire_records.labels(kind).set(records)
        self.accounts.clear()
        for kind, state, n in acc:
            self.accounts.labels(kind, state).set(n)
        self.patients.clear()
        for state, n in pat:
            self.patients.labels(state).set(n)
        self.queue.clear()
        for state, n in queue:
            self.queue.labels(state).set(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)

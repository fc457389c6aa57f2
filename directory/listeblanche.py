"""The liste blanche cache: which domains take part in MSSanté, behind which operator DNs.

An import replaces the national entries atomically (one transaction): a refused file leaves
the previous list in force. Entries of origin `local` (development peers, test operators
registered by the operator) survive imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from certs.dn import DNSyntaxError, normalize_dn
from directory.addresses import is_domain
from directory.errors import DirectoryError
from directory.listeblanche_file import ListeBlancheError, parse_listeblanche
from storage.db import Database
from storage.models import ListeBlancheEntry, ListeBlancheImport, utcnow


@dataclass
class ListeBlancheReport:
    entries: int
    domains: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    dn_changed: list[str] = field(default_factory=list)
    unparsable_dns: list[str] = field(default_factory=list)
    invalid_names: list[str] = field(default_factory=list)


def _norm(dn: str | None) -> str | None:
    if not dn:
        return None
    try:
        return normalize_dn(dn)
    except DNSyntaxError:
        return None


async def _national_map(session: AsyncSession) -> dict[str, set[str]]:
    rows = await session.execute(
        select(ListeBlancheEntry.domain, ListeBlancheEntry.dn_normalized).where(
            ListeBlancheEntry.origin == "national"
        )
    )
    out: dict[str, set[str]] = {}
    for domain, dn in rows.all():
        out.setdefault(domain, set())
        if dn:
            out[domain].add(dn)
    return out


async def import_listeblanche(
    db: Database, path: Path, *, expected_sha256: str | None = None
) -> ListeBlancheReport:
    """Parse, verify and atomically install a published liste blanche."""
    try:
        parsed = parse_listeblanche(path, expected_sha256=expected_sha256)
    except ListeBlancheError as exc:
        raise DirectoryError(str(exc)) from None
    new: dict[str, set[str]] = {}
    unparsable: list[str] = []
    rows = []
    for entry in parsed.entries:
        dn_norm = _norm(entry.dn)
        if entry.dn and dn_norm is None:
            unparsable.append(f"{entry.domain}: {entry.dn}")
        new.setdefault(entry.domain, set())
        if dn_norm:
            new[entry.domain].add(dn_norm)
        rows.append(
            {
                "domain": entry.domain,
                "dn_text": entry.dn,
                "dn_normalized": dn_norm,
                "description": entry.description or "",
                "updated_at": entry.updated_at,
                "origin": "national",
            }
        )
    async with db.session() as session, session.begin():
        old = await _national_map(session)
        await session.execute(
            delete(ListeBlancheEntry).where(ListeBlancheEntry.origin == "national")
        )
        await session.execute(insert(ListeBlancheEntry), rows)
        session.add(
            ListeBlancheImport(
                imported_at=utcnow(),
                generated_at=parsed.generated_at,
                file_name=str(path),
                sha256=parsed.sha256,
                entries=len(rows),
                domains=len(new),
            )
        )
    return ListeBlancheReport(
        entries=len(rows),
        domains=len(new),
        added=sorted(set(new) - set(old)),
        removed=sorted(set(old) - set(new)),
        dn_changed=sorted(d for d in set(new) & set(old) if new[d] != old[d]),
        unparsable_dns=unparsable,
        invalid_names=[f"line {n.line}: {n.reason}" for n in parsed.invalid_names],
    )


async def add_local_entry(
    session: AsyncSession, domain: str, dn: str | None, description: str = ""
) -> ListeBlancheEntry:
    """Register a domain by hand (development peer, test operator); kept across imports."""
    domain = domain.strip().lower()
    if not is_domain(domain):
        raise DirectoryError(f"invalid domain {domain!r}")
    dn_norm = None
    if dn:
        try:
            dn_norm = normalize_dn(dn)
        except DNSyntaxError as exc:
            raise DirectoryError(f"invalid certificate DN {dn!r}: {exc}") from None
    entry = ListeBlancheEntry(
        domain=domain,
        dn_text=dn,
        dn_normalized=dn_norm,
        description=description,
        updated_at=utcnow(),
        origin="local",
    )
    session.add(entry)
    return entry


async def remove_local_domain(session: AsyncSession, domain: str) -> int:
    result = await session.execute(
        delete(ListeBlancheEntry).where(
            ListeBlancheEntry.domain == domain.strip().lower(),
            ListeBlancheEntry.origin == "local",
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def domain_key(domain: str) -> str:
    """A domain as the liste blanche stores it (RFC 5321 §2.4: case does not matter)."""
    return domain.strip().lower()


async def entries_for(session: AsyncSession, domain: str) -> Sequence[ListeBlancheEntry]:
    stmt = (
        select(ListeBlancheEntry)
        .where(ListeBlancheEntry.domain == domain_key(domain))
        .order_by(ListeBlancheEntry.origin, ListeBlancheEntry.id)
    )
    return (await session.scalars(stmt)).all()


async def is_listed(session: AsyncSession, domain: str) -> bool:
    return bool(await entries_for(session, domain))


async def operator_dns(session: AsyncSession, domain: str) -> set[str]:
    """Normalised operator certificate DNs allowed to send for `domain` (mssante.md §1)."""
    return {e.dn_normalized for e in await entries_for(session, domain) if e.dn_normalized}


async def counts(session: AsyncSession) -> tuple[int, int]:
    """(entries, distinct domains) currently in force."""
    entries = await session.scalar(select(func.count()).select_from(ListeBlancheEntry))
    domains = await session.scalar(select(func.count(func.distinct(ListeBlancheEntry.domain))))
    return int(entries or 0), int(domains or 0)


async def last_import(session: AsyncSession) -> ListeBlancheImport | None:
    stmt = select(ListeBlancheImport).order_by(ListeBlancheImport.id.desc()).limit(1)
    return await session.scalar(stmt)

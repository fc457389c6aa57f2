"""Local accounts: PER, ORG and APP boxes, their passwords, certificates and ORG members."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from certs.identity import identity_of
from directory.addresses import domain_of, normalize_address
from directory.errors import DirectoryError
from directory.passwords import hash_password
from routing.identifiers import InvalidIdentifier, check_national_id
from storage.mailstore import create_default_folders
from storage.models import Account, AccountCertificate, OrgMember

# Référentiel #1: PER (nominative), ORG (organisational), APP (applicative) boxes.
PRO_KINDS = ("PER", "ORG", "APP")


@dataclass(frozen=True)
class AccountSummary:
    address: str
    kind: str
    state: str
    national_id: str | None
    display_name: str
    has_password: bool
    certificates: int
    members: tuple[str, ...]


async def get_account(session: AsyncSession, address: str) -> Account | None:
    return await session.scalar(select(Account).where(Account.address == address.lower()))


async def require_account(session: AsyncSession, address: str) -> Account:
    account = await get_account(session, normalize_address(address))
    if account is None:
        raise DirectoryError(f"no account {address!r}")
    return account


async def add_account(
    session: AsyncSession,
    *,
    address: str,
    kind: str,
    operator_domains: Sequence[str],
    national_id: str | None = None,
    structure_id: str | None = None,
    display_name: str = "",
    password: str | None = None,
) -> Account:
    """Create a professional-side box with its default folders."""
    kind = kind.upper()
    if kind not in PRO_KINDS:
        raise DirectoryError(f"unknown account type {kind!r}: use PER, ORG or APP")
    addr = normalize_address(address)
    if domain_of(addr) not in operator_domains:
        served = ", ".join(operator_domains)
        raise DirectoryError(f"{addr}: domain {domain_of(addr)} is not served here ({served})")
    if kind == "PER":
        if not national_id:
            raise DirectoryError("a PER box needs --national-id (8+RPPS or 0+ADELI)")
        try:
            national_id = check_national_id(national_id).value
        except InvalidIdentifier as exc:
            raise DirectoryError(str(exc)) from None
    elif national_id:
        raise DirectoryError(f"{kind} boxes carry a structure identifier, not a national id")
    if await get_account(session, addr) is not None:
        raise DirectoryError(f"account {addr} already exists")
    account = Account(
        address=addr,
        kind=kind,
        national_id=national_id,
        structure_id=structure_id,
        display_name=display_name,
        state="active",
        password_hash=hash_password(password) if password else None,
    )
    session.add(account)
    await session.flush()
    await create_default_folders(session, account.id)
    return account


async def set_password(session: AsyncSession, address: str, password: str) -> None:
    account = await require_account(session, address)
    account.password_hash = hash_password(password)


async def set_state(session: AsyncSession, address: str, state: str) -> Account:
    if state not in ("active", "disabled"):
        raise DirectoryError(f"unknown account state {state!r}")
    account = await require_account(session, address)
    if account.kind == "PAT":
        raise DirectoryError(f"{account.address} is a patient box: use `mailserver patient`")
    account.state = state
    return account


async def bind_certificate(
    session: AsyncSession, address: str, cert: x509.Certificate
) -> AccountCertificate:
    """Bind a client certificate for SASL EXTERNAL, checking it fits the box."""
    account = await require_account(session, address)
    ident = identity_of(cert)
    if account.kind == "PER":
        if ident.kind != "person":
            raise DirectoryError(
                f"{account.address} is a PER box: it needs a person certificate, "
                f"got a {ident.kind} certificate ({ident.subject_dn_text})"
            )
        if ident.national_id != account.national_id:
            raise DirectoryError(
                f"certificate is for national id {ident.national_id}, "
                f"but {account.address} belongs to {account.national_id}"
            )
    elif account.kind in ("ORG", "APP"):
        if ident.kind == "person":
            raise DirectoryError(
                f"{account.address} is an {account.kind} box: it needs an organisation "
                f"certificate, got a person certificate ({ident.subject_dn_text})"
            )
    else:
        raise DirectoryError(f"{account.address}: certificates are not bound to patient boxes")
    existing = await session.scalar(
        select(AccountCertificate).where(
            AccountCertificate.fingerprint_sha256 == ident.fingerprint_sha256
        )
    )
    if existing is not None:
        raise DirectoryError(f"certificate {ident.fingerprint_sha256[:16]}… is already bound")
    row = AccountCertificate(
        account_id=account.id,
        fingerprint_sha256=ident.fingerprint_sha256,
        subject_dn=ident.subject_dn,
        subject_text=ident.subject_dn_text,
        serial_hex=ident.serial_hex,
        issuer_dn=ident.issuer_dn,
        not_after=ident.not_after,
    )
    session.add(row)
    return row


async def add_member(session: AsyncSession, org_address: str, member_address: str) -> None:
    org = await require_account(session, org_address)
    member = await require_account(session, member_address)
    if org.kind != "ORG":
        raise DirectoryError(f"{org.address} is not an ORG box")
    if member.kind != "PER":
        raise DirectoryError(f"{member.address} is not a PER box: only professionals join ORGs")
    exists = await session.get(OrgMember, (org.id, member.id))
    if exists is None:
        session.add(OrgMember(org_id=org.id, member_id=member.id))


async def remove_member(session: AsyncSession, org_address: str, member_address: str) -> None:
    org = await require_account(session, org_address)
    member = await require_account(session, member_address)
    row = await session.get(OrgMember, (org.id, member.id))
    if row is None:
        raise DirectoryError(f"{member.address} is not a member of {org.address}")
    await session.delete(row)


async def members_of(session: AsyncSession, org_id: int) -> list[str]:
    stmt = (
        select(Account.address)
        .join(OrgMember, OrgMember.member_id == Account.id)
        .where(OrgMember.org_id == org_id)
        .order_by(Account.address)
    )
    return list((await session.scalars(stmt)).all())


async def list_accounts(session: AsyncSession, kind: str | None = None) -> list[AccountSummary]:
    stmt = select(Account).where(Account.kind != "PAT").order_by(Account.address)
    if kind:
        stmt = stmt.where(Account.kind == kind.upper())
    result = []
    for acc in (await session.scalars(stmt)).all():
        certs = (
            await session.scalars(
                select(AccountCertificate.id).where(AccountCertificate.account_id == acc.id)
            )
        ).all()
        result.append(
            AccountSummary(
                address=acc.address,
                kind=acc.kind,
                state=acc.state,
                national_id=acc.national_id,
                display_name=acc.display_name,
                has_password=acc.password_hash is not None,
                certificates=len(certs),
                members=tuple(await members_of(session, acc.id)) if acc.kind == "ORG" else (),
            )
        )
    return result

"""Identity resolution: who is speaking, once their proof has been checked.

The doors check the proof (TLS chain and CRL, token signature, password) and ask here which
box it opens. The same rule serves every door: a PER identity is only granted while the
professional is active in the annuaire cache (mssante.md §3: a professional who left the
annuaire can no longer act as one), and disabled boxes open nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from certs.identity import identity_of
from directory.accounts import get_account
from directory.addresses import normalize_address
from directory.annuaire import is_active_professional
from directory.errors import DirectoryError
from directory.passwords import check_password
from directory.tokens import TokenClaims
from storage.models import Account, AccountCertificate, AppPassword, Patient, utcnow


class AuthenticationRefused(DirectoryError):
    """The proof was valid or absent but grants no box; the message says why."""


class TemporarilyRefused(AuthenticationRefused):
    """Refused for now, whatever the proof (too many recent failures): the doors answer it
    as a temporary failure (SMTP 454 4.7.0, RFC 4954 §6; IMAP ``[UNAVAILABLE]``,
    RFC 5530 §3), like a blocked client address."""


@dataclass(frozen=True)
class Identity:
    """Who is speaking and how they proved it (recorded in the audit log)."""

    account_id: int
    address: str
    kind: str  # PER | ORG | APP | PAT
    national_id: str | None
    method: str  # "certificate", "password", ...


async def _grant(session: AsyncSession, account: Account, method: str) -> Identity:
    if account.state != "active":
        raise AuthenticationRefused(f"{account.address} is disabled")
    active = account.kind != "PER" or (
        account.national_id is not None
        and await is_active_professional(session, account.national_id)
    )
    if not active:
        raise AuthenticationRefused(
            f"{account.address}: national id {account.national_id} is not active in the "
            "annuaire: the box cannot act as a professional"
        )
    if account.kind == "PAT":
        patient = await session.get(Patient, account.id)
        if patient is None or patient.state != "active":
            state = patient.state if patient is not None else "unknown"
            raise AuthenticationRefused(f"{account.address}: patient box is {state}")
    return Identity(account.id, account.address, account.kind, account.national_id, method)


async def _per_box(session: AsyncSession, national_id: str, proof: str) -> Account:
    """The PER box of a professional, by national identifier (the first one when several).

    ``proof`` describes what carried the identifier, for the refusal message.
    """
    account = await session.scalar(
        select(Account)
        .where(Account.kind == "PER", Account.national_id == national_id)
        .order_by(Account.id)
        .limit(1)
    )
    if account is None:
        raise AuthenticationRefused(f"no PER box for national id {national_id} ({proof})")
    return account


async def identity_for_certificate(session: AsyncSession, cert: x509.Certificate) -> Identity:
    """The box a (chain- and CRL-checked) client certificate opens (SASL EXTERNAL).

    Person certificates map through their national identifier to the PER box; organisation
    certificates must have been bound to their ORG/APP box (`mailserver account bind-cert`).
    """
    ident = identity_of(cert)
    if ident.kind == "person":
        if ident.national_id is None:  # a person certificate (by EKU) without a CPS-style CN
            raise AuthenticationRefused(
                f"person certificate {ident.subject_dn_text} carries no national identifier"
            )
        account = await _per_box(session, ident.national_id, ident.subject_dn_text)
        return await _grant(session, account, "certificate")
    bound = await session.scalar(
        select(Account)
        .join(AccountCertificate, AccountCertificate.account_id == Account.id)
        .where(AccountCertificate.fingerprint_sha256 == ident.fingerprint_sha256)
    )
    if bound is None:
        raise AuthenticationRefused(f"certificate {ident.subject_dn_text} is not bound to any box")
    return await _grant(session, bound, "certificate")


async def identity_for_token(session: AsyncSession, claims: TokenClaims) -> Identity:
    """The PER box a validated access token opens (SASL XOAUTH2 / OAUTHBEARER).

    The token's national identifier (checked by :class:`directory.tokens.TokenValidator`)
    maps to the PER box exactly as a person certificate's does; the professional must be
    active in the annuaire (mssante.md §2-3).
    """
    proof = f"token of {claims.issuer} for subject {claims.subject}"
    account = await _per_box(session, claims.national_id, proof)
    return await _grant(session, account, "oauth")


async def identity_for_password(session: AsyncSession, address: str, password: str) -> Identity:
    """Password check (development logins, patients' first factor): one vague refusal for
    unknown boxes and wrong passwords alike, so that box names cannot be probed."""
    try:
        account = await get_account(session, normalize_address(address))
    except DirectoryError:
        raise AuthenticationRefused("invalid credentials") from None
    if account is None or not await check_password(password, account.password_hash):
        raise AuthenticationRefused("invalid credentials")
    return await _grant(session, account, "password")


async def identity_for_mail_client_password(
    session: AsyncSession, address: str, password: str
) -> Identity:
    """A password typed into a mail client (SASL PLAIN/LOGIN on submission and IMAP).

    Professional boxes use their account password (development logins). A patient's account
    password is only the first factor of the webmail login, so a patient's mail client must
    use one of the app passwords made for it (`mailserver patient app-password`).
    """
    try:
        account = await get_account(session, normalize_address(address))
    except DirectoryError:
        raise AuthenticationRefused("invalid credentials") from None
    if account is None or account.kind != "PAT":
        return await identity_for_password(session, address, password)
    rows = (
        await session.scalars(select(AppPassword).where(AppPassword.account_id == account.id))
    ).all()
    match = None
    for row in rows:
        if await check_password(password, row.password_hash):
            match = row
            break
    if match is None:
        raise AuthenticationRefused("invalid credentials (patients use an app password here)")
    match.last_used_at = utcnow()
    await session.commit()
    return await _grant(session, account, "app-password")

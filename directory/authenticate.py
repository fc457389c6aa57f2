"""Checking a mail client's proof of identity, the same way for every door (SMTP, IMAP).

The door decodes its SASL exchange (`directory.sasl`) and hands the proof here: a TLS client
certificate (EXTERNAL), an OpenID Connect access token (XOAUTH2 / OAUTHBEARER), or a password
(PLAIN / LOGIN, only when the operator allows it). Failures are counted per client address and
per account (`directory.throttle`), and every refusal says why in words a user can act on,
except for passwords, where unknown box and wrong password stay indistinguishable.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from cryptography import x509

from certs.truststore import TrustStore
from directory.errors import DirectoryError
from directory.identity import (
    AuthenticationRefused,
    Identity,
    TemporarilyRefused,
    identity_for_certificate,
    identity_for_mail_client_password,
    identity_for_token,
)
from directory.throttle import Throttle
from directory.tokens import TokenRefused, TokenValidator
from storage.db import Database

__all__ = ["AuthPolicy", "Authenticator"]


@dataclass(frozen=True)
class AuthPolicy:
    allow_plain: bool = False  # passwords are a development convenience, not MSSanté-grade
    patients_mail_clients: bool = False  # patients may use IMAP/submission (app passwords)


class Authenticator:
    def __init__(
        self,
        db: Database,
        trust: TrustStore,
        throttle: Throttle,
        policy: AuthPolicy,
        tokens: TokenValidator | None = None,
    ) -> None:
        self.db = db
        self.trust = trust
        self.throttle = throttle
        self.policy = policy
        self.tokens = tokens

    @property
    def mechanisms(self) -> list[str]:
        """SASL mechanisms to advertise (once TLS is up)."""
        names = ["EXTERNAL"]
        if self.tokens is not None:
            names += ["OAUTHBEARER", "XOAUTH2"]
        if self.policy.allow_plain or self.policy.patients_mail_clients:
            names += ["PLAIN", "LOGIN"]
        return names

    def blocked(self, remote: str, account: str | None = None) -> str | None:
        return self.throttle.blocked(remote, account)

    async def _refused(
        self, remote: str, account: str | None, reason: str
    ) -> AuthenticationRefused:
        delay = self.throttle.failure(remote, account)
        if delay:
            await asyncio.sleep(delay)
        return AuthenticationRefused(reason)

    def _check_patient(self, who: Identity) -> None:
        if who.kind == "PAT" and not self.policy.patients_mail_clients:
            raise AuthenticationRefused(
                "patients read their mail in the Mon espace santé webmail; mail clients are "
                "not enabled for patients on this server"
            )

    async def certificate(
        self, leaf: x509.Certificate | None, remote: str, authzid: str | None = None
    ) -> Identity:
        """SASL EXTERNAL (RFC 4422 Appendix A) with the TLS client certificate."""
        if leaf is None:
            raise await self._refused(remote, None, "no client certificate was presented")
        verdict = self.trust.verify(leaf)
        if not verdict.ok:
            raise await self._refused(remote, None, f"client certificate refused: {verdict.reason}")
        try:
            async with self.db.session() as session:
                who = await identity_for_certificate(session, leaf)
        except AuthenticationRefused as exc:
            raise await self._refused(remote, None, str(exc)) from None
        if authzid and authzid.lower() != who.address:
            raise await self._refused(
                remote, who.address, f"certificate opens {who.address}, not {authzid}"
            )
        self._check_patient(who)
        self.throttle.success(who.address)
        return who

    async def token(self, token: str, remote: str, authzid: str | None = None) -> Identity:
        """SASL OAUTHBEARER (RFC 7628) / XOAUTH2 with an OpenID Connect access token."""
        if self.tokens is None:
            raise AuthenticationRefused("no token issuer is configured on this server")
        try:
            claims = self.tokens.validate(token)
            async with self.db.session() as session:
                who = await identity_for_token(session, claims)
        except (TokenRefused, AuthenticationRefused) as exc:
            raise await self._refused(remote, authzid, str(exc)) from None
        if authzid and authzid.lower() != who.address:
            raise await self._refused(remote, authzid, f"token opens {who.address}, not {authzid}")
        self.throttle.success(who.address)
        return who

    async def password(self, user: str, password: str, remote: str) -> Identity:
        """SASL PLAIN / LOGIN: development logins, and patients' app passwords. An account
        with too many recent failures is refused before its password is checked, by every
        door (issue #3: throttled per client address and per account)."""
        blocked = self.throttle.blocked(remote, user)
        if blocked:
            raise TemporarilyRefused(blocked)
        try:
            async with self.db.session() as session:
                who = await identity_for_mail_client_password(session, user, password)
        except DirectoryError as exc:
            raise await self._refused(remote, user, str(exc)) from None
        if who.kind == "PAT":
            self._check_patient(who)
        elif not self.policy.allow_plain:
            raise await self._refused(
                remote,
                user,
                "password login is disabled for professionals: use a CPS/e-CPS certificate "
                "(EXTERNAL) or a Pro Santé Connect token (OAUTHBEARER)",
            )
        self.throttle.success(who.address)
        return who

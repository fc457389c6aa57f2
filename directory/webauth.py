"""Patients' webmail login and sessions (issue #6; mssante.md §2: password and a one-time code
on every login).

1. :meth:`WebAuth.start_login`: the password (first factor) is checked by
   :func:`directory.identity.identity_for_password`, the same rule as every door (unknown box
   and wrong password indistinguishable; opposed or closed patients refused, said only once
   the password was right); then a ``code`` session is created, holding the hash of the code
   e-mailed to the patient, or waiting for a TOTP code if the patient enrolled one.
2. :meth:`WebAuth.finish_login`: the code is checked (bounded attempts, expiry); the ``code``
   session is deleted and a ``full`` one with a **new** identifier is created (no session
   fixation), with its own CSRF token.
3. :meth:`WebAuth.session`: idle and absolute expiry on every request.

Failures count in :class:`directory.throttle.Throttle` (per client address and per account,
with growing delays), like the other doors. Messages are in French: they are shown to
patients as they are.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from directory import otp
from directory.accounts import get_account
from directory.addresses import normalize_address
from directory.errors import DirectoryError
from directory.identity import AuthenticationRefused, identity_for_password
from directory.passwords import check_password, hash_password
from directory.patients import close, oppose
from directory.throttle import Throttle
from storage import audit
from storage.db import Database, Executor
from storage.models import Account, Patient, PatientTotpStep, WebSession, utcnow

__all__ = [
    "CodeRefused",
    "LoginRefused",
    "PendingLogin",
    "WebAuth",
    "WebAuthSettings",
    "WebIdentity",
    "WebPatient",
]

METHOD_EMAIL = "password+email-code"
METHOD_TOTP = "password+totp"
BAD_CREDENTIALS = "Identifiant ou mot de passe incorrect."
MIN_PASSWORD = 12
TOUCH_EVERY = timedelta(seconds=30)  # a session's last use is written at most this often

# Every request checks its session (issue #6): one statement, built once (it keeps its cache
# key), reads the session, its patient's state and what the pages show of them.
_SESSION = (
    select(
        WebSession.stage,
        WebSession.csrf_token,
        WebSession.auth_method,
        WebSession.created_at,
        WebSession.last_seen_at,
        Account.id.label("account_id"),
        Account.address,
        Account.display_name,
        Patient.ins,
        Patient.state,
    )
    .join(Account, Account.id == WebSession.account_id)
    .join(Patient, Patient.account_id == WebSession.account_id)
    .where(WebSession.id == bindparam("sid"))
)
_END_SESSION = delete(WebSession).where(WebSession.id == bindparam("sid"))
_TOUCH_SESSION = (
    update(WebSession)
    .where(WebSession.id == bindparam("sid"))
    .values(last_seen_at=bindparam("now"))
)
_PATIENT = (
    select(
        Account.id,
        Account.address,
        Patient.ins,
        Account.display_name,
        Patient.personal_email,
        Patient.totp_secret,
    )
    .join(Patient, Patient.account_id == Account.id)
    .where(Account.id == bindparam("account"))
)


class LoginRefused(DirectoryError):
    """The login stops here; the message (French) says why and what to do."""


class CodeRefused(DirectoryError):
    """A wrong or expired one-time code; ``restart`` when a new login is needed."""

    def __init__(self, message: str, *, restart: bool) -> None:
        super().__init__(message)
        self.restart = restart


@dataclass(frozen=True)
class WebAuthSettings:
    patient_domain: str
    idle: timedelta = timedelta(minutes=15)
    absolute: timedelta = timedelta(hours=8)
    code_validity: timedelta = timedelta(minutes=10)
    code_attempts: int = 5
    totp_issuer: str = "Mon espace santé"


@dataclass(frozen=True)
class WebPatient:
    account_id: int
    address: str
    ins: str
    display_name: str
    personal_email: str | None
    totp_enrolled: bool


class _Person(Protocol):
    """Who a session belongs to (a :class:`WebPatient`, or a row of ``_SESSION``)."""

    @property
    def account_id(self) -> int: ...
    @property
    def address(self) -> str: ...
    @property
    def ins(self) -> str: ...
    @property
    def display_name(self) -> str: ...


@dataclass(frozen=True)
class PendingLogin:
    token: str  # the cookie value of the ``code`` session
    patient: WebPatient
    method: str
    code: str | None  # the code to e-mail (None: the patient uses TOTP)


@dataclass(frozen=True)
class WebIdentity:
    """A logged-in patient; satisfies ``routing.pipeline.Principal`` (kind, method)."""

    account_id: int
    address: str
    ins: str
    display_name: str
    method: str  # "webmail:" + how the session was opened (password + e-mailed code / TOTP)
    session_id: str
    csrf_token: str
    stage: str = "full"
    kind: str = "PAT"

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor(self.address, self.method)


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, _session_id(token)


def password_problem(password: str) -> str | None:
    """Why a new password is refused, in French, or None."""
    if len(password) < MIN_PASSWORD:
        return f"Le mot de passe doit comporter au moins {MIN_PASSWORD} caractères."
    if password.isdigit() or password.isalpha():
        return "Le mot de passe doit mêler lettres et chiffres ou signes."
    return None


class WebAuth:
    def __init__(
        self,
        db: Database,
        throttle: Throttle,
        settings: WebAuthSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.throttle = throttle
        self.settings = settings
        self.clock = clock
        self.wall = wall

    # --- first factor --------------------------------------------------------------------

    def address_of(self, login: str) -> str | None:
        """The box address for what the patient typed: an address, or an INS matricule."""
        text = "".join(login.split())
        if not text:
            return None
        if "@" not in text:
            text = f"{text.lower()}@{self.settings.patient_domain}"
        try:
            return normalize_address(text)
        except (DirectoryError, ValueError):
            return None

    async def _failed(self, remote: str, account: str | None) -> None:
        delay = self.throttle.failure(remote, account)
        if delay:
            await asyncio.sleep(delay)

    def _blocked(self, remote: str, account: str | None) -> None:
        if self.throttle.blocked(remote, account):
            minutes = round(self.throttle.window / 60)
            raise LoginRefused(
                "Trop de tentatives de connexion ont échoué. Par sécurité, réessayez dans "
                f"{minutes} minutes."
            )

    async def start_login(self, login: str, password: str, remote: str) -> PendingLogin:
        address = self.address_of(login)
        self._blocked(remote, address)
        if address is None or not password:
            await self._failed(remote, address)
            raise LoginRefused(BAD_CREDENTIALS)
        async with self.db.session() as s:
            try:
                who = await identity_for_password(s, address, password)
            except AuthenticationRefused as exc:
                if str(exc) == "invalid credentials":
                    await self._failed(remote, address)
                    raise LoginRefused(BAD_CREDENTIALS) from None
                # The password was right: the box itself is not open (mssante.md §4).
                raise LoginRefused(await self._closed_reason(s, address)) from None
            if who.kind != "PAT":
                await self._failed(remote, address)
                raise LoginRefused(BAD_CREDENTIALS)
            patient = await self._patient(s, who.account_id)
            if patient.totp_enrolled:
                method, code = METHOD_TOTP, None
            elif patient.personal_email:
                method, code = METHOD_EMAIL, otp.new_email_code()
            else:
                raise LoginRefused(
                    "Aucune adresse électronique personnelle n'est enregistrée pour recevoir "
                    "votre code de connexion. Contactez le support de Mon espace santé."
                )
            token, sid = _new_token()
            now = self.clock()
            s.add(
                WebSession(
                    id=sid,
                    account_id=patient.account_id,
                    stage="code",
                    csrf_token=secrets.token_urlsafe(32),
                    auth_method=method,
                    code_hash=otp.code_digest(code, sid) if code else None,
                    code_expires_at=now + self.settings.code_validity,
                    code_attempts=0,
                    remote_address=remote[:60],
                    created_at=now,
                    last_seen_at=now,
                )
            )
            await s.commit()
        return PendingLogin(token, patient, method, code)

    @staticmethod
    async def _closed_reason(s: AsyncSession, address: str) -> str:
        account = await get_account(s, address)
        patient = await s.get(Patient, account.id) if account is not None else None
        if patient is not None and patient.state == "opposed":
            return (
                "Vous vous êtes opposé(e) à la création de votre messagerie de santé : elle "
                "n'est pas ouverte et aucun message ne vous y est remis."
            )
        if patient is not None and patient.state == "closed":
            return (
                "Votre messagerie de santé a été fermée : il n'est plus possible de s'y "
                "connecter et les messages qui vous sont adressés sont refusés."
            )
        return "Ce compte est désactivé. Contactez le support de Mon espace santé."

    @staticmethod
    async def _patient(s: Executor, account_id: int) -> WebPatient:
        account, address, ins, name, email, totp_secret = (
            await s.execute(_PATIENT, {"account": account_id})
        ).one()
        return WebPatient(
            account_id=account,
            address=address,
            ins=ins,
            display_name=name,
            personal_email=email,
            totp_enrolled=bool(totp_secret),
        )

    # --- second factor -------------------------------------------------------------------

    async def pending(self, token: str | None) -> tuple[WebPatient, WebSession] | None:
        """The ``code`` session behind a cookie, while its code is still valid."""
        if not token:
            return None
        async with self.db.session() as s:
            row = await s.get(WebSession, _session_id(token))
            if row is None or row.stage != "code":
                return None
            if row.code_expires_at is None or row.code_expires_at <= self.clock():
                await s.delete(row)
                await s.commit()
                return None
            return await self._patient(s, row.account_id), row

    async def finish_login(
        self, token: str | None, code: str, remote: str
    ) -> tuple[str, WebIdentity]:
        """Check the one-time code; returns the new session's cookie value and identity."""
        found = await self.pending(token)
        if found is None or token is None:
            raise CodeRefused(
                "Votre code a expiré ou la connexion a été interrompue. Recommencez.", restart=True
            )
        patient, _ = found
        self._blocked(remote, patient.address)
        async with self.db.session() as s:
            row = await s.get(WebSession, _session_id(token), with_for_update=True)
            if row is None or row.stage != "code":
                raise CodeRefused("La connexion a été interrompue. Recommencez.", restart=True)
            ok = await self._code_ok(s, row, patient, code)
            if not ok:
                row.code_attempts += 1
                restart = row.code_attempts >= self.settings.code_attempts
                audit.record(
                    s,
                    audit.Actor(patient.address, f"webmail:{row.auth_method}", remote),
                    "webmail.login.code-refused",
                    object_type="session",
                    patient_ins=patient.ins,
                )
                if restart:
                    await s.delete(row)
                await s.commit()
                await self._failed(remote, patient.address)
                if restart:
                    raise CodeRefused(
                        "Trop de codes erronés : recommencez la connexion.", restart=True
                    )
                left = self.settings.code_attempts - row.code_attempts
                raise CodeRefused(f"Code incorrect. Il vous reste {left} essai(s).", restart=False)
            method = row.auth_method
            await s.delete(row)
            new_token, sid = _new_token()  # issue #6: a new session identifier after login
            now = self.clock()
            full = WebSession(
                id=sid,
                account_id=patient.account_id,
                stage="full",
                csrf_token=secrets.token_urlsafe(32),
                auth_method=method,
                code_attempts=0,
                remote_address=remote[:60],
                created_at=now,
                last_seen_at=now,
            )
            s.add(full)
            audit.record(
                s,
                audit.Actor(patient.address, f"webmail:{method}", remote),
                "webmail.login",
                object_type="session",
                patient_ins=patient.ins,
            )
            await s.commit()
        self.throttle.success(patient.address)
        return new_token, self._identity(patient, full.id, full.auth_method, full.csrf_token)

    async def _code_ok(
        self, s: AsyncSession, row: WebSession, patient: WebPatient, code: str
    ) -> bool:
        if row.auth_method == METHOD_EMAIL:
            return otp.code_matches(code, row.id, row.code_hash)
        secret = await s.scalar(
            select(Patient.totp_secret).where(Patient.account_id == patient.account_id)
        )
        if not secret:
            return False
        used = await s.get(PatientTotpStep, patient.account_id, with_for_update=True)
        step = otp.totp_match(
            secret, code, self.wall(), after_step=used.last_step if used else None
        )
        if step is None:
            return False
        if used is None:
            s.add(PatientTotpStep(patient_id=patient.account_id, last_step=step))
        else:
            used.last_step = step
        return True

    @staticmethod
    def _identity(person: _Person, session_id: str, auth_method: str, csrf: str) -> WebIdentity:
        return WebIdentity(
            account_id=person.account_id,
            address=person.address,
            ins=person.ins,
            display_name=person.display_name,
            method=f"webmail:{auth_method}",
            session_id=session_id,
            csrf_token=csrf,
        )

    # --- sessions ------------------------------------------------------------------------

    async def session(self, token: str | None) -> WebIdentity | None:
        """The logged-in patient behind a cookie, checked on every request, nothing cached
        (issue #6): idle and absolute expiry, and the box must still be open (mssante.md §4:
        an opposed or closed box ends its sessions). One read; a write only to end the
        session or, at most every ``TOUCH_EVERY``, to note its last use."""
        if not token:
            return None
        sid = _session_id(token)
        now = self.clock()
        async with self.db.read() as conn:
            row = (await conn.execute(_SESSION, {"sid": sid})).first()
        if row is None or row.stage != "full":
            return None
        expired = (
            now - row.last_seen_at > self.settings.idle
            or now - row.created_at > self.settings.absolute
        )
        if expired or row.state != "active":
            async with self.db.transaction() as conn:
                await conn.execute(_END_SESSION, {"sid": sid})
            return None
        if now - row.last_seen_at > TOUCH_EVERY:
            async with self.db.transaction() as conn:
                await conn.execute(_TOUCH_SESSION, {"sid": sid, "now": now})
        return self._identity(row, sid, row.auth_method, row.csrf_token)

    async def logout(self, who: WebIdentity) -> None:
        async with self.db.session() as s, s.begin():
            await s.execute(delete(WebSession).where(WebSession.id == who.session_id))
            audit.record(s, who.actor, "webmail.logout", object_type="session", patient_ins=who.ins)

    # --- account -------------------------------------------------------------------------

    async def patient(self, who: WebIdentity) -> WebPatient:
        async with self.db.read() as conn:
            return await self._patient(conn, who.account_id)

    async def _check_password(self, s: AsyncSession, who: WebIdentity, password: str) -> None:
        account = await s.get(Account, who.account_id)
        if account is None or not await check_password(password, account.password_hash):
            raise LoginRefused("Le mot de passe actuel est incorrect.")

    async def change_password(self, who: WebIdentity, current: str, new: str) -> None:
        problem = password_problem(new)
        if problem:
            raise LoginRefused(problem)
        async with self.db.session() as s, s.begin():
            await self._check_password(s, who, current)
            account = await s.get(Account, who.account_id)
            assert account is not None
            account.password_hash = hash_password(new)
            # Every other session of this patient ends with the old password.
            await s.execute(
                delete(WebSession).where(
                    WebSession.account_id == who.account_id, WebSession.id != who.session_id
                )
            )
            audit.record(
                s, who.actor, "account.password", object_type="account", patient_ins=who.ins
            )

    def totp_uri(self, who: WebIdentity, secret: str) -> str:
        return otp.otpauth_uri(secret, who.address, self.settings.totp_issuer)

    async def enrol_totp(self, who: WebIdentity, secret: str, code: str) -> None:
        """Keep ``secret`` once the patient proved their application shows its codes."""
        step = otp.totp_match(secret, code, self.wall())
        if step is None:
            raise LoginRefused("Le code ne correspond pas : vérifiez l'heure de votre téléphone.")
        async with self.db.session() as s, s.begin():
            patient = await s.get(Patient, who.account_id)
            assert patient is not None
            patient.totp_secret = secret
            used = await s.get(PatientTotpStep, who.account_id)
            if used is None:
                s.add(PatientTotpStep(patient_id=who.account_id, last_step=step))
            else:
                used.last_step = step
            audit.record(
                s, who.actor, "account.totp.enrol", object_type="account", patient_ins=who.ins
            )

    async def remove_totp(self, who: WebIdentity, password: str) -> None:
        async with self.db.session() as s, s.begin():
            await self._check_password(s, who, password)
            patient = await s.get(Patient, who.account_id)
            assert patient is not None
            patient.totp_secret = None
            audit.record(
                s, who.actor, "account.totp.remove", object_type="account", patient_ins=who.ins
            )

    async def end_mailbox(self, who: WebIdentity, password: str, state: str) -> None:
        """The patient opposes (``opposed``) or closes (``closed``) their box (mssante.md §4):
        later mail bounces with the reason (routing.rules); every session ends."""
        async with self.db.session() as s, s.begin():
            await self._check_password(s, who, password)
            change = oppose if state == "opposed" else close
            try:
                await change(s, who.ins, domain=self.settings.patient_domain)
            except DirectoryError as exc:
                raise LoginRefused(str(exc)) from None
            await s.execute(delete(WebSession).where(WebSession.account_id == who.account_id))
            audit.record(
                s, who.actor, f"account.{state}", object_type="account", patient_ins=who.ins
            )

"""The one pipeline every door calls: identify the sender, route each recipient, deliver.

Doors (SMTP inbound and submission, webmail) turn what they hear into calls here; the rules
themselves are the pure functions of `routing.rules`. The pipeline reaches the directory and
the stores only through the protocols declared below; `mailserver` hands it the real objects
(`directory.lookups.DirectoryLookups`, `storage.delivery.MessageStore`) and unit tests hand it
fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from routing.addresses import domain_of
from routing.decisions import Destination, Refusal, Route, Sender, SenderKind
from routing.headers import message_facts
from routing.policy import Mailbox, Policy
from routing.rules import (
    ContactState,
    ContactUpdate,
    Door,
    check_data_size,
    check_declared_size,
    check_peer_sender,
    check_submission_sender,
    contact_updates,
    parse_recipient,
    route_recipient,
)

__all__ = [
    "Accepted",
    "DeliveryPlan",
    "DirectoryLookups",
    "FailedCopy",
    "LocalCopy",
    "MessageStore",
    "Outcome",
    "Pipeline",
    "Principal",
    "RelayCopy",
]


class Principal(Protocol):
    """An authenticated identity (directory.identity.Identity satisfies it)."""

    @property
    def account_id(self) -> int: ...
    @property
    def address(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def method(self) -> str: ...


class DirectoryLookups(Protocol):
    async def mailbox(self, address: str) -> Mailbox | None: ...
    async def listed_dns(self, domain: str) -> frozenset[str] | None:
        """Normalised operator DNs listed for ``domain``; None when it is not listed."""
        ...

    async def is_operator_dn(self, dn: str) -> bool: ...
    async def may_send_as(self, account_id: int, address: str) -> bool: ...
    async def is_active_professional(self, account_id: int) -> bool: ...
    async def contact_state(self, patient_account_id: int, address: str) -> ContactState | None: ...


@dataclass(frozen=True)
class LocalCopy:
    account_id: int
    address: str
    notify: str | None
    orcpt: str | None
    patient: bool  # a Mon espace santé box (the delivery is written to the audit log)


@dataclass(frozen=True)
class RelayCopy:
    address: str
    notify: str | None
    orcpt: str | None


@dataclass(frozen=True)
class FailedCopy:
    """A recipient accepted at RCPT but refused at the end of DATA (it gets a failure DSN)."""

    address: str
    notify: str | None
    orcpt: str | None
    status: str
    reason: str


@dataclass(frozen=True)
class DeliveryPlan:
    data: bytes
    sender: str  # envelope sender ("" for the null sender)
    envid: str | None
    ret: str | None
    local: Sequence[LocalCopy]
    relay: Sequence[RelayCopy]
    failed: Sequence[FailedCopy]
    contacts: Sequence[ContactUpdate]
    actor: str  # who sent it, for the audit log (authenticated box or peer DN)
    method: str  # how they proved it
    remote_address: str
    smtputf8: bool = False
    # Queue entries whose delivery report this message is (a DSN): marked done in the same
    # transaction, so a report is neither lost nor sent twice across a crash.
    completes: Sequence[int] = ()


class MessageStore(Protocol):
    async def store(self, plan: DeliveryPlan) -> None:
        """Make the message, its local copies and its queue entries durable (or raise)."""
        ...


@dataclass(frozen=True)
class Accepted:
    """A recipient accepted at RCPT, with its RFC 3461 parameters."""

    route: Route
    notify: str | None = None
    orcpt: str | None = None


@dataclass
class Outcome:
    """Result of a delivery: which recipients were refused at the end of DATA."""

    refused: dict[str, Refusal] = field(default_factory=dict)
    delivered: int = 0  # recipients stored locally or queued for relay

    @property
    def all_refused(self) -> Refusal | None:
        if self.delivered == 0 and self.refused:
            return next(iter(self.refused.values()))
        return None


class Pipeline:
    def __init__(self, policy: Policy, directory: DirectoryLookups, store: MessageStore) -> None:
        self.policy = policy
        self.directory = directory
        self.store = store

    # --- senders ---------------------------------------------------------------------------

    async def peer_sender(
        self, mail_from: str, peer_dn: str | None, shown_dn: str | None = None
    ) -> Sender | Refusal:
        """Inbound from another operator: liste blanche domain and certificate DN
        (``peer_dn`` normalised for the comparison, ``shown_dn`` as written)."""
        if mail_from:
            parsed = parse_recipient(mail_from)
            if isinstance(parsed, Refusal):
                return Refusal(501, "5.1.7", f"bad sender address: {parsed.reason}")
            mail_from = parsed
        listed = await self.directory.listed_dns(domain_of(mail_from)) if mail_from else None
        operator = bool(peer_dn and not mail_from and await self.directory.is_operator_dn(peer_dn))
        refusal = check_peer_sender(
            mail_from, peer_dn, listed, dn_is_operator=operator, shown_dn=shown_dn
        )
        if refusal is not None:
            return refusal
        kind = SenderKind.PEER
        if mail_from and domain_of(mail_from) == self.policy.patient_domain_name:
            kind = SenderKind.PAT  # a patient of another operator: the patient rules apply
        return Sender(mail_from, kind, method="peer-tls", peer=shown_dn or peer_dn)

    async def authenticated_sender(self, who: Principal, mail_from: str) -> Sender | Refusal:
        """Submission and webmail: the authenticated box may send as ``mail_from``?"""
        parsed = parse_recipient(mail_from) if mail_from else ""
        if isinstance(parsed, Refusal):
            return Refusal(501, "5.1.7", f"bad sender address: {parsed.reason}")
        box = await self.directory.mailbox(who.address)
        if box is None:
            return Refusal(550, "5.7.1", f"{who.address} no longer exists")
        may = bool(parsed) and (
            parsed == box.address or await self.directory.may_send_as(box.account_id, parsed)
        )
        active = box.kind != "PER" or await self.directory.is_active_professional(box.account_id)
        refusal = check_submission_sender(box, parsed, may_send_as=may, professional_active=active)
        if refusal is not None:
            return refusal
        sender_box = box if parsed == box.address else await self.directory.mailbox(parsed)
        kind = SenderKind(sender_box.kind) if sender_box is not None else SenderKind(box.kind)
        return Sender(
            parsed,
            kind,
            account_id=sender_box.account_id if sender_box is not None else box.account_id,
            authenticated_as=who.address,
            method=who.method,
        )

    def check_size(self, declared: int | None) -> Refusal | None:
        return check_declared_size(declared, self.policy)

    # --- recipients --------------------------------------------------------------------------

    async def route(
        self,
        door: Door,
        sender: Sender,
        recipient: str,
        declared_size: int | None = None,
        *,
        read_receipt: bool = False,
    ) -> Route | Refusal:
        address = parse_recipient(recipient)
        if isinstance(address, Refusal):
            return address
        domain = domain_of(address)
        local = self.policy.is_local_domain(domain)
        mailbox = await self.directory.mailbox(address) if local else None
        listed = await self._in_trust_space(domain)
        contact: ContactState | None = None
        if sender.is_patient and sender.account_id is not None:
            contact = await self.directory.contact_state(sender.account_id, address)
        return route_recipient(
            address,
            door=door,
            sender=sender,
            policy=self.policy,
            mailbox=mailbox,
            domain_listed=listed,
            contact=contact,
            declared_size=declared_size,
            read_receipt=read_receipt,
        )

    # --- delivery ----------------------------------------------------------------------------

    async def deliver(
        self,
        sender: Sender,
        recipients: Sequence[Accepted],
        data: bytes,
        *,
        envid: str | None = None,
        ret: str | None = None,
        remote_address: str = "",
        smtputf8: bool = False,
        completes: Sequence[int] = (),
    ) -> Outcome:
        """Store the message for every accepted recipient; durable when this returns."""
        outcome = Outcome()
        local: list[LocalCopy] = []
        relay: list[RelayCopy] = []
        failed: list[FailedCopy] = []
        patients: list[Route] = []
        for rcpt in recipients:
            route = rcpt.route
            refusal = check_data_size(len(data), route, self.policy)
            if refusal is not None:
                outcome.refused[route.address] = refusal
                failed.append(
                    FailedCopy(
                        route.address, rcpt.notify, rcpt.orcpt, refusal.status, refusal.reason
                    )
                )
                continue
            outcome.delivered += 1
            if route.destination is Destination.RELAY:
                relay.append(RelayCopy(route.address, rcpt.notify, rcpt.orcpt))
                continue
            assert route.account_id is not None
            is_patient = route.destination is Destination.PATIENT
            local.append(
                LocalCopy(route.account_id, route.address, rcpt.notify, rcpt.orcpt, is_patient)
            )
            if is_patient:
                patients.append(route)
        if outcome.delivered == 0:
            return outcome  # all refused: nothing stored, the door refuses the whole message
        updates: list[ContactUpdate] = []
        if patients:
            facts = message_facts(data)
            mssante = {a for a in facts.reply_to if await self._in_trust_space(domain_of(a))}
            updates = contact_updates(sender, facts, patients, is_mssante=mssante)
        await self.store.store(
            DeliveryPlan(
                data=data,
                sender=sender.address,
                envid=envid,
                ret=ret,
                local=local,
                relay=relay,
                failed=failed,
                contacts=updates,
                actor=sender.authenticated_as or sender.peer or sender.address,
                method=sender.method,
                remote_address=remote_address,
                smtputf8=smtputf8,
                completes=completes,
            )
        )
        return outcome

    async def _in_trust_space(self, domain: str) -> bool:
        """A domain of ours or on the liste blanche (mssante.md §1)."""
        return self.policy.is_local_domain(domain) or (
            await self.directory.listed_dns(domain) is not None
        )

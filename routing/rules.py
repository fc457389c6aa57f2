"""The MSSanté rules, as pure decisions.

No sockets, no SQL, no clock: each function is handed the facts it needs (looked up by
`routing.pipeline`) and answers a `Route` or a `Refusal`. The same functions serve every door
(inbound SMTP from peers, submission, webmail), so a rule is written, and tested, once.

References: mssante.md (the domain notes), Référentiel socle MSSanté #1 (operators),
RFC 5321 (SMTP), RFC 3463 (enhanced status codes), RFC 1870 (SIZE).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from routing.addresses import InvalidAddress, domain_of, normalize_address
from routing.decisions import Destination, Refusal, Route, Sender, SenderKind
from routing.identifiers import InvalidIdentifier, check_ins
from routing.policy import Mailbox, Policy

__all__ = [
    "ContactState",
    "ContactUpdate",
    "Door",
    "MessageFacts",
    "check_data_size",
    "check_declared_size",
    "check_peer_certificate",
    "check_peer_sender",
    "check_submission_sender",
    "contact_updates",
    "is_fin",
    "parse_recipient",
    "route_recipient",
]

Door = Literal["inbound", "submission", "webmail"]
ContactState = Literal["open", "closed"]

TRUST_SPACE = "outside the MSSanté trust space (its domain is not on the liste blanche)"
NO_FIRST_CONTACT = "a patient can only answer a professional who wrote first"


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"


# --- peers (inbound SMTP from other operators) -------------------------------------------


def check_peer_certificate(verified: bool, reason: str) -> Refusal | None:
    """mssante.md §1: the peer's certificate must chain to an IGC-Santé root, be within its
    validity and not be revoked. ``reason`` is the trust store's explanation."""
    if verified:
        return None
    return Refusal(550, "5.7.1", f"peer certificate refused: {reason}")


def check_peer_sender(
    mail_from: str,
    peer_dn: str | None,
    listed_dns: Collection[str] | None,
    *,
    dn_is_operator: bool,
    shown_dn: str | None = None,
) -> Refusal | None:
    """mssante.md §1: the MAIL FROM domain must be on the liste blanche and the peer
    certificate's subject DN one of the DNs listed for it (DNs compared normalised).

    ``listed_dns`` is None when the domain is not on the liste blanche. The null sender
    (RFC 5321 §4.5.5, delivery reports) is accepted from any listed operator certificate.
    ``shown_dn`` is the DN as written in the certificate, for the refusal text.
    """
    shown = shown_dn or peer_dn
    if peer_dn is None:
        return Refusal(
            550, "5.7.1", "a peer operator must present its IGC-Santé certificate (mutual TLS)"
        )
    if not mail_from:
        if dn_is_operator:
            return None
        return Refusal(
            550, "5.7.1", f"certificate {shown} is not listed for any domain of the liste blanche"
        )
    domain = domain_of(mail_from)
    if listed_dns is None:
        return Refusal(550, "5.7.1", f"sender domain {domain} is {TRUST_SPACE}")
    if peer_dn not in listed_dns:
        return Refusal(
            550,
            "5.7.1",
            f"certificate DN {shown} is not listed for sender domain {domain} in the liste blanche",
        )
    return None


# --- submission and webmail senders --------------------------------------------------------


def check_submission_sender(
    authenticated: Mailbox,
    mail_from: str,
    *,
    may_send_as: bool,
    professional_active: bool,
) -> Refusal | None:
    """Who may send as what (submission and webmail).

    MAIL FROM must be a box the authenticated identity may use: its own, or an ORG box it
    belongs to (``may_send_as``, looked up). A PER sender must still be active in the
    annuaire cache at send time (mssante.md §3).
    """
    if not mail_from:
        return Refusal(550, "5.7.1", "submission needs a sender address (MAIL FROM:<> refused)")
    if mail_from != authenticated.address and not may_send_as:
        return Refusal(
            550,
            "5.7.1",
            f"{authenticated.address} may not send as {mail_from} "
            "(only as itself or an ORG box it belongs to)",
        )
    if authenticated.kind == "PER" and not professional_active:
        return Refusal(
            550,
            "5.7.1",
            f"{authenticated.address} is not active in the annuaire: "
            "it can no longer send as a professional",
        )
    return None


# --- sizes -----------------------------------------------------------------------------------


def check_declared_size(declared: int | None, policy: Policy) -> Refusal | None:
    """RFC 1870 §6.2: refuse at MAIL when the announced SIZE exceeds what we accept."""
    if declared is not None and declared > policy.max_message_size:
        return Refusal(
            552,
            "5.3.4",
            f"message size {declared} exceeds the limit of {policy.max_message_size} bytes",
        )
    return None


def _patient_size_refusal(size: int, policy: Policy) -> Refusal:
    return Refusal(
        552,
        "5.3.4",
        f"message size {size} exceeds the {_mb(policy.patient_max_message_size)} limit of "
        f"{policy.patient_domain_name}",
    )


def check_data_size(size: int, route: Route, policy: Policy) -> Refusal | None:
    """End of DATA: the real size against the server limit, and the 25 MB limit of the
    patient domain (mssante.md §4) for patient recipients."""
    if size > policy.max_message_size:
        return Refusal(
            552, "5.3.4", f"message size {size} exceeds the limit of {policy.max_message_size}"
        )
    if route.destination is Destination.PATIENT and size > policy.patient_max_message_size:
        return _patient_size_refusal(size, policy)
    return None


# --- recipients ------------------------------------------------------------------------------


def parse_recipient(address: str) -> str | Refusal:
    """RFC 5321 §4.1.2 syntax, normalised (lowercase)."""
    try:
        return normalize_address(address)
    except InvalidAddress as exc:
        return Refusal(501, "5.1.3", str(exc))


def _patient_box(
    address: str, mailbox: Mailbox | None, sender: Sender, declared_size: int | None, policy: Policy
) -> Route | Refusal:
    local = address.split("@", 1)[0]
    try:
        check_ins(local.upper())
    except InvalidIdentifier as exc:
        # mssante.md §4: the local part must be a valid INS matricule.
        return Refusal(550, "5.1.3", f"{address}: {exc}")
    from_patient_domain = bool(sender.address) and (
        domain_of(sender.address) == policy.patient_domain_name
    )
    if sender.is_patient or from_patient_domain:
        # mssante.md §4 (our choice): a patient never writes to another patient.
        return Refusal(550, "5.7.1", f"{NO_FIRST_CONTACT}; a patient cannot write to a patient")
    if mailbox is None or mailbox.patient_state is None:
        return Refusal(550, "5.1.1", f"{address}: no Mon espace santé mailbox for this INS")
    if mailbox.patient_state == "opposed":
        return Refusal(
            550, "5.1.1", f"{address}: the patient opposed the creation of their mailbox"
        )
    if mailbox.patient_state == "closed" or not mailbox.active:
        return Refusal(550, "5.1.1", f"{address}: the patient's mailbox is closed")
    if declared_size is not None and declared_size > policy.patient_max_message_size:
        return _patient_size_refusal(declared_size, policy)
    return Route(address, Destination.PATIENT, mailbox.account_id)


def route_recipient(
    address: str,
    *,
    door: Door,
    sender: Sender,
    policy: Policy,
    mailbox: Mailbox | None,
    domain_listed: bool,
    contact: ContactState | None,
    declared_size: int | None = None,
    read_receipt: bool = False,
) -> Route | Refusal:
    """Classify one (normalised) recipient and apply the rules that depend on it.

    ``mailbox`` is the local box for ``address`` if any; ``domain_listed`` whether its
    domain is on the liste blanche; ``contact`` the state of ``address`` among the sending
    patient's authorised contacts (only looked at when the sender is a patient);
    ``read_receipt`` when the message is a patient's automatic MDN (RFC 8098).
    """
    domain = domain_of(address)
    route: Route | Refusal
    if policy.patient_domain is not None and domain == policy.patient_domain:
        route = _patient_box(address, mailbox, sender, declared_size, policy)
    elif domain in policy.operator_domains:
        if mailbox is None:
            route = Refusal(550, "5.1.1", f"{address}: no such mailbox")
        elif not mailbox.active:
            route = Refusal(550, "5.2.1", f"{address}: mailbox disabled")
        else:
            route = Route(address, Destination.LOCAL, mailbox.account_id)
    elif door == "inbound":
        # A peer hands us mail for our boxes only: we relay for nobody (RFC 5321 §3.6.2).
        route = Refusal(550, "5.1.1", f"{address} is not a mailbox of this operator")
    elif domain == policy.patient_domain_name and sender.is_patient:
        route = Refusal(550, "5.7.1", f"{NO_FIRST_CONTACT}; a patient cannot write to a patient")
    elif domain_listed:
        route = Route(address, Destination.RELAY)
    else:
        route = Refusal(550, "5.7.1", f"{address} is {TRUST_SPACE}")
    if isinstance(route, Refusal) or not sender.is_patient:
        return route
    if sender.account_id is None and policy.patient_domain is None:
        # A patient of the operator hosting the patient domain, relayed to us (inbound): that
        # operator keeps the patient's contacts and applied the rule below before relaying; we
        # hold no record to check it against (the professional's message went out by relay).
        return route
    # mssante.md §4: a patient only answers a professional who wrote first, and not after
    # the professional closed the exchange.
    if contact == "open":
        return route
    if contact == "closed" and read_receipt:
        # mssante.md §4: a patient cannot refuse the read receipt a professional asked for,
        # even after FIN; still only to a professional who wrote to them.
        return route
    if contact == "closed":
        return Refusal(
            550,
            "5.7.1",
            f"{address} closed the exchange (X-MSS-MES: FIN): {NO_FIRST_CONTACT} "
            "and has not closed it",
        )
    return Refusal(550, "5.7.1", f"{NO_FIRST_CONTACT}; {address} has not written to you")


# --- authorised contacts ---------------------------------------------------------------------


@dataclass(frozen=True)
class MessageFacts:
    """The header fields the contact rules read (parsed by the pipeline)."""

    subject: str | None
    reply_to: Sequence[str]  # normalised addresses found in Reply-To
    x_mss_mes: str | None  # the X-MSS-MES header value


@dataclass(frozen=True)
class ContactUpdate:
    patient_account_id: int
    address: str  # the professional (or ORG/APP box) the patient may answer
    open: bool  # True: authorise (again); False: the professional closed the exchange


def is_fin(facts: MessageFacts) -> bool:
    """mssante.md §4: ``X-MSS-MES: FIN`` (preferred) or a subject that is exactly ``[FIN]``."""
    mes = (facts.x_mss_mes or "").strip().upper()
    return mes == "FIN" or (facts.subject or "").strip() == "[FIN]"


def contact_updates(
    sender: Sender,
    facts: MessageFacts,
    patient_routes: Sequence[Route],
    *,
    is_mssante: Collection[str],
) -> list[ContactUpdate]:
    """Who each patient recipient may answer after this message.

    When a professional, ORG or APP message reaches a patient, the sender becomes an
    authorised contact, or the MSSanté address in Reply-To if there is one (mssante.md §4).
    FIN from that professional closes the exchange. ``is_mssante`` holds the Reply-To
    addresses whose domain is on the liste blanche or local.
    """
    if sender.is_patient or not sender.address:
        return []
    reply_to = next((a for a in facts.reply_to if a in is_mssante), None)
    contact = reply_to or sender.address
    fin = is_fin(facts)
    updates: list[ContactUpdate] = []
    for route in patient_routes:
        if route.account_id is None:
            continue
        updates.append(ContactUpdate(route.account_id, contact, not fin))
        if fin and contact != sender.address:
            # The professional who ends the exchange cannot be answered directly either.
            updates.append(ContactUpdate(route.account_id, sender.address, False))
    return updates


def sender_kind_for(mailbox_kind: str) -> SenderKind:
    return SenderKind(mailbox_kind)

"""Messages: the inbox and "Envoyés", reading, attachments, read receipts, writing
(issue #6 items 3 and 4)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from directory.webauth import WebIdentity
from routing.decisions import Refusal
from routing.headers import message_facts
from routing.pipeline import Accepted
from routing.rules import is_fin
from storage import audit
from storage.webmail_store import INBOX, SENT, Contact, Party, StoredMessage
from webmail.context import Webmail, webmail_of
from webmail.http import client_address, login_required, not_found, page, redirect
from webmail.outgoing import build_mdn, build_message
from webmail.paging import requested_pager
from webmail.reading import (
    ReadMessage,
    attachment_payload,
    content_disposition,
    envelope_from,
    envelope_subject,
    envelope_to,
    has_attachments,
    read_message,
)
from webmail.refusals import refusal_fr

__all__ = ["actor_of", "routes"]

log = logging.getLogger("webmail")

MDN_SENT: Final = "$MDNSent"  # RFC 3503 §3.1: the MDN for this message went (or was refused)
SEEN: Final = "\\Seen"
MAX_SUBJECT = 200
MAX_BODY = 100_000
# Types a browser may open from a download; anything else is offered as bytes.
SHOWN_TYPES: Final = frozenset(
    {"application/pdf", "image/png", "image/jpeg", "image/gif", "text/plain"}
)


def actor_of(request: Request, who: WebIdentity) -> audit.Actor:
    return audit.Actor(who.address, who.method, client_address(request))


def party_for(parties: dict[str, Party], address: str, header_name: str) -> Party:
    """The annuaire's or the account's name first; the header's only when we know neither."""
    found = parties.get(address.lower())
    if found is not None and found.name:
        return found
    return Party(address, header_name or address, found.organisation if found else "")


@dataclass(frozen=True)
class ListItem:
    id: int
    subject: str
    party: Party
    date: datetime
    unread: bool
    attachments: bool


async def _folder(request: Request, who: WebIdentity, folder: str) -> Response:
    webmail = webmail_of(request)
    pager = requested_pager(request, webmail.settings.page_size)
    if pager is None:
        return not_found(request, who)
    async with webmail.store.reads() as reads:
        found = await reads.page(who.account_id, folder, offset=pager.offset, limit=pager.size)
        pager = pager.counted(found.total)
        if not pager.exists:
            return not_found(request, who)
        people = [
            envelope_from(m.envelope)
            if folder == INBOX
            else (envelope_to(m.envelope) or [("", "")])[0]
            for m in found.messages
        ]
        parties = await reads.parties(a for _, a in people)
    items = [
        ListItem(
            m.id,
            envelope_subject(m.envelope),
            party_for(parties, address, name),
            m.internal_date,
            SEEN not in m.flags,
            has_attachments(m.structure),
        )
        for m, (name, address) in zip(found.messages, people, strict=True)
    ]
    inbox = folder == INBOX
    return page(
        request,
        "folder.html",
        who,
        title="Messages reçus" if inbox else "Messages envoyés",
        section="messages" if inbox else "envoyes",
        inbox=inbox,
        items=items,
        total=found.total,
        unseen=found.unseen,
        pager=pager,
        sent=request.query_params.get("envoye") == "1",
    )


async def inbox(request: Request, who: WebIdentity) -> Response:
    return await _folder(request, who, INBOX)


async def sent(request: Request, who: WebIdentity) -> Response:
    return await _folder(request, who, SENT)


async def home(request: Request) -> Response:
    return redirect("/messages")


def _reply_target(message: ReadMessage, contacts: list[Contact]) -> Contact | None:
    """The contact an answer goes to: the MSSanté Reply-To the rules authorised, else the
    sender (mssante.md §4)."""
    by_address = {c.party.address: c for c in contacts}
    for address in (*message.reply_to, message.from_address):
        if address in by_address:
            return by_address[address]
    return None


async def _load(
    request: Request, who: WebIdentity, purpose: str, wanted: object = None
) -> tuple[Webmail, StoredMessage | None]:
    """The patient's message named in the URL (or ``wanted``); absent when not theirs."""
    webmail = webmail_of(request)
    try:
        message_id = int(str(request.path_params["id"] if wanted is None else wanted))
    except (KeyError, ValueError):
        return webmail, None
    stored = await webmail.store.message(
        who.account_id, message_id, actor=actor_of(request, who), ins=who.ins, purpose=purpose
    )
    return webmail, stored


async def show(request: Request, who: WebIdentity) -> Response:
    webmail, stored = await _load(request, who, "read")
    if stored is None:
        return not_found(request, who)
    message = await asyncio.to_thread(read_message, stored.data)
    wants_mdn = stored.folder == INBOX and bool(message.disposition_notification_to)
    before = await webmail.store.add_flags(
        stored.folder_id,
        stored.uid,
        [SEEN, MDN_SENT] if wants_mdn else [SEEN],
        known=stored.flags,  # read with the message: a message read again writes nothing
    )
    if wants_mdn and MDN_SENT not in before:
        await _send_mdn(request, webmail, who, stored, message)
    async with webmail.store.reads() as reads:
        contacts, parties = await reads.contacts(
            who.account_id, [message.from_address, *(a for _, a in message.to)]
        )
        filed = await reads.filed(who.account_id, [a.sha256 for a in message.attachments])
    target = _reply_target(message, contacts) if stored.folder == INBOX else None
    return page(
        request,
        "message.html",
        who,
        title=message.subject,
        section="messages" if stored.folder == INBOX else "envoyes",
        stored=stored,
        message=message,
        sender=party_for(parties, message.from_address, message.from_name),
        recipients=[party_for(parties, a, n) for n, a in message.to],
        target=target,
        fin=is_fin(message_facts(stored.data)),
        filed=filed,
        saved=request.query_params.get("enregistre"),
    )


async def _send_mdn(
    request: Request,
    webmail: Webmail,
    who: WebIdentity,
    stored: StoredMessage,
    message: ReadMessage,
) -> None:
    """RFC 8098 §2.1: to the Disposition-Notification-To address, once (``$MDNSent``),
    through the pipeline like any message the patient sends (mssante.md §4: the patient
    cannot refuse it, even after FIN; it still goes only to a professional who wrote)."""
    to = message.disposition_notification_to[0]
    object_id = f"{stored.folder_id}:{stored.uid}"
    sender = await webmail.pipeline.authenticated_sender(who, who.address)
    route = (
        sender
        if isinstance(sender, Refusal)
        else await webmail.pipeline.route("webmail", sender, to, read_receipt=True)
    )
    if isinstance(route, Refusal) or isinstance(sender, Refusal):
        reason = route.reason if isinstance(route, Refusal) else ""
        await webmail.store.record(
            actor_of(request, who),
            "message.mdn.refused",
            ins=who.ins,
            object_id=object_id,
            detail={"to": to, "reason": reason},
        )
        return
    data = build_mdn(
        patient=(who.display_name, who.address),
        to=to,
        original_subject=message.subject,
        original_message_id=message.message_id,
        original_recipient=message.original_recipient,
        hostname=webmail.settings.hostname,
        now=datetime.now(UTC),
    )
    outcome = await webmail.pipeline.deliver(
        sender, [Accepted(route)], data, remote_address=client_address(request)
    )
    await webmail.store.record(
        actor_of(request, who),
        "message.mdn",
        ins=who.ins,
        object_id=object_id,
        detail={"to": to, "delivered": outcome.delivered},
    )


async def download(request: Request, who: WebIdentity) -> Response:
    _, stored = await _load(request, who, "download")
    if stored is None:
        return not_found(request, who)
    found = await asyncio.to_thread(
        attachment_payload, stored.data, int(request.path_params["part"])
    )
    if found is None:
        return not_found(request, who)
    attachment, payload = found
    media = (
        attachment.content_type
        if attachment.content_type in SHOWN_TYPES
        else ("application/octet-stream")
    )
    return Response(
        payload,
        media_type=media,
        headers={
            "Content-Disposition": content_disposition(attachment.filename),
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


# --- writing -----------------------------------------------------------------------------------


async def _compose_page(
    request: Request,
    who: WebIdentity,
    *,
    chosen: str = "",
    subject: str = "",
    body: str = "",
    reply_to: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    webmail = webmail_of(request)
    contacts = await webmail.store.contacts(who.account_id)
    return page(
        request,
        "compose.html",
        who,
        status,
        title="Écrire un message",
        section="ecrire",
        contacts=[c for c in contacts if c.state == "open"],
        closed=[c for c in contacts if c.state != "open"],
        chosen=chosen,
        subject=subject,
        body=body,
        reply_to=reply_to,
        error=error,
    )


async def compose(request: Request, who: WebIdentity) -> Response:
    chosen = request.query_params.get("a", "")
    subject, reply_to = "", ""
    if "reponse" in request.query_params:
        _, stored = await _load(request, who, "read", request.query_params["reponse"])
        if stored is None:
            return not_found(request, who)
        message = await asyncio.to_thread(read_message, stored.data)
        subject = (
            message.subject
            if message.subject.lower().startswith("re:")
            else (f"Re: {message.subject}")
        )
        reply_to = str(stored.id)
    return await _compose_page(request, who, chosen=chosen, subject=subject, reply_to=reply_to)


async def send(request: Request, who: WebIdentity) -> Response:
    webmail = webmail_of(request)
    form = request.state.form
    recipient = str(form.get("destinataire", "")).strip()[:320]
    subject = " ".join(str(form.get("objet", "")).split())[:MAX_SUBJECT]
    body = str(form.get("message", ""))[:MAX_BODY]
    reply_to = str(form.get("reponse", ""))[:20]

    async def again(error: str, status: int = 400) -> Response:
        return await _compose_page(
            request,
            who,
            chosen=recipient,
            subject=subject,
            body=body,
            reply_to=reply_to,
            error=error,
            status=status,
        )

    if not recipient:
        return await again("Choisissez le professionnel à qui écrire.")
    if not body.strip():
        return await again("Le message est vide.")
    in_reply_to = references = None
    if reply_to.isdigit():
        _, original = await _load(request, who, "reply", reply_to)
        if original is not None:
            read = await asyncio.to_thread(read_message, original.data)
            in_reply_to, references = read.message_id, read.references
    # One pipeline for every door (architecture.md): the patient rules are routing's.
    sender = await webmail.pipeline.authenticated_sender(who, who.address)
    if isinstance(sender, Refusal):
        return await again(refusal_fr(sender), 403)
    route = await webmail.pipeline.route("webmail", sender, recipient)
    if isinstance(route, Refusal):
        log.info("webmail send refused for %s to %s: %s", who.address, recipient, route.reply())
        return await again(refusal_fr(route), 403)
    parties = await webmail.store.parties([route.address])
    data = build_message(
        sender=(who.display_name, who.address),
        recipient=(party_for(parties, route.address, "").name, route.address),
        subject=subject or "(sans objet)",
        body=body,
        hostname=webmail.settings.hostname,
        now=datetime.now(UTC),
        in_reply_to=in_reply_to,
        references=references,
    )
    outcome = await webmail.pipeline.deliver(
        sender, [Accepted(route)], data, remote_address=client_address(request)
    )
    refused = outcome.all_refused
    if refused is not None:
        return await again(refusal_fr(refused), 403)
    await webmail.store.save_sent(who.account_id, data, actor=actor_of(request, who), ins=who.ins)
    return redirect("/envoyes?envoye=1")


routes = [
    Route("/", home, methods=["GET"]),
    Route("/messages", login_required(inbox), methods=["GET"]),
    Route("/envoyes", login_required(sent), methods=["GET"]),
    Route("/messages/{id:int}", login_required(show), methods=["GET"]),
    Route("/messages/{id:int}/pieces/{part:int}", login_required(download), methods=["GET"]),
    Route("/ecrire", login_required(compose), methods=["GET"]),
    Route("/ecrire", login_required(send), methods=["POST"]),
]

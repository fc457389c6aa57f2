"""HTTP-level tests of the patients' webmail (issue #6 "Tests"): login with a one-time code,
cookies and session fixation, CSRF, throttling, XSS payloads rendered inert, other patients'
data unreachable by changing an identifier, expiry, and the mail, dossier and account pages.
"""

from __future__ import annotations

import hashlib
import html
import re
from datetime import timedelta
from email.parser import BytesParser
from email.policy import default

import httpx
import pytest
from sqlalchemy import select

from directory import otp
from directory.patients import close
from storage.models import AuditEvent, DossierDocument, WebSession, utcnow
from tests.webmail.conftest import open_site
from tests.webmail.site import CAMILLE, LAB, PATIENT, Site, csrf_of, mail

OTHER = "285052a12345680@patient.mssante.fr"  # the demo's second patient (Corsican INS)


def message_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'href="/messages/(\d+)"', html)]


async def audit_actions(site: Site, ins: str) -> list[str]:
    async with site.db.session() as s:
        rows = await s.scalars(select(AuditEvent.action).where(AuditEvent.patient_ins == ins))
        return list(rows.all())


async def inbox_of(site: Site, address: str) -> list[bytes]:
    from storage.models import Account, Folder, Message

    async with site.db.session() as s:
        rows = await s.scalars(
            select(Message.blob_sha256)
            .join(Folder, Folder.id == Message.folder_id)
            .join(Account, Account.id == Folder.account_id)
            .where(Account.address == address, Folder.name == "INBOX")
            .order_by(Message.id)
        )
        return [site.mail.store.blobs.get(sha) for sha in rows.all()]


# --- login -------------------------------------------------------------------------------------


async def test_login_needs_password_and_emailed_code_then_rotates_the_session(
    site: Site,
) -> None:
    page = await site.client.get("/connexion")
    assert page.status_code == 200 and 'lang="fr"' in page.text
    r = await site.client.post(
        "/connexion",
        data={
            "csrf": csrf_of(page.text),
            "identifiant": "146026322000196",  # the INS alone works
            "mot_de_passe": site.account(PATIENT)["password"],
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/connexion/code"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("__Host-session=")
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower()
    pending = site.client.cookies["__Host-session"]
    assert (await site.client.get("/messages")).status_code == 303  # not logged in yet

    page = await site.client.get("/connexion/code")
    code = site.last_code(site.account(PATIENT)["personal_email"])
    notice = site.outbox_messages(site.account(PATIENT)["personal_email"])[-1]
    assert "code de connexion" in notice["Subject"]
    bad = "000000" if code != "000000" else "111111"
    r = await site.client.post("/connexion/code", data={"csrf": csrf_of(page.text), "code": bad})
    assert r.status_code == 400 and "Code incorrect" in r.text
    r = await site.client.post("/connexion/code", data={"csrf": csrf_of(page.text), "code": code})
    assert r.status_code == 303 and r.headers["location"] == "/messages"
    full = site.client.cookies["__Host-session"]
    assert full != pending  # issue #6: a new session identifier after login

    inbox = await site.client.get("/messages")
    assert inbox.status_code == 200 and "Messages reçus" in inbox.text
    headers = inbox.headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    assert "max-age=" in headers["strict-transport-security"]
    assert headers["cache-control"] == "no-store"

    # The code session cannot be replayed (it no longer exists), nor the code.
    replay = httpx.AsyncClient(transport=site.client._transport, base_url="https://testserver")
    replay.cookies.set("__Host-session", pending)
    assert (await replay.get("/messages")).status_code == 303
    assert (await replay.get("/connexion/code")).headers["location"] == "/connexion"
    await replay.aclose()
    assert "webmail.login" in await audit_actions(site, "146026322000196")


async def test_a_session_fixed_before_login_is_not_kept(site: Site) -> None:
    site.client.cookies.set("__Host-session", "attacker-chosen-value", domain="testserver.local")
    await site.login()
    assert site.client.cookies["__Host-session"] != "attacker-chosen-value"


async def test_csrf_token_required_on_every_form(site: Site) -> None:
    page = await site.client.get("/connexion")
    form = {"identifiant": PATIENT, "mot_de_passe": site.account(PATIENT)["password"]}
    assert (await site.client.post("/connexion", data=form)).status_code == 403
    r = await site.client.post("/connexion", data={**form, "csrf": "forged"})
    assert r.status_code == 403
    assert csrf_of(page.text)  # the genuine token works (login() below)
    await site.login()
    for path, data in (
        ("/ecrire", {"destinataire": CAMILLE, "message": "x"}),
        ("/deconnexion", {}),
        ("/compte/mot-de-passe", {"actuel": "x", "nouveau": "y", "confirmation": "y"}),
        ("/compte/fermer", {"choix": "fermeture", "confirme": "oui", "actuel": "x"}),
        ("/dossier/1/visibilite", {"masquer": "1"}),
    ):
        assert (await site.client.post(path, data=data)).status_code == 403, path
        r = await site.client.post(path, data={**data, "csrf": "forged"})
        assert r.status_code == 403, path
    assert (await site.client.get("/messages")).status_code == 200  # still logged in


async def test_login_is_throttled_after_repeated_failures(site: Site) -> None:
    page = await site.client.get("/connexion")
    token = csrf_of(page.text)
    for _ in range(site.cfg.webmail.failures_per_account):
        r = await site.client.post(
            "/connexion",
            data={"csrf": token, "identifiant": OTHER, "mot_de_passe": "wrong password"},
        )
        assert r.status_code == 400 and "Identifiant ou mot de passe incorrect" in r.text
    right = {"csrf": token, "identifiant": OTHER, "mot_de_passe": site.account(OTHER)["password"]}
    r = await site.client.post("/connexion", data=right)
    assert r.status_code == 400 and "Trop de tentatives" in r.text
    # Another address is not locked out of its own account.
    other = await open_site(site.install, address="203.0.113.9")
    try:
        await other.login()
    finally:
        await other.client.aclose()
        await other.db.close()


async def test_idle_and_absolute_expiry(site: Site) -> None:
    await site.login()
    auth = site.side.webmail.auth
    auth.clock = lambda: utcnow() + timedelta(seconds=site.cfg.webmail.session_idle + 5)
    r = await site.client.get("/messages")
    assert r.status_code == 303 and r.headers["location"] == "/connexion"
    auth.clock = utcnow
    await site.login()
    auth.clock = lambda: utcnow() + timedelta(seconds=site.cfg.webmail.session_absolute + 5)
    assert (await site.client.get("/messages")).status_code == 303


async def test_logout_ends_the_session(site: Site) -> None:
    session = await site.login()
    r = await site.client.post("/deconnexion", data={"csrf": await site.csrf()})
    assert r.status_code == 200 and "déconnecté" in r.text
    site.client.cookies.set("__Host-session", session, domain="testserver.local")
    assert (await site.client.get("/messages")).status_code == 303


async def test_activity_keeps_the_session_until_it_is_idle(site: Site) -> None:
    """The idle limit counts from the last request (its time is written at most every 30 s)."""
    await site.login()
    auth = site.side.webmail.auth
    idle = site.cfg.webmail.session_idle
    start = utcnow()
    try:
        for k in (1, 2, 3):  # each request a little less than the idle limit after the last
            auth.clock = lambda k=k: start + timedelta(seconds=k * (idle - 5))
            assert (await site.client.get("/messages")).status_code == 200
        auth.clock = lambda: start + timedelta(seconds=3 * (idle - 5) + idle + 5)
        r = await site.client.get("/messages")
        assert r.status_code == 303 and r.headers["location"] == "/connexion"
        auth.clock = lambda: start + timedelta(seconds=3 * (idle - 5) + 10)
        assert (await site.client.get("/messages")).status_code == 303  # ended, not just idle
    finally:
        auth.clock = utcnow


async def test_a_box_closed_elsewhere_ends_its_open_session_at_the_next_request(
    fresh_site: Site,
) -> None:
    """mssante.md §4: a box closed by the operator (``mailserver patient close``) is not
    reachable from a webmail session opened before, from the very next request."""
    site = fresh_site
    session = await site.login()
    assert (await site.client.get("/messages")).status_code == 200
    async with site.db.session() as s, s.begin():
        await close(s, PATIENT.split("@")[0], domain=site.cfg.patient_domain.name)
    r = await site.client.get("/messages")
    assert r.status_code == 303 and r.headers["location"] == "/connexion"
    async with site.db.session() as s:  # the session is gone, not only refused
        sid = hashlib.sha256(session.encode()).hexdigest()
        assert await s.get(WebSession, sid) is None


# --- hostile content ---------------------------------------------------------------------------


async def test_xss_payloads_in_subject_name_body_and_file_name_are_inert(site: Site) -> None:
    evil_html = (
        '<p onclick="alert(1)">Bonjour<script>alert(2)</script>'
        '<img src="https://tracker.example/x.png" onerror="alert(3)">'
        '<form action="https://evil.example"><input name="p"></form>'
        '<a href="javascript:alert(4)">lien</a><iframe src="https://evil.example"></iframe>'
        '<div style="background:url(https://evil.example/y)">texte</div></p>'
    )
    data = mail(
        f'"<img src=x onerror=alert(5)>" <{CAMILLE}>',
        PATIENT,
        "<script>alert(6)</script> Résultat",
        body="texte",
        html=evil_html,
        attachments=[('"><script>alert(7)</script>.pdf', "application/pdf", b"%PDF-1.4")],
    )
    # The text part is shown when there is one; send the HTML alone too.
    html_only = mail(CAMILLE, PATIENT, "HTML seulement", body="x", html=evil_html)
    html_only = html_only.replace(b"multipart/alternative", b"multipart/mixed")
    await site.deliver(CAMILLE, PATIENT, data)
    await site.deliver(CAMILLE, PATIENT, html_only)
    await site.login()
    inbox = (await site.client.get("/messages")).text
    assert "<script>alert(6)" not in inbox and "&lt;script&gt;alert(6)" in inbox
    for message_id in message_ids(inbox)[:2]:
        page = await site.client.get(f"/messages/{message_id}")
        text = page.text
        for needle in (
            "<script>alert",
            "onerror",
            "onclick",
            "javascript:",
            "<iframe",
            "tracker.example",
            "evil.example",
            "<img",
            'name="p"',
        ):
            assert needle not in text, (needle, message_id)
    # The attachment's name, in the page and in the download.
    page = (await site.client.get(f"/messages/{message_ids(inbox)[1]}")).text
    assert "&lt;script&gt;" in page or "_script_" in page
    link = re.search(r'href="(/messages/\d+/pieces/\d+)"', page)
    assert link is not None
    download = await site.client.get(link.group(1))
    assert download.status_code == 200
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "<" not in disposition and '"><' not in disposition
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in download.headers["content-security-policy"]


async def test_another_patients_message_or_document_is_unreachable_and_logged(
    site: Site,
) -> None:
    await site.deliver(
        CAMILLE,
        OTHER,
        mail(
            CAMILLE,
            OTHER,
            "Pour l'autre patient",
            attachments=[("cr.pdf", "application/pdf", b"%PDF-1.4 other")],
        ),
    )
    other = await open_site(site.install, address="203.0.113.10")
    try:
        await other.login(OTHER)
        theirs = message_ids((await other.client.get("/messages")).text)[0]
        r = await other.client.post(
            f"/messages/{theirs}/pieces/1/dossier", data={"csrf": await other.csrf()}
        )
        assert r.status_code == 303
    finally:
        await other.client.aclose()
        await other.db.close()
    async with site.db.session() as s:
        doc = await s.scalar(select(DossierDocument).order_by(DossierDocument.id.desc()))
        assert doc is not None
    await site.login()
    for path in (
        f"/messages/{theirs}",
        f"/messages/{theirs}/pieces/1",
        f"/dossier/{doc.id}",
        f"/dossier/{doc.id}/fichier",
        f"/dossier/{doc.id}/pdf",
        f"/ecrire?reponse={theirs}",
    ):
        r = await site.client.get(path)
        assert r.status_code == 404, path
        assert "Pour l'autre patient" not in r.text
    r = await site.client.post(
        f"/dossier/{doc.id}/visibilite", data={"csrf": await site.csrf(), "masquer": "1"}
    )
    assert r.status_code == 404
    actions = await audit_actions(site, "146026322000196")
    assert "message.refused" in actions and "document.refused" in actions


# --- mail ----------------------------------------------------------------------------------------


async def test_inbox_shows_names_hides_the_xdm_prefix_and_sends_one_read_receipt(
    site: Site,
) -> None:
    subject = "XDM/1.0/DDM+Compte rendu de biologie DUPONT Camille 01/01/1960"
    await site.deliver(
        LAB,
        PATIENT,
        mail(
            LAB,
            PATIENT,
            subject,
            attachments=[("resultat.pdf", "application/pdf", b"%PDF-1.4 lab")],
            Disposition_Notification_To=CAMILLE,
        ),
    )
    before = len(await inbox_of(site, CAMILLE))
    await site.login()
    inbox = (await site.client.get("/messages")).text
    assert "Compte rendu de biologie DUPONT Camille" in inbox
    assert "XDM/1.0/DDM+" not in inbox
    assert "Laboratoire de biologie de démonstration" in inbox  # the account's name
    assert "Non lu" in inbox and "Pièce jointe" in inbox
    first = message_ids(inbox)[0]
    page = (await site.client.get(f"/messages/{first}")).text
    assert "Dr Camille Martin" not in page or "Laboratoire" in page
    await site.client.get(f"/messages/{first}")  # read twice: one receipt
    receipts = (await inbox_of(site, CAMILLE))[before:]
    mdns = [BytesParser(policy=default).parsebytes(d) for d in receipts]
    mdns = [m for m in mdns if m.get_content_type() == "multipart/report"]
    # The laboratory is the patient's contact, not Camille: the routing rules decide.
    actions = await audit_actions(site, "146026322000196")
    assert len(mdns) + actions.count("message.mdn.refused") == 1
    inbox = (await site.client.get("/messages")).text
    assert f'href="/messages/{first}"' in inbox


async def test_read_receipt_goes_to_a_contact_through_the_pipeline(site: Site) -> None:
    await site.deliver(
        CAMILLE, PATIENT, mail(CAMILLE, PATIENT, "Avec accusé", Disposition_Notification_To=CAMILLE)
    )
    before = len(await inbox_of(site, CAMILLE))
    await site.login()
    first = message_ids((await site.client.get("/messages")).text)[0]
    await site.client.get(f"/messages/{first}")
    await site.client.get(f"/messages/{first}")
    new = [
        BytesParser(policy=default).parsebytes(d) for d in (await inbox_of(site, CAMILLE))[before:]
    ]
    assert len(new) == 1
    mdn = new[0]
    assert mdn.get_content_type() == "multipart/report"
    assert mdn.get_param("report-type") == "disposition-notification"
    report = [
        p for p in mdn.iter_parts() if p.get_content_type() == "message/disposition-notification"
    ]
    assert report
    assert b"Disposition: manual-action/MDN-sent-automatically; displayed" in (report[0].as_bytes())


async def test_read_receipt_still_goes_back_after_the_professional_closed(site: Site) -> None:
    """mssante.md §4: a patient cannot refuse a read receipt, even once FIN closed the exchange."""
    await site.deliver(
        CAMILLE,
        PATIENT,
        mail(
            CAMILLE,
            PATIENT,
            "Dernier message",
            Disposition_Notification_To=CAMILLE,
            X_MSS_MES="FIN",
        ),
    )
    before = len(await inbox_of(site, CAMILLE))
    await site.login()
    first = message_ids((await site.client.get("/messages")).text)[0]
    await site.client.get(f"/messages/{first}")
    new = [
        BytesParser(policy=default).parsebytes(d) for d in (await inbox_of(site, CAMILLE))[before:]
    ]
    assert [m.get_param("report-type") for m in new] == ["disposition-notification"]


async def test_answer_only_to_contacts_appears_in_sent_and_fin_closes(site: Site) -> None:
    await site.deliver(CAMILLE, PATIENT, mail(CAMILLE, PATIENT, "Rendez-vous"))
    await site.login()
    first = message_ids((await site.client.get("/messages")).text)[0]
    page = (await site.client.get(f"/messages/{first}")).text
    assert "Répondre à Dr Camille Martin" in page
    compose = await site.client.get(f"/ecrire?a={CAMILLE}&reponse={first}")
    assert 'name="destinataire"' in compose.text and "<select" in compose.text
    assert 'type="email"' not in compose.text  # no free address field
    token = csrf_of(compose.text)
    before = len(await inbox_of(site, CAMILLE))
    r = await site.client.post(
        "/ecrire",
        data={
            "csrf": token,
            "destinataire": CAMILLE,
            "objet": "Re: Rendez-vous",
            "message": "Merci, à jeudi.",
            "reponse": str(first),
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/envoyes?envoye=1"
    got = BytesParser(policy=default).parsebytes((await inbox_of(site, CAMILLE))[before])
    assert got["From"].addresses[0].addr_spec == PATIENT
    assert got["In-Reply-To"] and got["X-MSS-NIL"]
    sent = (await site.client.get("/envoyes?envoye=1")).text
    assert "Votre message a été envoyé" in sent and "Re: Rendez-vous" in sent

    # Nobody else: another patient, a professional who never wrote, outside the trust space.
    for target, words in (
        (OTHER, "autre patient"),
        ("paul.lefevre@demo.mssante.fr", "abord écrit"),
        ("someone@gmail.com", "espace de confiance"),
    ):
        r = await site.client.post(
            "/ecrire", data={"csrf": token, "destinataire": target, "message": "Bonjour"}
        )
        assert r.status_code == 403 and words in r.text, (target, r.text[-2000:])

    await site.deliver(CAMILLE, PATIENT, mail(CAMILLE, PATIENT, "Fin du suivi", X_MSS_MES="FIN"))
    fin = message_ids((await site.client.get("/messages")).text)[0]
    page = (await site.client.get(f"/messages/{fin}")).text
    assert "a mis fin à cet échange" in page and "Répondre à" not in page
    r = await site.client.post(
        "/ecrire", data={"csrf": token, "destinataire": CAMILLE, "message": "Encore une question"}
    )
    assert r.status_code == 403 and "mis fin" in r.text


# --- dossier, access log, notifications ----------------------------------------------------------


async def test_save_attachment_hide_it_and_see_the_access_log(site: Site) -> None:
    await site.deliver(
        CAMILLE,
        PATIENT,
        mail(
            CAMILLE,
            PATIENT,
            "Ordonnance",
            attachments=[("ordonnance.pdf", "application/pdf", b"%PDF-1.4 rx")],
        ),
    )
    await site.login()
    first = message_ids((await site.client.get("/messages")).text)[0]
    page = (await site.client.get(f"/messages/{first}")).text
    form = re.search(r'action="(/messages/\d+/pieces/\d+/dossier)"', page)
    assert form is not None
    r = await site.client.post(form.group(1), data={"csrf": csrf_of(page)})
    assert r.status_code == 303
    page = (await site.client.get(r.headers["location"])).text
    assert "enregistrée dans votre dossier" in page and "Dans votre dossier" in page
    dossier = (await site.client.get("/dossier")).text
    assert "ordonnance.pdf" in dossier and "Dr Camille Martin" in dossier
    doc_id = int(re.findall(r'href="/dossier/(\d+)"', dossier)[0])
    page = (await site.client.get(f"/dossier/{doc_id}")).text
    assert "Le message d'origine" in page
    r = await site.client.post(
        f"/dossier/{doc_id}/visibilite", data={"csrf": csrf_of(page), "masquer": "1"}
    )
    assert r.status_code == 303
    assert "Masqué aux professionnels" in (await site.client.get("/dossier")).text
    pdf = await site.client.get(f"/dossier/{doc_id}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    log = html.unescape((await site.client.get("/acces")).text)
    for words in (
        "Lecture d'un message",
        "Document masqué aux professionnels",
        "Message déposé dans votre messagerie",
        "Dr Camille Martin",
        "mot de passe et code reçu par e-mail",
        "certificat",
    ):
        assert words in log, words


async def test_new_message_notification_without_health_data(site: Site) -> None:
    email = site.account(OTHER)["personal_email"]
    await site.side.worker.run_once()  # earlier messages
    before = len(site.outbox_messages(email))
    await site.deliver(
        CAMILLE, OTHER, mail(CAMILLE, OTHER, "Diagnostic confidentiel", body="Résultats d'analyse")
    )
    assert await site.side.worker.run_once() >= 1
    notices = site.outbox_messages(email)[before:]
    assert len(notices) == 1
    text = notices[0].as_string()
    body = str(notices[0].get_content())
    assert "Vous avez reçu un nouveau message dans votre messagerie de santé" in body
    assert "Diagnostic" not in text and "Camille Martin" not in text and "analyse" not in text
    await site.side.worker.run_once()
    assert len(site.outbox_messages(email)[before:]) == 1  # notified once


# --- account -------------------------------------------------------------------------------------


async def test_totp_enrolment_then_login_with_the_application(site: Site) -> None:
    await site.login(OTHER)
    page = (await site.client.get("/compte")).text
    secret = re.search(r'name="secret" value="([A-Z2-7]+)"', page)
    assert secret and "otpauth://totp/" in page
    import time

    code = otp.hotp(secret.group(1), int(time.time() // 30))
    r = await site.client.post(
        "/compte/totp", data={"csrf": csrf_of(page), "secret": secret.group(1), "code": code}
    )
    assert r.status_code == 303
    await site.client.post("/deconnexion", data={"csrf": await site.csrf()})
    page = await site.client.get("/connexion")
    r = await site.client.post(
        "/connexion",
        data={
            "csrf": csrf_of(page.text),
            "identifiant": OTHER,
            "mot_de_passe": site.account(OTHER)["password"],
        },
    )
    page = await site.client.get("/connexion/code")
    assert "application d'authentification" in page.text
    # The code just used for enrolment is refused (RFC 6238 §5.2: used once).
    r = await site.client.post("/connexion/code", data={"csrf": csrf_of(page.text), "code": code})
    assert r.status_code == 400
    step = int(time.time() // 30) + 1
    r = await site.client.post(
        "/connexion/code",
        data={"csrf": csrf_of(page.text), "code": otp.hotp(secret.group(1), step)},
    )
    assert r.status_code == 303
    page = (await site.client.get("/compte")).text
    r = await site.client.post(
        "/compte/totp/retirer",
        data={"csrf": csrf_of(page), "actuel": site.account(OTHER)["password"]},
    )
    assert r.status_code == 303


async def test_opposing_the_box_ends_login_and_mail_bounces(fresh_site: Site) -> None:
    site = fresh_site
    await site.login()
    page = (await site.client.get("/compte")).text
    r = await site.client.post(
        "/compte/fermer",
        data={
            "csrf": csrf_of(page),
            "choix": "opposition",
            "confirme": "oui",
            "actuel": site.account(PATIENT)["password"],
        },
    )
    assert r.status_code == 200 and "Opposition enregistrée" in r.text
    assert (await site.client.get("/messages")).status_code == 303
    page = await site.client.get("/connexion")
    r = await site.client.post(
        "/connexion",
        data={
            "csrf": csrf_of(page.text),
            "identifiant": PATIENT,
            "mot_de_passe": site.account(PATIENT)["password"],
        },
    )
    assert r.status_code == 400 and "opposé" in r.text
    box = await site.mail.lookups.mailbox(CAMILLE)
    assert box is not None
    from directory.identity import Identity
    from routing.decisions import Refusal

    who = Identity(box.account_id, CAMILLE, "PER", None, "certificate")
    sender = await site.mail.pipeline.authenticated_sender(who, CAMILLE)
    assert not isinstance(sender, Refusal)
    route = await site.mail.pipeline.route("submission", sender, PATIENT)
    assert isinstance(route, Refusal) and "opposed" in route.reason


@pytest.mark.parametrize("path", ["/messages", "/dossier", "/acces", "/compte", "/ecrire"])
async def test_pages_need_a_login(site: Site, path: str) -> None:
    r = await site.client.get(path)
    assert r.status_code == 303 and r.headers["location"] == "/connexion"

"""The patient's account (issue #6 item 8): password, authenticator application (TOTP),
opposing or closing the mailbox."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from directory import otp
from directory.webauth import LoginRefused, WebIdentity
from webmail.context import webmail_of
from webmail.http import SESSION_COOKIE, login_required, page, redirect

__all__ = ["routes"]

DONE = {
    "mot-de-passe": "Votre mot de passe a été changé.",
    "totp": "L'application d'authentification est activée : elle vous donnera désormais votre "
    "code de connexion.",
    "totp-retire": "L'application d'authentification est retirée : votre code de connexion vous "
    "sera envoyé par e-mail.",
}


async def _page(
    request: Request,
    who: WebIdentity,
    *,
    error: str = "",
    status: int = 200,
    secret: str = "",
) -> Response:
    webmail = webmail_of(request)
    patient = await webmail.auth.patient(who)
    secret = secret or otp.new_totp_secret()
    return page(
        request,
        "account.html",
        who,
        status,
        title="Mon compte",
        section="compte",
        patient=patient,
        secret=secret,
        uri=webmail.auth.totp_uri(who, secret),
        error=error,
        done=DONE.get(request.query_params.get("fait", ""), ""),
    )


async def account(request: Request, who: WebIdentity) -> Response:
    return await _page(request, who)


async def password(request: Request, who: WebIdentity) -> Response:
    form = request.state.form
    new = str(form.get("nouveau", ""))
    if new != str(form.get("confirmation", "")):
        return await _page(
            request, who, error="Les deux nouveaux mots de passe diffèrent.", status=400
        )
    try:
        await webmail_of(request).auth.change_password(who, str(form.get("actuel", "")), new)
    except LoginRefused as exc:
        return await _page(request, who, error=str(exc), status=400)
    return redirect("/compte?fait=mot-de-passe")


async def totp_enrol(request: Request, who: WebIdentity) -> Response:
    form = request.state.form
    secret = str(form.get("secret", ""))[:64]
    try:
        await webmail_of(request).auth.enrol_totp(who, secret, str(form.get("code", ""))[:20])
    except (LoginRefused, ValueError) as exc:
        message = str(exc) if isinstance(exc, LoginRefused) else "Clé invalide."
        return await _page(request, who, error=message, status=400, secret=secret)
    return redirect("/compte?fait=totp")


async def totp_remove(request: Request, who: WebIdentity) -> Response:
    try:
        await webmail_of(request).auth.remove_totp(who, str(request.state.form.get("actuel", "")))
    except LoginRefused as exc:
        return await _page(request, who, error=str(exc), status=400)
    return redirect("/compte?fait=totp-retire")


async def end_mailbox(request: Request, who: WebIdentity) -> Response:
    """mssante.md §4: opposing or closing; later mail bounces with the reason."""
    form = request.state.form
    state = "opposed" if form.get("choix") == "opposition" else "closed"
    if form.get("confirme") != "oui":
        return await _page(
            request, who, status=400, error="Cochez la case pour confirmer votre choix."
        )
    try:
        await webmail_of(request).auth.end_mailbox(who, str(form.get("actuel", "")), state)
    except LoginRefused as exc:
        return await _page(request, who, error=str(exc), status=400)
    response = page(request, "closed.html", None, title="Messagerie fermée", state=state)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


routes = [
    Route("/compte", login_required(account), methods=["GET"]),
    Route("/compte/mot-de-passe", login_required(password), methods=["POST"]),
    Route("/compte/totp", login_required(totp_enrol), methods=["POST"]),
    Route("/compte/totp/retirer", login_required(totp_remove), methods=["POST"]),
    Route("/compte/fermer", login_required(end_mailbox), methods=["POST"]),
]

"""Login (password, then a one-time code on every login) and logout (issue #6 item 2)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from directory.webauth import METHOD_TOTP, CodeRefused, LoginRefused, WebIdentity
from webmail.context import webmail_of
from webmail.http import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    client_address,
    csrf_matches,
    forbidden,
    login_required,
    new_csrf,
    page,
    read_form,
    redirect,
    set_cookie,
)
from webmail.notify import code_notice

__all__ = ["routes"]


def _login_page(request: Request, error: str = "", login: str = "", status: int = 200) -> Response:
    token = request.cookies.get(CSRF_COOKIE) or new_csrf()
    response = page(
        request, "login.html", None, status, title="Connexion", csrf=token, error=error, login=login
    )
    set_cookie(response, CSRF_COOKIE, token)
    return response


async def login_form(request: Request) -> Response:
    webmail = webmail_of(request)
    if await webmail.auth.session(request.cookies.get(SESSION_COOKIE)) is not None:
        return redirect("/messages")
    return _login_page(request)


async def login(request: Request) -> Response:
    webmail = webmail_of(request)
    form = await read_form(request)
    if not csrf_matches(form.get("csrf"), request.cookies.get(CSRF_COOKIE)):
        return forbidden(request, None)
    login_text = str(form.get("identifiant", ""))[:320]
    password = str(form.get("mot_de_passe", ""))[:1024]
    try:
        pending = await webmail.auth.start_login(login_text, password, client_address(request))
    except LoginRefused as exc:
        return _login_page(request, str(exc), login_text, status=400)
    if pending.code is not None and pending.patient.personal_email:
        notice = code_notice(
            pending.patient.personal_email, pending.code, webmail.settings.code_minutes
        )
        try:
            await webmail.notifier.send(notice)
        except OSError:
            return _login_page(
                request,
                "Le code de connexion n'a pas pu vous être envoyé. Réessayez plus tard.",
                login_text,
                status=503,
            )
    response = redirect("/connexion/code")
    set_cookie(response, SESSION_COOKIE, pending.token)
    return response


def _masked(email: str | None) -> str:
    """Where the code went, without showing the whole address on screen."""
    if not email or "@" not in email:
        return ""
    local, domain = email.split("@", 1)
    return f"{local[:2]}{'•' * max(1, len(local) - 2)}@{domain}"


async def code_form(request: Request, error: str = "", status: int = 200) -> Response:
    webmail = webmail_of(request)
    found = await webmail.auth.pending(request.cookies.get(SESSION_COOKIE))
    if found is None:
        return redirect("/connexion")
    patient, row = found
    return page(
        request,
        "code.html",
        None,
        status,
        title="Code de connexion",
        csrf=row.csrf_token,
        totp=row.auth_method == METHOD_TOTP,
        sent_to=_masked(patient.personal_email),
        error=error,
    )


async def code(request: Request) -> Response:
    webmail = webmail_of(request)
    token = request.cookies.get(SESSION_COOKIE)
    found = await webmail.auth.pending(token)
    if found is None:
        return redirect("/connexion")
    form = await read_form(request)
    if not csrf_matches(form.get("csrf"), found[1].csrf_token):
        return forbidden(request, None)
    try:
        new_token, _ = await webmail.auth.finish_login(
            token, str(form.get("code", ""))[:20], client_address(request)
        )
    except CodeRefused as exc:
        if exc.restart:
            return _login_page(request, str(exc), status=400)
        return await code_form(request, str(exc), status=400)
    except LoginRefused as exc:
        return _login_page(request, str(exc), status=400)
    response = redirect("/messages")
    set_cookie(response, SESSION_COOKIE, new_token)  # issue #6: a new identifier after login
    response.delete_cookie(CSRF_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


async def _logout(request: Request, who: WebIdentity) -> Response:
    await webmail_of(request).auth.logout(who)
    response = page(request, "logout.html", None, title="Vous êtes déconnecté(e)")
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


routes = [
    Route("/connexion", login_form, methods=["GET"]),
    Route("/connexion", login, methods=["POST"]),
    Route("/connexion/code", code_form, methods=["GET"]),
    Route("/connexion/code", code, methods=["POST"]),
    Route("/deconnexion", login_required(_logout), methods=["POST"]),
]

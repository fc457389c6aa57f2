"""Sessions, CSRF and responses shared by every page (issue #6 login requirements).

* The session cookie is ``__Host-``prefixed, ``HttpOnly``, ``Secure``, ``SameSite=Strict``
  (RFC 6265bis §4.1.3: a ``__Host-`` cookie is Secure, host-only, Path=/); it holds a random
  token whose hash names the server-side session (directory.webauth).
* CSRF: every form carries a token. Logged-in forms carry the session's own token
  (synchroniser token); the login form, before any session exists, a random token also set
  in a ``__Host-`` cookie (double submit). A POST whose token does not match is refused (403).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from directory.webauth import WebIdentity
from webmail.context import Webmail, webmail_of

__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "client_address",
    "csrf_matches",
    "forbidden",
    "login_required",
    "not_found",
    "page",
    "redirect",
    "set_cookie",
]

SESSION_COOKIE = "__Host-session"
CSRF_COOKIE = "__Host-csrf"
MAX_FORM_FIELDS = 50

Handler = Callable[[Request, WebIdentity], Awaitable[Response]]


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict"
    )


def csrf_matches(given: object, expected: str | None) -> bool:
    return (
        isinstance(given, str)
        and bool(expected)
        and hmac.compare_digest(given.encode(), (expected or "").encode())
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)  # RFC 9110 §15.4.4: GET the result


def page(
    request: Request, template: str, who: WebIdentity | None, status: int = 200, **context: Any
) -> Response:
    webmail = webmail_of(request)
    return webmail.pages.render(
        template,
        status,
        who=who,
        csrf=who.csrf_token if who else context.pop("csrf", ""),
        section=context.pop("section", ""),
        **context,
    )


def not_found(request: Request, who: WebIdentity | None) -> Response:
    return page(
        request,
        "error.html",
        who,
        404,
        title="Page introuvable",
        message="Cette page n'existe pas ou n'est pas accessible avec votre compte.",
    )


def forbidden(request: Request, who: WebIdentity | None) -> Response:
    return page(
        request,
        "error.html",
        who,
        403,
        title="Action refusée",
        message="Le formulaire a expiré ou ne vient pas de cette page. "
        "Revenez en arrière, rechargez la page et recommencez.",
    )


async def read_form(request: Request) -> FormData:
    return await request.form(max_fields=MAX_FORM_FIELDS, max_files=0)


def login_required(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """The logged-in patient, or the login page; POSTs must carry the session's CSRF token."""

    async def endpoint(request: Request) -> Response:
        webmail: Webmail = webmail_of(request)
        who = await webmail.auth.session(request.cookies.get(SESSION_COOKIE))
        if who is None:
            return redirect("/connexion")
        if request.method == "POST":
            form = await read_form(request)
            if not csrf_matches(form.get("csrf"), who.csrf_token):
                return forbidden(request, who)
            request.state.form = form
        return await handler(request, who)

    return endpoint


def new_csrf() -> str:
    return secrets.token_urlsafe(32)

"""The patients' webmail application (issue #6): routes, static files, security headers."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webmail import account, dossier, login, mailbox
from webmail.context import Webmail
from webmail.http import not_found, page

__all__ = ["build_app"]

STATIC = Path(__file__).parent / "static"

# Issue #6 design: no inline script or style, nothing from elsewhere, never framed.
SECURITY_HEADERS: Final = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),  # RFC 6797
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """Adds the headers to every response; health data pages are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    return not_found(request, None)


async def _error(request: Request, exc: Exception) -> Response:
    return page(
        request,
        "error.html",
        None,
        500,
        title="Erreur",
        message="Une erreur est survenue. Réessayez dans quelques instants.",
    )


def build_app(webmail: Webmail) -> Starlette:
    app = Starlette(
        routes=[
            *login.routes,
            *mailbox.routes,
            *dossier.routes,
            *account.routes,
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={404: _not_found, 405: _not_found, 500: _error},
    )
    app.state.webmail = webmail
    app.add_middleware(SecurityHeaders)
    return app

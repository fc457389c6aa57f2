"""What every webmail handler reaches: the services, the settings and the templates."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from directory.webauth import WebAuth
from routing.pipeline import Pipeline
from storage.webmail_store import WebmailStore
from webmail.notify import Notifier
from webmail.pages import Pages

__all__ = ["Webmail", "WebmailSettings", "webmail_of"]


@dataclass(frozen=True)
class WebmailSettings:
    hostname: str  # Message-ID domain, MDN Reporting-UA
    public_url: str  # where notices send patients
    code_minutes: int = 10
    page_size: int = 50


@dataclass
class Webmail:
    auth: WebAuth
    store: WebmailStore
    pipeline: Pipeline
    notifier: Notifier
    settings: WebmailSettings
    pages: Pages = field(default_factory=Pages)


def webmail_of(request: Request) -> Webmail:
    found = request.app.state.webmail
    assert isinstance(found, Webmail)
    return found

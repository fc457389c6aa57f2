"""Composition of the patients' webmail (issue #6): its services built from the
configuration, over the mail side's pipeline (webmail compose goes through the same routing
as SMTP) and the shared blob store; the HTTPS context; the notification worker."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from starlette.applications import Starlette

from certs.tls import server_context
from directory.throttle import Throttle
from directory.webauth import WebAuth, WebAuthSettings
from mailserver.config import Config, ConfigError
from mailserver.mail import MailSide
from smtp.relay_client import parse_static_route
from storage.db import Database
from storage.webmail_store import WebmailStore
from webmail.app import build_app
from webmail.context import Webmail, WebmailSettings
from webmail.notify import NotificationWorker, Notifier, OutboxNotifier, SmtpNotifier

__all__ = ["WebmailSide", "build_webmail_side", "notifier_of", "public_url_of"]


@dataclass
class WebmailSide:
    app: Starlette
    tls: ssl.SSLContext
    worker: NotificationWorker
    webmail: Webmail


def public_url_of(cfg: Config) -> str:
    if cfg.webmail.public_url:
        return cfg.webmail.public_url
    port = cfg.listeners.webmail.port
    return (
        f"https://{cfg.server.hostname}/"
        if port == 443
        else (f"https://{cfg.server.hostname}:{port}/")
    )


def notifier_of(cfg: Config) -> Notifier:
    """The separate notification route: SMTP relay when configured, else the outbox."""
    sender = cfg.webmail.notify_from or f"ne-pas-repondre@{cfg.server.hostname}"
    if cfg.webmail.notify_smtp:
        try:
            host, port = parse_static_route(cfg.webmail.notify_smtp, 25)
        except ValueError as exc:
            raise ConfigError(f"{cfg.source}: key 'webmail.notify_smtp': {exc}") from None
        return SmtpNotifier(host, port, sender, cfg.server.hostname)
    outbox = (
        cfg.path(cfg.webmail.outbox_dir) if cfg.webmail.outbox_dir else (cfg.data_dir / "outbox")
    )
    return OutboxNotifier(outbox, sender, cfg.server.hostname)


def build_webmail_side(
    cfg: Config,
    db: Database,
    mail: MailSide,
    on_change: Callable[[Iterable[int]], None] | None = None,
) -> WebmailSide:
    w = cfg.webmail
    auth = WebAuth(
        db,
        Throttle(
            per_address=w.failures_per_address,
            per_account=w.failures_per_account,
            window=w.lockout_window,
        ),
        WebAuthSettings(
            patient_domain=cfg.patient_domain.name.lower(),
            idle=timedelta(seconds=w.session_idle),
            absolute=timedelta(seconds=w.session_absolute),
            code_validity=timedelta(seconds=w.code_validity),
            code_attempts=w.code_attempts,
            totp_issuer=w.totp_issuer,
        ),
    )
    store = WebmailStore(db, mail.store.blobs, on_change=on_change)
    notifier = notifier_of(cfg)
    url = public_url_of(cfg)
    webmail = Webmail(
        auth=auth,
        store=store,
        pipeline=mail.pipeline,
        notifier=notifier,
        settings=WebmailSettings(
            hostname=cfg.server.hostname,
            public_url=url,
            code_minutes=max(1, round(w.code_validity / 60)),
        ),
    )
    tls = server_context(cfg.path(cfg.tls.cert), cfg.path(cfg.tls.key))
    worker = NotificationWorker(store, notifier, url, poll_interval=w.notify_poll_interval)
    return WebmailSide(build_app(webmail), tls, worker, webmail)

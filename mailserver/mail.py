"""Composition of the mail side: the routing pipeline, its stores, the SMTP doors and the
relay worker, built from the configuration. Nothing here decides anything; it connects.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import dns.exception
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from certs.tls import server_context
from certs.truststore import TrustStore
from directory.authenticate import Authenticator, AuthPolicy
from directory.errors import DirectoryError
from directory.lookups import DirectoryLookups
from directory.throttle import Throttle
from directory.tokens import TokenValidator, load_jwks
from filing.plan import FilingSettings
from filing.worker import FilingWorker, FilingWorkerSettings
from mailserver.config import Config, ConfigError
from routing.pipeline import Pipeline
from routing.policy import Policy
from smtp.dkim import (
    DkimKey,
    DkimKeyError,
    authentication_results_fragment,
    load_signing_keys,
    public_record,
)
from smtp.dkim import signed as dkim_signed
from smtp.dkim import verify as dkim_verify
from smtp.relay_client import RelaySettings, parse_static_route
from smtp.relay_worker import RelayWorker, WorkerSettings
from smtp.server import DoorSettings, SmtpServices
from storage.blobs import BlobStore
from storage.db import Database
from storage.delivery import MessageStore

__all__ = ["MailSide", "build_mail_side", "door_settings"]

log = logging.getLogger("mailserver")


def policy_of(cfg: Config) -> Policy:
    return Policy(
        operator_domains=frozenset(cfg.server.domains),
        patient_domain=cfg.patient_domain.name.lower() if cfg.patient_domain.enabled else None,
        patient_max_message_size=cfg.patient_domain.max_message_size,
        max_message_size=cfg.limits.max_message_size,
        max_recipients=cfg.limits.max_recipients,
    )


def relay_settings_of(cfg: Config, trust: TrustStore) -> RelaySettings:
    return RelaySettings(
        helo_name=cfg.server.hostname,
        client_cert=cfg.path(cfg.tls.cert),
        client_key=cfg.path(cfg.tls.key),
        trust_roots=[cfg.path(p) for p in (*cfg.tls.roots, *cfg.tls.intermediates)],
        static_routes={k.lower(): v for k, v in cfg.relay.static_routes.items()},
        resolver=cfg.relay.resolver or None,
        port=cfg.relay.port,
        connect_timeout=cfg.relay.connect_timeout,
        command_timeout=cfg.limits.command_timeout,
        trust_store=trust,
    )


def postmaster_of(cfg: Config) -> str:
    """Who reports and notices are from (RFC 5321 §4.5.1), in one of our domains."""
    return f"postmaster@{min(cfg.local_domains)}"


def filing_settings_of(cfg: Config) -> FilingWorkerSettings:
    f = cfg.filing
    return FilingWorkerSettings(
        hostname=cfg.server.hostname,
        postmaster=postmaster_of(cfg),
        filing=FilingSettings(
            filed_types=frozenset(t.lower() for t in f.filed_types),
            max_entries=f.max_entries,
            max_total_size=f.max_total_size,
            max_ratio=f.max_ratio,
            max_nesting=f.max_nesting,
            allow_test_ins=f.allow_test_ins,
        ),
        poll_interval=f.poll_interval,
    )


def token_validator_of(cfg: Config) -> TokenValidator | None:
    if not cfg.oauth.enabled or cfg.oauth.jwks is None:
        return None
    try:
        return TokenValidator(
            issuer=cfg.oauth.issuer,
            audience=cfg.oauth.audience,
            keys=load_jwks(cfg.path(cfg.oauth.jwks)),
            national_id_claim=cfg.oauth.national_id_claim,
            leeway_seconds=cfg.oauth.leeway_seconds,
        )
    except DirectoryError as exc:
        raise ConfigError(f"{cfg.source}: key 'oauth': {exc}") from None


def signing_keys_of(cfg: Config) -> Callable[[str], Sequence[DkimKey]]:
    """DKIM keys per local domain (the same key pair signs for each, d= the sender's domain)."""
    rsa_path = cfg.path(cfg.dkim.rsa_key) if cfg.dkim.rsa_key else None
    ed_path = cfg.path(cfg.dkim.ed25519_key) if cfg.dkim.ed25519_key else None
    try:
        keys = {
            d: load_signing_keys(d, cfg.dkim.selector, rsa_path, ed_path) for d in cfg.local_domains
        }
    except DkimKeyError as exc:
        raise ConfigError(f"{cfg.source}: key 'dkim': {exc}") from None
    return lambda domain: keys.get(domain, ())


def _own_records(
    keys: Callable[[str], Sequence[DkimKey]], domains: Sequence[str]
) -> dict[str, bytes]:
    """The TXT records we publish for our own keys, so that our own mail verifies without a
    DNS round trip."""
    records: dict[str, bytes] = {}
    for domain in domains:
        for key in keys(domain):
            private = serialization.load_pem_private_key(key.private_key, password=None)
            if isinstance(private, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
                name = f"{key.selector}._domainkey.{domain}."
                records[name] = public_record(private).encode()
    return records


def dkim_txt_lookup(cfg: Config, own: dict[str, bytes]) -> Callable[[str], bytes | None]:
    resolver = dns.resolver.Resolver(configure=not cfg.relay.resolver)
    if cfg.relay.resolver:  # the same "address[:port]" syntax as the relay's resolver
        host, port = parse_static_route(cfg.relay.resolver, 53)
        resolver.nameservers = [host]
        resolver.port = port
    resolver.lifetime = 5.0

    @cache
    def lookup(name: str) -> bytes | None:
        fqdn = name if name.endswith(".") else name + "."
        if fqdn in own:
            return own[fqdn]
        try:
            answer = resolver.resolve(fqdn, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            raise OSError(f"DNS lookup of {fqdn} failed: {exc}") from None
        return b"".join(b"".join(r.strings) for r in answer)

    return lookup


def door_settings(cfg: Config, name: str) -> DoorSettings:
    return DoorSettings(
        name=name,
        mode="inbound" if name == "smtp_inbound" else "submission",
        implicit_tls=name == "submissions",
        hostname=cfg.server.hostname,
        max_message_size=cfg.limits.max_message_size,
        max_recipients=cfg.limits.max_recipients,
        max_line_length=cfg.limits.max_line_length,
        command_timeout=cfg.limits.command_timeout,
        data_timeout=cfg.limits.data_timeout,
        connections_per_address=cfg.limits.connections_per_address,
    )


@dataclass
class MailSide:
    pipeline: Pipeline
    lookups: DirectoryLookups
    store: MessageStore
    services: SmtpServices
    worker: RelayWorker
    filing: FilingWorker


def build_mail_side(
    cfg: Config,
    db: Database,
    trust: TrustStore,
    on_delivered: Callable[[Sequence[int]], None] | None = None,
) -> MailSide:
    blobs = BlobStore(cfg.blob_dir)
    blobs.ensure()
    lookups = DirectoryLookups(db)
    lifetime = timedelta(hours=cfg.relay.lifetime_hours)
    store = MessageStore(db, blobs, lifetime=lifetime, on_delivered=on_delivered)  # IDLE wake-up
    pipeline = Pipeline(policy_of(cfg), lookups, store)
    filing = FilingWorker(db, blobs, pipeline, filing_settings_of(cfg))
    store.on_patient_delivery = filing.nudge  # file within the second (issue #4)
    roots = [cfg.path(p) for p in (*cfg.tls.roots, *cfg.tls.intermediates)]
    # One context for every SMTP door: the client certificate is asked for (peers must show
    # theirs, submission clients may for EXTERNAL) and its dates and CRL status are checked
    # by the door against the trust store, so that a refusal can name the failed check.
    tls: ssl.SSLContext = server_context(
        cfg.path(cfg.tls.cert),
        cfg.path(cfg.tls.key),
        trust_files=roots,
        request_client_cert=True,
        defer_validity=True,
    )
    authenticator = Authenticator(
        db,
        trust,
        Throttle(
            per_address=cfg.limits.auth_failures_per_address,
            per_account=cfg.limits.auth_failures_per_account,
        ),
        AuthPolicy(
            allow_plain=cfg.auth.allow_plain,
            patients_mail_clients=cfg.auth.patients_mail_clients,
        ),
        token_validator_of(cfg),
    )
    keys = signing_keys_of(cfg)
    lookup = dkim_txt_lookup(cfg, _own_records(keys, cfg.local_domains))

    async def verify_dkim(data: bytes) -> list[str]:
        if dkim_signed(data):  # DNS and RSA: in a thread, off the event loop
            results = await asyncio.to_thread(dkim_verify, data, lookup)
        else:  # unsigned, most mail: answered at once, no thread hand-off
            results = dkim_verify(data, lookup)
        return [authentication_results_fragment(results)]

    worker = RelayWorker(
        db,
        blobs,
        pipeline,
        relay_settings_of(cfg, trust),
        WorkerSettings(
            hostname=cfg.server.hostname,
            local_domains=frozenset(cfg.local_domains),
            postmaster=postmaster_of(cfg),
            lifetime=lifetime,
            delay_warning=timedelta(hours=cfg.relay.delay_warning_hours),
            retry_initial=cfg.relay.retry_initial,
            retry_max=cfg.relay.retry_max,
            concurrency=cfg.relay.concurrency,
            poll_interval=cfg.relay.poll_interval,
        ),
        dkim_keys=keys,
    )
    store.on_queued = worker.wake.set  # relay and reports without waiting for the next poll
    services = SmtpServices(
        pipeline=pipeline,
        trust=trust,
        tls=tls,
        authenticator=authenticator,
        verify_dkim=verify_dkim,
    )
    return MailSide(pipeline, lookups, store, services, worker, filing)

"""Typed configuration: one TOML file, validated at start-up.

Every problem is reported as one line naming the file and the key (or the file a key points
to), so that `mailserver serve` can exit with status 2 and no traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Listener names and the offset of each from the port base: `mailserver init --port-base N`
# puts every listener at N + offset, so several instances run side by side.
PORT_OFFSETS: dict[str, int] = {
    "smtp_inbound": 25,  # peers over mutual TLS (port 25 in production)
    "admin": 80,  # /healthz and /metrics (HTTP)
    "imap": 143,  # IMAP with STARTTLS (RFC 3501 §6.2.1)
    "webmail": 443,  # patients' webmail (HTTPS)
    "submissions": 465,  # submission over implicit TLS (RFC 8314 §3.3)
    "submission": 587,  # submission with STARTTLS (RFC 6409)
    "imaps": 993,  # IMAP over implicit TLS (RFC 8314 §3.2)
}
DEFAULT_PORT_BASE = 10000
DEFAULT_PATIENT_DOMAIN = "patient.mssante.fr"

Port = Annotated[int, Field(ge=1, le=65535)]


class ConfigError(Exception):
    """A configuration problem, worded for the operator (one line)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSection(_Section):
    hostname: str
    domains: list[str] = Field(min_length=1)
    data_dir: Path = Path("data")
    # Processes serving the doors (one per CPU core uses them all): each accepts connections on
    # every listener; the first also runs the relay, filing and notification workers and the
    # admin door (mailserver.supervisor).
    processes: int = Field(default=1, ge=1, le=64)

    @field_validator("domains")
    @classmethod
    def _lower_domains(cls, value: list[str]) -> list[str]:
        # RFC 5321 §2.4: domain names are case-insensitive.
        return [d.strip().lower() for d in value]


class PatientDomainSection(_Section):
    enabled: bool = True
    name: str = DEFAULT_PATIENT_DOMAIN
    # Mon espace santé: 25 MB in total per message for the patient domain.
    max_message_size: int = Field(default=25 * 1024 * 1024, gt=0)


class DatabaseSection(_Section):
    # Empty: SQLite file `mailserver.db` in the data directory.
    url: str = ""


class StorageSection(_Section):
    # Empty: `blobs/` in the data directory.
    blob_dir: Path | None = None


class TLSSection(_Section):
    cert: Path
    key: Path
    # The IGC-Santé trust store: root CA certificates (trust anchors) and intermediate CA
    # certificates, as PEM/DER files or directories of them.
    roots: list[Path] = Field(min_length=1)
    intermediates: list[Path] = Field(default_factory=list)
    # CRL files or directories; the last good CRL is kept when a refresh fails.
    crls: list[Path] = Field(default_factory=list)
    min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    # Seconds between CRL re-reads.
    crl_refresh: float = Field(default=3600.0, gt=0)


class ListenerSection(_Section):
    enabled: bool = True
    address: str = "127.0.0.1"
    port: Port


class ListenersSection(_Section):
    admin: ListenerSection
    smtp_inbound: ListenerSection
    submission: ListenerSection
    submissions: ListenerSection
    imap: ListenerSection
    imaps: ListenerSection
    webmail: ListenerSection


class LimitsSection(_Section):
    max_message_size: int = Field(default=50 * 1024 * 1024, gt=0)
    max_recipients: int = Field(default=100, gt=0)
    max_line_length: int = Field(default=4096, ge=1000)  # RFC 5321 §4.5.3.1.6: ≥ 1000
    connections_per_address: int = Field(default=20, gt=0)
    auth_failures_per_address: int = Field(default=10, gt=0)
    auth_failures_per_account: int = Field(default=5, gt=0)
    command_timeout: float = Field(default=300.0, gt=0)  # RFC 5321 §4.5.3.2.7
    data_timeout: float = Field(default=600.0, gt=0)
    # IMAP: idle seconds before * BYE, before login (short: nothing is owed to the client) and
    # after (RFC 3501 §5.4: at least 30 minutes; it also bounds IDLE, which RFC 2177 §3 asks
    # clients to re-issue every 29 minutes).
    imap_login_timeout: float = Field(default=60.0, gt=0)
    imap_idle_timeout: float = Field(default=1800.0, ge=1800)
    shutdown_grace: float = Field(default=30.0, ge=0)


class AuthSection(_Section):
    # SASL PLAIN/LOGIN with a password is not an MSSanté login method: development only.
    allow_plain: bool = False
    # Patients may use IMAP/submission with app passwords only when the operator allows it.
    patients_mail_clients: bool = False


class DKIMSection(_Section):
    selector: str = "mss"
    rsa_key: Path | None = None
    ed25519_key: Path | None = None


class PKISection(_Section):
    # The development CA (`mailserver pki`); absent in production, where certificates come
    # from IGC-Santé.
    dir: Path | None = None


class RelaySection(_Section):
    """The relay to other operators (smtp.relay_worker)."""

    # Domain -> "host" or "host:port", used instead of DNS (e.g. a partner on a private link).
    static_routes: dict[str, str] = Field(default_factory=dict)
    # DNS server for MX and DKIM lookups, "address" or "address:port"; empty: the system's.
    resolver: str = ""
    port: Port = 25  # the peers' SMTP port when the MX does not say otherwise
    # RFC 5321 §4.5.4.1: give up after this long (default 5 days).
    lifetime_hours: float = Field(default=120.0, gt=0)
    # RFC 3464: a "delayed" report once a message has waited this long (default 4 h).
    delay_warning_hours: float = Field(default=4.0, gt=0)
    retry_initial: float = Field(default=60.0, gt=0)  # seconds before the first retry
    retry_max: float = Field(default=3600.0, gt=0)  # backoff cap
    concurrency: int = Field(default=8, gt=0)  # deliveries in flight per node
    poll_interval: float = Field(default=1.0, gt=0)  # seconds between queue scans
    connect_timeout: float = Field(default=30.0, gt=0)


class OAuthSection(_Section):
    """OpenID Connect access tokens (Pro Santé Connect) for SASL OAUTHBEARER / XOAUTH2."""

    enabled: bool = False
    issuer: str = ""
    audience: str = ""
    jwks: Path | None = None  # the issuer's public keys (JWKS JSON file)
    national_id_claim: str = "SubjectNameID"
    leeway_seconds: int = Field(default=60, ge=0)


class FilingSection(_Section):
    """Filing documents of patients' messages into their dossier (filing/, issue #4)."""

    # Plain attachments filed, by their detected type (XDM archives and CDA always are).
    filed_types: list[str] = Field(
        default_factory=lambda: [
            "application/pdf",
            "image/jpeg",
            "image/png",
            "image/tiff",
            "application/dicom",
        ]
    )
    max_entries: int = Field(default=100, gt=0)  # entries in one ZIP archive
    max_total_size: int = Field(default=200 * 1024 * 1024, gt=0)  # uncompressed bytes
    max_ratio: int = Field(default=100, gt=1)  # uncompressed / compressed
    max_nesting: int = Field(default=1, ge=0)  # archives inside archives
    # mssante.md §4: test (…4.10) and demo (…4.11) INS never reach production dossiers.
    allow_test_ins: bool = False
    poll_interval: float = Field(default=0.5, gt=0)


class WebmailSection(_Section):
    """The patients' webmail (webmail/, issue #6)."""

    # Sessions: ended after this long without a request, and this long after login anyway.
    session_idle: float = Field(default=900.0, gt=0)  # seconds
    session_absolute: float = Field(default=8 * 3600.0, gt=0)  # seconds
    # The one-time code e-mailed at every login (unless the patient uses TOTP).
    code_validity: float = Field(default=600.0, gt=0)  # seconds
    code_attempts: int = Field(default=5, gt=0)  # wrong codes before the login restarts
    totp_issuer: str = "Mon espace santé"  # shown by authenticator applications
    # Lockout: failed logins (password or code) per client address and per patient within
    # lockout_window seconds before further attempts are refused (directory.throttle).
    failures_per_address: int = Field(default=20, gt=0)
    failures_per_account: int = Field(default=5, gt=0)
    lockout_window: float = Field(default=900.0, gt=0)
    # The separate notification route (codes, new-message notices; never the MSSanté relay):
    # an SMTP relay "host[:port]", or else files in outbox_dir (development; default
    # DATA/outbox), one message per file for the operator to read.
    notify_smtp: str = ""
    outbox_dir: Path | None = None
    notify_from: str = ""  # default: ne-pas-repondre@<server.hostname>
    # The address patients are told to open (default: https://<hostname>:<webmail port>/).
    public_url: str = ""
    notify_poll_interval: float = Field(default=2.0, gt=0)


class LoggingSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Config(_Section):
    server: ServerSection
    patient_domain: PatientDomainSection = PatientDomainSection()
    database: DatabaseSection = DatabaseSection()
    storage: StorageSection = StorageSection()
    tls: TLSSection
    listeners: ListenersSection
    limits: LimitsSection = LimitsSection()
    auth: AuthSection = AuthSection()
    dkim: DKIMSection = DKIMSection()
    pki: PKISection = PKISection()
    relay: RelaySection = RelaySection()
    oauth: OAuthSection = OAuthSection()
    filing: FilingSection = FilingSection()
    webmail: WebmailSection = WebmailSection()
    logging: LoggingSection = LoggingSection()

    # Set by load_config: the file the configuration came from (relative paths are resolved
    # against its directory).
    source: Path = Path("mailserver.toml")

    @property
    def base_dir(self) -> Path:
        return self.source.parent

    def path(self, p: Path) -> Path:
        """Resolve a configured path relative to the configuration file's directory."""
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def data_dir(self) -> Path:
        return self.path(self.server.data_dir)

    @property
    def blob_dir(self) -> Path:
        if self.storage.blob_dir is None:
            return self.data_dir / "blobs"
        return self.path(self.storage.blob_dir)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.data_dir / 'mailserver.db'}"

    @property
    def local_domains(self) -> list[str]:
        """Every domain whose mailboxes this server holds (operator domains + patient domain)."""
        domains = list(self.server.domains)
        if self.patient_domain.enabled and self.patient_domain.name not in domains:
            domains.append(self.patient_domain.name.lower())
        return domains


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _describe(err: Any) -> str:
    loc = _loc(tuple(err.get("loc", ())))
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown key '{loc}'"
    if kind == "missing":
        return f"missing key '{loc}'"
    return f"key '{loc}': {err.get('msg', 'invalid value')}"


def parse_config(text: str, source: Path) -> Config:
    """Parse and validate TOML text; raises ConfigError with one line naming file and key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    if "source" in raw:
        raise ConfigError(f"{source}: unknown key 'source'")
    try:
        cfg = Config.model_validate({**raw, "source": source})
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_describe(errors[0])}{more}") from None
    _check_files(cfg)
    return cfg


def _check_readable(cfg: Config, key: str, p: Path, *, directory_ok: bool = False) -> None:
    full = cfg.path(p)
    if directory_ok and full.is_dir():
        return
    try:
        with full.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"{cfg.source}: key '{key}': cannot read {full}: {reason}") from None


def _check_files(cfg: Config) -> None:
    _check_readable(cfg, "tls.cert", cfg.tls.cert)
    _check_readable(cfg, "tls.key", cfg.tls.key)
    for i, p in enumerate(cfg.tls.roots):
        _check_readable(cfg, f"tls.roots.{i}", p, directory_ok=True)
    for i, p in enumerate(cfg.tls.intermediates):
        _check_readable(cfg, f"tls.intermediates.{i}", p, directory_ok=True)
    for i, p in enumerate(cfg.tls.crls):
        _check_readable(cfg, f"tls.crls.{i}", p, directory_ok=True)
    if cfg.dkim.rsa_key is not None:
        _check_readable(cfg, "dkim.rsa_key", cfg.dkim.rsa_key)
    if cfg.dkim.ed25519_key is not None:
        _check_readable(cfg, "dkim.ed25519_key", cfg.dkim.ed25519_key)
    if cfg.oauth.enabled:
        if not cfg.oauth.issuer or not cfg.oauth.audience or cfg.oauth.jwks is None:
            raise ConfigError(
                f"{cfg.source}: key 'oauth': issuer, audience and jwks are required when enabled"
            )
        _check_readable(cfg, "oauth.jwks", cfg.oauth.jwks)
    if not cfg.server.domains or any(not d or " " in d for d in cfg.server.domains):
        raise ConfigError(f"{cfg.source}: key 'server.domains': empty or invalid domain")


def load_config(path: Path) -> Config:
    """Read and validate the configuration file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: configuration is not UTF-8 text") from None
    return parse_config(text, path.resolve())

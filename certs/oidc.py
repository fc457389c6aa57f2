"""A development OpenID Connect token issuer, standing in for Pro Santé Connect.

Production access tokens come from Pro Santé Connect, which tests and the demo cannot reach.
:class:`DevIssuer` keeps an RSA key in a directory, publishes its public half as a JWK Set
(RFC 7517 §5) and mints RS256 JWT access tokens (RFC 9068) carrying the claims the server
checks (``directory.tokens``): ``iss``, ``sub``, ``aud``, ``exp``, ``nbf``, ``iat``, ``jti``
and the national professional identifier in ``SubjectNameID``.

Layout of an issuer directory::

    issuer.json   {"format": 1, "issuer": "<url>", "kid": "<kid>"}
    issuer.key    the RSA-2048 private key (PKCS#8 PEM, unencrypted, mode 0600)
    jwks.json     the public key as a JWK Set: what the server is configured with

The ``kid`` is the key's RFC 7638 thumbprint. Nothing here is meant for production: the key
is stored unencrypted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from certs._io import write_atomic
from certs.errors import CertsError

__all__ = ["DevIssuer", "IssuerError"]

KEY_BITS: Final = 2048
ALGORITHM: Final = "RS256"
NATIONAL_ID_CLAIM: Final = "SubjectNameID"
_FORMAT: Final = 1
_ISSUER_FILE: Final = "issuer.json"
_KEY_FILE: Final = "issuer.key"
_JWKS_FILE: Final = "jwks.json"


class IssuerError(CertsError):
    """The issuer directory is missing, corrupt, or refuses an operation."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 §3: SHA-256 of the required members, sorted, without whitespace."""
    required = {name: jwk[name] for name in ("e", "kty", "n")}
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def _check_issuer_url(issuer_url: str) -> None:
    # OpenID Connect Discovery 1.0 §3: the issuer is a URL with no query or fragment. We also
    # accept http for local development (Pro Santé Connect itself uses https).
    parts = urlsplit(issuer_url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise IssuerError(f"issuer {issuer_url!r} is not an http(s) URL")
    if parts.query or parts.fragment:
        raise IssuerError(f"issuer {issuer_url!r} must have no query or fragment")


def _numeric_date(moment: datetime) -> int:
    """RFC 7519 §2 NumericDate: whole seconds since the epoch (naive values taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


class DevIssuer:
    """A development token issuer kept in a directory (see the module docstring)."""

    def __init__(
        self, directory: Path, issuer: str, kid: str, private_key: rsa.RSAPrivateKey
    ) -> None:
        self._directory = directory
        self._issuer = issuer
        self._kid = kid
        self._key = private_key

    @classmethod
    def create(cls, directory: Path, issuer_url: str) -> DevIssuer:
        """Make a new issuer in ``directory``; refuses one that already holds an issuer."""
        _check_issuer_url(issuer_url)
        existing = [n for n in (_ISSUER_FILE, _KEY_FILE, _JWKS_FILE) if (directory / n).exists()]
        if existing:
            raise IssuerError(
                f"{directory} already holds a token issuer ({', '.join(existing)}): "
                "refusing to overwrite it"
            )
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        kid = _thumbprint(public)
        # RFC 7517 §4.2-4.5: a signing key for RS256, named by its kid.
        jwk = {**public, "use": "sig", "alg": ALGORITHM, "kid": kid}
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_atomic(directory / _KEY_FILE, pem, mode=0o600)
        write_atomic(
            directory / _JWKS_FILE, (json.dumps({"keys": [jwk]}, indent=2) + "\n").encode()
        )
        # issuer.json last: its presence marks a complete issuer.
        meta = {"format": _FORMAT, "issuer": issuer_url, "kid": kid}
        write_atomic(directory / _ISSUER_FILE, (json.dumps(meta, indent=2) + "\n").encode())
        return cls(directory, issuer_url, kid, key)

    @classmethod
    def open(cls, directory: Path) -> DevIssuer:
        """Open an issuer made by :meth:`create`; :class:`IssuerError` names the bad file."""
        meta_path = directory / _ISSUER_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IssuerError(
                f"{directory} holds no token issuer ({meta_path} is missing)"
            ) from None
        except (OSError, ValueError) as exc:
            raise IssuerError(f"cannot read issuer file {meta_path}: {exc}") from None
        if (
            not isinstance(meta, dict)
            or meta.get("format") != _FORMAT
            or not isinstance(meta.get("issuer"), str)
            or not isinstance(meta.get("kid"), str)
        ):
            raise IssuerError(f"issuer file {meta_path} is not a format-{_FORMAT} issuer")
        key_path = directory / _KEY_FILE
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except FileNotFoundError:
            raise IssuerError(f"issuer key file {key_path} does not exist") from None
        except (OSError, ValueError, TypeError) as exc:
            raise IssuerError(f"cannot read issuer key file {key_path}: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise IssuerError(f"issuer key file {key_path} does not hold an RSA key")
        return cls(directory, meta["issuer"], meta["kid"], key)

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def jwks_path(self) -> Path:
        """The public JWK Set to configure the server with."""
        return self._directory / _JWKS_FILE

    @property
    def key_path(self) -> Path:
        """The private key (PEM), for tests that sign tokens by hand."""
        return self._directory / _KEY_FILE

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def kid(self) -> str:
        return self._kid

    def mint(
        self,
        *,
        national_id: str,
        audience: str,
        lifetime: timedelta = timedelta(minutes=10),
        now: datetime | None = None,
        subject: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """An RS256 access token for the professional ``national_id``.

        ``now`` sets ``iat``/``nbf`` (``exp`` = now + lifetime); ``extra`` adds or replaces
        claims, and a ``None`` value removes one (tests mint deliberately wrong tokens so).
        """
        issued = _numeric_date(now if now is not None else datetime.now(UTC))
        claims: dict[str, Any] = {
            "iss": self._issuer,  # RFC 7519 §4.1.1
            "sub": subject if subject is not None else f"dev-{national_id}",  # §4.1.2
            "aud": audience,  # §4.1.3
            "exp": issued + int(lifetime.total_seconds()),  # §4.1.4
            "nbf": issued,  # §4.1.5
            "iat": issued,  # §4.1.6
            "jti": uuid.uuid4().hex,  # §4.1.7
            NATIONAL_ID_CLAIM: national_id,
        }
        for name, value in (extra or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        # RFC 9068 §2.1: a JWT access token is typed "at+jwt"; the kid names our key.
        return jwt.encode(
            claims, self._key, algorithm=ALGORITHM, headers={"kid": self._kid, "typ": "at+jwt"}
        )

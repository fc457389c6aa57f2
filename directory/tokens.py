"""OpenID Connect access tokens (Pro Santé Connect): local validation of a signed JWT.

Professionals authenticate to submission and IMAP with an access token (SASL XOAUTH2 or
OAUTHBEARER, architecture.md "Identity and trust"). The door hands the bearer token here; we
check it without calling the issuer, against the issuer's published keys (a JWKS file):

* the signature (RFC 7515 §5.2), with the key whose ``kid`` the header names (RFC 7515 §4.1.4;
  the only key when the header names none), and only with the asymmetric algorithms we allow:
  ``none`` and the HMAC family are refused before any key is touched, so that a token "signed"
  with the public key as an HMAC secret (the algorithm-confusion attack, RFC 8725 §2.1 and
  §3.1) can never verify;
* ``iss`` equal to the configured issuer (RFC 7519 §4.1.1), ``aud`` naming our audience
  (RFC 7519 §4.1.3, a string or a list);
* ``exp`` present and in the future, ``nbf`` and ``iat`` not in the future (RFC 7519 §4.1.4-6),
  each with a small leeway for clock skew, read from an injected clock (tests are deterministic);
* a subject (``sub``, RFC 9068 §2.2) and the national professional identifier claim
  (``SubjectNameID`` by default: ``8`` + RPPS or ``0`` + ADELI, mssante.md §3).

Every refusal is a :class:`TokenRefused` whose message names the failed check.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from jwt import PyJWK, PyJWS
from jwt.exceptions import InvalidKeyError, InvalidSignatureError, PyJWTError

from directory.errors import DirectoryError
from routing.identifiers import InvalidIdentifier, check_national_id

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "MAX_TOKEN_LENGTH",
    "TokenClaims",
    "TokenRefused",
    "TokenValidator",
    "load_jwks",
    "now_utc",
]


class TokenRefused(DirectoryError):
    """An access token that fails validation; the message names the failed check."""


#: Signature algorithms with a public verification key (RFC 7518 §3.1, RFC 8037 §3.1).
#: HS256/384/512 (a shared secret) and ``none`` are deliberately absent (RFC 8725 §3.1).
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
    }
)
DEFAULT_ALGORITHMS: Final = ("RS256", "ES256", "PS256")
#: Longest token we parse: real access tokens are one or two kilobytes; this bounds the work
#: an unauthenticated client can cause before the signature is checked.
MAX_TOKEN_LENGTH: Final = 16 * 1024
# JWK key types (RFC 7518 §6.1, RFC 8037 §2) and the algorithm families they verify.
_KEY_TYPE_FOR_FAMILY: Final = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
# ECDSA algorithms fix their curve (RFC 7518 §3.4).
_CURVE_FOR_ALGORITHM: Final = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def now_utc() -> datetime:
    """The current time, aware and in UTC (the default clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says about its bearer."""

    subject: str  # "sub": the issuer's identifier for the user (RFC 7519 §4.1.2)
    national_id: str  # 8 + RPPS or 0 + ADELI, checked (mssante.md §3)
    issuer: str  # "iss", equal to the configured issuer
    expires_at: datetime  # "exp", aware UTC
    raw: Mapping[str, Any]  # every claim, read-only


# --------------------------------------------------------------------------------------------
# JWKS (RFC 7517 §5)
# --------------------------------------------------------------------------------------------


def _show(value: object, limit: int = 60) -> str:
    """A claim or header value for a message: repr, bounded, on one line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_jwks(jwks: object, source: str) -> list[dict[str, Any]]:
    """The usable verification keys of a parsed JWKS, or :class:`DirectoryError` saying why.

    A JWK Set is ``{"keys": [JWK, ...]}`` (RFC 7517 §5). We only accept public asymmetric
    keys: a symmetric (``oct``) key would turn the issuer's key set into an HMAC secret, and
    a private key does not belong in a published key set (RFC 7517 §9.1).
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise DirectoryError(f'{source} is not a JWK Set: expected {{"keys": [...]}}')
    keys: list[dict[str, Any]] = []
    kids: set[str] = set()
    for number, jwk in enumerate(jwks["keys"], start=1):
        where = f"{source}: key #{number}"
        if not isinstance(jwk, dict):
            raise DirectoryError(f"{where} is not a JSON object")
        kid = jwk.get("kid")
        if kid is not None:
            if not isinstance(kid, str):
                raise DirectoryError(f"{where} has a non-string kid {_show(kid)}")
            if kid in kids:
                raise DirectoryError(f"{where} repeats kid {kid!r}")  # RFC 7517 §4.5
            kids.add(kid)
            where += f" (kid {kid!r})"
        kty = jwk.get("kty")
        if kty not in _KEY_TYPE_FOR_FAMILY.values():
            raise DirectoryError(
                f"{where} has key type {_show(kty)}: only RSA, EC and OKP public keys verify "
                "tokens (symmetric keys are refused)"
            )
        if "d" in jwk:
            raise DirectoryError(f"{where} holds a private key: publish only the public part")
        if jwk.get("use", "sig") != "sig":  # RFC 7517 §4.2
            raise DirectoryError(f"{where} is for use {_show(jwk['use'])}, not 'sig'")
        alg = jwk.get("alg")
        if alg is not None and alg not in ASYMMETRIC_ALGORITHMS:
            raise DirectoryError(f"{where} is for algorithm {_show(alg)}, which is not accepted")
        try:
            PyJWK(jwk)  # builds the public key: catches missing or malformed parameters
        except PyJWTError as exc:
            raise DirectoryError(f"{where} is not a usable key: {exc}") from None
        keys.append(jwk)
    if not keys:
        raise DirectoryError(f"{source} holds no keys")
    return keys


def load_jwks(path: Path) -> dict[str, Any]:
    """Read and check a JWKS file (RFC 7517 §5); :class:`DirectoryError` names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DirectoryError(f"JWKS file {path} does not exist") from None
    except IsADirectoryError:
        raise DirectoryError(f"JWKS file {path} is a directory") from None
    except UnicodeDecodeError:
        raise DirectoryError(f"JWKS file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise DirectoryError(f"cannot read JWKS file {path}: {exc.strerror}") from None
    try:
        jwks = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DirectoryError(
            f"JWKS file {path} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    _check_jwks(jwks, f"JWKS file {path}")
    assert isinstance(jwks, dict)  # checked by _check_jwks
    return jwks


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    # json accepts NaN and Infinity by default; they are not JSON (RFC 8259 §6).
    raise ValueError(f"{name} is not a JSON number")


def _time_text(timestamp: float) -> str:
    """A NumericDate (RFC 7519 §2) as ISO 8601 UTC text for messages."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{timestamp!r} (out of range)"


def _numeric_date(payload: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 §2: seconds since the epoch), or None when absent."""
    if name not in payload:
        return None
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenRefused(f"malformed token: {name} claim {_show(value)} is not a NumericDate")
    return float(value)


class TokenValidator:
    """Validates access tokens of one issuer against its keys (see the module docstring)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keys: Mapping[str, Any],
        national_id_claim: str = "SubjectNameID",
        leeway_seconds: int = 60,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        if not issuer:
            raise DirectoryError("token validator: the issuer is empty")
        if not audience:
            raise DirectoryError("token validator: the audience is empty")
        if leeway_seconds < 0:
            raise DirectoryError(f"token validator: negative leeway {leeway_seconds}")
        refused = [alg for alg in algorithms if alg not in ASYMMETRIC_ALGORITHMS]
        if refused or not algorithms:
            raise DirectoryError(
                f"token validator: algorithms {', '.join(refused) or '(none)'} not accepted; "
                f"choose among {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
            )
        self._issuer = issuer
        self._audience = audience
        self._claim = national_id_claim
        self._leeway = leeway_seconds
        self._algorithms = tuple(algorithms)
        self._clock = clock
        self._keys = _check_jwks(copy.deepcopy(dict(keys)), "JWKS")
        self._prepared: dict[tuple[int, str], PyJWK] = {}
        # Signature only: the time and claim checks below use our clock and messages.
        self._jws = PyJWS(options={"verify_signature": True, "enforce_minimum_key_length": True})

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def audience(self) -> str:
        return self._audience

    def _now(self) -> float:
        now = self._clock()
        if now.tzinfo is None:  # a naive clock reading is taken as UTC
            now = now.replace(tzinfo=UTC)
        return now.timestamp()

    def _key_for(self, header: Mapping[str, Any], alg: str) -> PyJWK:
        """The JWK that must have signed the token (RFC 7515 §4.1.4, RFC 7517 §4.4-4.5)."""
        kid = header.get("kid")
        if kid is None:
            if len(self._keys) != 1:
                raise TokenRefused(
                    f"token names no key (no kid) and the issuer has {len(self._keys)} keys"
                )
            index = 0
        else:
            matches = [i for i, jwk in enumerate(self._keys) if jwk.get("kid") == kid]
            if not matches:
                raise TokenRefused(f"no key with kid {_show(kid)} among the issuer keys")
            index = matches[0]
        jwk = self._keys[index]
        where = f"key {jwk['kid']!r}" if "kid" in jwk else "the issuer key"
        if jwk.get("alg", alg) != alg:
            raise TokenRefused(f"{where} is for algorithm {jwk['alg']}, the token uses {alg}")
        if jwk["kty"] != _KEY_TYPE_FOR_FAMILY[alg[:2]]:
            raise TokenRefused(f"{where} is a {jwk['kty']} key, it cannot verify {alg}")
        curve = _CURVE_FOR_ALGORITHM.get(alg)
        if curve is not None and jwk.get("crv") != curve:  # RFC 7518 §3.4
            raise TokenRefused(f"{where} is on curve {jwk.get('crv')}, {alg} needs {curve}")
        prepared = self._prepared.get((index, alg))
        if prepared is None:
            try:
                prepared = PyJWK(jwk, algorithm=alg)
            except PyJWTError as exc:
                raise TokenRefused(f"{where} cannot verify {alg}: {exc}") from None
            self._prepared[(index, alg)] = prepared
        return prepared

    def _verified_payload(self, token: str) -> dict[str, Any]:
        """Check the JWS (RFC 7515 §5.2) and return the JWT claims set (RFC 7519 §7.2)."""
        if not isinstance(token, str):
            raise TokenRefused(f"malformed token: expected text, got {type(token).__name__}")
        if not token:
            raise TokenRefused("malformed token: empty")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenRefused(f"malformed token: longer than {MAX_TOKEN_LENGTH} characters")
        if not token.isascii() or token.count(".") != 2:
            # JWS compact serialisation: three base64url parts (RFC 7515 §7.1). Five parts
            # would be an encrypted JWE (RFC 7516 §7.1), which we do not accept.
            raise TokenRefused(
                "malformed token: not a JWS compact serialisation (3 base64url parts)"
            )
        try:
            header = self._jws.get_unverified_header(token)
        except PyJWTError as exc:
            raise TokenRefused(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise TokenRefused(f"malformed token: header alg {_show(alg)} is not a string")
        if alg not in self._algorithms:
            # RFC 8725 §3.1: only the algorithms we chose; never "none", never HMAC.
            raise TokenRefused(
                f"algorithm {alg} not accepted (accepted: {', '.join(self._algorithms)})"
            )
        key = self._key_for(header, alg)
        try:
            decoded = self._jws.decode_complete(token, key=key, algorithms=[alg])
        except InvalidSignatureError:
            raise TokenRefused("signature does not verify") from None
        except InvalidKeyError as exc:
            raise TokenRefused(f"issuer key refused: {exc}") from None
        except PyJWTError as exc:
            raise TokenRefused(f"malformed token: {exc}") from None
        try:
            payload = json.loads(decoded["payload"], parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise TokenRefused(f"malformed token: the claims are not JSON ({exc})") from None
        if not isinstance(payload, dict):
            raise TokenRefused("malformed token: the claims are not a JSON object")
        return payload

    def validate(self, token: str) -> TokenClaims:
        """Check ``token`` completely; return its claims or raise :class:`TokenRefused`."""
        payload = self._verified_payload(token)

        issuer = payload.get("iss")  # RFC 7519 §4.1.1; OpenID Connect Core §3.1.3.7 step 2
        if issuer is None:
            raise TokenRefused("token has no iss claim")
        if issuer != self._issuer:
            shown = issuer if isinstance(issuer, str) else _show(issuer)
            raise TokenRefused(f"issuer {shown} is not the configured issuer {self._issuer}")

        audience = payload.get("aud")  # RFC 7519 §4.1.3: a string or an array of strings
        if audience is None:
            raise TokenRefused("token has no aud claim")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise TokenRefused(f"malformed token: aud claim {_show(audience)} is not text")
        if self._audience not in audiences:
            raise TokenRefused(
                f"audience {', '.join(audiences) or '(empty)'} does not include "
                f"the configured audience {self._audience}"
            )

        now = self._now()
        expires = _numeric_date(payload, "exp")
        if expires is None:
            raise TokenRefused("token has no exp claim")
        try:
            expires_at = datetime.fromtimestamp(expires, UTC)
        except (OverflowError, OSError, ValueError):
            raise TokenRefused(f"malformed token: exp claim {expires!r} is out of range") from None
        if now >= expires + self._leeway:  # RFC 7519 §4.1.4: now must be before exp
            raise TokenRefused(f"token expired at {_time_text(expires)}")
        not_before = _numeric_date(payload, "nbf")
        if not_before is not None and now + self._leeway < not_before:  # RFC 7519 §4.1.5
            raise TokenRefused(f"token not valid before {_time_text(not_before)}")
        issued = _numeric_date(payload, "iat")
        if issued is not None and issued > now + self._leeway:  # RFC 7519 §4.1.6
            raise TokenRefused(f"token issued in the future, at {_time_text(issued)}")

        subject = payload.get("sub")  # RFC 9068 §2.2: REQUIRED in a JWT access token
        if subject is None:
            raise TokenRefused("token has no sub claim")
        if not isinstance(subject, str) or not subject:
            raise TokenRefused(f"malformed token: sub claim {_show(subject)} is not text")

        national_id = payload.get(self._claim)
        if national_id is None:
            raise TokenRefused(f"token has no {self._claim} claim")
        if not isinstance(national_id, str):
            raise TokenRefused(
                f"malformed token: {self._claim} claim {_show(national_id)} is not text"
            )
        try:
            check_national_id(national_id)
        except InvalidIdentifier as exc:
            raise TokenRefused(f"{self._claim} claim is not a national identifier: {exc}") from None

        return TokenClaims(
            subject=subject,
            national_id=national_id,
            issuer=issuer,
            expires_at=expires_at,
            raw=MappingProxyType(payload),
        )

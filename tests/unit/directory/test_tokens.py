"""Access-token validation (directory.tokens) against the development issuer (certs.oidc)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from certs.oidc import DevIssuer, IssuerError
from directory.errors import DirectoryError
from directory.tokens import TokenRefused, TokenValidator, load_jwks
from routing.identifiers import national_id_for_rpps, rpps_with_key

ISSUER = "https://psc.dev.example/auth/realms/esante-wallet"
AUDIENCE = "mailserver-demo"
NID = national_id_for_rpps(rpps_with_key("1000000301"))
T = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer.create(tmp_path_factory.mktemp("oidc") / "issuer", ISSUER)


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    """Another issuer with the same URL: its tokens look right but its key is not ours."""
    return DevIssuer.create(tmp_path_factory.mktemp("oidc") / "other", ISSUER)


def _validator(
    issuer: DevIssuer, *, at: datetime = T, keys: dict[str, Any] | None = None, **kwargs: Any
) -> TokenValidator:
    return TokenValidator(
        issuer=ISSUER,
        audience=AUDIENCE,
        keys=keys if keys is not None else load_jwks(issuer.jwks_path),
        clock=lambda: at,
        **kwargs,
    )


def _mint(issuer: DevIssuer, **kwargs: Any) -> str:
    kwargs.setdefault("national_id", NID)
    kwargs.setdefault("audience", AUDIENCE)
    kwargs.setdefault("now", T)
    return issuer.mint(**kwargs)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(obj: object) -> str:
    return _b64url(json.dumps(obj).encode())


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _sign(issuer: DevIssuer, claims: dict[str, Any], headers: dict[str, Any]) -> str:
    """Sign by hand with the issuer's key (for headers and claims mint() does not make)."""
    key = serialization.load_pem_private_key(issuer.key_path.read_bytes(), password=None)
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)  # type: ignore[arg-type]


def _refused(validator: TokenValidator, token: str, message: str) -> None:
    with pytest.raises(TokenRefused, match=message):
        validator.validate(token)


# --------------------------------------------------------------------------------------------
# accepted tokens
# --------------------------------------------------------------------------------------------


def test_valid_token_gives_its_claims(issuer: DevIssuer) -> None:
    token = _mint(issuer, subject="f:abc-123")
    claims = _validator(issuer, at=T + timedelta(minutes=5)).validate(token)
    assert claims.subject == "f:abc-123"
    assert claims.national_id == NID
    assert claims.issuer == ISSUER
    assert claims.expires_at == T + timedelta(minutes=10)
    assert claims.raw["SubjectNameID"] == NID
    assert claims.raw["aud"] == AUDIENCE
    assert jwt.get_unverified_header(token)["kid"] == issuer.kid
    with pytest.raises(TypeError):
        claims.raw["sub"] = "other"  # type: ignore[index]


def test_audience_list_containing_ours_is_accepted(issuer: DevIssuer) -> None:
    token = _mint(issuer, extra={"aud": ["webmail", AUDIENCE]})
    assert _validator(issuer).validate(token).national_id == NID


def test_national_id_claim_is_configurable(issuer: DevIssuer) -> None:
    adeli = "0" + "751234567"
    token = _mint(issuer, extra={"SubjectNameID": None, "preferred_username": adeli})
    validator = _validator(issuer, national_id_claim="preferred_username")
    assert validator.validate(token).national_id == adeli
    _refused(_validator(issuer), token, r"^token has no SubjectNameID claim$")


def test_naive_clock_is_taken_as_utc(issuer: DevIssuer) -> None:
    token = _mint(issuer)
    naive = (T + timedelta(minutes=1)).replace(tzinfo=None)
    assert _validator(issuer, at=naive).validate(token).subject == f"dev-{NID}"


def test_ec_keys_verify_es256(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "ec-1"}
    now = int(T.timestamp())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "s", "exp": now + 60, "SubjectNameID": NID}
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "ec-1"})
    validator = TokenValidator(
        issuer=ISSUER, audience=AUDIENCE, keys={"keys": [jwk]}, clock=lambda: T
    )
    assert validator.validate(token).national_id == NID
    # The same curve key cannot verify ES384 (RFC 7518 §3.4), even when ES384 is allowed.
    es384 = TokenValidator(
        issuer=ISSUER,
        audience=AUDIENCE,
        keys={"keys": [jwk]},
        clock=lambda: T,
        algorithms=("ES256", "ES384"),
    )
    token384 = jwt.encode(
        claims, ec.generate_private_key(ec.SECP384R1()), algorithm="ES384", headers={"kid": "ec-1"}
    )
    _refused(es384, token384, r"^key 'ec-1' is on curve P-256, ES384 needs P-384$")


# --------------------------------------------------------------------------------------------
# time checks, with the injected clock and the leeway
# --------------------------------------------------------------------------------------------


def test_expired_token_is_refused_after_the_leeway(issuer: DevIssuer) -> None:
    token = _mint(issuer, lifetime=timedelta(minutes=10))
    exp = T + timedelta(minutes=10)
    assert _validator(issuer, at=exp + timedelta(seconds=59)).validate(token)
    _refused(
        _validator(issuer, at=exp + timedelta(seconds=60)),
        token,
        r"^token expired at 2026-03-02T09:10:00\+00:00$",
    )
    # RFC 7519 §4.1.4: at exp itself the token is already expired (without leeway).
    _refused(_validator(issuer, at=exp, leeway_seconds=0), token, "token expired at")
    assert _validator(issuer, at=exp - timedelta(seconds=1), leeway_seconds=0).validate(token)


def test_token_not_yet_valid(issuer: DevIssuer) -> None:
    later = T + timedelta(minutes=5)
    token = _mint(issuer, now=later)  # nbf = iat = T + 5 min
    _refused(_validator(issuer), token, r"^token not valid before 2026-03-02T09:05:00\+00:00$")
    assert _validator(issuer, at=later - timedelta(seconds=60)).validate(token)
    _refused(_validator(issuer, at=later - timedelta(seconds=61)), token, "not valid before")


def test_token_issued_in_the_future(issuer: DevIssuer) -> None:
    in_an_hour = int(T.timestamp()) + 3600
    token = _mint(issuer, lifetime=timedelta(hours=2), extra={"nbf": None, "iat": in_an_hour})
    _refused(_validator(issuer), token, r"^token issued in the future, at 2026-03-02T10:00:00")
    assert _validator(issuer, at=T + timedelta(minutes=59)).validate(token)


def test_wall_clock_is_never_read(issuer: DevIssuer) -> None:
    """A token minted in 2026 validates with a 2026 clock whatever the machine's date."""
    token = _mint(issuer, now=datetime(2031, 1, 1, tzinfo=UTC))
    assert _validator(issuer, at=datetime(2031, 1, 1, 0, 5, tzinfo=UTC)).validate(token)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"exp": None}, r"^token has no exp claim$"),
        ({"exp": "tomorrow"}, r"^malformed token: exp claim 'tomorrow' is not a NumericDate$"),
        ({"exp": True}, r"^malformed token: exp claim True is not a NumericDate$"),
        ({"exp": 10**20}, r"^malformed token: exp claim .* is out of range$"),
        ({"nbf": [1]}, r"^malformed token: nbf claim \[1\] is not a NumericDate$"),
    ],
)
def test_malformed_dates(issuer: DevIssuer, extra: dict[str, Any], message: str) -> None:
    _refused(_validator(issuer), _mint(issuer, extra=extra), message)


# --------------------------------------------------------------------------------------------
# issuer, audience, claims
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"iss": "https://x.example"},
            rf"^issuer https://x.example is not the configured issuer {ISSUER}$",
        ),
        ({"iss": None}, r"^token has no iss claim$"),
        (
            {"aud": "webmail"},
            rf"^audience webmail does not include the configured audience {AUDIENCE}$",
        ),
        ({"aud": ["a", "b"]}, r"^audience a, b does not include the configured audience"),
        ({"aud": []}, r"^audience \(empty\) does not include"),
        ({"aud": None}, r"^token has no aud claim$"),
        ({"aud": [AUDIENCE, 3]}, r"^malformed token: aud claim .* is not text$"),
        ({"sub": None}, r"^token has no sub claim$"),
        ({"sub": ""}, r"^malformed token: sub claim '' is not text$"),
        ({"SubjectNameID": None}, r"^token has no SubjectNameID claim$"),
        ({"SubjectNameID": 810000003010}, r"^malformed token: SubjectNameID claim 8100"),
        (
            {"SubjectNameID": NID[:-1] + str((int(NID[-1]) + 1) % 10)},
            r"^SubjectNameID claim is not a national identifier: .*wrong RPPS check digit",
        ),
        (
            {"SubjectNameID": "1234567890"},
            r"^SubjectNameID claim is not a national identifier: .*wrong prefix",
        ),
    ],
)
def test_claim_refusals_name_the_check(
    issuer: DevIssuer, extra: dict[str, Any], message: str
) -> None:
    _refused(_validator(issuer), _mint(issuer, extra=extra), message)


# --------------------------------------------------------------------------------------------
# signatures, algorithms, keys
# --------------------------------------------------------------------------------------------


def test_token_of_another_key_is_refused(issuer: DevIssuer, other: DevIssuer) -> None:
    validator = _validator(issuer)
    forged = _mint(other)
    _refused(validator, forged, rf"^no key with kid '{other.kid}' among the issuer keys$")
    # Same kid, another key: the signature of the other issuer over our header and claims.
    ours = _mint(issuer)
    head, body, _ = ours.split(".")
    relabelled = _sign(other, _claims(ours), {"kid": issuer.kid})
    _refused(validator, f"{head}.{body}.{relabelled.split('.')[2]}", r"^signature does not verify$")
    # Tampered claims under a genuine signature.
    tampered = _segment({**_claims(ours), "SubjectNameID": "0751234567"})
    _refused(validator, f"{head}.{tampered}.{ours.split('.')[2]}", r"^signature does not verify$")


def test_token_without_kid_uses_the_only_key(issuer: DevIssuer, other: DevIssuer) -> None:
    claims = _claims(_mint(issuer))
    validator = _validator(issuer)
    assert validator.validate(_sign(issuer, claims, {})).national_id == NID
    _refused(validator, _sign(other, claims, {}), r"^signature does not verify$")
    both = {"keys": load_jwks(issuer.jwks_path)["keys"] + load_jwks(other.jwks_path)["keys"]}
    _refused(
        _validator(issuer, keys=both),
        _sign(issuer, claims, {}),
        r"^token names no key \(no kid\) and the issuer has 2 keys$",
    )
    assert _validator(issuer, keys=both).validate(_mint(other)).national_id == NID


def test_alg_none_is_refused(issuer: DevIssuer) -> None:
    claims = _claims(_mint(issuer))
    for alg in ("none", "None", "NONE"):
        unsigned = f"{_segment({'alg': alg, 'kid': issuer.kid})}.{_segment(claims)}."
        _refused(_validator(issuer), unsigned, rf"^algorithm {alg} not accepted")


def test_hmac_with_the_public_key_as_secret_is_refused(issuer: DevIssuer) -> None:
    """Algorithm confusion (RFC 8725 §2.1): HS256 keyed with the issuer's public key."""
    public_pem = (
        serialization.load_pem_private_key(issuer.key_path.read_bytes(), password=None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    jwk = load_jwks(issuer.jwks_path)["keys"][0]
    claims = _claims(_mint(issuer))
    for secret in (public_pem, json.dumps(jwk).encode(), base64.b64decode(jwk["n"] + "==", "-_")):
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            signing_input = f"{_segment({'alg': alg, 'kid': issuer.kid})}.{_segment(claims)}"
            mac = hmac.new(secret, signing_input.encode(), digest).digest()
            _refused(
                _validator(issuer),
                f"{signing_input}.{_b64url(mac)}",
                rf"^algorithm {alg} not accepted \(accepted: RS256, ES256, PS256\)$",
            )


def test_symmetric_algorithms_cannot_be_configured(issuer: DevIssuer) -> None:
    for algorithms in (("HS256",), ("RS256", "none"), ()):
        with pytest.raises(DirectoryError, match="not accepted"):
            _validator(issuer, algorithms=algorithms)


def test_key_algorithm_must_match_the_token(issuer: DevIssuer) -> None:
    claims = _claims(_mint(issuer))
    key = serialization.load_pem_private_key(issuer.key_path.read_bytes(), password=None)
    ps256 = jwt.encode(claims, key, algorithm="PS256", headers={"kid": issuer.kid})  # type: ignore[arg-type]
    # The published JWK says alg RS256 (RFC 7517 §4.4): a PS256 token does not use it.
    _refused(
        _validator(issuer),
        ps256,
        rf"^key '{issuer.kid}' is for algorithm RS256, the token uses PS256$",
    )
    # Without the alg member the RSA key verifies PS256 too.
    jwk = {k: v for k, v in load_jwks(issuer.jwks_path)["keys"][0].items() if k != "alg"}
    assert _validator(issuer, keys={"keys": [jwk]}).validate(ps256).national_id == NID
    # An RSA key cannot verify an ECDSA token.
    es256 = f"{_segment({'alg': 'ES256', 'kid': issuer.kid})}.{_segment(claims)}.AAAA"
    _refused(
        _validator(issuer, keys={"keys": [jwk]}), es256, r"is a RSA key, it cannot verify ES256"
    )


def test_garbage_is_malformed(issuer: DevIssuer) -> None:
    validator = _validator(issuer)
    good = _mint(issuer)
    head, body, sig = good.split(".")
    for garbage in (
        "",
        "Bearer",
        "a.b",
        "a.b.c",
        "a.b.c.d.e",
        "éé.éé.éé",
        "x" * 20_000,
        f"{_b64url(b'not json')}.{body}.{sig}",
        f"{_segment([1, 2])}.{body}.{sig}",
        f"{_segment({'kid': issuer.kid})}.{body}.{sig}",
        f"{_segment({'alg': 5})}.{body}.{sig}",
        f"{head}.{body}.{sig}!",
    ):
        _refused(validator, garbage, r"^(malformed token: |algorithm )")
    _refused(validator, None, r"^malformed token: expected text, got NoneType$")  # type: ignore[arg-type]
    _refused(validator, "a.b.c", r"^malformed token: ")
    _refused(validator, "x" * 20_000, r"^malformed token: longer than 16384 characters$")


def test_claims_that_are_not_a_json_object(issuer: DevIssuer) -> None:
    key = serialization.load_pem_private_key(issuer.key_path.read_bytes(), password=None)
    header = {"alg": "RS256", "kid": issuer.kid}
    for payload in (b"[1, 2]", b'{"exp": NaN}', b"\xff\xfe"):
        signed = jwt.PyJWS().encode(payload, key, algorithm="RS256", headers=header)  # type: ignore[arg-type]
        _refused(_validator(issuer), signed, r"^malformed token: the claims are not")


def test_critical_header_extensions_are_refused(issuer: DevIssuer) -> None:
    claims = _claims(_mint(issuer))
    token = _sign(issuer, claims, {"kid": issuer.kid, "crit": ["exp-ext"], "exp-ext": 1})
    _refused(_validator(issuer), token, r"^malformed token: Unsupported critical extension")


# --------------------------------------------------------------------------------------------
# JWKS files and key sets
# --------------------------------------------------------------------------------------------


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "jwks.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_load_jwks_reads_the_issuer_file(issuer: DevIssuer) -> None:
    jwks = load_jwks(issuer.jwks_path)
    (jwk,) = jwks["keys"]
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["kid"]) == ("RSA", "RS256", "sig", issuer.kid)
    assert "d" not in jwk


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", r"is not JSON: Expecting property name .* at line 1 column 2$"),
        (b"\xff", r"is not UTF-8 text$"),
        ("[]", r'is not a JWK Set: expected \{"keys": \[...\]\}$'),
        ('{"keys": {}}', r"is not a JWK Set"),
        ('{"keys": []}', r"holds no keys$"),
        ('{"keys": [3]}', r": key #1 is not a JSON object$"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', r"key type 'oct'.*symmetric keys"),
        ('{"keys": [{"kty": "RSA", "n": "AQAB"}]}', r"key #1 is not a usable key"),
    ],
)
def test_load_jwks_refusals_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(DirectoryError, match=rf"^JWKS file {path}.*{message}"):
        load_jwks(path)


def test_load_jwks_refuses_private_and_duplicate_keys(tmp_path: Path, issuer: DevIssuer) -> None:
    key = serialization.load_pem_private_key(issuer.key_path.read_bytes(), password=None)
    private = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))  # type: ignore[arg-type]
    with pytest.raises(DirectoryError, match=r"key #1 holds a private key"):
        load_jwks(_write(tmp_path, json.dumps({"keys": [private]})))
    jwk = load_jwks(issuer.jwks_path)["keys"][0]
    with pytest.raises(DirectoryError, match=rf"key #2 repeats kid '{issuer.kid}'"):
        load_jwks(_write(tmp_path, json.dumps({"keys": [jwk, jwk]})))
    with pytest.raises(DirectoryError, match=r"is for use 'enc', not 'sig'"):
        load_jwks(_write(tmp_path, json.dumps({"keys": [{**jwk, "use": "enc"}]})))
    with pytest.raises(DirectoryError, match=r"is for algorithm 'HS256', which is not accepted"):
        load_jwks(_write(tmp_path, json.dumps({"keys": [{**jwk, "alg": "HS256"}]})))


def test_load_jwks_unreadable(tmp_path: Path) -> None:
    with pytest.raises(
        DirectoryError, match=rf"^JWKS file {tmp_path / 'nope.json'} does not exist"
    ):
        load_jwks(tmp_path / "nope.json")
    with pytest.raises(DirectoryError, match=rf"^JWKS file {tmp_path} is a directory$"):
        load_jwks(tmp_path)


def test_validator_checks_its_keys_too() -> None:
    with pytest.raises(DirectoryError, match=r"^JWKS holds no keys$"):
        TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys={"keys": []})
    with pytest.raises(DirectoryError, match=r"^JWKS is not a JWK Set"):
        TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys={})


# --------------------------------------------------------------------------------------------
# the development issuer
# --------------------------------------------------------------------------------------------


def test_dev_issuer_files_and_reopening(tmp_path: Path) -> None:
    directory = tmp_path / "oidc"
    created = DevIssuer.create(directory, "http://localhost:8080/realm")
    assert stat.S_IMODE(os.stat(created.key_path).st_mode) == 0o600
    meta = json.loads((directory / "issuer.json").read_text())
    assert meta == {"format": 1, "issuer": "http://localhost:8080/realm", "kid": created.kid}
    reopened = DevIssuer.open(directory)
    assert (reopened.issuer, reopened.kid, reopened.jwks_path) == (
        created.issuer,
        created.kid,
        created.jwks_path,
    )
    token = reopened.mint(national_id=NID, audience=AUDIENCE, now=T)
    validator = TokenValidator(
        issuer="http://localhost:8080/realm",
        audience=AUDIENCE,
        keys=load_jwks(created.jwks_path),
        clock=lambda: T,
    )
    assert validator.validate(token).national_id == NID
    assert _claims(token)["jti"] != _claims(reopened.mint(national_id=NID, audience="a"))["jti"]
    with pytest.raises(IssuerError, match=r"already holds a token issuer .*refusing to overwrite"):
        DevIssuer.create(directory, "http://localhost:8080/realm")


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda d: None, r"holds no token issuer .*issuer.json is missing"),
        (lambda d: (d / "issuer.json").write_text("{"), r"cannot read issuer file"),
        (lambda d: (d / "issuer.json").write_text("{}"), r"is not a format-1 issuer"),
    ],
)
def test_dev_issuer_open_refusals(
    tmp_path: Path, prepare: Callable[[Path], object], message: str
) -> None:
    prepare(tmp_path)
    with pytest.raises(IssuerError, match=message):
        DevIssuer.open(tmp_path)


def test_dev_issuer_open_needs_its_key(tmp_path: Path) -> None:
    created = DevIssuer.create(tmp_path / "i", ISSUER)
    created.key_path.unlink()
    with pytest.raises(IssuerError, match=r"issuer key file .*issuer.key does not exist"):
        DevIssuer.open(tmp_path / "i")


@pytest.mark.parametrize("url", ["psc.example", "ftp://x.example", "https://x.example/?a=1"])
def test_dev_issuer_url_must_be_an_issuer(tmp_path: Path, url: str) -> None:
    with pytest.raises(IssuerError, match="issuer"):
        DevIssuer.create(tmp_path / "i", url)

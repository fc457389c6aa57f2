"""DKIM signing and verification (RFC 6376), RSA-SHA256 and Ed25519-SHA256 (RFC 8463), on dkimpy.

Keys are the files `mailserver init` writes (`mailserver/bootstrap.py: write_dkim_keys`): PEM
PKCS#8 private keys `<selector>-rsa.key` and `<selector>-ed25519.key`, published in DNS as
`<selector>-rsa._domainkey.<domain>` (k=rsa) and `<selector>-ed25519._domainkey.<domain>`
(k=ed25519). `load_signing_keys` uses the same selector names.

Everything here is synchronous and pure apart from the `dns_txt` callable handed to `verify`:
signing or verifying a large message can run in a worker thread.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.util import InvalidTagValueList, parse_tag_value

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]
Result = Literal["pass", "fail", "neutral", "none", "temperror", "permerror"]

# RFC 6376 §5.4.1: the header fields a signer should cover; X-MSS-* fields present in the
# message are added by `sign`. Names are compared case-insensitively.
DEFAULT_SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"mime-version",
    b"content-type",
    b"in-reply-to",
    b"references",
)
# RFC 6376 §8.15 / §5.4.2: naming a present field once more than it occurs ("over-signing")
# stops anyone from adding a second instance after signing. Done for the RFC 5322 §3.6
# fields that occur at most once, for the MIME fields, and for our own X-MSS-* fields.
_OVERSIGNED = frozenset(DEFAULT_SIGNED_HEADERS) | {b"sender"}
_MSS_PREFIX = b"x-mss-"

# RFC 6376 §6.1: a verifier may limit the signatures it evaluates (each costs a DNS query).
MAX_SIGNATURES = 8
# RFC 8301 §3.2: verifiers must not accept RSA keys shorter than 1024 bits.
MIN_RSA_BITS = 1024

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class DkimKeyError(ValueError):
    """A DKIM private key file that cannot be used (the message names the file)."""


class DkimSigningError(ValueError):
    """A message that cannot be signed (no From field, unparsable header section)."""


@dataclass(frozen=True)
class DkimKey:
    selector: str
    domain: str
    algorithm: Algorithm
    private_key: bytes  # the key file contents as read from disk (PEM, PKCS#8 or PKCS#1)


@dataclass(frozen=True)
class DkimResult:
    """One signature's outcome, with the RFC 8601 §2.7.1 result names."""

    result: Result
    domain: str | None
    selector: str | None
    reason: str
    algorithm: str | None = None  # the a= tag, reported as header.a


# ---------------------------------------------------------------------------------------------
# Keys


def _signature_algorithm(private_key: object) -> Algorithm:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "rsa-sha256"
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "ed25519-sha256"
    raise DkimKeyError(f"not an RSA or Ed25519 private key ({type(private_key).__name__})")


@functools.lru_cache(maxsize=16)
def _dkimpy_private_key(algorithm: Algorithm, key_file: bytes) -> bytes:
    """The key in the form dkimpy wants; cached, as parsing an RSA key is not free.

    dkimpy reads RSA keys as PEM PKCS#1 ("RSA PRIVATE KEY") only, and Ed25519 keys as the
    base64 of the 32-byte seed (RFC 8032 §5.1.5); the files hold PEM PKCS#8.
    """
    try:
        key = serialization.load_pem_private_key(key_file, password=None)
    except (ValueError, TypeError) as exc:
        raise DkimKeyError(f"not a readable unencrypted PEM private key: {exc}") from None
    found = _signature_algorithm(key)
    if found != algorithm:
        raise DkimKeyError(f"the key is for {found}, not {algorithm}")
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            # RFC 8301 §3.2: signers must use at least 1024 bits (2048 recommended).
            raise DkimKeyError(f"RSA key of {key.key_size} bits, at least 1024 needed (RFC 8301)")
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(seed)


def public_record(private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    """The DNS TXT value publishing a signing key: ``v=DKIM1; k=...; p=...``.

    RFC 6376 §3.6.1: p= is the base64 SubjectPublicKeyInfo for RSA; RFC 8463 §4: the raw
    32-byte public key for Ed25519.
    """
    if isinstance(private_key, rsa.RSAPrivateKey):
        public = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kind = "rsa"
    else:
        public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        kind = "ed25519"
    return f"v=DKIM1; k={kind}; p={base64.b64encode(public).decode()}"


def load_signing_keys(
    domain: str,
    selector_base: str,
    rsa_key_path: Path | None,
    ed25519_key_path: Path | None,
) -> list[DkimKey]:
    """The signing keys for `domain`: RSA first, then Ed25519 (dual signing, RFC 8463 §3).

    Selectors are `<selector_base>-rsa` and `<selector_base>-ed25519`, the names
    `mailserver init` publishes. Raises DkimKeyError naming the file that cannot be used.
    """
    if not domain.isascii() or not _DNS_NAME.fullmatch(domain):
        # RFC 6376 §3.5: d= is a domain name, internationalised names as A-labels.
        raise DkimKeyError(f"DKIM domain {domain!r} is not an ASCII domain name (use A-labels)")
    keys: list[DkimKey] = []
    wanted: list[tuple[Path | None, str, Algorithm]] = [
        (rsa_key_path, "rsa", "rsa-sha256"),
        (ed25519_key_path, "ed25519", "ed25519-sha256"),
    ]
    for path, suffix, algorithm in wanted:
        if path is None:
            continue
        selector = f"{selector_base}-{suffix}"
        if not _DNS_NAME.fullmatch(selector):
            # RFC 6376 §3.1: a selector is a sequence of DNS labels.
            raise DkimKeyError(f"DKIM selector {selector!r} is not a valid DNS label sequence")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DkimKeyError(f"{path}: cannot read DKIM key: {exc.strerror or exc}") from None
        try:
            _dkimpy_private_key(algorithm, data)
        except DkimKeyError as exc:
            raise DkimKeyError(f"{path}: {exc}") from None
        keys.append(DkimKey(selector, domain, algorithm, data))
    return keys


# ---------------------------------------------------------------------------------------------
# Signing


def _headers_to_sign(present: Sequence[bytes], wanted: Sequence[bytes]) -> list[bytes]:
    counts: dict[bytes, int] = {}
    for name in present:
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    names = list(dict.fromkeys(n.lower() for n in wanted))
    names += [n for n in counts if n.startswith(_MSS_PREFIX) and n not in names]
    include: list[bytes] = []
    for name in names:
        n = counts.get(name, 0)
        if n == 0:
            continue
        oversign = name in _OVERSIGNED or name.startswith(_MSS_PREFIX)
        include += [name] * (n + 1 if oversign else n)
    return include


def sign(
    message: bytes, keys: Sequence[DkimKey], headers: Sequence[bytes] = DEFAULT_SIGNED_HEADERS
) -> bytes:
    """The DKIM-Signature field(s) to prepend to `message`, one per key, CRLF-terminated.

    relaxed/relaxed canonicalisation (RFC 6376 §3.4.2, §3.4.4), so that header refolding by
    relays does not break the signature. Signs the fields of `headers` present in the message
    and every X-MSS-* field present, over-signing the singletons (see `_OVERSIGNED`). With
    several keys each signature covers the message alone, never the other signatures
    (RFC 8463 §3, RFC 6376 §5.4). Raises DkimSigningError or DkimKeyError.
    """
    if not keys:
        return b""
    try:
        signer: Any = dkim.DKIM(message, linesep=b"\r\n")
    except dkim.DKIMException as exc:
        raise DkimSigningError(f"cannot DKIM-sign: unparsable header section: {exc}") from None
    include = _headers_to_sign([name for name, _ in signer.headers], headers)
    if b"from" not in include:
        # RFC 6376 §5.4: the From field must be signed, so the message must have one.
        raise DkimSigningError("cannot DKIM-sign a message without a From field (RFC 6376 §5.4)")
    out = bytearray()
    for key in keys:
        private = _dkimpy_private_key(key.algorithm, key.private_key)
        try:
            field = signer.sign(
                key.selector.encode("ascii"),
                key.domain.encode("ascii"),
                private,
                signature_algorithm=key.algorithm.encode("ascii"),
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=include,
            )
        except dkim.DKIMException as exc:
            raise DkimSigningError(
                f"DKIM signing with {key.selector}._domainkey.{key.domain} failed: {exc}"
            ) from None
        out += bytes(field)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Verification


def _text(value: object) -> str:
    """Readable text for a reason: bytes decoded, the b'...' of dkimpy messages removed."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, BaseException) and len(value.args) == 1:
        (arg,) = value.args
        if isinstance(arg, InvalidTagValueList):
            return f"tag=value list syntax error near {_text(arg).strip()!r}"
        if isinstance(arg, bytes | BaseException):
            return _text(arg)
    return re.sub(r"\bb'([^']*)'", r"'\1'", str(value))


def _peek(value: bytes) -> tuple[str | None, str | None, str | None]:
    """d=, s= and a= of a signature field, even a malformed one, for reporting."""
    found: dict[str, str] = {}
    for tag in (b"d", b"s", b"a"):
        m = re.search(rb"(?:^|;)\s*" + tag + rb"\s*=\s*([^;]*)", value)
        if m:
            found[tag.decode()] = re.sub(r"\s+", "", _text(m.group(1)))[:255] or ""
    return found.get("d") or None, found.get("s") or None, found.get("a") or None


def _colon_list(value: bytes) -> list[bytes]:
    return [v.strip().lower() for v in value.split(b":") if v.strip()]


def _check_key_record(
    record: dict[bytes, bytes], sig: dict[bytes, bytes]
) -> tuple[str | None, list[str]]:
    """RFC 6376 §3.6.1 / §6.1.2 checks dkimpy leaves out: (permerror reason, notes)."""
    notes: list[str] = []
    if b"v" in record and record[b"v"] != b"DKIM1":
        return "key record has a v= other than DKIM1 (RFC 6376 §3.6.1)", notes
    if not record.get(b"p", b"").strip():
        # RFC 6376 §6.1.2 step 6: an empty p= is a revoked key.
        return "key revoked (empty p=)", notes
    key_type = record.get(b"k", b"rsa").strip().lower()
    wanted = sig[b"a"].split(b"-", 1)[0].lower()
    if key_type != wanted:
        # RFC 6376 §6.1.2 step 8: inappropriate key algorithm.
        return f"key type k={_text(key_type)} does not match a={_text(sig[b'a'])}", notes
    if b"h" in record and b"sha256" not in _colon_list(record[b"h"]):
        # RFC 6376 §6.1.2 step 7: the key does not allow the signature's hash algorithm.
        return "key record h= does not allow sha256", notes
    if b"s" in record:
        services = _colon_list(record[b"s"])
        if b"*" not in services and b"email" not in services:
            # RFC 6376 §3.6.1 s=: the key is not for e-mail (e.g. RFC 8460 TLS reports).
            return f"key is not for e-mail (s={_text(record[b's'])})", notes
    flags = _colon_list(record.get(b"t", b""))
    if b"s" in flags:
        identity = sig.get(b"i", b"@" + sig[b"d"])
        if identity.rpartition(b"@")[2].lower() != sig[b"d"].lower():
            # RFC 6376 §3.6.1 t=s: the i= domain must be exactly d=.
            return "key has t=s and the i= domain is a subdomain of d=", notes
    if b"y" in flags:
        # RFC 6376 §3.6.1 t=y: treat as unsigned mail whatever the result.
        notes.append("the domain is testing DKIM (t=y)")
    return None, notes


def _verify_one(
    verifier: Any, idx: int, raw: bytes, dns_txt: Callable[[str], bytes | None]
) -> DkimResult:
    domain, selector, algorithm = _peek(raw)

    def result(res: Result, reason: str) -> DkimResult:
        return DkimResult(res, domain, selector, reason, algorithm)

    try:
        sig, include_headers, sigheaders = verifier.verify_headerprep(idx)
    except (dkim.DKIMException, KeyError, ValueError) as exc:
        # RFC 6376 §6.1.1: a signature field that cannot be parsed or misses a required tag.
        return result("permerror", f"malformed DKIM-Signature: {_text(exc)}")
    domain, selector, algorithm = _text(sig[b"d"]), _text(sig[b"s"]), _text(sig[b"a"])
    if sig[b"a"] == b"rsa-sha1":
        # RFC 8301 §3.1: rsa-sha1 signatures must not be considered valid.
        return result("permerror", "rsa-sha1 signatures are not accepted (RFC 8301 §3.1)")
    if b"from" not in include_headers:
        # RFC 6376 §6.1.1: a signature that does not cover From is ignored, PERMFAIL.
        return result("permerror", "the From field is not signed (RFC 6376 §6.1.1)")
    if not domain.isascii() or not _DNS_NAME.fullmatch(domain):
        return result("permerror", "d= is not an ASCII domain name (RFC 6376 §3.5)")
    if not selector.isascii() or not _DNS_NAME.fullmatch(selector):
        return result("permerror", "s= is not a valid selector (RFC 6376 §3.1)")

    # RFC 6376 §3.6.2.1: the key is the TXT record at <selector>._domainkey.<domain>.
    name = f"{selector}._domainkey.{domain}"
    try:
        txt = dns_txt(name)
    except Exception as exc:  # whatever the resolver raises is a temporary failure
        return result("temperror", f"key lookup for {name} failed: {exc or type(exc).__name__}")
    if txt is None:
        # RFC 6376 §6.1.2 step 3: no key record is PERMFAIL (no key for signature).
        return result("permerror", f"no key for signature: no DKIM key record at {name}")
    try:
        record = parse_tag_value(txt)
    except InvalidTagValueList as exc:
        return result("permerror", f"key record syntax error at {name}: {_text(exc)}")
    refusal, notes = _check_key_record(record, sig)
    if refusal is not None:
        return result("permerror", f"{refusal} at {name}")
    # dkimpy mishandles some s= lists (it drops the key); the tag was checked above.
    stripped = b"; ".join(k + b"=" + v for k, v in record.items() if k != b"s")
    try:
        pk, keysize, ktag, _tlsrpt = dkim.evaluate_pk(name, stripped)
    except (dkim.DKIMException, ValueError) as exc:
        return result("permerror", f"unusable key at {name}: {_text(exc)}")
    verifier.pk, verifier.keysize, verifier.ktag, verifier.seqtlsrpt = pk, keysize, ktag, False

    try:
        ok = verifier.verify_sig_process(sig, include_headers, sigheaders[idx], None)
    except dkim.ValidationError:
        # The only ValidationError left once the fields are valid: RFC 6376 §6.1.3 bh=.
        return result("fail", "body hash mismatch: the body changed after signing")
    except dkim.KeyFormatError as exc:
        return result("permerror", f"unusable key at {name}: {_text(exc)}")  # RFC 8301 §3.2
    except dkim.DKIMException as exc:
        return result("permerror", _text(exc))
    if not ok:
        return result("fail", "signature did not verify: signed header fields changed")
    if b"l" in sig:
        notes.append("l= covers only part of the body")
    return result("pass", "; ".join(["signature verified", *notes]))


_SIGNATURE_LINE = re.compile(rb"(?im)^dkim-signature[ \t]*:")


def signed(message: bytes) -> bool:
    """Whether the header section holds a DKIM-Signature field (a quick look, no parsing)."""
    head = re.split(rb"\r?\n\r?\n", message, maxsplit=1)[0]
    return _SIGNATURE_LINE.search(head) is not None


def verify(message: bytes, dns_txt: Callable[[str], bytes | None]) -> list[DkimResult]:
    """Verify every DKIM-Signature of `message`, in order; never raises.

    `dns_txt(name)` returns the TXT record at `name` (e.g. "mss-rsa._domainkey.example.fr",
    no trailing dot), its strings concatenated, or None when there is none (NXDOMAIN or no
    TXT record); any exception it raises is a temporary DNS failure (`temperror`). A message
    without signature gives `[DkimResult("none", ...)]`. Signatures beyond MAX_SIGNATURES
    are reported `neutral`, not evaluated. Missing keys are `permerror` (RFC 6376 §6.1.2),
    where plain dkimpy would answer "fail".
    """
    if not signed(message):
        # Most mail is unsigned: do not split a large message into lines to learn it.
        return [DkimResult("none", None, None, "message not signed")]
    try:
        verifier: Any = dkim.DKIM(message, minkey=MIN_RSA_BITS)
    except dkim.DKIMException as exc:
        reason = f"header section cannot be parsed: {_text(exc)}"
        return [DkimResult("permerror", None, None, reason)]
    signatures = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
    if not signatures:
        return [DkimResult("none", None, None, "message not signed")]
    results: list[DkimResult] = []
    for idx, raw in enumerate(signatures):
        if idx >= MAX_SIGNATURES:
            d, s, a = _peek(raw)
            reason = f"not evaluated: more than {MAX_SIGNATURES} signatures"
            results.append(DkimResult("neutral", d, s, reason, a))
            continue
        try:
            results.append(_verify_one(verifier, idx, raw, dns_txt))
        except Exception as exc:  # a dkimpy bug on hostile input must not escape
            d, s, a = _peek(raw)
            reason = f"verification error: {type(exc).__name__}: {exc}"
            results.append(DkimResult("permerror", d, s, reason, a))
    return results


# ---------------------------------------------------------------------------------------------
# Authentication-Results (RFC 8601)

_TSPECIALS = set('()<>@,;:\\"/[]?=')


def _ar_value(value: str) -> str:
    """A token if possible, else a quoted-string (RFC 8601 §2.2 value, RFC 2045 §5.1)."""
    printable = "".join(c if " " <= c <= "~" else "?" for c in value)
    if printable and all(c not in _TSPECIALS and c != " " for c in printable):
        return printable
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authentication_results_fragment(results: Sequence[DkimResult]) -> str:
    """The dkim resinfo clauses of an Authentication-Results field (RFC 8601 §2.7.1).

    e.g. `dkim=pass header.d=example.fr header.s=mss-rsa header.a=rsa-sha256`, clauses joined
    by "; "; a reason (RFC 8601 §2.2 reasonspec) is given for every result but pass and none.
    """
    clauses = []
    for r in results:
        clause = f"dkim={r.result}"
        if r.result not in ("pass", "none") and r.reason:
            clause += f" reason={_ar_value(r.reason[:200])}"
        if r.domain:
            clause += f" header.d={_ar_value(r.domain)}"
        if r.selector:
            clause += f" header.s={_ar_value(r.selector)}"
        if r.algorithm:
            clause += f" header.a={_ar_value(r.algorithm)}"
        clauses.append(clause)
    return "; ".join(clauses)

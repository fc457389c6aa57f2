"""smtp.dkim: DKIM signing and verification (RFC 6376), RSA and Ed25519 (RFC 8463)."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailserver.bootstrap import write_dkim_keys
from smtp.dkim import (
    MAX_SIGNATURES,
    DkimKey,
    DkimKeyError,
    DkimResult,
    DkimSigningError,
    authentication_results_fragment,
    load_signing_keys,
    sign,
    signed,
    verify,
)

DOMAIN = "demo.mssante.fr"
MESSAGE = (
    b"From: Camille Martin <camille.martin@demo.mssante.fr>\r\n"
    b"To: dr.b@hopital.mssante.fr\r\n"
    b"Subject: Compte rendu de consultation\r\n"
    b"Date: Thu, 02 May 2024 14:03:07 +0200\r\n"
    b"Message-ID: <m1@demo.mssante.fr>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"X-MSS-Sender-Kind: PER\r\n"
    b"Received: from somewhere\r\n"
    b"\r\n"
    b"Bonjour,\r\n"
    b"\r\n"
    b"Voici le compte rendu.\r\n"
)


@dataclass(frozen=True)
class Keys:
    signing: list[DkimKey]
    dns: dict[str, bytes]

    def lookup(self, name: str) -> bytes | None:
        return self.dns.get(name)


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def keys() -> Keys:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    spki = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = ed_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return Keys(
        signing=[
            DkimKey("mss-rsa", DOMAIN, "rsa-sha256", _pem(rsa_key)),
            DkimKey("mss-ed25519", DOMAIN, "ed25519-sha256", _pem(ed_key)),
        ],
        dns={
            f"mss-rsa._domainkey.{DOMAIN}": b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki),
            f"mss-ed25519._domainkey.{DOMAIN}": b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw),
        },
    )


def _signed(keys: Keys, message: bytes = MESSAGE) -> bytes:
    return sign(message, keys.signing) + message


def _results(results: list[DkimResult]) -> list[tuple[str, str | None, str | None]]:
    return [(r.result, r.domain, r.selector) for r in results]


BOTH_PASS = [("pass", DOMAIN, "mss-rsa"), ("pass", DOMAIN, "mss-ed25519")]


# -- signing and passing ----------------------------------------------------------------------


def test_dual_signature_verifies(keys: Keys) -> None:
    fields = sign(MESSAGE, keys.signing)
    assert fields.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert fields.count(b"DKIM-Signature:") == 2
    assert b"a=ed25519-sha256" in fields
    assert fields.endswith(b"\r\n") and b"\n" not in fields.replace(b"\r\n", b"")
    results = verify(fields + MESSAGE, keys.lookup)
    assert _results(results) == BOTH_PASS
    assert [r.algorithm for r in results] == ["rsa-sha256", "ed25519-sha256"]
    assert all(r.reason == "signature verified" for r in results)


def test_signed_header_list(keys: Keys) -> None:
    fields = sign(MESSAGE, keys.signing[:1])
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", fields)
    match = re.search(rb"h=([^;]*);", unfolded)
    assert match is not None
    names = [n.strip() for n in match.group(1).split(b":")]
    # present fields only, singletons and X-MSS-* over-signed (RFC 6376 §8.15), no Received
    assert names == [
        b"from",
        b"from",
        b"to",
        b"to",
        b"subject",
        b"subject",
        b"date",
        b"date",
        b"message-id",
        b"message-id",
        b"mime-version",
        b"mime-version",
        b"content-type",
        b"content-type",
        b"x-mss-sender-kind",
        b"x-mss-sender-kind",
    ]


def test_added_header_instance_breaks_the_signature(keys: Keys) -> None:
    signed = _signed(keys)
    tampered = signed.replace(b"\r\n\r\nBonjour", b"\r\nX-MSS-Sender-Kind: APP\r\n\r\nBonjour")
    assert [r.result for r in verify(tampered, keys.lookup)] == ["fail", "fail"]


def test_lf_message_signed_then_sent_with_crlf(keys: Keys) -> None:
    lf = MESSAGE.replace(b"\r\n", b"\n")
    signed = sign(lf, keys.signing) + MESSAGE
    assert _results(verify(signed, keys.lookup)) == BOTH_PASS


def test_relaxed_canonicalisation_tolerates_whitespace(keys: Keys) -> None:
    signed = _signed(keys)
    changed = (
        signed.replace(
            b"Subject: Compte rendu de consultation",
            b"SUBJECT:  Compte   rendu\r\n de consultation  ",
        )
        .replace(b"To: dr.b@", b"To:\tdr.b@")
        .replace(b"Voici le compte rendu.\r\n", b"Voici  le compte rendu. \r\n\r\n\r\n")
    )
    assert changed != signed
    assert _results(verify(changed, keys.lookup)) == BOTH_PASS


def test_verification_of_a_large_body_in_threads(keys: Keys) -> None:
    big = MESSAGE + b"Ligne de compte rendu, assez longue pour remplir.\r\n" * 40_000  # ~2 MB
    signed = _signed(keys, big)
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda _: verify(signed, keys.lookup), range(4)))
    assert all(_results(r) == BOTH_PASS for r in runs)


# -- failures ---------------------------------------------------------------------------------


def test_modified_body_fails(keys: Keys) -> None:
    tampered = _signed(keys).replace(b"Voici le compte rendu.", b"Voici le compte rendu!")
    results = verify(tampered, keys.lookup)
    assert _results(results) == [("fail", DOMAIN, "mss-rsa"), ("fail", DOMAIN, "mss-ed25519")]
    assert all(r.reason.startswith("body hash mismatch") for r in results)


def test_modified_subject_fails(keys: Keys) -> None:
    tampered = _signed(keys).replace(b"Subject: Compte rendu", b"Subject: Compte-rendu")
    results = verify(tampered, keys.lookup)
    assert [r.result for r in results] == ["fail", "fail"]
    assert all(r.reason.startswith("signature did not verify") for r in results)


def test_unknown_selector_is_permerror(keys: Keys) -> None:
    signed = _signed(keys).replace(b"s=mss-rsa;", b"s=ancien;")
    results = verify(signed, keys.lookup)
    assert _results(results)[0] == ("permerror", DOMAIN, "ancien")
    # RFC 6376 §6.1.2: no key record is PERMFAIL "no key for signature"
    assert results[0].reason == (
        f"no key for signature: no DKIM key record at ancien._domainkey.{DOMAIN}"
    )
    assert results[1].result == "pass"


def test_dns_failure_is_temperror(keys: Keys) -> None:
    def broken(name: str) -> bytes | None:
        raise TimeoutError(f"resolver timed out for {name}")

    results = verify(_signed(keys), broken)
    assert [r.result for r in results] == ["temperror", "temperror"]
    assert "timed out" in results[0].reason


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda s: s.replace(b"a=rsa-sha256;", b"a=rsa-sha256; ; garbage ;", 1), "malformed"),
        (lambda s: re.sub(rb"bh=[^;]*;", b"", s, count=1), "missing"),
        (lambda s: s.replace(b"v=1;", b"v=2;", 1), "v= value is not 1"),
        (lambda s: s.replace(b"a=rsa-sha256;", b"a=rsa-md5;", 1), "unknown signature algorithm"),
        (lambda s: s.replace(b"a=rsa-sha256;", b"a=rsa-sha1;", 1), "RFC 8301"),
        (lambda s: re.sub(rb"h=from[^;]*;", b"h=to;", s, count=1), "From field is not signed"),
    ],
)
def test_malformed_signature_is_permerror(
    keys: Keys, mangle: Callable[[bytes], bytes], reason: str
) -> None:
    signed = re.sub(rb"\r\n[ \t]+", b" ", _signed(keys))  # unfold to edit tags simply
    results = verify(mangle(signed), keys.lookup)
    assert results[0].result == "permerror"
    assert reason in results[0].reason
    assert results[1].result == "pass"


def test_garbage_signature_field_is_permerror(keys: Keys) -> None:
    results = verify(b"DKIM-Signature: this is not a tag list\r\n" + MESSAGE, keys.lookup)
    assert _results(results) == [("permerror", None, None)]
    assert results[0].reason.startswith("malformed DKIM-Signature")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (b"v=DKIM1; k=rsa; p=", "key revoked"),
        (b"v=DKIM1; k=ed25519; p=AAAA", "does not match"),
        (b"v=DKIM1; k=rsa; s=tlsrpt; p=AAAA", "not for e-mail"),
        (b"v=DKIM1; k=rsa; h=sha1; p=AAAA", "h= does not allow sha256"),
        (b"v=DKIM1; k=rsa; p=bm90IGEga2V5", "unusable key"),
        (b"this is not a key record", "key record syntax error"),
    ],
)
def test_bad_key_records_are_permerror(keys: Keys, record: bytes, reason: str) -> None:
    dns = dict(keys.dns, **{f"mss-rsa._domainkey.{DOMAIN}": record})
    results = verify(_signed(keys), dns.get)
    assert results[0].result == "permerror"
    assert reason in results[0].reason


def test_testing_mode_is_noted(keys: Keys) -> None:
    name = f"mss-ed25519._domainkey.{DOMAIN}"
    dns = dict(keys.dns, **{name: keys.dns[name].replace(b"v=DKIM1;", b"v=DKIM1; t=y;")})
    results = verify(_signed(keys), dns.get)
    assert results[1].result == "pass" and "testing" in results[1].reason


def test_unsigned_and_unparsable_messages(keys: Keys) -> None:
    assert _results(verify(MESSAGE, keys.lookup)) == [("none", None, None)]
    assert verify(b"not a header line\r\n\r\nbody", keys.lookup)[0].result == "none"
    broken = b"DKIM-Signature: v=1\r\nnot a header line\r\n\r\nbody"
    assert verify(broken, keys.lookup)[0].result == "permerror"
    # The quick look that spares unsigned mail a thread: only the header section counts.
    assert not signed(MESSAGE) and signed(sign(MESSAGE, keys.signing) + MESSAGE)
    assert not signed(b"From: a@b.fr\r\n\r\nDKIM-Signature: v=1; in the body\r\n")


def test_too_many_signatures_are_not_all_evaluated(keys: Keys) -> None:
    fields = sign(MESSAGE, keys.signing[1:])
    results = verify(fields * (MAX_SIGNATURES + 2) + MESSAGE, keys.lookup)
    assert [r.result for r in results] == ["pass"] * MAX_SIGNATURES + ["neutral"] * 2


def test_signing_needs_a_from_field(keys: Keys) -> None:
    with pytest.raises(DkimSigningError, match="without a From field"):
        sign(b"To: a@b.fr\r\n\r\nbody\r\n", keys.signing)
    with pytest.raises(DkimSigningError, match="unparsable"):
        sign(b"From: a@b.fr\r\nnot a header\r\n\r\nbody\r\n", keys.signing)
    assert sign(MESSAGE, []) == b""


# -- keys written by `mailserver init` --------------------------------------------------------


def _zone_records(text: str) -> dict[str, bytes]:
    """TXT records of a zone-file fragment; several quoted strings are concatenated."""
    records = {}
    for line in text.splitlines():
        match = re.match(r"(\S+?)\.?\s+IN\s+TXT\s+(.*)$", line)
        if match:
            records[match.group(1)] = "".join(re.findall(r'"([^"]*)"', match.group(2))).encode()
    return records


def test_keys_and_records_from_bootstrap(tmp_path: Path) -> None:
    rsa_path, ed_path = write_dkim_keys(tmp_path, "mss", DOMAIN)
    loaded = load_signing_keys(DOMAIN, "mss", rsa_path, ed_path)
    assert [(k.selector, k.algorithm) for k in loaded] == [
        ("mss-rsa", "rsa-sha256"),
        ("mss-ed25519", "ed25519-sha256"),
    ]
    assert loaded[0].private_key == rsa_path.read_bytes()
    dns = _zone_records((tmp_path / "mss.dns.txt").read_text())
    assert set(dns) == {f"mss-rsa._domainkey.{DOMAIN}", f"mss-ed25519._domainkey.{DOMAIN}"}
    results = verify(sign(MESSAGE, loaded) + MESSAGE, dns.get)
    assert _results(results) == BOTH_PASS
    assert load_signing_keys(DOMAIN, "mss", None, ed_path)[0].selector == "mss-ed25519"


def test_load_signing_keys_errors(tmp_path: Path) -> None:
    rsa_path, ed_path = write_dkim_keys(tmp_path, "mss", DOMAIN)
    with pytest.raises(DkimKeyError, match=r"mss-ed25519\.key: the key is for ed25519-sha256"):
        load_signing_keys(DOMAIN, "mss", ed_path, None)
    with pytest.raises(DkimKeyError, match=r"absent\.key: cannot read DKIM key"):
        load_signing_keys(DOMAIN, "mss", tmp_path / "absent.key", None)
    (tmp_path / "junk.key").write_bytes(b"not a key")
    with pytest.raises(DkimKeyError, match=r"junk\.key: not a readable"):
        load_signing_keys(DOMAIN, "mss", None, tmp_path / "junk.key")
    with pytest.raises(DkimKeyError, match="A-labels"):
        load_signing_keys("hôpital.fr", "mss", rsa_path, None)


# -- Authentication-Results -------------------------------------------------------------------


def test_authentication_results_fragment(keys: Keys) -> None:
    results = verify(_signed(keys), keys.lookup)
    assert authentication_results_fragment(results) == (
        f"dkim=pass header.d={DOMAIN} header.s=mss-rsa header.a=rsa-sha256; "
        f"dkim=pass header.d={DOMAIN} header.s=mss-ed25519 header.a=ed25519-sha256"
    )
    assert authentication_results_fragment([DkimResult("none", None, None, "unsigned")]) == (
        "dkim=none"
    )
    fail = DkimResult("fail", "example.fr", "s1", 'body "hash" mismatch', "rsa-sha256")
    assert authentication_results_fragment([fail]) == (
        'dkim=fail reason="body \\"hash\\" mismatch" header.d=example.fr header.s=s1 '
        "header.a=rsa-sha256"
    )

"""SASL message decoding shared by the SMTP and IMAP doors (directory.sasl)."""

from __future__ import annotations

import base64
import json

import pytest

from directory.errors import DirectoryError
from directory.sasl import (
    SaslError,
    decode_base64_response,
    oauthbearer_failure,
    parse_external,
    parse_oauthbearer,
    parse_plain,
    parse_xoauth2,
    xoauth2_failure,
)

# RFC 7628 §4.1, the IMAP example: initial client response, and the token it carries.
RFC7628_RESPONSE = (
    "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyI"
    "HZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
)
RFC7628_TOKEN = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
# RFC 7628 §4.3, the server's error challenge for an invalid token.
RFC7628_ERROR = (
    "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3Vy"
    "YXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0="
)
# Google's XOAUTH2 documentation example (user someuser@example.com).
GOOGLE_XOAUTH2 = (
    "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhk"
    "SFJoZG1semRHRXVZMjl0Q2cBAQ=="
)


def test_sasl_error_is_a_directory_error() -> None:
    assert issubclass(SaslError, DirectoryError)


# --------------------------------------------------------------------------------------------
# base64 responses (RFC 4954 §4)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("=", b""),  # RFC 4954 §4: an empty initial response
        ("", b""),  # an empty response to a challenge
        ("AGJvYgBzZWNyZXQ=", b"\x00bob\x00secret"),
        ("AGJvYgBzZWNyZXQ=\r\n", b"\x00bob\x00secret"),
        ("YQ==", b"a"),
        ("YWI=", b"ab"),
        ("YWJj", b"abc"),
    ],
)
def test_decode_base64_response(text: str, data: bytes) -> None:
    assert decode_base64_response(text) == data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not base64!", r"^response 'not base64!' is not base64$"),
        ("YQ", r"is not base64$"),  # padding missing
        ("YQ=", r"is not base64$"),
        ("Y Q==", r"is not base64$"),
        ("YQ==YQ==", r"is not base64$"),
        ("YWJj\x00", r"is not base64$"),
        ("é===", r"is not base64$"),
        ("==", r"is not base64$"),
        ("YR==", r"is not canonical base64$"),  # RFC 4648 §3.5: non-zero pad bits
        ("YWJ-", r"is not base64$"),  # base64url alphabet
    ],
)
def test_decode_base64_response_refusals(text: str, message: str) -> None:
    with pytest.raises(SaslError, match=message):
        decode_base64_response(text)


# --------------------------------------------------------------------------------------------
# PLAIN (RFC 4616)
# --------------------------------------------------------------------------------------------


def test_parse_plain() -> None:
    # RFC 4616 §4 examples: "\0tim\0tanstaaftanstaaf" and "Ursel\0Kurt\0xipj3plmq".
    assert parse_plain(b"\x00tim\x00tanstaaftanstaaf") == ("", "tim", "tanstaaftanstaaf")
    assert parse_plain(b"Ursel\x00Kurt\x00xipj3plmq") == ("Ursel", "Kurt", "xipj3plmq")
    assert parse_plain("\x00anaïs@demo.mssante.fr\x00pässwörd €".encode()) == (
        "",
        "anaïs@demo.mssante.fr",
        "pässwörd €",
    )
    assert parse_plain(decode_base64_response("AGJvYgBzZWNyZXQ=")) == ("", "bob", "secret")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"bob\x00secret", r"^PLAIN response must be authzid NUL authcid NUL password .*found 1"),
        (b"\x00bob\x00sec\x00ret", r"found 3 NUL separators, expected 2"),
        (b"", r"found 0 NUL separators"),
        (b"\x00\x00secret", r"^PLAIN response has an empty authentication identity$"),
        (b"\x00bob\x00", r"^PLAIN response has an empty password$"),
        (b"\x00bob\x00\xff\xfe", r"^PLAIN response is not UTF-8 \(byte 5\)$"),
    ],
)
def test_parse_plain_refusals(data: bytes, message: str) -> None:
    with pytest.raises(SaslError, match=message):
        parse_plain(data)


# --------------------------------------------------------------------------------------------
# XOAUTH2 (Google's format)
# --------------------------------------------------------------------------------------------


def test_parse_xoauth2() -> None:
    assert parse_xoauth2(decode_base64_response(GOOGLE_XOAUTH2)) == (
        "someuser@example.com",
        "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
    )
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    data = f"user=ana@demo.mssante.fr\x01auth=Bearer {jwt_like}\x01\x01".encode()
    assert parse_xoauth2(data) == ("ana@demo.mssante.fr", jwt_like)
    # The auth-scheme is case-insensitive (RFC 7235 §2.1).
    assert parse_xoauth2(b"user=a@b\x01auth=bearer t0k3n\x01\x01") == ("a@b", "t0k3n")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"user=a@b\x01auth=Bearer tok", r"does not end with two \^A"),
        (b"user=a@b\x01auth=Bearer tok\x01", r"does not end with two \^A"),
        (b"user=a@b\x01\x01", r"^XOAUTH2 response lacks auth=Bearer$"),
        (b"user=a@b\x01auth=Basic dXNlcjpwdw==\x01\x01", r"^XOAUTH2 response lacks auth=Bearer$"),
        (b"user=a@b\x01auth=Bearer \x01\x01", r"^XOAUTH2 response has an empty bearer token$"),
        (b"user=a@b\x01auth=Bearer a b\x01\x01", r"outside RFC 6750 b64token$"),
        (b"user=a@b\x01auth=Bearer t\xc3\xa9\x01\x01", r"outside RFC 6750 b64token$"),
        (b"auth=Bearer tok\x01\x01", r"^XOAUTH2 response lacks user=$"),
        (b"user=\x01auth=Bearer tok\x01\x01", r"^XOAUTH2 response has an empty user=$"),
        (b"user=a@b\x01garbage\x01auth=Bearer t\x01\x01", r"^XOAUTH2 field 'garbage' is not"),
        (b"user=a\x01user=b\x01auth=Bearer t\x01\x01", r"^XOAUTH2 response repeats user=$"),
        (b"user=\xff\x01auth=Bearer t\x01\x01", r"^XOAUTH2 response is not UTF-8"),
    ],
)
def test_parse_xoauth2_refusals(data: bytes, message: str) -> None:
    with pytest.raises(SaslError, match=message):
        parse_xoauth2(data)


def test_xoauth2_failure() -> None:
    challenge = xoauth2_failure(scope="https://mail.google.com/")
    assert json.loads(base64.b64decode(challenge)) == {
        "status": "401",
        "schemes": "bearer",
        "scope": "https://mail.google.com/",
    }
    assert base64.b64decode(xoauth2_failure()) == b'{"status":"401","schemes":"bearer"}'


# --------------------------------------------------------------------------------------------
# OAUTHBEARER (RFC 7628)
# --------------------------------------------------------------------------------------------


def test_parse_oauthbearer_rfc7628_example() -> None:
    data = decode_base64_response(RFC7628_RESPONSE)
    assert data == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )
    assert parse_oauthbearer(data) == ("user@example.com", RFC7628_TOKEN)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"n,,\x01auth=Bearer t\x01\x01", (None, "t")),
        (b"y,,\x01auth=Bearer t\x01\x01", (None, "t")),
        (b"n,,\x01auth=Bearer t\x01host=h.example\x01port=587\x01\x01", (None, "t")),
        (b"n,,\x01auth=Bearer t\x01future=value with spaces\x01\x01", (None, "t")),
        (b"n,a=odd=2Cname=3D@x,\x01auth=Bearer t\x01\x01", ("odd,name=@x", "t")),
        ("n,a=anaïs@x,\x01auth=Bearer t\x01\x01".encode(), ("anaïs@x", "t")),
    ],
)
def test_parse_oauthbearer(data: bytes, expected: tuple[str | None, str]) -> None:
    assert parse_oauthbearer(data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01", r"acknowledgement of a failure"),  # RFC 7628 §3.2.3
        (b"n,,\x01auth=Bearer t\x01", r"does not end with two \^A"),
        (b"n,,auth=Bearer t\x01\x01", r"GS2 header .* is not 'n,\[a=authzid\],'"),
        (b"n\x01auth=Bearer t\x01\x01", r"GS2 header 'n' is not"),
        (b"n,a=u@x\x01auth=Bearer t\x01\x01", r"GS2 header 'n,a=u@x' is not"),
        (b"n,a=u@x,extra,\x01auth=Bearer t\x01\x01", r"GS2 header .* is not"),
        (b"p=tls-unique,,\x01auth=Bearer t\x01\x01", r"does not support channel binding"),
        (b"F,n,,\x01auth=Bearer t\x01\x01", r"GS2 header .* is not"),
        (b"x,,\x01auth=Bearer t\x01\x01", r"unknown flag 'x'"),
        (b"n,u@x,\x01auth=Bearer t\x01\x01", r"has no a= before the authzid"),
        (b"n,a=,\x01auth=Bearer t\x01\x01", r"has an empty authzid"),
        (b"n,a=u=2Xx,\x01auth=Bearer t\x01\x01", r"bad escape '=2X'"),
        (b"n,a=u=,\x01auth=Bearer t\x01\x01", r"bad escape '='"),
        (b"n,,\x01\x01", r"^OAUTHBEARER response lacks auth=Bearer$"),
        (b"n,,\x01host=h\x01\x01", r"^OAUTHBEARER response lacks auth=Bearer$"),
        (b"n,,\x01auth=Basic dTpw\x01\x01", r"^OAUTHBEARER response lacks auth=Bearer$"),
        (b"n,,\x01auth=Bearer\x01\x01", r"^OAUTHBEARER response has an empty bearer token$"),
        (b"n,,\x01auth=Bearer \x01\x01", r"empty bearer token"),
        (b"n,,\x01auth=Bearer t\x01auth=Bearer u\x01\x01", r"repeats auth="),
        (b"n,,\x01ho st=h\x01auth=Bearer t\x01\x01", r"field 'ho st=h' is not key=value"),
        (b"n,,\x01port2=1\x01auth=Bearer t\x01\x01", r"field 'port2=1' is not key=value"),
        (b"n,,\x01junk\x01auth=Bearer t\x01\x01", r"field 'junk' is not key=value"),
        (b"n,,\x01host=a\x00b\x01auth=Bearer t\x01\x01", r"host= value has control characters"),
        (b"n,,\x01auth=Bearer t\x01\x01\x01", r"field '' is not key=value"),
        (b"n,a=\xff,\x01auth=Bearer t\x01\x01", r"^OAUTHBEARER response is not UTF-8"),
    ],
)
def test_parse_oauthbearer_refusals(data: bytes, message: str) -> None:
    with pytest.raises(SaslError, match=message):
        parse_oauthbearer(data)


def test_oauthbearer_failure_matches_rfc7628() -> None:
    challenge = oauthbearer_failure(
        "invalid_token",
        scope="example_scope",
        openid_configuration="https://example.com/.well-known/openid-configuration",
    )
    assert challenge == RFC7628_ERROR
    assert base64.b64decode(oauthbearer_failure()) == b'{"status":"invalid_token"}'
    assert json.loads(base64.b64decode(oauthbearer_failure("insufficient_scope", "mail"))) == {
        "status": "insufficient_scope",
        "scope": "mail",
    }
    with pytest.raises(ValueError, match="not RFC 6749 error syntax"):
        oauthbearer_failure('bad"status')
    with pytest.raises(ValueError, match="not RFC 6749 error syntax"):
        oauthbearer_failure("")


# --------------------------------------------------------------------------------------------
# EXTERNAL (RFC 4422 Appendix A)
# --------------------------------------------------------------------------------------------


def test_parse_external() -> None:
    assert parse_external(b"") is None
    assert parse_external(decode_base64_response("=")) is None
    assert parse_external(b"labo@demo.mssante.fr") == "labo@demo.mssante.fr"
    assert parse_external("anaïs@x".encode()) == "anaïs@x"
    with pytest.raises(SaslError, match=r"^EXTERNAL authorization identity contains NUL$"):
        parse_external(b"a\x00b")
    with pytest.raises(SaslError, match=r"^EXTERNAL response is not UTF-8 \(byte 1\)$"):
        parse_external(b"a\xff")

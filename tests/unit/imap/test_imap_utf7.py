"""imap.utf7: modified UTF-7 mailbox names (RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imap.utf7 import decode_mailbox, encode_mailbox

# RFC 3501 §5.1.3's example and names real clients create.
EXAMPLES = [
    ("INBOX", "INBOX"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("Envoyés", "Envoy&AOk-s"),
    ("Éléments supprimés", "&AMk-l&AOk-ments supprim&AOk-s"),
    ("Boîte d'envoi", "Bo&AO4-te d'envoi"),
    ("Tom & Jerry", "Tom &- Jerry"),
    ("&", "&-"),
    ("a&&b", "a&-&-b"),
    ("Résultats/2024 ✓", "R&AOk-sultats/2024 &JxM-"),
    ("😀", "&2D3eAA-"),
    ("tab\there", "tab&AAk-here"),
    ("", ""),
]


@pytest.mark.parametrize(("name", "wire"), EXAMPLES)
def test_examples(name: str, wire: str) -> None:
    assert encode_mailbox(name) == wire
    assert decode_mailbox(wire) == name


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ("&Jjo", "unterminated '&'"),
        ("Envoy&AOk", "unterminated '&'"),
        ("&AGE-", "printable ASCII 'a' is base64-encoded"),  # "a" must stand for itself
        ("&ACY-", "printable ASCII '&'"),  # "&" must be "&-"
        ("&U,BTFw-&ZeVnLIqe-", "null shift"),
        ("&2D0-", "unpaired UTF-16 high surrogate"),
        ("&3gA-", "unpaired UTF-16 low surrogate"),
        ("&2D3YPQ-", "unpaired UTF-16 high surrogate"),
        ("&Jjo!-", "invalid modified base64 character '!'"),
        ("&Jj/-", "invalid modified base64 character '/'"),
        ("&Jjo=-", "invalid modified base64 character '='"),
        ("&,,,-", "non-zero padding bits"),
        ("&AOkA-", "impossible length"),
        ("&A-", "impossible length"),
        ("Envoyés", "invalid character 'é'"),
        ("a\x01b", "invalid character"),
        ("a\x7fb", "invalid character"),
    ],
)
def test_invalid_wire_names(wire: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        decode_mailbox(wire)


def test_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        encode_mailbox("x\ud800y")


def test_adjacent_runs_after_literal_ampersand_are_fine() -> None:
    # "-&-" is the end of a run followed by a literal "&": not a null shift.
    assert decode_mailbox("&AOk-&-&AOk-") == "é&é"


@given(st.text(st.characters(exclude_categories=["Cs"])))
def test_round_trip(name: str) -> None:
    wire = encode_mailbox(name)
    assert wire.isascii() and wire.isprintable()
    assert decode_mailbox(wire) == name


@given(st.text(alphabet="&-AOkZeVnLIqe,+/=abc!é"))
def test_decoder_only_raises_value_error(wire: str) -> None:
    try:
        name = decode_mailbox(wire)
    except ValueError:
        return
    # Whatever decodes is canonical: encoding it back gives the same wire form.
    assert encode_mailbox(name) == wire

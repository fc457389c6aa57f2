"""Response formatting: strings, ENVELOPE and BODYSTRUCTURE from the delivery-time cache, and
BODY[section] slices, checked against Python's email parser."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

from imap.fetch import Partial, Section
from imap.responses import astring, body_structure, envelope, string
from imap.sections import apply_partial, filter_header, section_content
from storage.mime import body_without_extensions, parse_metadata


def sample() -> bytes:
    m = EmailMessage()
    m["From"] = '"Dr Martin" <camille.martin@demo.mssante.fr>'
    m["To"] = "a@x.fr, b@y.fr"
    m["Subject"] = "Compte rendu"
    m.set_content("Bonjour\n")
    m.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="cr.pdf")
    inner = EmailMessage()
    inner["Subject"] = "Inner"
    inner.set_content("dedans\n")
    m.add_attachment(inner)
    return m.as_bytes(policy=default.clone(linesep="\r\n"))


def test_strings() -> None:
    assert string("abc") == b'"abc"'
    assert string('a"b\\c') == b'"a\\"b\\\\c"'
    assert string("é") == b"{2}\r\n\xc3\xa9"
    assert string("a\r\nb") == b"{4}\r\na\r\nb"
    assert astring("INBOX") == b"INBOX" and astring("NIL") == b'"NIL"' and astring("") == b'""'


def test_envelope_and_bodystructure_are_well_formed() -> None:
    meta = parse_metadata(sample())
    env = envelope(meta.envelope)
    assert env.startswith(b'(NIL "Compte rendu" (("Dr Martin" NIL "camille.martin" "demo.'), env
    assert b'(("Dr Martin"' in env and b')(NIL NIL "b" "y.fr"))' in env  # no space in lists
    structure = body_structure(meta.body_structure)
    # Multipart bodies side by side, then the subtype.
    assert structure.startswith(b'(("TEXT" "PLAIN" ("CHARSET" "utf-8")'), structure
    assert b')("APPLICATION" "PDF" ' in structure and b' "MIXED" ' in structure
    assert b'("MESSAGE" "RFC822" NIL NIL NIL "8BIT" 121 (NIL "Inner" ' in structure
    assert structure.count(b"(") == structure.count(b")")
    plain = body_structure(body_without_extensions(meta.body_structure))
    assert b"BOUNDARY" not in plain and plain.endswith(b' "MIXED")')


def test_sections_match_the_email_parser() -> None:
    data = sample()
    meta = parse_metadata(data)
    parsed = message_from_bytes(data, policy=default)
    parts = list(parsed.iter_parts())
    whole = section_content(data, meta.parts, Section())
    assert whole == data
    header = section_content(data, meta.parts, Section((), "HEADER"))
    assert header is not None and header.endswith(b"\r\n\r\n") and b"Subject: Compte" in header
    first = section_content(data, meta.parts, Section((1,)))
    assert first is not None and first.decode() == parts[0].get_payload()
    mime = section_content(data, meta.parts, Section((2,), "MIME"))
    assert mime is not None and b"application/pdf" in mime
    inner = section_content(data, meta.parts, Section((3,), "HEADER.FIELDS", ("subject",)))
    assert inner == b"Subject: Inner\r\n\r\n"
    assert section_content(data, meta.parts, Section((9,))) is None
    assert section_content(data, meta.parts, Section((1,), "TEXT")) is None
    assert apply_partial(b"0123456789", Partial(2, 3)) == b"234"
    assert apply_partial(b"0123", Partial(10, 3)) == b""


def test_header_fields_not_keeps_folded_lines() -> None:
    block = b"Subject: a\r\n b\r\nFrom: x\r\nTo: y\r\n\r\n"
    assert filter_header(block, ("From",), exclude=True) == b"Subject: a\r\n b\r\nTo: y\r\n\r\n"
    assert filter_header(block, ("SUBJECT",), exclude=False) == b"Subject: a\r\n b\r\n\r\n"

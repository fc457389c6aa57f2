"""Reader for the MSSanté liste blanche XML file (docs/mssante.md §1, "The liste blanche file").

Pure: reads one file, touches no database and no network. The file is parsed as a stream with
defusedxml (DTDs, entity declarations and external references are refused: billion laughs,
XXE) and a SAX-like target, so memory stays proportional to the number of entries kept, not to
the XML tree, and a file of the wrong kind is refused at its first element.

Accepted quirks of the published file (docs/mssante.md §1): the closing root tag
``</ListeBlancheMSSante>`` is missing (accepted only once ``</ListeDomaines>`` has been read),
a domain appears once per operator certificate, domain names are in mixed case, some entries
have no ``DNCertificatOperateur``.

Our choice: an entry whose ``<Nom>`` is not a valid domain name is kept as published (so the
counts match the authority's: 6,554 entries, 5,002 domains in the March 2025 copy, which has
``sessad@ase.ditepbeziers.mssante.fr`` at line 48458) and reported in
``ListeBlancheFile.invalid_names``; such a name can never match a mail domain. An empty
``<Nom>`` is skipped and reported too. More than ``max_invalid_names`` such entries refuse the
whole file, and so does a file with no valid domain name at all.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from xml.parsers.expat import errors as expat_errors

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser, ParseError

__all__ = [
    "NAMESPACE",
    "InvalidName",
    "ListeBlancheEntry",
    "ListeBlancheError",
    "ListeBlancheFile",
    "is_valid_domain",
    "parse_listeblanche",
]

NAMESPACE: Final = "https://listeblanche.mssante.fr/schema"
_NS: Final = "{" + NAMESPACE + "}"
_ROOT: Final = _NS + "ListeBlancheMSSante"
_GENERATED: Final = _NS + "DateDeGeneration"
_LIST: Final = _NS + "ListeDomaines"
_DOMAIN: Final = _NS + "Domaine"
_NAME: Final = _NS + "Nom"
_DESCRIPTION: Final = _NS + "Description"
_DN: Final = _NS + "DNCertificatOperateur"
_UPDATED: Final = _NS + "DateMAJ"
_ENTRY_FIELDS: Final = frozenset({_NAME, _DESCRIPTION, _DN, _UPDATED})

_CHUNK_SIZE: Final = 64 * 1024
# Longest text kept for one element: far above any real value (a DN is < 300 characters),
# bounds memory on a hostile file.
MAX_TEXT_LENGTH: Final = 64 * 1024

# RFC 1035 §2.3.1 preferred name syntax as relaxed by RFC 1123 §2.1 (a label may start with a
# digit): letters, digits and inner hyphens, 1-63 characters per label.
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
# expat errors raised only when the input stops early (a cut file, not a malformed one).
_EOF_ERRORS: Final = frozenset(
    expat_errors.codes[m]
    for m in (
        expat_errors.XML_ERROR_NO_ELEMENTS,
        expat_errors.XML_ERROR_UNCLOSED_TOKEN,
        expat_errors.XML_ERROR_PARTIAL_CHAR,
    )
)


class ListeBlancheError(ValueError):
    """The file is not an acceptable liste blanche; the one-line message names the file."""


@dataclass(frozen=True, slots=True)
class ListeBlancheEntry:
    """One ``<Domaine>``: a (domain, operator certificate DN) pair."""

    domain: str  # lower-cased and stripped (domains compare case-insensitively, RFC 4343)
    dn: str | None  # DNCertificatOperateur as written in the file (stripped), None if absent
    description: str | None
    updated_at: datetime | None  # DateMAJ; None when absent or unparseable
    line: int  # line of the <Domaine> start tag


@dataclass(frozen=True, slots=True)
class InvalidName:
    """A ``<Domaine>`` whose ``<Nom>`` is not a valid domain name (kept unless empty)."""

    line: int
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class ListeBlancheFile:
    """The parsed content of one liste blanche file."""

    path: Path
    generated_at: datetime | None  # DateDeGeneration (UTC)
    sha256: str  # of the bytes read, lower-case hex
    entries: list[ListeBlancheEntry]
    domains: frozenset[str]
    invalid_names: list[InvalidName]
    root_closed: bool  # False for the published files, which lack </ListeBlancheMSSante>


def is_valid_domain(name: str) -> bool:
    """True for an ASCII host name (RFC 1035 §2.3.1, RFC 1123 §2.1) with at least 2 labels.

    ``name`` must already be lower-cased. Internationalised names must be in A-label form
    (``xn--...``, RFC 5890), which this syntax accepts.
    """
    if not 3 <= len(name) <= 253:  # RFC 1035 §2.3.4: 255 octets on the wire = 253 as text
        return False
    labels = name.split(".")
    return len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels)


def _domain_problem(name: str) -> str | None:
    if not name:
        return "empty <Nom>"
    if not is_valid_domain(name):
        return f"{name!r} is not a valid domain name"
    return None


def _parse_datetime(text: str) -> datetime | None:
    """ISO 8601 date-time as in the file (``2025-03-13T14:54:10Z``); naive means UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _describe_tag(tag: str) -> str:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return f"<{local}> in namespace {namespace}"
    return f"<{tag}> without namespace"


class _Refused(Exception):
    """Raised from the parser callbacks; carries the message (without the file name)."""


class _Collector:
    """Parser target: follows the element path and collects entries without building a tree."""

    def __init__(self, max_invalid_names: int) -> None:
        self.expat: Any = None  # the pyexpat parser, for line numbers
        self.max_invalid_names = max_invalid_names
        self.depth = 0
        self.root_seen = False
        self.list_depth = 0  # > 0 while inside <ListeDomaines>
        self.list_closed = False
        self.root_closed = False
        self.generated_at: datetime | None = None
        self.generated_seen = False
        self.entries: list[ListeBlancheEntry] = []
        self.invalid_names: list[InvalidName] = []
        # current <Domaine>
        self.domain_line = 0
        self.fields: dict[str, list[str]] = {}
        # current text capture
        self.capture_tag: str | None = None
        self.capture_depth = 0
        self.capture_line = 0
        self.text: list[str] = []
        self.text_length = 0

    @property
    def line(self) -> int:
        return int(self.expat.CurrentLineNumber) if self.expat is not None else 0

    def _capture(self, tag: str) -> None:
        self.capture_tag = tag
        self.capture_depth = self.depth
        self.capture_line = self.line
        self.text = []
        self.text_length = 0

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        self.depth += 1
        if self.depth == 1:
            if tag != _ROOT:
                raise _Refused(
                    f"not the liste blanche: the root element is {_describe_tag(tag)}, "
                    f"expected <ListeBlancheMSSante> in namespace {NAMESPACE}"
                )
            self.root_seen = True
        elif self.depth == 2:
            if tag == _LIST:
                self.list_depth = self.depth
            elif tag == _GENERATED and not self.generated_seen:
                self._capture(tag)
        elif self.list_depth and self.depth == self.list_depth + 1 and tag == _DOMAIN:
            self.domain_line = self.line
            self.fields = {}
        elif (
            self.domain_line
            and self.depth == self.list_depth + 2
            and tag in _ENTRY_FIELDS
            and self.capture_tag is None
        ):
            self._capture(tag)

    def data(self, text: str) -> None:
        if self.capture_tag is not None and self.depth == self.capture_depth:
            self.text_length += len(text)
            if self.text_length > MAX_TEXT_LENGTH:
                raise _Refused(
                    f"element {_describe_tag(self.capture_tag)} at line {self.capture_line} "
                    f"is longer than {MAX_TEXT_LENGTH} characters"
                )
            self.text.append(text)

    def end(self, tag: str) -> None:
        if self.capture_tag is not None and self.depth == self.capture_depth:
            value = "".join(self.text).strip()
            if tag == _GENERATED:
                self.generated_seen = True
                self.generated_at = _parse_datetime(value)
                if self.generated_at is None:
                    raise _Refused(
                        f"<DateDeGeneration> {value!r} at line {self.capture_line} is not an "
                        f"ISO 8601 date-time"
                    )
            else:
                self.fields.setdefault(tag, []).append(value)
            self.capture_tag = None
        elif self.domain_line and self.depth == self.list_depth + 1:
            self._end_domain()
        elif self.list_depth and self.depth == self.list_depth:
            self.list_depth = 0
            self.list_closed = True
        elif self.depth == 1:
            self.root_closed = True
        self.depth -= 1

    def _end_domain(self) -> None:
        line, fields = self.domain_line, self.fields
        self.domain_line = 0
        names = fields.get(_NAME, [])
        if not names:
            raise _Refused(f"the <Domaine> at line {line} has no <Nom>")
        if len(names) > 1:
            raise _Refused(f"the <Domaine> at line {line} has {len(names)} <Nom> elements")
        raw_name = names[0]
        domain = raw_name.lower()
        problem = _domain_problem(domain)
        if problem is not None:
            self.invalid_names.append(InvalidName(line=line, name=raw_name, reason=problem))
            if len(self.invalid_names) > self.max_invalid_names:
                raise _Refused(
                    f"the <Domaine> at line {line} has an invalid name: {problem}"
                    + (
                        f" ({len(self.invalid_names)} invalid names, at most "
                        f"{self.max_invalid_names} tolerated)"
                        if self.max_invalid_names
                        else ""
                    )
                )
            if not domain:
                return  # nothing to keep from an empty <Nom>
        descriptions = [d for d in fields.get(_DESCRIPTION, []) if d]
        updates = fields.get(_UPDATED, [])
        description = descriptions[0] if descriptions else None
        updated_at = _parse_datetime(updates[0]) if updates else None
        # One entry per (domain, DN) pair, as in the published file; no DN -> dn=None.
        dns: list[str | None] = [dn for dn in fields.get(_DN, []) if dn] or [None]
        for dn in dns:
            self.entries.append(
                ListeBlancheEntry(
                    domain=domain,
                    dn=dn,
                    description=description,
                    updated_at=updated_at,
                    line=line,
                )
            )

    def close(self) -> None:
        return None


def _normalise_expected(expected_sha256: str) -> str:
    # Accept a bare digest or a `sha256sum` line ("<hex>  <file name>").
    parts = expected_sha256.split()
    candidate = parts[0].lower() if parts else ""
    if not _SHA256_HEX.fullmatch(candidate):
        raise ListeBlancheError(
            f"expected_sha256 {expected_sha256[:80]!r} is not a SHA-256 digest (64 hex digits)"
        )
    return candidate


def _one_line(message: str) -> str:
    return " ".join(message.split())


def parse_listeblanche(
    path: Path,
    *,
    expected_sha256: str | None = None,
    max_invalid_names: int = 10,
) -> ListeBlancheFile:
    """Parse and check a liste blanche file.

    Raises :class:`ListeBlancheError` (one line, naming the file) when the checksum does not
    match, the file is not XML, declares a DOCTYPE or entities, is not the liste blanche
    (root element or namespace), is truncated before ``</ListeDomaines>``, has a ``<Domaine>``
    without ``<Nom>``, more than ``max_invalid_names`` invalid domain names (0: refuse any), or
    no domain at all. A checksum mismatch is reported in preference to any other problem.
    """
    expected = _normalise_expected(expected_sha256) if expected_sha256 is not None else None
    digest = hashlib.sha256()
    collector = _Collector(max_invalid_names)
    parser = DefusedXMLParser(
        target=collector, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    collector.expat = parser.parser
    problem: str | None = None
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ListeBlancheError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    with handle:
        while chunk := handle.read(_CHUNK_SIZE):
            digest.update(chunk)
            if problem is None:
                problem = _feed(parser, collector, chunk)
                if problem is not None and expected is None:
                    break  # nothing more to learn from the rest of the file
        if problem is None:
            problem = "the file is empty" if handle.tell() == 0 else _close(parser, collector)
    actual = digest.hexdigest()
    if expected is not None and actual != expected:
        raise ListeBlancheError(f"{path}: checksum mismatch: expected {expected}, got {actual}")
    if problem is not None:
        raise ListeBlancheError(_one_line(f"{path}: {problem}"))
    if not any(is_valid_domain(entry.domain) for entry in collector.entries):
        raise ListeBlancheError(f"{path}: the file lists no domain (no valid <Domaine>)")
    return ListeBlancheFile(
        path=path,
        generated_at=collector.generated_at,
        sha256=actual,
        entries=collector.entries,
        domains=frozenset(entry.domain for entry in collector.entries),
        invalid_names=collector.invalid_names,
        root_closed=collector.root_closed,
    )


def _feed(parser: Any, collector: _Collector, chunk: bytes) -> str | None:
    """Feed one chunk; return a refusal message or None."""
    try:
        parser.feed(chunk)
    except _Refused as exc:
        return str(exc)
    except DTDForbidden:
        return (
            f"the file declares a DOCTYPE (line {collector.line}): DTDs are refused "
            f"(entity expansion and external entity protection)"
        )
    except (EntitiesForbidden, ExternalReferenceForbidden):
        return f"the file declares or references an entity (line {collector.line}): refused"
    except ParseError as exc:
        if not collector.root_seen:
            return f"not an XML file: {exc}"
        return f"malformed XML: {exc}"
    return None


def _close(parser: Any, collector: _Collector) -> str | None:
    """Finish parsing; accept a missing root end tag once </ListeDomaines> has been read."""
    try:
        parser.close()
    except _Refused as exc:
        return str(exc)
    except ParseError as exc:
        line = exc.position[0] if exc.position else collector.line
        if not collector.root_seen:
            # The input ended inside the XML declaration or the root start tag: a cut file.
            if exc.code in _EOF_ERRORS:
                return f"file is truncated: it ends before </ListeDomaines> (line {line})"
            return f"not an XML file: {exc}"
        if not collector.list_closed:
            return f"file is truncated: it ends before </ListeDomaines> (line {line})"
        if collector.depth > 1:
            return (
                f"file is truncated: it ends inside an element after </ListeDomaines> (line {line})"
            )
        # Only </ListeBlancheMSSante> is missing (or cut): the published files end this way.
        return None
    return None

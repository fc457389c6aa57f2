"""Streaming readers for the public Annuaire Santé extraction files (docs/mssante.md §3).

Pure: reads one file, touches no database and no network. Two kinds are recognised from the
header line:

* ``Extraction_Correspondance_MSSante`` (published MSSanté mailboxes) -> :class:`MssanteRecord`
* ``PS_LibreAcces_Personne_activite`` (one line per professional activity, ≈2 million lines)
  -> :class:`PersonActivityRecord`

Format (docs/mssante.md §3): UTF-8, ``|``-separated, one header line, no quoting (a ``"`` is an
ordinary character), lines and header may end with a trailing ``|``. Columns are found BY HEADER
NAME, never by position: each record field lists the labels it accepts (:data:`FIELD_ALIASES`),
compared after :func:`normalise_label` (accents removed, case folded, punctuation and spaces
collapsed), so reordered columns, added columns and renamed labels of newer files are handled.

Bad lines (wrong number of fields, invalid UTF-8, missing or malformed national identifier)
are skipped and reported in :attr:`AnnuaireReader.errors` with their line number; the national
file is authoritative, so identifiers are checked for syntax only (no RPPS Luhn check here).
"""

from __future__ import annotations

import enum
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import (
    BinaryIO,
    ClassVar,
    Final,
    Generic,
    Literal,
    NamedTuple,
    TypeVar,
    cast,
    overload,
)

__all__ = [
    "FIELD_ALIASES",
    "MAX_ERRORS_KEPT",
    "AnnuaireFileError",
    "AnnuaireKind",
    "AnnuaireReader",
    "AnnuaireRecord",
    "LineError",
    "MssanteRecord",
    "PersonActivityRecord",
    "normalise_label",
    "open_annuaire",
]

SEPARATOR: Final = "|"
MAX_ERRORS_KEPT: Final = 1000
BLOCK_SIZE: Final = 1 << 20  # bytes read and decoded at a time
MAX_LINE_BYTES: Final = 1 << 20  # a real line is < 1 KiB; longer ones are reported, skipped


class AnnuaireFileError(ValueError):
    """The file cannot be read as an Annuaire Santé extraction; the message names the file."""


class AnnuaireKind(enum.StrEnum):
    """The extraction files this module reads (value = the published file name prefix)."""

    MSSANTE = "Extraction_Correspondance_MSSante"
    PERSONNE_ACTIVITE = "PS_LibreAcces_Personne_activite"


@dataclass(frozen=True, slots=True)
class LineError:
    """A skipped line: 1-based physical line number (the header is line 1) and the reason."""

    line_no: int
    message: str


# Records are named tuples: immutable, ~10x cheaper to build than frozen dataclasses (this
# matters at 2 million lines), and directly usable as executemany/COPY rows. ``FIELDS`` is the
# field order shared by records and by the tuples of ``AnnuaireReader.batches``.


class _MssanteFields(NamedTuple):
    bal_type: str  # "PER" or "ORG" (only these are published)
    address: str  # lower-cased
    national_id: str | None  # "8"+RPPS / "0"+ADELI; None for ORG and unattached PER mailboxes
    id_pp_type: str
    id_pp: str
    structure_id_type: str
    structure_id: str
    service: str
    civility: str
    last_name: str
    first_name: str
    profession_code: str
    profession_label: str
    specialty_code: str
    specialty_label: str
    dematerialisation: str
    structure_name: str
    postal_code: str


class MssanteRecord(_MssanteFields):
    """One line of ``Extraction_Correspondance_MSSante``: a published mailbox."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = _MssanteFields._fields


class _PersonActivityFields(NamedTuple):
    national_id: str  # "8"+RPPS (12 chars) or "0"+ADELI (10 chars)
    id_pp_type: str
    id_pp: str
    civility: str  # Code civilité d'exercice (DR, PR, ...), often empty
    last_name: str
    first_name: str
    profession_code: str  # 10 médecin, 21 pharmacien, 60 infirmier, ...
    profession_label: str
    specialty_code: str
    specialty_label: str
    mode_code: str  # L libéral, S salarié, B bénévole
    structure_id: str  # Identifiant technique de la structure
    siret: str
    finess: str
    structure_name: str
    postal_code: str
    city: str


class PersonActivityRecord(_PersonActivityFields):
    """One line of ``PS_LibreAcces_Personne_activite``: one activity of one professional."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = _PersonActivityFields._fields


AnnuaireRecord = MssanteRecord | PersonActivityRecord
R = TypeVar("R", MssanteRecord, PersonActivityRecord)


def normalise_label(label: str) -> str:
    """Normalise a header label for matching: NFKD without combining marks, casefold,
    every run of non-alphanumeric characters -> one space, stripped.

    ``"Libellé commune (coord. Structure)"`` -> ``"libelle commune coord structure"``.
    """
    decomposed = unicodedata.normalize("NFKD", label)
    without_accents = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_ALNUM.sub(" ", without_accents.casefold()).strip()


_NON_ALNUM: Final = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class _Column:
    field: str
    required: bool
    labels: tuple[str, ...]  # first = the label of the 2021 layout, then accepted renamings


# The alias table: record field -> accepted header labels (any spelling that normalises the
# same also matches). Required columns decide which kind a header is; optional columns absent
# from a file read as "" and are listed in AnnuaireReader.missing_optional.
_MSSANTE_COLUMNS: Final = (
    _Column("bal_type", True, ("Type de BAL", "Type BAL")),
    _Column("address", True, ("Adresse BAL", "Adresse de BAL", "Adresse e-mail BAL")),
    _Column(
        "national_id",
        True,
        ("Identification nationale PP", "Identifiant national PP", "Identifiant national"),
    ),
    _Column("id_pp_type", False, ("Type Identifiant PP", "Type d'identifiant PP")),
    _Column("id_pp", False, ("Identifiant PP",)),
    _Column(
        "structure_id_type",
        False,
        ("Type identifiant structure", "Type d'identifiant structure"),
    ),
    _Column(
        "structure_id",
        False,
        ("Identification Structure", "Identifiant structure", "Identification nationale structure"),
    ),
    _Column("service", False, ("Service de rattachement", "Service")),
    _Column("civility", False, ("Civilité d'exercice", "Civilité exercice")),
    _Column("last_name", False, ("Nom d'exercice", "Nom exercice")),
    _Column("first_name", False, ("Prénom d'exercice", "Prénom exercice")),
    _Column("profession_code", False, ("Code Profession",)),
    _Column("profession_label", False, ("Libellé Profession",)),
    _Column("specialty_code", False, ("Code savoir-faire",)),
    _Column("specialty_label", False, ("Libellé savoir-faire",)),
    _Column("dematerialisation", False, ("Dématérialisation",)),
    _Column(
        "structure_name",
        False,
        ("Raison Sociale structure BAL", "Raison sociale structure"),
    ),
    _Column("postal_code", False, ("Code postal structure BAL", "Code postal structure")),
)

_PERSONNE_COLUMNS: Final = (
    _Column(
        "national_id",
        True,
        ("Identification nationale PP", "Identifiant national PP", "Identifiant national"),
    ),
    _Column("id_pp_type", False, ("Type d'identifiant PP", "Type identifiant PP")),
    _Column("id_pp", False, ("Identifiant PP",)),
    _Column("civility", False, ("Code civilité d'exercice", "Code civilité exercice")),
    _Column("last_name", True, ("Nom d'exercice", "Nom exercice")),
    _Column("first_name", True, ("Prénom d'exercice", "Prénom exercice")),
    _Column("profession_code", True, ("Code profession",)),
    _Column("profession_label", False, ("Libellé profession",)),
    _Column("specialty_code", False, ("Code savoir-faire",)),
    _Column("specialty_label", False, ("Libellé savoir-faire",)),
    _Column("mode_code", False, ("Code mode exercice", "Code mode d'exercice")),
    _Column(
        "structure_id",
        True,
        ("Identifiant technique de la structure", "Identifiant technique structure"),
    ),
    _Column("siret", False, ("Numéro SIRET site", "SIRET site", "Numéro SIRET")),
    _Column("finess", False, ("Numéro FINESS site", "FINESS site", "Numéro FINESS")),
    _Column("structure_name", False, ("Raison sociale site", "Raison sociale")),
    _Column(
        "postal_code",
        False,
        ("Code postal (coord. structure)", "Code postal structure", "Code postal"),
    ),
    _Column(
        "city",
        False,
        ("Libellé commune (coord. structure)", "Libellé commune structure", "Libellé commune"),
    ),
)

_COLUMNS: Final[dict[AnnuaireKind, tuple[_Column, ...]]] = {
    AnnuaireKind.MSSANTE: _MSSANTE_COLUMNS,
    AnnuaireKind.PERSONNE_ACTIVITE: _PERSONNE_COLUMNS,
}
assert tuple(c.field for c in _MSSANTE_COLUMNS) == MssanteRecord.FIELDS
assert tuple(c.field for c in _PERSONNE_COLUMNS) == PersonActivityRecord.FIELDS

#: Public view of the alias table: kind -> field -> accepted labels (2021 label first).
FIELD_ALIASES: Final[dict[AnnuaireKind, dict[str, tuple[str, ...]]]] = {
    kind: {c.field: c.labels for c in columns} for kind, columns in _COLUMNS.items()
}

# National professional identifier, syntax only (docs/mssante.md §3): "8" + 11-digit RPPS or
# "0" + 9-character ADELI (our choice: Corsica's 2A/2B accepted as the ADELI department).
_NATIONAL_ID: Final = re.compile(r"8[0-9]{11}|0(?:[0-9]{2}|2[AB])[0-9]{7}")
# Mailbox address, syntax only: something@domain.tld, no spaces, one "@" (RFC 5321 §4.1.2
# allows more in the local part, but published MSSanté addresses never use it).
_ADDRESS: Final = re.compile(r"[^@\s|]+@[^@\s|]+\.[^@\s|]+")


def _match_columns(
    columns: tuple[_Column, ...], positions: dict[str, int]
) -> tuple[dict[str, int], list[_Column]]:
    """Map each field to its header position; return (found, missing columns)."""
    found: dict[str, int] = {}
    missing: list[_Column] = []
    for column in columns:
        for label in column.labels:
            index = positions.get(normalise_label(label))
            if index is not None:
                found[column.field] = index
                break
        else:
            missing.append(column)
    return found, missing


def _missing_labels(missing: list[_Column]) -> str:
    return ", ".join(repr(c.labels[0]) for c in missing if c.required)


class AnnuaireReader(Generic[R]):
    """A streaming reader over one extraction file; use :func:`open_annuaire` to get one.

    Iterate once with :meth:`records` or :meth:`batches`; memory stays constant (one block of
    :data:`BLOCK_SIZE` bytes at a time). Progress: :attr:`bytes_read` out of
    :attr:`total_size`, :attr:`lines_read` (physical lines, header included). Skipped lines
    are in :attr:`errors` (the first :data:`MAX_ERRORS_KEPT`); :attr:`error_count` counts them
    all.
    """

    def __init__(
        self,
        path: Path,
        handle: BinaryIO,
        kind: AnnuaireKind,
        record_type: type[R],
        header: tuple[str, ...],
        header_trailing: bool,
        positions: dict[str, int],
        header_bytes: int,
        total_size: int,
    ) -> None:
        self.path = path
        self.kind = kind
        self.record_type: type[R] = record_type
        self.header = header  # labels as written, trailing empty label dropped
        self.columns = positions  # field -> 0-based column index in the file
        self.missing_optional = tuple(f for f in record_type.FIELDS if f not in positions)
        self.total_size = total_size
        self.bytes_read = header_bytes  # advanced one block at a time
        self.lines_read = 1  # the header
        self.errors: list[LineError] = []
        self.error_count = 0
        self._handle: BinaryIO | None = handle
        self._header_trailing = header_trailing
        self._started = False

    # -- life cycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Release the file (done automatically once a reading generator finishes)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> AnnuaireReader[R]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------

    def records(self) -> Iterator[R]:
        """Iterate over one record per valid line, in file order (lazily, once)."""
        return map(self.record_type._make, self._values())

    def batches(self, size: int) -> Iterator[list[tuple[str | None, ...]]]:
        """Yield lists of at most ``size`` plain tuples in ``FIELDS`` order (for COPY)."""
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        batch: list[tuple[str | None, ...]] = []
        append = batch.append
        for values in self._values():
            append(values)
            if len(batch) >= size:
                yield batch
                batch = []
                append = batch.append
        if batch:
            yield batch

    def _error(self, line_no: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(LineError(line_no, message))

    def _blocks(self, handle: BinaryIO) -> Iterator[tuple[list[str], dict[int, str]]]:
        """Yield (lines, {index in block: UTF-8 error message}) per block of complete lines.

        Whole blocks of complete lines are decoded at once, much faster than line by line;
        a block that is not valid UTF-8 is decoded again line by line to find the culprits.
        """
        carry = b""
        skipping = False  # inside an over-long line, looking for its end
        while True:
            chunk = handle.read(BLOCK_SIZE)
            if skipping:
                if not chunk:
                    return
                newline = chunk.find(b"\n")
                if newline < 0:
                    self.bytes_read += len(chunk)
                    continue
                self.bytes_read += newline + 1
                chunk, skipping = chunk[newline + 1 :], False
                if not chunk:
                    continue
            if not chunk:
                if not carry:
                    return
                data, carry = carry, b""  # last line without a final newline
            else:
                data = carry + chunk
                end = data.rfind(b"\n") + 1
                if end == 0:  # no newline yet: a long line, keep reading (up to a limit)
                    if len(data) > MAX_LINE_BYTES:
                        self.bytes_read += len(data)
                        carry, skipping = b"", True
                        yield [""], {0: f"line longer than {MAX_LINE_BYTES} bytes"}
                    else:
                        carry = data
                    continue
                data, carry = data[: end - 1], data[end:]  # drop the block's final "\n"
            self.bytes_read += len(data) + (1 if chunk else 0)
            if b"\r" in data:
                data = data.replace(b"\r\n", b"\n").removesuffix(b"\r")  # CRLF line ends
            bad: dict[int, str] = {}
            try:
                lines = data.decode("utf-8").split("\n")
            except UnicodeDecodeError:
                lines = []
                for index, raw in enumerate(data.split(b"\n")):
                    try:
                        lines.append(raw.decode("utf-8"))
                    except UnicodeDecodeError as exc:
                        bad[index] = (
                            f"invalid UTF-8: byte 0x{raw[exc.start]:02X} at byte {exc.start + 1} "
                            f"of the line"
                        )
                        lines.append("")
            yield lines, bad

    def _values(self) -> Iterator[tuple[str | None, ...]]:
        """The hot loop: split, check and pick the fields of every line (≈2 million)."""
        if self._started:
            raise RuntimeError(f"{self.path}: the reader has already been consumed")
        self._started = True
        handle = self._handle
        if handle is None:
            raise RuntimeError(f"{self.path}: the reader is closed")
        ncols = len(self.header)
        fields_order = self.record_type.FIELDS
        # Split only as far as the last column used (creating the other cells costs time);
        # the remainder cell at index `splits` is only counted. Columns missing from the
        # file read the empty cell appended after the split (index -1).
        splits = min(max(self.columns[f] for f in fields_order if f in self.columns) + 1, ncols)
        indices = [self.columns.get(field, -1) for field in fields_order]
        pick: Callable[[list[str]], tuple[str, ...]] = itemgetter(*indices)
        strip = str.strip
        id_index = fields_order.index("national_id")
        check = self._check_mssante if self.kind is AnnuaireKind.MSSANTE else None
        accept_short = not self._header_trailing
        line_no = 1
        try:
            for lines, bad in self._blocks(handle):
                first = line_no + 1
                for line in lines:
                    line_no += 1
                    if bad and line_no - first in bad:
                        self._error(line_no, bad[line_no - first])
                        continue
                    cells = line.split(SEPARATOR, splits)
                    count = len(cells)
                    if count > splits:
                        count += cells[splits].count(SEPARATOR)
                    if count == ncols + 1:
                        # A trailing "|" (docs/mssante.md §3) leaves an empty last cell.
                        if (
                            not line.endswith(SEPARATOR)
                            and line[line.rfind(SEPARATOR) + 1 :].strip()
                        ):
                            self._error(line_no, f"expected {ncols} fields, got {count}")
                            continue
                    elif count == ncols:
                        # No trailing "|" on this line: unambiguous only when its last cell is
                        # non-empty, or when the header has no trailing "|" either.
                        if not accept_short and not line[line.rfind(SEPARATOR) + 1 :].strip():
                            self._error(line_no, f"expected {ncols} fields, got {count - 1}")
                            continue
                    elif count == 1 and not line.strip():
                        continue  # empty line
                    else:
                        got = count - 1 if line.endswith(SEPARATOR) else count
                        self._error(line_no, f"expected {ncols} fields, got {got}")
                        continue
                    cells.append("")
                    values = tuple(map(strip, pick(cells)))
                    if check is not None:
                        checked = check(line_no, values, id_index)
                        if checked is not None:
                            self.lines_read = line_no
                            yield checked
                        continue
                    national_id = values[id_index]
                    # Syntax of the national identifier (docs/mssante.md §3): "8" + 11 digits
                    # (RPPS) or "0" + 9 characters (ADELI); not the Luhn key (the national
                    # file is authoritative).
                    length = len(national_id)
                    if (
                        (length == 12 and national_id[0] == "8" and national_id.isdigit())
                        or (length == 10 and national_id[0] == "0" and national_id.isdigit())
                    ) and national_id.isascii():
                        self.lines_read = line_no
                        yield values
                    elif _NATIONAL_ID.fullmatch(national_id) is not None:
                        self.lines_read = line_no  # ADELI with a Corsican department 2A/2B
                        yield values
                    elif not national_id:
                        self._error(
                            line_no, "missing national identifier (Identification nationale PP)"
                        )
                    else:
                        self._error(line_no, _bad_national_id(national_id))
        finally:
            self.lines_read = line_no
            self.close()

    def _check_mssante(
        self, line_no: int, values: tuple[str, ...], id_index: int
    ) -> tuple[str | None, ...] | None:
        # FIELDS order: bal_type, address, national_id, then the others.
        bal_type, address, national_id = values[0], values[1].lower(), values[id_index]
        if not bal_type:
            self._error(line_no, "missing mailbox type (Type de BAL)")
            return None
        if not address:
            self._error(line_no, "missing mailbox address (Adresse BAL)")
            return None
        if _ADDRESS.fullmatch(address) is None:
            self._error(line_no, f"invalid mailbox address {address[:80]!r}")
            return None
        if national_id and _NATIONAL_ID.fullmatch(national_id) is None:
            self._error(line_no, _bad_national_id(national_id))
            return None
        # ORG mailboxes (and PER ones not tied to a national identity) have no identifier.
        return (bal_type, address, national_id or None, *values[3:])


def _bad_national_id(value: str) -> str:
    return (
        f"invalid national identifier {value[:40]!r}: expected '8' + 11 digits (RPPS) "
        f"or '0' + 9 digits (ADELI)"
    )


def _read_header(path: Path, handle: BinaryIO) -> tuple[tuple[str, ...], bool, int]:
    raw = handle.readline(MAX_LINE_BYTES)
    if not raw:
        raise AnnuaireFileError(f"{path}: the file is empty (no header line)")
    if not raw.endswith(b"\n") and len(raw) >= MAX_LINE_BYTES:
        raise AnnuaireFileError(
            f"{path}: not an Annuaire Santé extraction file: no header line within the first "
            f"{MAX_LINE_BYTES} bytes"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnnuaireFileError(
            f"{path}: the header line is not valid UTF-8 (byte {exc.start + 1})"
        ) from exc
    text = text.removeprefix("\ufeff").rstrip("\r\n")  # a UTF-8 BOM may start the file
    labels = text.split(SEPARATOR)
    trailing = len(labels) > 1 and not labels[-1].strip()
    if trailing:
        labels.pop()
    return tuple(label.strip() for label in labels), trailing, len(raw)


@overload
def open_annuaire(
    path: Path, kind: Literal[AnnuaireKind.MSSANTE]
) -> AnnuaireReader[MssanteRecord]: ...
@overload
def open_annuaire(
    path: Path, kind: Literal[AnnuaireKind.PERSONNE_ACTIVITE]
) -> AnnuaireReader[PersonActivityRecord]: ...
@overload
def open_annuaire(
    path: Path, kind: None = None
) -> AnnuaireReader[MssanteRecord] | AnnuaireReader[PersonActivityRecord]: ...


def open_annuaire(
    path: Path, kind: AnnuaireKind | None = None
) -> AnnuaireReader[MssanteRecord] | AnnuaireReader[PersonActivityRecord]:
    """Open an extraction file and detect its kind from the header.

    With ``kind`` given, the file must be of that kind. Raises :class:`AnnuaireFileError`
    naming the file and the required columns that are missing.
    """
    try:
        handle: BinaryIO = path.open("rb")
    except OSError as exc:
        raise AnnuaireFileError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    try:
        total_size = path.stat().st_size
        header, trailing, header_bytes = _read_header(path, handle)
        positions: dict[str, int] = {}
        for index, label in enumerate(header):
            positions.setdefault(normalise_label(label), index)  # first occurrence wins
        candidates = [kind] if kind is not None else list(AnnuaireKind)
        matches: list[tuple[AnnuaireKind, dict[str, int]]] = []
        problems: list[tuple[AnnuaireKind, str]] = []
        for candidate in candidates:
            found, missing = _match_columns(_COLUMNS[candidate], positions)
            if any(c.required for c in missing):
                problems.append((candidate, _missing_labels(missing)))
            else:
                matches.append((candidate, found))
        if not matches and kind is not None:
            raise AnnuaireFileError(
                f"{path}: not a {kind.value} file: missing columns: {problems[0][1]}"
            )
        if not matches:
            raise AnnuaireFileError(
                f"{path}: not an Annuaire Santé extraction file: its header matches neither "
                + " nor ".join(f"{k.value} (missing columns: {labels})" for k, labels in problems)
            )
        if len(matches) > 1:
            raise AnnuaireFileError(
                f"{path}: ambiguous header: it has the columns of both "
                + " and ".join(m[0].value for m in matches)
            )
        found_kind, found = matches[0]
    except BaseException:
        handle.close()
        raise
    if found_kind is AnnuaireKind.MSSANTE:
        return AnnuaireReader(
            path,
            handle,
            found_kind,
            MssanteRecord,
            header,
            trailing,
            found,
            header_bytes,
            total_size,
        )
    return AnnuaireReader(
        path,
        handle,
        found_kind,
        PersonActivityRecord,
        header,
        trailing,
        found,
        header_bytes,
        total_size,
    )


# --- parallel reading: one file cut into parts at line boundaries --------------------------


class _Window:
    """Bytes [start, end) of an open file, read like a file (one part of a parallel import)."""

    def __init__(self, handle: BinaryIO, end: int) -> None:
        self._handle = handle
        self._end = end

    def read(self, size: int = -1) -> bytes:
        remaining = self._end - self._handle.tell()
        if remaining <= 0:
            return b""
        return self._handle.read(remaining if size < 0 else min(size, remaining))

    def tell(self) -> int:
        return self._handle.tell()

    @property
    def closed(self) -> bool:
        return self._handle.closed

    def close(self) -> None:
        self._handle.close()


def split_annuaire(path: Path, parts: int) -> list[tuple[int, int]]:
    """Byte ranges covering the data lines, cut at line starts, for `parts` readers."""
    try:
        size = path.stat().st_size
        handle = path.open("rb")
    except OSError as exc:
        raise AnnuaireFileError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
    with handle:
        _, _, header_bytes = _read_header(path, handle)
        bounds = [header_bytes]
        for i in range(1, max(parts, 1)):
            target = header_bytes + (size - header_bytes) * i // parts
            if target <= bounds[-1]:
                continue
            handle.seek(target - 1)
            handle.readline()  # the next line starts after the newline at or past target-1
            position = handle.tell()
            if bounds[-1] < position < size:
                bounds.append(position)
        bounds.append(size)
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def open_annuaire_part(
    path: Path, kind: AnnuaireKind, start: int, end: int
) -> AnnuaireReader[MssanteRecord] | AnnuaireReader[PersonActivityRecord]:
    """A reader over the lines in bytes [start, end) (from `split_annuaire`).

    Line numbers in its errors and `lines_read` count from the part's start as if the header
    were line 1: add the lines of the earlier parts to get the file's line numbers.
    """
    reader: AnnuaireReader[MssanteRecord] | AnnuaireReader[PersonActivityRecord] = (
        open_annuaire(path, AnnuaireKind.MSSANTE)
        if kind is AnnuaireKind.MSSANTE
        else open_annuaire(path, AnnuaireKind.PERSONNE_ACTIVITE)
    )
    handle = reader._handle
    assert handle is not None
    handle.seek(start)
    reader._handle = cast(BinaryIO, _Window(handle, end))
    reader.bytes_read = start
    return reader

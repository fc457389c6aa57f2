"""Reading untrusted ZIP archives (IHE_XDM.ZIP) with bounded memory.

docs/mssante.md §6: "Archives are untrusted input: bound the number of entries, the total
uncompressed size and the compression ratio, refuse paths with ``..`` or absolute names".
Everything that can be judged from the central directory is judged *before* anything is
decompressed:

* the number of entries, counted from the raw central directory before :mod:`zipfile`
  builds one object per entry (a 25 MB central directory could describe 500,000 entries);
* the names: absolute, drive letter, backslash, ``..`` component, control characters,
  duplicates (case-insensitive: two tools could each pick a different one);
* encrypted entries (APPNOTE.TXT §4.4.4 general purpose bit 0, bit 6 strong encryption);
  compression methods other than stored (0) and deflate (8) (APPNOTE.TXT §4.4.5);
* declared sizes: the sum against the total bound, the per-entry and overall ratios, and
  entries whose data would overlap (the "overlapping files" bomb).

Declared sizes can lie, so decompression is our own streaming inflate: output is produced in
chunks of at most :data:`CHUNK` bytes and refused as soon as it exceeds the size the entry
declares (which already passed the bounds); the CRC-32 is checked at the end. Nothing is ever
inflated beyond what the bounds allow, and only the entries asked for are kept in memory.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from itertools import pairwise
from typing import Final

from filing.model import FilingSettings, Refused

__all__ = [
    "ARCHIVE_BOMB",
    "ARCHIVE_CORRUPT",
    "ARCHIVE_DUPLICATE",
    "ARCHIVE_ENCRYPTED",
    "ARCHIVE_NESTED",
    "ARCHIVE_PATH",
    "ARCHIVE_TOO_LARGE",
    "ARCHIVE_TOO_MANY_ENTRIES",
    "ARCHIVE_UNSUPPORTED",
    "CHUNK",
    "SafeArchive",
    "is_zip",
    "open_archive",
]

ARCHIVE_TOO_MANY_ENTRIES: Final = "archive-too-many-entries"
ARCHIVE_TOO_LARGE: Final = "archive-too-large"  # declared total beyond max_total_size
ARCHIVE_BOMB: Final = "archive-bomb"  # ratio, overlap, or output beyond the declared size
ARCHIVE_PATH: Final = "archive-path"
ARCHIVE_DUPLICATE: Final = "archive-duplicate"
ARCHIVE_ENCRYPTED: Final = "archive-encrypted"
ARCHIVE_NESTED: Final = "archive-nested"
ARCHIVE_UNSUPPORTED: Final = "archive-unsupported"  # compression method
ARCHIVE_CORRUPT: Final = "archive-corrupt"  # unreadable, truncated, CRC or size mismatch

CHUNK: Final = 64 * 1024  # bytes of input, and at most of output, handled per step

# APPNOTE.TXT §4.3.7 local file header, §4.3.12 central directory header, §4.3.16 end of
# central directory record.
_LOCAL_SIGNATURE: Final = b"PK\x03\x04"
_CENTRAL_SIGNATURE: Final = b"PK\x01\x02"
_END_SIGNATURE: Final = b"PK\x05\x06"
_LOCAL_HEADER: Final = struct.Struct("<4s2B4HL2L2H")  # 30 bytes
_END_RECORD: Final = struct.Struct("<4s4H2LH")  # 22 bytes
_MAX_COMMENT: Final = 0xFFFF
_FLAG_ENCRYPTED: Final = 0x0001  # APPNOTE.TXT §4.4.4 bit 0
_FLAG_STRONG_ENCRYPTION: Final = 0x0040  # bit 6
_STORED: Final = zipfile.ZIP_STORED
_DEFLATED: Final = zipfile.ZIP_DEFLATED
_DRIVE_RE: Final = re.compile(r"[A-Za-z]:")


def is_zip(data: bytes) -> bool:
    """A local file header or an empty archive's end record at offset 0."""
    return data[:4] in (_LOCAL_SIGNATURE, _END_SIGNATURE)


def _declared_entry_count(data: bytes) -> int | None:
    """Upper bound of the entries, read from the raw bytes without building any object.

    The larger of the count the end record declares and the central directory headers
    actually present in the directory span; ``None`` when there is no end record (then
    :mod:`zipfile` refuses the archive anyway).
    """
    end = data.rfind(_END_SIGNATURE, max(0, len(data) - _END_RECORD.size - _MAX_COMMENT))
    if end < 0 or end + _END_RECORD.size > len(data):
        return None
    fields = _END_RECORD.unpack_from(data, end)
    declared_total, directory_size = int(fields[4]), int(fields[5])
    if directory_size == 0xFFFFFFFF or declared_total == 0xFFFF:  # ZIP64: scan everything
        start = 0
        declared_total = 0
    else:
        start = max(0, end - directory_size)
    return max(declared_total, data.count(_CENTRAL_SIGNATURE, start, end))


def _path_problem(name: str) -> str | None:
    """Why an entry name could escape the extraction directory or confuse a reader."""
    if name.startswith("/"):
        return "has a path outside the archive (absolute path)"
    if _DRIVE_RE.match(name):
        return "has a path outside the archive (drive letter)"
    if ".." in name.split("/"):
        return "has a path outside the archive ('..' component)"
    if "\\" in name:
        return "has an unsafe name (backslash, read as a directory separator by some tools)"
    if not name or any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        return "has an unsafe name (empty or control characters)"
    return None


class SafeArchive:
    """A ZIP archive whose central directory passed every check of this module.

    Build it with :func:`open_archive`; read entries with :meth:`read` (bounded and
    verified), look names up case-insensitively with :meth:`find`.
    """

    def __init__(
        self,
        data: bytes,
        label: str,
        infos: list[zipfile.ZipInfo],
        settings: FilingSettings,
        depth: int,
    ) -> None:
        self._data = memoryview(data)
        self.label = label
        self._infos = {info.filename: info for info in infos}
        self._folded = {info.filename.casefold(): info.filename for info in infos}
        self._settings = settings
        self._depth = depth

    @property
    def names(self) -> tuple[str, ...]:
        """Entry names in central directory order."""
        return tuple(self._infos)

    def find(self, name: str) -> str | None:
        """The entry named ``name``, compared case-insensitively (ISO 9660 media names)."""
        if name in self._infos:
            return name
        return self._folded.get(name.casefold())

    def size(self, name: str) -> int:
        """The declared uncompressed size of an entry."""
        return self._infos[name].file_size

    def read(self, name: str) -> bytes:
        """The content of entry ``name``; raises :class:`Refused` when it lies or is broken."""
        return b"".join(self._chunks(self._infos[name]))

    def verify_contents(self) -> None:
        """Inflate every entry once (keeping nothing) and look inside nested archives.

        Refuses output beyond the declared sizes, CRC errors, and ZIP entries nested deeper
        than ``max_nesting`` (themselves checked like the outer archive).
        """
        for info in self._infos.values():
            chunks = self._chunks(info)
            head = b""
            for piece in chunks:  # enough bytes to recognise a ZIP signature
                head += piece
                if len(head) >= len(_LOCAL_SIGNATURE):
                    break
            if not is_zip(head):
                for _ in chunks:  # inflate and drop: checks size and CRC
                    pass
                continue
            entry = f"{self.label}: entry {info.filename!r}"
            if self._depth + 1 > self._settings.max_nesting:
                raise Refused(
                    ARCHIVE_NESTED,
                    f"{entry} is itself a ZIP archive, nested deeper than the "
                    f"{self._settings.max_nesting} level(s) allowed",
                )
            inner = head + b"".join(chunks)
            open_archive(inner, entry, self._settings, depth=self._depth + 1).verify_contents()

    def _chunks(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        what = f"{self.label}: entry {info.filename!r}"
        start = self._data_start(info, what)
        raw = self._data[start : start + info.compress_size]
        crc = 0
        produced = 0
        pieces = _stored(raw) if info.compress_type == _STORED else _inflate(raw, what)
        for piece in pieces:
            produced += len(piece)
            if produced > info.file_size:
                # Declared sizes can lie: stop at the first byte beyond the declaration.
                raise Refused(
                    ARCHIVE_BOMB,
                    f"{what} expands beyond the {info.file_size} bytes it declares",
                )
            crc = zlib.crc32(piece, crc)
            yield piece
        if produced != info.file_size:
            raise Refused(
                ARCHIVE_CORRUPT,
                f"{what} holds {produced} bytes, not the {info.file_size} it declares",
            )
        if crc != info.CRC:
            raise Refused(ARCHIVE_CORRUPT, f"{what} is damaged (CRC-32 mismatch)")

    def _data_start(self, info: zipfile.ZipInfo, what: str) -> int:
        """Offset of an entry's data, after its local header (APPNOTE.TXT §4.3.7)."""
        offset = info.header_offset
        if offset < 0 or offset + _LOCAL_HEADER.size > len(self._data):
            raise Refused(ARCHIVE_CORRUPT, f"{what} points outside the archive")
        header = _LOCAL_HEADER.unpack_from(self._data, offset)
        if header[0] != _LOCAL_SIGNATURE:
            raise Refused(ARCHIVE_CORRUPT, f"{what} has no local header where announced")
        start = offset + _LOCAL_HEADER.size + int(header[10]) + int(header[11])
        if start + info.compress_size > len(self._data):
            raise Refused(ARCHIVE_CORRUPT, f"{what} is truncated")
        return start


def _stored(raw: memoryview) -> Iterator[bytes]:
    for position in range(0, len(raw), CHUNK):
        yield bytes(raw[position : position + CHUNK])


def _inflate(raw: memoryview, what: str) -> Iterator[bytes]:
    """Raw deflate (RFC 1951) in bounded steps: at most CHUNK bytes out per call."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    position = 0
    pending = b""
    while not inflater.eof:
        if not pending and position < len(raw):
            pending = bytes(raw[position : position + CHUNK])
            position += CHUNK
        exhausted = not pending
        try:
            piece = inflater.decompress(pending, CHUNK)
        except zlib.error as error:
            raise Refused(ARCHIVE_CORRUPT, f"{what} is damaged ({error})") from None
        pending = inflater.unconsumed_tail
        if not piece and exhausted and not inflater.eof:
            raise Refused(ARCHIVE_CORRUPT, f"{what} is truncated (deflate stream ends early)")
        if piece:
            yield piece


def open_archive(
    data: bytes, label: str, settings: FilingSettings, *, depth: int = 0
) -> SafeArchive:
    """Check the central directory of the ZIP ``data`` (named ``label`` in reasons).

    Raises :class:`Refused` (codes ``archive-*``) before anything is decompressed when the
    archive breaks one of the bounds of ``settings`` or has an unsafe entry.
    """
    declared = _declared_entry_count(data)
    if declared is not None and declared > settings.max_entries:
        raise Refused(
            ARCHIVE_TOO_MANY_ENTRIES,
            f"{label} has {declared} entries, more than the {settings.max_entries} allowed",
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except Exception as error:  # zipfile raises BadZipFile, but also struct/Value/OverflowError
        raise Refused(ARCHIVE_CORRUPT, f"{label} is not a readable ZIP archive ({error})") from None
    if len(infos) > settings.max_entries:
        raise Refused(
            ARCHIVE_TOO_MANY_ENTRIES,
            f"{label} has {len(infos)} entries, more than the {settings.max_entries} allowed",
        )
    _check_entries(infos, label, settings)
    _check_sizes(infos, label, settings)
    return SafeArchive(data, label, infos, settings, depth)


def _check_entries(infos: list[zipfile.ZipInfo], label: str, settings: FilingSettings) -> None:
    seen: set[str] = set()
    for info in infos:
        entry = f"{label}: entry {info.filename!r}"
        problem = _path_problem(info.filename)
        if problem:
            raise Refused(ARCHIVE_PATH, f"{entry} {problem}")
        folded = info.filename.casefold()
        if folded in seen:
            raise Refused(ARCHIVE_DUPLICATE, f"{entry} appears more than once")
        seen.add(folded)
        if info.flag_bits & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
            raise Refused(ARCHIVE_ENCRYPTED, f"{entry} is encrypted")
        if info.compress_type not in (_STORED, _DEFLATED):
            raise Refused(
                ARCHIVE_UNSUPPORTED,
                f"{entry} uses compression method {info.compress_type} "
                f"(only stored and deflate are read)",
            )
        if info.compress_type == _STORED and info.compress_size != info.file_size:
            raise Refused(ARCHIVE_CORRUPT, f"{entry} is stored but its two sizes differ")
        if info.file_size > settings.ratio_floor and (
            info.file_size > settings.max_ratio * max(info.compress_size, 1)
        ):
            raise Refused(
                ARCHIVE_BOMB,
                f"{entry} declares {info.file_size} bytes from {info.compress_size} compressed "
                f"(ratio above {settings.max_ratio})",
            )


def _check_sizes(infos: list[zipfile.ZipInfo], label: str, settings: FilingSettings) -> None:
    total = sum(info.file_size for info in infos)
    compressed = sum(info.compress_size for info in infos)
    if total > settings.max_total_size:
        raise Refused(
            ARCHIVE_TOO_LARGE,
            f"{label} declares {total} uncompressed bytes, more than the "
            f"{settings.max_total_size} allowed",
        )
    if total > settings.ratio_floor and total > settings.max_ratio * max(compressed, 1):
        raise Refused(
            ARCHIVE_BOMB,
            f"{label} declares {total} bytes from {compressed} compressed "
            f"(overall ratio above {settings.max_ratio})",
        )
    # Overlapping entries reuse one compressed kernel many times (the non-recursive bomb):
    # every entry's compressed data must end before the next local header starts.
    spans = sorted((info.header_offset, info.compress_size, info.filename) for info in infos)
    for (offset, size, name), (next_offset, _, _) in pairwise(spans):
        if offset + _LOCAL_HEADER.size + size > next_offset:
            raise Refused(
                ARCHIVE_BOMB, f"{label}: entry {name!r} overlaps the data of another entry"
            )

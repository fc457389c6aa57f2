"""HL7 v2 data types as XDS metadata carries them, and HL7 timestamps.

IHE ITI TF-3 §4.2.3.1 (metadata attribute data types): XDS values such as ``patientId``
(CX), ``authorPerson`` (XCN) or ``authorInstitution`` (XON) are HL7 v2 values, components
separated by ``^``, sub-components by ``&``, with the HL7 v2 escape sequences (HL7 v2.5
§2.7.4). Times (DTM in XDS, TS in CDA R2) are ``YYYY[MM[DD[hh[mm[ss]]]]]``, optionally with
fractional seconds and a ``+hhmm`` offset. Pure functions, nothing raises on bad input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

__all__ = [
    "Cx",
    "Xcn",
    "component",
    "parse_cx",
    "parse_time",
    "parse_xcn",
    "parse_xon",
]

# HL7 v2.5 §2.7.4: the escape sequences of the default delimiters.
_ESCAPES: Final = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}
_ESCAPE_RE: Final = re.compile(r"\\([FSTRE])\\")


def _unescape(value: str) -> str:
    return _ESCAPE_RE.sub(lambda match: _ESCAPES[match.group(1)], value)


def component(value: str, index: int, separator: str = "^") -> str:
    """The ``index``-th (0-based) component of an HL7 v2 value, unescaped, or ``""``."""
    parts = value.split(separator)
    return _unescape(parts[index].strip()) if index < len(parts) else ""


@dataclass(frozen=True)
class Cx:
    """An identifier with its assigning authority (HL7 v2 CX: ``id^^^&oid&ISO^type``)."""

    id: str
    authority_oid: str


def parse_cx(value: str) -> Cx:
    """ITI TF-3 §4.2.3.1: CX.1 is the id, CX.4 the assigning authority ``&oid&ISO``."""
    authority = value.split("^")[3] if value.count("^") >= 3 else ""
    return Cx(id=component(value, 0), authority_oid=component(authority, 1, "&"))


@dataclass(frozen=True)
class Xcn:
    """A person (HL7 v2 XCN: ``id^family^given^middle^suffix^prefix^^^&oid&ISO``)."""

    id: str
    family: str
    given: str
    prefix: str

    @property
    def display_name(self) -> str:
        return " ".join(part for part in (self.given, self.family) if part)


def parse_xcn(value: str) -> Xcn:
    return Xcn(
        id=component(value, 0),
        family=component(value, 1),
        given=component(value, 2),
        prefix=component(value, 5),
    )


def parse_xon(value: str) -> str:
    """The organisation name (XON.1) of ``Name^^^^^&oid&ISO^IDNST^^^id``."""
    return component(value, 0)


# YYYY[MM[DD[hh[mm[ss[.fff]]]]]][+/-hhmm] (HL7 v2 DTM, CDA R2 TS)
_TIME_RE: Final = re.compile(
    r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6})\d*)?(?:([+-])(\d{2})(\d{2}))?"
)


def parse_time(value: str) -> datetime | None:
    """Read an HL7 time as an aware UTC datetime, or ``None`` when it is not one.

    XDS times are UTC (ITI TF-3 §4.2.3.1 DTM); a CDA time without an offset is read as
    UTC too (our choice: the filing must not depend on the server's time zone). Missing
    parts default to the start of the period (``2024`` -> 2024-01-01T00:00Z).
    """
    match = _TIME_RE.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        offset = UTC
        if sign:
            delta = timedelta(hours=int(off_h), minutes=int(off_m))
            offset = timezone(-delta if sign == "-" else delta)
        moment = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=offset,
        )
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # month 13, offset beyond 24 h, year 0...
        return None

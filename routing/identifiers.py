"""National identifiers used for routing: the patient INS and the professional RPPS/ADELI id.

Pure functions, no I/O. Every refusal raises :class:`InvalidIdentifier` (a ``ValueError``)
whose message says in plain English what is wrong, so it can be shown to an operator as is.

* INS matricule (docs/mssante.md §4): the 13-character NIR or NIA followed by a 2-digit key,
  ``key = 97 - (number mod 97)`` zero-padded, Corsica ``2A``/``2B`` read as ``19``/``18``.
* National professional identifier (docs/mssante.md §3, OID 1.2.250.1.71.4.2.1):
  ``8`` + RPPS (11 digits, the last one a Luhn check digit) or ``0`` + ADELI (9 characters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "Ins",
    "InvalidIdentifier",
    "NationalId",
    "check_ins",
    "check_national_id",
    "ins_key",
    "is_valid_ins",
    "is_valid_national_id",
    "luhn_check_digit",
    "luhn_is_valid",
    "national_id_for_rpps",
    "rpps_with_key",
]


class InvalidIdentifier(ValueError):
    """An identifier that does not follow its published format; the message explains why."""


def _is_digit(char: str) -> bool:
    """ASCII digit only: str.isdigit() also accepts other scripts' digits and superscripts."""
    return "0" <= char <= "9"


def _all_digits(value: str) -> bool:
    """Non-empty and ASCII digits only (isascii() excludes the other scripts' digits)."""
    return value.isascii() and value.isdigit()


def _list_bad(bad: list[str], limit: int = 3) -> str:
    """Join the first offending characters for a message ("'X' at position 8, ...")."""
    return ", ".join(bad[:limit]) + (f" and {len(bad) - limit} more" if len(bad) > limit else "")


def _show(value: str, limit: int = 40) -> str:
    """Quote a user-supplied value for an error message, keeping the message on one line."""
    shown = value if len(value) <= limit else value[:limit] + "..."
    return repr(shown) if not shown.isprintable() or not shown or " " in shown else shown


# --------------------------------------------------------------------------------------------
# INS (Identifiant National de Santé) matricule: NIR or NIA + key
# --------------------------------------------------------------------------------------------

INS_NUMBER_LENGTH: Final = 13
INS_LENGTH: Final = 15  # 13-character number + 2-digit key (docs/mssante.md §4)
# First character of a NIR/NIA: 1/2 (men/women), 3/4 (people born abroad, provisional
# registration), 7/8 (NIA: temporary numbers given before the definitive NIR).
_INS_SEX_DIGITS: Final = frozenset("123478")
# Department field: characters 6-7 (after sex(1) + year(2) + month(2)), 0-based slice 5:7.
_DEPT_START: Final = 5
_DEPT_END: Final = 7
# Corsica: "2A" counts as 19 and "2B" as 18 when computing the key (docs/mssante.md §4).
_CORSICA: Final = {"2A": "19", "2B": "18"}


@dataclass(frozen=True, slots=True)
class Ins:
    """A syntactically valid INS matricule (letters of 2A/2B upper-cased)."""

    matricule: str  # the 15 characters: number + key
    number: str  # the 13-character NIR/NIA
    key: str  # the 2-digit key


def _check_ins_number(number: str, *, what: str) -> str:
    """Check the 13-character NIR/NIA part; return it with 2A/2B upper-cased.

    ``what`` names the whole value in messages ("INS 146..." or "INS number 146...").
    """
    normalised = number
    if number[_DEPT_START:_DEPT_END] in ("2a", "2b"):  # accept lower-case Corsica codes
        normalised = (
            number[:_DEPT_START] + number[_DEPT_START:_DEPT_END].upper() + number[_DEPT_END:]
        )
    bad: list[str] = []
    for index, char in enumerate(normalised):
        if _is_digit(char):
            continue
        if _DEPT_START <= index < _DEPT_END and normalised[_DEPT_START:_DEPT_END] in _CORSICA:
            continue
        bad.append(f"{char!r} at position {index + 1}")
    if bad:
        raise InvalidIdentifier(
            f"{what} contains illegal characters: {_list_bad(bad)} (only digits are allowed, "
            f"plus 2A or 2B as the department at positions 6-7)"
        )
    if normalised[0] not in _INS_SEX_DIGITS:
        raise InvalidIdentifier(
            f"{what} has an invalid first digit {normalised[0]!r}: the sex digit must be "
            f"1, 2, 3, 4, 7 or 8"
        )
    return normalised


def _ins_key_unchecked(number13: str) -> str:
    # key = 97 - (number mod 97), 2 digits, with 2A -> 19 and 2B -> 18 (docs/mssante.md §4)
    dept = number13[_DEPT_START:_DEPT_END]
    numeric = number13[:_DEPT_START] + _CORSICA.get(dept, dept) + number13[_DEPT_END:]
    return f"{97 - int(numeric) % 97:02d}"


def ins_key(number13: str) -> str:
    """Return the 2-digit key of a 13-character NIR/NIA (``"1460263220001"`` -> ``"96"``)."""
    if len(number13) != INS_NUMBER_LENGTH:
        raise InvalidIdentifier(
            f"INS number {_show(number13)} must be {INS_NUMBER_LENGTH} characters, "
            f"got {len(number13)}"
        )
    number = _check_ins_number(number13, what=f"INS number {_show(number13)}")
    return _ins_key_unchecked(number)


def check_ins(value: str) -> Ins:
    """Validate an INS matricule (15 characters) and return its parts.

    Raises :class:`InvalidIdentifier` naming the problem: length, illegal characters, sex
    digit, or a wrong key ("INS 146026322000197 has a wrong key: expected 96, got 97").
    """
    if len(value) != INS_LENGTH:
        raise InvalidIdentifier(
            f"INS {_show(value)} must be {INS_LENGTH} characters, got {len(value)}"
        )
    what = f"INS {_show(value)}"
    number = _check_ins_number(value[:INS_NUMBER_LENGTH], what=what)
    key = value[INS_NUMBER_LENGTH:]
    bad_key = [f"{c!r} at position {i}" for i, c in enumerate(key, 14) if not _is_digit(c)]
    if bad_key:
        raise InvalidIdentifier(
            f"{what} contains illegal characters: {_list_bad(bad_key)} (the key is 2 digits)"
        )
    expected = _ins_key_unchecked(number)
    if key != expected:
        raise InvalidIdentifier(f"{what} has a wrong key: expected {expected}, got {key}")
    return Ins(matricule=number + key, number=number, key=key)


def is_valid_ins(value: str) -> bool:
    """True when ``value`` is a valid 15-character INS matricule."""
    try:
        check_ins(value)
    except InvalidIdentifier:
        return False
    return True


# --------------------------------------------------------------------------------------------
# National professional identifier: 8 + RPPS, 0 + ADELI
# --------------------------------------------------------------------------------------------

RPPS_PREFIX: Final = "8"
ADELI_PREFIX: Final = "0"
RPPS_LENGTH: Final = 11
ADELI_LENGTH: Final = 9

NationalIdKind = Literal["RPPS", "ADELI"]


@dataclass(frozen=True, slots=True)
class NationalId:
    """A syntactically valid national professional identifier."""

    value: str  # the full identifier: "8" + RPPS (12 chars) or "0" + ADELI (10 chars)
    kind: NationalIdKind
    number: str  # the RPPS (11 digits) or ADELI (9 characters) without the prefix


_LUHN_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_check_digit(digits: str) -> str:
    """Return the Luhn (ISO/IEC 7812-1 annex B) check digit to append to ``digits``."""
    if not _all_digits(digits):
        raise InvalidIdentifier(f"Luhn input {_show(digits)} must be a non-empty digit string")
    # Luhn: from the rightmost digit of the payload, double every other digit (starting with
    # it, since the check digit will be appended to its right), sum the digits of the results
    # (_LUHN_DOUBLED[d] = digit sum of 2*d) and the untouched digits.
    reversed_digits = digits[::-1]
    total = sum(_LUHN_DOUBLED[ord(c) - 48] for c in reversed_digits[0::2])
    total += sum(ord(c) - 48 for c in reversed_digits[1::2])
    return str((10 - total % 10) % 10)


def luhn_is_valid(digits: str) -> bool:
    """True when ``digits`` (check digit last) passes the Luhn check (ISO/IEC 7812-1)."""
    if len(digits) < 2 or not _all_digits(digits):
        return False
    return luhn_check_digit(digits[:-1]) == digits[-1]


def rpps_with_key(first10: str) -> str:
    """Append the Luhn check digit to a 10-digit RPPS stem (useful for demo data)."""
    if len(first10) != RPPS_LENGTH - 1:
        raise InvalidIdentifier(
            f"RPPS stem {_show(first10)} must be {RPPS_LENGTH - 1} digits, got {len(first10)}"
        )
    if not _all_digits(first10):
        raise InvalidIdentifier(f"RPPS stem {_show(first10)} must contain only digits")
    return first10 + luhn_check_digit(first10)


def _check_rpps(rpps: str, *, what: str) -> None:
    if len(rpps) != RPPS_LENGTH:
        raise InvalidIdentifier(
            f"{what} has a wrong length: an RPPS is {RPPS_LENGTH} digits, got {len(rpps)}"
        )
    bad = [f"{c!r} at position {i}" for i, c in enumerate(rpps, 1) if not _is_digit(c)]
    if bad:
        raise InvalidIdentifier(f"{what} contains non-digits in the RPPS: {_list_bad(bad)}")
    if not luhn_is_valid(rpps):
        raise InvalidIdentifier(
            f"{what} has a wrong RPPS check digit: expected {luhn_check_digit(rpps[:-1])}, "
            f"got {rpps[-1]} (Luhn)"
        )


def national_id_for_rpps(rpps: str) -> str:
    """Return the national identifier ``"8" + rpps`` after checking the RPPS."""
    _check_rpps(rpps, what=f"RPPS {_show(rpps)}")
    return RPPS_PREFIX + rpps


def _check_adeli(adeli: str, *, what: str) -> None:
    if len(adeli) != ADELI_LENGTH:
        raise InvalidIdentifier(
            f"{what} has a wrong length: an ADELI number is {ADELI_LENGTH} characters, "
            f"got {len(adeli)}"
        )
    # ADELI = department(2) + profession(2) + order(4) + key(1); our choice: accept Corsica's
    # 2A/2B as the department, as everywhere else in French administrative numbering.
    bad = [
        f"{c!r} at position {i}"
        for i, c in enumerate(adeli, 1)
        if not (_is_digit(c) or (i <= 2 and adeli[:2] in ("2A", "2B")))
    ]
    if bad:
        raise InvalidIdentifier(f"{what} contains non-digits in the ADELI: {_list_bad(bad)}")


def check_national_id(value: str) -> NationalId:
    """Validate a national professional identifier (docs/mssante.md §3).

    ``8`` + 11-digit RPPS whose last digit is a Luhn key (12 characters), or ``0`` + 9-character
    ADELI (10 characters). Raises :class:`InvalidIdentifier` with a clear message.
    """
    what = f"national identifier {_show(value)}"
    if not value:
        raise InvalidIdentifier("national identifier is empty")
    prefix, number = value[0], value[1:]
    if prefix == RPPS_PREFIX:
        if len(value) != 1 + RPPS_LENGTH:
            raise InvalidIdentifier(
                f"{what} must be {1 + RPPS_LENGTH} characters ('8' + 11-digit RPPS), "
                f"got {len(value)}"
            )
        _check_rpps(number, what=what)
        return NationalId(value=value, kind="RPPS", number=number)
    if prefix == ADELI_PREFIX:
        if len(value) != 1 + ADELI_LENGTH:
            raise InvalidIdentifier(
                f"{what} must be {1 + ADELI_LENGTH} characters ('0' + 9-character ADELI), "
                f"got {len(value)}"
            )
        _check_adeli(number, what=what)
        return NationalId(value=value, kind="ADELI", number=number)
    raise InvalidIdentifier(
        f"{what} has a wrong prefix {prefix!r}: it must start with '8' (RPPS) or '0' (ADELI)"
    )


def is_valid_national_id(value: str) -> bool:
    """True when ``value`` is a valid national professional identifier."""
    try:
        check_national_id(value)
    except InvalidIdentifier:
        return False
    return True

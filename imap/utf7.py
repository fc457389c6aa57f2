"""Modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

* Printable US-ASCII (0x20-0x7E) except ``&`` represents itself; ``&`` is written ``&-``.
* Any other run of characters is UTF-16BE, base64-encoded with ``,`` instead of ``/`` and no
  ``=`` padding, between ``&`` and ``-``.

:func:`decode_mailbox` is strict, as the RFC requires of the encoder: it refuses characters
outside printable ASCII on the wire, bad base64 (including non-zero padding bits), an ``&``
run that is not terminated by ``-``, printable ASCII hidden inside an ``&`` run (the encoding
would not be the shortest one), a null shift (``-&`` between two runs, RFC 3501 §5.1.3) and
unpaired UTF-16 surrogates. Every refusal is a :class:`ValueError` with a plain message.
"""

from __future__ import annotations

import binascii
from base64 import b64decode, b64encode

__all__ = ["UndecodableName", "decode_mailbox", "encode_mailbox"]

_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")


def _is_direct(char: str) -> bool:
    """Characters that stand for themselves (RFC 3501 §5.1.3: printable US-ASCII)."""
    return "\x20" <= char <= "\x7e"


def _encode_run(run: str) -> str:
    """``&`` + modified base64 of the UTF-16BE text + ``-``."""
    data = run.encode("utf-16-be")
    return "&" + b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-"


def encode_mailbox(name: str) -> str:
    """Encode a mailbox name for the wire (RFC 3501 §5.1.3).

    Raises :class:`ValueError` for text that has no UTF-16 form (lone surrogates).
    """
    if name.isascii() and "&" not in name and name.isprintable():
        return name
    out: list[str] = []
    run: list[str] = []
    for char in name:
        if _is_direct(char):
            if run:
                out.append(_encode_run("".join(run)))
                run.clear()
            out.append("&-" if char == "&" else char)
        else:
            if 0xD800 <= ord(char) <= 0xDFFF:
                raise ValueError(f"mailbox name contains a lone surrogate U+{ord(char):04X}")
            run.append(char)
    if run:
        out.append(_encode_run("".join(run)))
    return "".join(out)


def _decode_run(b64: str, start: int) -> str:
    """Decode the modified base64 between ``&`` and ``-`` (at index ``start`` of the name)."""
    bad = next((c for c in b64 if c not in _B64_CHARS), None)
    if bad is not None:
        raise ValueError(f"invalid modified base64 character {bad!r} at offset {start}")
    # Each UTF-16 unit is 16 bits: 1, 2, 3 units take 3, 6, 8 base64 characters (18, 36, 48
    # bits), so only lengths 0, 3, 6 mod 8 are possible; the 2 or 4 leftover bits must be zero
    # (checked below by re-encoding), otherwise the encoding is not canonical.
    if len(b64) % 8 not in (0, 3, 6):
        raise ValueError(f"modified base64 run at offset {start} has an impossible length")
    padded = b64.replace(",", "/") + "=" * (-len(b64) % 4)
    try:
        data = b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid modified base64 at offset {start}: {exc}") from None
    if len(data) % 2:
        raise ValueError(f"modified base64 run at offset {start} is not whole UTF-16 units")
    if b64encode(data).decode("ascii").rstrip("=").replace("/", ",") != b64:
        raise ValueError(f"modified base64 run at offset {start} has non-zero padding bits")
    units = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    chars: list[str] = []
    i = 0
    while i < len(units):
        unit = units[i]
        if 0xD800 <= unit <= 0xDBFF:
            if i + 1 >= len(units) or not 0xDC00 <= units[i + 1] <= 0xDFFF:
                raise ValueError(f"unpaired UTF-16 high surrogate at offset {start}")
            code = 0x10000 + ((unit - 0xD800) << 10) + (units[i + 1] - 0xDC00)
            i += 2
        elif 0xDC00 <= unit <= 0xDFFF:
            raise ValueError(f"unpaired UTF-16 low surrogate at offset {start}")
        else:
            code = unit
            i += 1
        char = chr(code)
        if _is_direct(char):
            raise ValueError(
                f"printable ASCII {char!r} is base64-encoded at offset {start} "
                "(modified UTF-7 requires it to represent itself)"
            )
        chars.append(char)
    return "".join(chars)


class UndecodableName(str):
    """A name sent as printable ASCII that is not valid modified UTF-7 (``&'`` ...): still a
    syntactically valid astring (RFC 3501 §9), so commands answer ``NO`` rather than ``BAD``.
    The text is the wire form as sent: it names no folder (stored names were all decoded and
    are re-encoded on the wire), matches no pattern, and a command that would give a folder
    this name refuses it (``reason`` says why)."""

    reason: str

    def __new__(cls, wire: str, reason: str) -> UndecodableName:
        name = super().__new__(cls, wire)
        name.reason = reason
        return name


def decode_mailbox(wire: str) -> str:
    """Decode a modified UTF-7 mailbox name; :class:`ValueError` if it is not valid."""
    if "&" not in wire:
        for index, char in enumerate(wire):
            if not _is_direct(char):
                raise ValueError(
                    f"invalid character {char!r} at offset {index} in mailbox name "
                    "(modified UTF-7 allows printable ASCII only)"
                )
        return wire
    out: list[str] = []
    i = 0
    after_run = False
    while i < len(wire):
        char = wire[i]
        if char == "&":
            end = wire.find("-", i + 1)
            if end < 0:
                raise ValueError(f"unterminated '&' at offset {i} in mailbox name")
            if end == i + 1:
                out.append("&")
                after_run = False
            else:
                if after_run:
                    raise ValueError(
                        f"null shift '-&' at offset {i - 1} in mailbox name "
                        "(adjacent base64 runs must be merged)"
                    )
                out.append(_decode_run(wire[i + 1 : end], i))
                after_run = True
            i = end + 1
            continue
        if not _is_direct(char):
            raise ValueError(
                f"invalid character {char!r} at offset {i} in mailbox name "
                "(modified UTF-7 allows printable ASCII only)"
            )
        out.append(char)
        after_run = False
        i += 1
    return "".join(out)

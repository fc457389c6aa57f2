"""What a file really is, whatever its sender declared.

Our own checks come first, for the types filing depends on: ZIP (then XDM, see
:mod:`filing.xdm`), CDA R2 (XML whose root is ``{urn:hl7-org:v3}ClinicalDocument``), DICOM
(``DICM`` at offset 128, DICOM PS3.10 §7.1); libmagic (python-magic) names the rest. A
declared Content-Type is only compared with the detected one (:func:`contradicts`), never
used to type a file.
"""

from __future__ import annotations

import re
from typing import Final

import magic

from filing.archive import is_zip

__all__ = [
    "CDA_TYPE",
    "DICOM_TYPE",
    "GENERIC_TYPES",
    "PDF_TYPE",
    "XML_TYPE",
    "ZIP_TYPE",
    "contradicts",
    "detect_type",
    "looks_like_cda",
    "normalise_type",
]

ZIP_TYPE: Final = "application/zip"
DICOM_TYPE: Final = "application/dicom"
PDF_TYPE: Final = "application/pdf"
XML_TYPE: Final = "text/xml"
CDA_TYPE: Final = XML_TYPE  # a CDA document is filed as text/xml (docs/mssante.md §6)

_DICOM_PREAMBLE: Final = 128  # DICOM PS3.10 §7.1: 128-byte preamble then "DICM"
_MAGIC_WINDOW: Final = 1024 * 1024  # libmagic's own default read limit (bytes_max)
_SNIFF_WINDOW: Final = 4096
_UNKNOWN: Final = "application/octet-stream"

# The first start tag after the prolog (XML declaration, processing instructions, comments
# and a DOCTYPE skipped: a CDA with a DOCTYPE must reach the parser to be refused).
_FIRST_TAG_RE: Final = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*|<!DOCTYPE[^\[>]*(?:\[.*?\])?\s*>\s*)*"
    rb"<(?:[A-Za-z_][\w.-]*:)?ClinicalDocument[\s>/]",
    re.DOTALL,
)
_XML_START_RE: Final = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<\?xml[\s?]")
_HL7_NAMESPACE: Final = b"urn:hl7-org:v3"

# Declarations that say nothing about the content: never a contradiction.
GENERIC_TYPES: Final = frozenset(
    {
        "",
        "application/octet-stream",
        "application/binary",
        "application/unknown",
        "application/x-download",
        "application/force-download",
        "binary/octet-stream",
    }
)
# Names of the same type in the wild.
_ALIASES: Final = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/x-tiff": "image/tiff",
    "application/x-pdf": "application/pdf",
    "application/acrobat": "application/pdf",
    "application/x-zip-compressed": ZIP_TYPE,
    "application/x-zip": ZIP_TYPE,
    "multipart/x-zip": ZIP_TYPE,
    "application/x-dicom": DICOM_TYPE,
    "application/xml": XML_TYPE,
}
# The types whose declaration we hold the sender to: the ones we file or open.
_CHECKED: Final = frozenset(
    {"application/pdf", "image/jpeg", "image/png", "image/tiff", DICOM_TYPE, ZIP_TYPE, XML_TYPE}
)


def looks_like_cda(data: bytes) -> bool:
    """Cheap sniff: the first element is ``ClinicalDocument`` in the HL7 v3 namespace.

    Only a hint to decide whether to parse (the parse in :mod:`filing.cda` decides); it lets
    XML that is not CDA (and would not be filed) go by unparsed and unrefused.
    """
    head = data[:_SNIFF_WINDOW]
    return _FIRST_TAG_RE.match(head) is not None and _HL7_NAMESPACE in head


def detect_type(data: bytes) -> str:
    """The media type of ``data`` from its bytes alone (lower case, no parameters)."""
    if is_zip(data):
        return ZIP_TYPE
    if data[_DICOM_PREAMBLE : _DICOM_PREAMBLE + 4] == b"DICM":
        return DICOM_TYPE
    if looks_like_cda(data) or _XML_START_RE.match(data[:_SNIFF_WINDOW]):
        return XML_TYPE
    try:
        found = magic.from_buffer(data[:_MAGIC_WINDOW], mime=True)
    except Exception:  # python-magic raises MagicException on libmagic errors
        return _UNKNOWN
    return normalise_type(str(found)) or _UNKNOWN


def normalise_type(media_type: str) -> str:
    """Lower case, parameters dropped, known aliases and ``+xml`` types folded."""
    base = media_type.split(";", 1)[0].strip().lower()
    if base.endswith("+xml"):
        return XML_TYPE
    return _ALIASES.get(base, base)


def contradicts(declared: str, detected: str) -> bool:
    """True when the declared type says the content is something it is not.

    A generic declaration (application/octet-stream...) never contradicts. Otherwise the two
    must agree when either is a type we file or open (PDF, images, DICOM, ZIP, XML): a "PDF"
    that is a PNG or an executable contradicts, and so does a "text/plain" that is a PDF.
    XML is text, so a text/* detection does not contradict an XML declaration.
    """
    declared = normalise_type(declared)
    detected = normalise_type(detected)
    if declared in GENERIC_TYPES or declared == detected:
        return False
    if declared == XML_TYPE and detected.startswith("text/"):
        return False
    return declared in _CHECKED or detected in _CHECKED

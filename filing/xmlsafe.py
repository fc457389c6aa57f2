"""Parsing untrusted XML (METADATA.XML, CDA documents) without its classic traps.

docs/mssante.md §6: "parse XML with entity expansion and external entities disabled". We go
further and refuse any DOCTYPE at all: neither ebRIM metadata nor a CDA R2 document has a
use for one, and refusing it outright closes billion-laughs (entity expansion), XXE
(``SYSTEM "file:///etc/passwd"``), external DTD fetches and parameter-entity tricks at once.
defusedxml does the refusing inside the expat callbacks, before anything is expanded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from filing.model import Refused

__all__ = ["XML_FORBIDDEN", "XML_INVALID", "XML_TOO_LARGE", "local_name", "parse_xml"]

XML_FORBIDDEN: Final = "xml-forbidden"  # DOCTYPE, entity declaration, external reference
XML_INVALID: Final = "xml-invalid"  # not well-formed, or not what it should be
XML_TOO_LARGE: Final = "xml-too-large"


def parse_xml(data: bytes, name: str, max_size: int) -> ET.Element:
    """Parse ``data`` (the file ``name``) and return its root element.

    Raises :class:`Refused`: ``xml-too-large`` beyond ``max_size`` bytes (checked before
    parsing), ``xml-forbidden`` for a DOCTYPE, an entity declaration or an external
    reference, ``xml-invalid`` when it is not well-formed XML.
    """
    if len(data) > max_size:
        raise Refused(
            XML_TOO_LARGE, f"{name} is {len(data)} bytes of XML, more than the {max_size} allowed"
        )
    try:
        root: ET.Element = fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as error:
        raise Refused(XML_FORBIDDEN, f"{name} {_what_is_forbidden(error)}") from None
    except ET.ParseError as error:
        raise Refused(XML_INVALID, f"{name} is not well-formed XML: {error}") from None
    except (ValueError, LookupError, UnicodeError) as error:
        # an unknown or multi-byte encoding declaration ends up here
        raise Refused(XML_INVALID, f"{name} cannot be read as XML: {error}") from None
    return root


def _what_is_forbidden(error: DefusedXmlException) -> str:
    """Say what defusedxml stopped, from its exception (DTDForbidden, EntitiesForbidden...)."""
    kind = type(error).__name__
    system_id = getattr(error, "sysid", None)
    where = f" referring to {system_id!r}" if system_id else ""
    if kind == "DTDForbidden":
        return f"declares a DOCTYPE{where}, which is refused (no DTD, no entities)"
    if kind == "EntitiesForbidden":
        return f"declares the entity {getattr(error, 'name', '')!r}{where}, which is refused"
    return f"has an external reference{where}, which is refused"


def local_name(tag: str) -> str:
    """``{urn:hl7-org:v3}ClinicalDocument`` -> ``ClinicalDocument``."""
    return tag.rsplit("}", 1)[-1]

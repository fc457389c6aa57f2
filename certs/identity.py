"""Who a certificate says its holder is, in MSSanté terms.

:func:`identity_of` reads an :class:`x509.Certificate` into a :class:`CertificateIdentity`:
the professional's national identifier for CPS-like certificates, the structure (OU) and
organisation (O) for server and organisation certificates, the normalised DN used for
liste-blanche matching, and the usual serial / fingerprint / validity facts.

Rule for :attr:`CertificateIdentity.kind`, first match wins:

1. the issuer's CN names a ``PERSONNES`` CA (IGC-Santé: "AC IGC-SANTE ... PERSONNES")
   -> ``"person"``;
2. the issuer's CN names an ``ORGANISATIONS`` CA -> ``"server"`` if the certificate's
   extendedKeyUsage includes serverAuth, else ``"org"``;
3. any other issuer: serverAuth in extendedKeyUsage -> ``"server"``; subject CN shaped like a
   national identifier (``8`` + 11 digits or ``0`` + 9 digits, optionally ``/suffix``) or
   emailProtection in extendedKeyUsage -> ``"person"``; otherwise ``"org"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from certs._io import StrPath, load_certificates, parse_certificates, read_file
from certs.dn import dn_of_name, name_to_text
from certs.errors import CertificateLoadError

__all__ = [
    "CertificateIdentity",
    "CertificateLoadError",
    "IdentityKind",
    "identity_of",
    "load_certificate",
    "load_pem_chain",
    "national_id_of",
]

IdentityKind = Literal["person", "org", "server"]

# 8 + RPPS (11 digits) or 0 + ADELI (9 digits); CPS certificates may append "/<suffix>".
_NATIONAL_ID_CN = re.compile(r"(8\d{11}|0\d{9})(?:/.*)?\Z", re.DOTALL)


@dataclass(frozen=True)
class CertificateIdentity:
    """Identity facts read from a certificate (see the module docstring for ``kind``)."""

    kind: IdentityKind
    common_name: str | None
    national_id: str | None  # persons only: "8"+RPPS or "0"+ADELI
    structure_id: str | None  # first OU (SIRET / FINESS-based structure identifier)
    organisation: str | None  # first O
    given_name: str | None
    surname: str | None
    subject_dn: str  # normalised (certs.dn), for comparisons with the liste blanche
    subject_dn_text: str  # RFC 4514 as written in the certificate
    issuer_dn: str  # normalised
    issuer_dn_text: str
    serial_hex: str  # lower case, no separators
    fingerprint_sha256: str  # lower-case hex of the DER certificate's SHA-256
    not_before: datetime  # aware, UTC
    not_after: datetime  # aware, UTC
    dns_names: tuple[str, ...]  # subjectAltName dNSName entries


def _first(name: x509.Name, oid: ObjectIdentifier) -> str | None:
    for attribute in name.get_attributes_for_oid(oid):
        value = attribute.value
        return value if isinstance(value, str) else value.hex()
    return None


def _usages(cert: x509.Certificate) -> set[ObjectIdentifier]:
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


def _kind(cert: x509.Certificate, common_name: str | None) -> IdentityKind:
    issuer_cn = (_first(cert.issuer, NameOID.COMMON_NAME) or "").upper()
    usages = _usages(cert)
    if "PERSONNES" in issuer_cn:
        return "person"
    if "ORGANISATIONS" in issuer_cn:
        return "server" if ExtendedKeyUsageOID.SERVER_AUTH in usages else "org"
    if ExtendedKeyUsageOID.SERVER_AUTH in usages:
        return "server"
    if (common_name is not None and _NATIONAL_ID_CN.match(common_name)) or (
        ExtendedKeyUsageOID.EMAIL_PROTECTION in usages
    ):
        return "person"
    return "org"


def national_id_of(common_name: str | None) -> str | None:
    """The national identifier carried by a CPS-style CN (``899700218896/xyz`` -> ``8997...``)."""
    if common_name is None:
        return None
    match = _NATIONAL_ID_CN.match(common_name.strip())
    return match.group(1) if match else None


def identity_of(cert: x509.Certificate) -> CertificateIdentity:
    """Read the MSSanté identity of a certificate."""
    subject = cert.subject
    common_name = _first(subject, NameOID.COMMON_NAME)
    kind = _kind(cert, common_name)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns_names = ()
    return CertificateIdentity(
        kind=kind,
        common_name=common_name,
        national_id=national_id_of(common_name) if kind == "person" else None,
        structure_id=_first(subject, NameOID.ORGANIZATIONAL_UNIT_NAME),
        organisation=_first(subject, NameOID.ORGANIZATION_NAME),
        given_name=_first(subject, NameOID.GIVEN_NAME),
        surname=_first(subject, NameOID.SURNAME),
        subject_dn=dn_of_name(subject),
        subject_dn_text=name_to_text(subject),
        issuer_dn=dn_of_name(cert.issuer),
        issuer_dn_text=name_to_text(cert.issuer),
        serial_hex=format(cert.serial_number, "x"),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        dns_names=dns_names,
    )


def load_certificate(path: StrPath) -> x509.Certificate:
    """The certificate in a PEM or DER file (the first one, the leaf, of a PEM chain).

    Raises :class:`CertificateLoadError` (a ``ValueError``) naming the file and the problem.
    """
    return load_certificates(path)[0]


def load_pem_chain(path: StrPath) -> list[x509.Certificate]:
    """Every certificate of a PEM file, in file order (leaf first for a chain file)."""
    file = Path(path)
    data = read_file(file, "certificate chain")
    if b"-----BEGIN" not in data:
        raise CertificateLoadError(f"certificate chain file {file} is not PEM")
    return parse_certificates(data, f"certificate chain file {file}")

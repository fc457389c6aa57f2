"""A development PKI shaped like the IGC-Santé TEST range.

Production MSSanté certificates come from the IGC-Santé (the French health PKI): a root
"AC RACINE IGC-SANTE ELEMENTAIRE" and intermediates "AC IGC-SANTE ELEMENTAIRE PERSONNES"
(professionals' CPS / e-CPS certificates) and "AC IGC-SANTE ELEMENTAIRE ORGANISATIONS"
(server, organisation and software certificates). :class:`DevPKI` builds the same shape with
``TEST`` names so that development and tests exercise the real code paths: mutual TLS between
operators, SASL EXTERNAL for professionals and APP mailboxes, liste-blanche DN matching and
CRL-based revocation.

Layout of a PKI directory::

    index.json                    issued certificates, revocations, CRL numbers
    ca/root.crt  ca/root.key                     TEST AC RACINE IGC-SANTE ELEMENTAIRE
    ca/personnes.crt  ca/personnes.key           TEST AC IGC-SANTE ELEMENTAIRE PERSONNES
    ca/organisations.crt  ca/organisations.key   TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS
    trust/roots.pem               the root (trust anchor for TLS and TrustStore)
    trust/intermediates.pem       both intermediates
    trust/ca-bundle.pem           root + intermediates
    crl/root.crl.pem  crl/personnes.crl.pem  crl/organisations.crl.pem
    issued/<kind>-<name>.crt      leaf certificate (PEM)
    issued/<kind>-<name>.key      its private key (PEM, unencrypted, mode 0600)
    issued/<kind>-<name>.chain.pem  leaf + issuing intermediate (what a TLS peer sends)

Keys are RSA (3072 bits for CAs, 2048 for leaves): the MSSanté TLS 1.2 suites are ECDHE-RSA,
so servers need RSA certificates. Everything is signed with SHA-256. Nothing here is meant for
production use: keys are stored unencrypted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs._io import StrPath, write_atomic
from certs.dn import name_to_text
from certs.errors import PKIError

if TYPE_CHECKING:  # imported lazily at run time: truststore does not need the PKI
    from certs.truststore import TrustStore

__all__ = [
    "CA_NAMES",
    "DEFAULT_ORGANISATION",
    "CAName",
    "CertificateKind",
    "DevPKI",
    "IssuedCertificate",
    "PKIError",
]

CertificateKind = Literal["person", "org", "server"]
CAName = Literal["root", "personnes", "organisations"]

DEFAULT_ORGANISATION = "MSSANTE DEV"
#: Common names of the three CAs, as in the IGC-Santé TEST range.
CA_NAMES: dict[CAName, str] = {
    "root": "TEST AC RACINE IGC-SANTE ELEMENTAIRE",
    "personnes": "TEST AC IGC-SANTE ELEMENTAIRE PERSONNES",
    "organisations": "TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS",
}
_CA_OU = "IGC-SANTE TEST"
_INDEX_FORMAT = 1
CA_KEY_BITS = 3072
LEAF_KEY_BITS = 2048
CA_VALIDITY = timedelta(days=3653)  # 10 years
LEAF_VALIDITY = timedelta(days=1096)  # 3 years
CRL_VALIDITY = timedelta(days=7)
# Backdating absorbs clock skew between the machine issuing and the one verifying.
_BACKDATE = timedelta(minutes=10)

_NATIONAL_ID = re.compile(r"(?:8\d{11}|0\d{9})\Z")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_SAFE = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf certificate issued by a :class:`DevPKI`, as recorded in ``index.json``."""

    kind: CertificateKind
    serial: str  # lower-case hex, no separators
    subject_dn: str  # RFC 4514 text as issued (most specific RDN first)
    cert_path: Path
    key_path: Path
    chain_path: Path
    not_after: datetime
    not_before: datetime
    issuer: CAName
    revoked_at: datetime | None = None
    revocation_reason: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def certificate(self) -> x509.Certificate:
        """Load the certificate from :attr:`cert_path`."""
        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())


def _utc(value: datetime) -> datetime:
    """Aware UTC datetime (naive values are taken as UTC, as cryptography does)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _parse_serial(serial: int | str) -> int:
    if isinstance(serial, int):
        return serial
    text = serial.strip().lower().replace(":", "").replace(" ", "")
    text = text.removeprefix("0x")
    try:
        return int(text, 16)
    except ValueError:
        raise ValueError(f"serial {serial!r} is not a hexadecimal number") from None


def _check_hostname(hostname: str, *, wildcard: bool) -> str:
    """A DNS name usable in a dNSName SAN (RFC 5280 §4.2.1.6: preferred name syntax)."""
    name = hostname.strip().rstrip(".")
    labels = name.split(".")
    if wildcard and labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if (
        not name
        or len(name) > 253
        or not name.isascii()
        or not all(_DNS_LABEL.match(label) for label in labels)
    ):
        raise ValueError(f"{hostname!r} is not a valid DNS host name (use the IDNA A-label form)")
    return name


def _required(value: str, what: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError(f"{what} must not be empty")
    return text


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class _CA:
    """One certificate authority loaded from ``ca/<name>.crt|key``."""

    def __init__(self, name: CAName, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> None:
        self.name = name
        self.cert = cert
        self.key = key


class DevPKI:
    """A development PKI stored in a directory (see the module docstring for the layout).

    Use :meth:`create` once, then :meth:`open`. Argument errors raise ``ValueError``; problems
    with the directory raise :class:`PKIError`. One writer at a time: two processes issuing
    into the same directory would overwrite each other's ``index.json``.
    """

    def __init__(self, directory: Path, cas: dict[CAName, _CA], index: dict[str, Any]) -> None:
        self._directory = directory
        self._cas = cas
        self._index = index

    # ------------------------------------------------------------------ paths

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def organisation(self) -> str:
        return str(self._index["organisation"])

    @property
    def index_path(self) -> Path:
        return self._directory / "index.json"

    @property
    def root_cert_path(self) -> Path:
        return self._ca_cert_path("root")

    @property
    def trust_roots_path(self) -> Path:
        """PEM file with the root: the trust anchor to configure in peers."""
        return self._directory / "trust" / "roots.pem"

    @property
    def trust_intermediates_path(self) -> Path:
        return self._directory / "trust" / "intermediates.pem"

    @property
    def ca_bundle_path(self) -> Path:
        return self._directory / "trust" / "ca-bundle.pem"

    @property
    def crl_dir(self) -> Path:
        return self._directory / "crl"

    def crl_path(self, ca: CAName) -> Path:
        return self.crl_dir / f"{ca}.crl.pem"

    @property
    def crl_paths(self) -> dict[CAName, Path]:
        return {name: self.crl_path(name) for name in CA_NAMES}

    def _ca_cert_path(self, ca: CAName) -> Path:
        return self._directory / "ca" / f"{ca}.crt"

    def _ca_key_path(self, ca: CAName) -> Path:
        return self._directory / "ca" / f"{ca}.key"

    def ca_certificate(self, ca: CAName) -> x509.Certificate:
        """The certificate of one of the three CAs."""
        return self._cas[ca].cert

    # --------------------------------------------------------- create / open

    @classmethod
    def create(
        cls,
        directory: StrPath,
        organisation: str = DEFAULT_ORGANISATION,
        *,
        now: datetime | None = None,
    ) -> DevPKI:
        """Create the three CAs, trust bundles and empty CRLs in ``directory``.

        Refuses (:class:`PKIError`) when the directory already holds a PKI.
        """
        root_dir = Path(directory)
        organisation = _required(organisation, "organisation")
        if (root_dir / "index.json").exists() or (root_dir / "ca").exists():
            raise PKIError(f"{root_dir} already holds a PKI; open it with DevPKI.open()")
        if root_dir.exists() and not root_dir.is_dir():
            raise PKIError(f"{root_dir} exists and is not a directory")
        start = _utc(now) if now is not None else _now()
        not_before, not_after = start - _BACKDATE, start + CA_VALIDITY

        root_key = rsa.generate_private_key(public_exponent=65537, key_size=CA_KEY_BITS)
        root_name = cls._ca_name(CA_NAMES["root"], organisation)
        root_cert = cls._build_ca(
            root_name, root_key, root_name, root_key, not_before, not_after, path_length=1
        )
        cas: dict[CAName, _CA] = {"root": _CA("root", root_cert, root_key)}
        for sub in ("personnes", "organisations"):
            key = rsa.generate_private_key(public_exponent=65537, key_size=CA_KEY_BITS)
            cert = cls._build_ca(
                cls._ca_name(CA_NAMES[sub], organisation),
                key,
                root_name,
                root_key,
                not_before,
                not_after,
                path_length=0,
                issuer_cert=root_cert,
            )
            cas[sub] = _CA(sub, cert, key)

        index: dict[str, Any] = {
            "format": _INDEX_FORMAT,
            "organisation": organisation,
            "created": start.isoformat(),
            "crl_numbers": {name: 0 for name in CA_NAMES},
            "issued": [],
        }
        pki = cls(root_dir, cas, index)
        for name, ca in cas.items():
            write_atomic(pki._ca_key_path(name), _pem_key(ca.key), 0o600)
            write_atomic(pki._ca_cert_path(name), _pem(ca.cert))
        write_atomic(pki.trust_roots_path, _pem(root_cert))
        intermediates = _pem(cas["personnes"].cert) + _pem(cas["organisations"].cert)
        write_atomic(pki.trust_intermediates_path, intermediates)
        write_atomic(pki.ca_bundle_path, _pem(root_cert) + intermediates)
        (root_dir / "issued").mkdir(exist_ok=True)
        pki.regenerate_crls(this_update=start)  # also writes index.json
        return pki

    @classmethod
    def open(cls, directory: StrPath) -> DevPKI:
        """Open an existing PKI; :class:`PKIError` names what is missing or corrupt."""
        root_dir = Path(directory)
        if not root_dir.is_dir():
            raise PKIError(f"PKI directory {root_dir} does not exist")
        index_path = root_dir / "index.json"
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PKIError(f"{root_dir} holds no PKI ({index_path} is missing)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PKIError(f"{index_path} is not a valid PKI index: {exc}") from None
        if (
            not isinstance(index, dict)
            or index.get("format") != _INDEX_FORMAT
            or not isinstance(index.get("issued"), list)
            or not isinstance(index.get("crl_numbers"), dict)
            or not isinstance(index.get("organisation"), str)
        ):
            raise PKIError(f"{index_path} is not a PKI index of format {_INDEX_FORMAT}")
        cas: dict[CAName, _CA] = {}
        pki = cls(root_dir, cas, index)
        for name in CA_NAMES:
            cas[name] = pki._load_ca(name)
        for name in ("personnes", "organisations"):
            try:
                cas[name].cert.verify_directly_issued_by(cas["root"].cert)
            except Exception:
                raise PKIError(
                    f"{pki._ca_cert_path(name)} was not issued by {pki.root_cert_path}"
                ) from None
        try:
            pki.list_issued()
        except (KeyError, TypeError, ValueError) as exc:
            raise PKIError(f"{index_path} has a malformed entry: {exc!r}") from None
        return pki

    def _load_ca(self, name: CAName) -> _CA:
        cert_path, key_path = self._ca_cert_path(name), self._ca_key_path(name)
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except FileNotFoundError:
            raise PKIError(f"CA certificate {cert_path} is missing") from None
        except (OSError, ValueError) as exc:
            raise PKIError(f"CA certificate {cert_path} is unreadable: {exc}") from None
        try:
            # OpenSSL's RSA consistency check costs ~0.2 s per 3072-bit key; comparing the
            # public numbers with the certificate below is the check that matters here.
            key = serialization.load_pem_private_key(
                key_path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
            )
        except FileNotFoundError:
            raise PKIError(f"CA private key {key_path} is missing") from None
        except (OSError, ValueError, TypeError) as exc:
            raise PKIError(f"CA private key {key_path} is unreadable: {exc}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise PKIError(f"CA private key {key_path} is not an RSA key")
        if key.public_key().public_numbers() != _rsa_public(cert).public_numbers():
            raise PKIError(f"CA private key {key_path} does not match {cert_path}")
        return _CA(name, cert, key)

    # ----------------------------------------------------------- certificates

    @staticmethod
    def _ca_name(common_name: str, organisation: str) -> x509.Name:
        # Encoding order C, O, OU, CN -> RFC 4514 text "CN=...,OU=...,O=...,C=FR".
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, _CA_OU),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )

    @staticmethod
    def _build_ca(
        subject: x509.Name,
        key: rsa.RSAPrivateKey,
        issuer: x509.Name,
        issuer_key: rsa.RSAPrivateKey,
        not_before: datetime,
        not_after: datetime,
        *,
        path_length: int,
        issuer_cert: x509.Certificate | None = None,
    ) -> x509.Certificate:
        public = key.public_key()
        if issuer_cert is None:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(public)
        else:
            aki = _aki_from(issuer_cert)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            # RFC 5280 §4.2.1.9: CA certificates carry a critical basicConstraints cA=TRUE.
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
            # RFC 5280 §4.2.1.3: keyCertSign and cRLSign for a CA that signs CRLs too.
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
            .add_extension(aki, False)
        )
        return builder.sign(issuer_key, hashes.SHA256())

    def issue_server(
        self,
        hostname: str,
        *,
        organisation: str,
        structure_id: str,
        state: str = "Paris (75)",
        alt_names: Sequence[str] = (),
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        validity: timedelta = LEAF_VALIDITY,
    ) -> IssuedCertificate:
        """Issue an operator server certificate (ORGANISATIONS CA).

        Subject ``CN=<hostname>,OU=<structure_id>,O=<organisation>,ST=<state>,C=FR``, the
        shape of liste-blanche ``DNCertificatOperateur`` entries; dNSName SANs for the host
        name and ``alt_names``; EKU serverAuth + clientAuth since a peer operator's SMTP host
        both accepts and opens mutual-TLS connections.
        """
        host = _check_hostname(hostname, wildcard=False)
        names = [host] + [
            n for n in (_check_hostname(a, wildcard=True) for a in alt_names) if n != host
        ]
        subject = _org_subject(host, structure_id, organisation, state)
        san = x509.SubjectAlternativeName([x509.DNSName(n) for n in dict.fromkeys(names)])
        return self._issue(
            kind="server",
            ca="organisations",
            subject=subject,
            file_stem=f"server-{host}",
            eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            san=san,
            not_before=not_before,
            not_after=not_after,
            validity=validity,
        )

    def issue_person(
        self,
        national_id: str,
        *,
        given_name: str,
        surname: str,
        profession: str = "Médecin",
        structure_id: str | None = None,
        organisation: str | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        validity: timedelta = LEAF_VALIDITY,
    ) -> IssuedCertificate:
        """Issue a professional's certificate (PERSONNES CA), like a CPS / e-CPS one.

        The national identifier (``8`` + RPPS, 12 characters, or ``0`` + ADELI, 10) is the
        subject CN; GN, SN, TITLE (profession), OU / O when given, C=FR. EKU clientAuth
        (SASL EXTERNAL over TLS) + emailProtection.
        """
        national_id = national_id.strip()
        if not _NATIONAL_ID.match(national_id):
            raise ValueError(
                f"national identifier {national_id!r} is neither 8+RPPS (12 digits) "
                "nor 0+ADELI (10 digits)"
            )
        attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]
        if organisation is not None:
            attributes.append(
                x509.NameAttribute(
                    NameOID.ORGANIZATION_NAME, _required(organisation, "organisation")
                )
            )
        if structure_id is not None:
            attributes.append(
                x509.NameAttribute(
                    NameOID.ORGANIZATIONAL_UNIT_NAME, _required(structure_id, "structure_id")
                )
            )
        attributes += [
            x509.NameAttribute(NameOID.TITLE, _required(profession, "profession")),
            x509.NameAttribute(NameOID.GIVEN_NAME, _required(given_name, "given_name")),
            x509.NameAttribute(NameOID.SURNAME, _required(surname, "surname")),
            x509.NameAttribute(NameOID.COMMON_NAME, national_id),
        ]
        return self._issue(
            kind="person",
            ca="personnes",
            subject=x509.Name(attributes),
            file_stem=f"person-{national_id}",
            eku=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION],
            san=None,
            not_before=not_before,
            not_after=not_after,
            validity=validity,
        )

    def issue_org(
        self,
        name: str,
        *,
        structure_id: str,
        organisation: str,
        state: str = "Paris (75)",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        validity: timedelta = LEAF_VALIDITY,
    ) -> IssuedCertificate:
        """Issue an organisation / software (APP mailbox) certificate (ORGANISATIONS CA).

        Subject ``CN=<name>,OU=<structure_id>,O=<organisation>,ST=<state>,C=FR``, EKU
        clientAuth only (it authenticates, it never serves).
        """
        common_name = _required(name, "name")
        subject = _org_subject(common_name, structure_id, organisation, state)
        return self._issue(
            kind="org",
            ca="organisations",
            subject=subject,
            file_stem=f"org-{common_name}",
            eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
            san=None,
            not_before=not_before,
            not_after=not_after,
            validity=validity,
        )

    def _issue(
        self,
        *,
        kind: CertificateKind,
        ca: CAName,
        subject: x509.Name,
        file_stem: str,
        eku: list[x509.ObjectIdentifier],
        san: x509.SubjectAlternativeName | None,
        not_before: datetime | None,
        not_after: datetime | None,
        validity: timedelta,
    ) -> IssuedCertificate:
        issuer = self._cas[ca]
        start = _utc(not_before) if not_before is not None else _now() - _BACKDATE
        end = _utc(not_after) if not_after is not None else start + validity
        if end <= start:
            raise ValueError(f"not_after ({end.isoformat()}) must be after not_before")
        key = rsa.generate_private_key(public_exponent=65537, key_size=LEAF_KEY_BITS)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            # RFC 5280 §4.2.1.3 / RFC 5246 §7.4.2: digitalSignature for ECDHE_RSA,
            # keyEncipherment for RSA key transport (S/MIME, legacy TLS).
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            )
            # RFC 5280 §4.2.1.12
            .add_extension(x509.ExtendedKeyUsage(eku), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(_aki_from(issuer.cert), False)
        )
        if san is not None:
            builder = builder.add_extension(san, False)
        cert = builder.sign(issuer.key, hashes.SHA256())

        stem = self._unique_stem(file_stem)
        issued_dir = self._directory / "issued"
        cert_path = issued_dir / f"{stem}.crt"
        key_path = issued_dir / f"{stem}.key"
        chain_path = issued_dir / f"{stem}.chain.pem"
        write_atomic(key_path, _pem_key(key), 0o600)
        write_atomic(chain_path, _pem(cert) + _pem(issuer.cert))
        write_atomic(cert_path, _pem(cert))  # last: its presence reserves the stem

        entry: dict[str, Any] = {
            "serial": format(cert.serial_number, "x"),
            "kind": kind,
            "issuer": ca,
            "subject": name_to_text(cert.subject),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "cert": self._relative(cert_path),
            "key": self._relative(key_path),
            "chain": self._relative(chain_path),
            "revoked": False,
            "revocation_date": None,
            "revocation_reason": None,
        }
        self._index["issued"].append(entry)
        self.regenerate_crls()  # also saves index.json
        return self._record(entry)

    def _unique_stem(self, wanted: str) -> str:
        """File stem derived from the subject; ``-2``, ``-3``... when reissued."""
        base = _SAFE.sub("_", wanted.lower()).strip("._-") or "certificate"
        issued_dir = self._directory / "issued"
        stem, number = base, 1
        while (issued_dir / f"{stem}.crt").exists() or (issued_dir / f"{stem}.key").exists():
            number += 1
            stem = f"{base}-{number}"
        return stem

    def _relative(self, path: Path) -> str:
        return path.relative_to(self._directory).as_posix()

    def _record(self, entry: dict[str, Any]) -> IssuedCertificate:
        revoked_at = entry.get("revocation_date")
        kind = entry["kind"]
        issuer = entry["issuer"]
        if kind not in ("person", "org", "server") or issuer not in CA_NAMES:
            raise ValueError(f"unknown kind {kind!r} or issuer {issuer!r}")
        return IssuedCertificate(
            kind=cast(CertificateKind, kind),
            serial=str(entry["serial"]),
            subject_dn=str(entry["subject"]),
            cert_path=self._directory / entry["cert"],
            key_path=self._directory / entry["key"],
            chain_path=self._directory / entry["chain"],
            not_after=datetime.fromisoformat(entry["not_after"]),
            not_before=datetime.fromisoformat(entry["not_before"]),
            issuer=cast(CAName, issuer),
            revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
            revocation_reason=entry.get("revocation_reason"),
        )

    def list_issued(self, kind: CertificateKind | None = None) -> list[IssuedCertificate]:
        """Issued leaf certificates, oldest first, optionally of one kind."""
        records = [self._record(entry) for entry in self._index["issued"]]
        return [r for r in records if kind is None or r.kind == kind]

    def get(self, serial: int | str) -> IssuedCertificate:
        """The issued certificate with this serial (int, or hex with optional colons)."""
        return self._record(self._entry(serial))

    def _entry(self, serial: int | str) -> dict[str, Any]:
        number = _parse_serial(serial)
        for entry in self._index["issued"]:
            if int(entry["serial"], 16) == number:
                return cast(dict[str, Any], entry)
        raise PKIError(f"no certificate with serial {number:x} was issued by this PKI")

    # ------------------------------------------------------------- revocation

    def revoke(
        self,
        serial: int | str,
        reason: x509.ReasonFlags | str = x509.ReasonFlags.unspecified,
        *,
        revoked_at: datetime | None = None,
    ) -> IssuedCertificate:
        """Revoke an issued certificate and regenerate the CRLs.

        ``reason`` is a :class:`x509.ReasonFlags` or its RFC 5280 §5.3.1 name
        (``"keyCompromise"``, ``"superseded"``...). Revoking twice is refused.
        """
        if isinstance(reason, str):
            try:
                reason = x509.ReasonFlags(reason)
            except ValueError:
                choices = ", ".join(r.value for r in x509.ReasonFlags)
                raise ValueError(f"unknown revocation reason {reason!r} ({choices})") from None
        if reason in (x509.ReasonFlags.remove_from_crl, x509.ReasonFlags.aa_compromise):
            raise ValueError(f"reason {reason.value} cannot be used to revoke a certificate")
        entry = self._entry(serial)
        if entry["revoked"]:
            raise PKIError(
                f"certificate {entry['serial']} ({entry['subject']}) was already revoked on "
                f"{entry['revocation_date']}"
            )
        when = _utc(revoked_at) if revoked_at is not None else _now()
        entry["revoked"] = True
        entry["revocation_date"] = when.isoformat()
        entry["revocation_reason"] = reason.value
        self.regenerate_crls()
        return self._record(entry)

    def regenerate_crls(
        self,
        *,
        this_update: datetime | None = None,
        next_update: datetime | None = None,
    ) -> dict[CAName, Path]:
        """Write a fresh CRL for each CA (new CRL number) and save the index.

        RFC 5280 §5: thisUpdate / nextUpdate (default: now + 7 days), cRLNumber (§5.2.3),
        authorityKeyIdentifier (§5.2.1), reasonCode on entries unless unspecified (§5.3.1).
        """
        start = _utc(this_update) if this_update is not None else _now()
        end = _utc(next_update) if next_update is not None else start + CRL_VALIDITY
        if end <= start:
            raise ValueError("next_update must be after this_update")
        numbers: dict[str, int] = self._index["crl_numbers"]
        written: dict[CAName, Path] = {}
        for name, ca in self._cas.items():
            numbers[name] = int(numbers.get(name, 0)) + 1
            builder = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(ca.cert.subject)
                .last_update(start)
                .next_update(end)
                .add_extension(x509.CRLNumber(numbers[name]), False)
                .add_extension(_aki_from(ca.cert), False)
            )
            for entry in self._index["issued"]:
                if entry["issuer"] != name or not entry["revoked"]:
                    continue
                revoked = (
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(entry["serial"], 16))
                    .revocation_date(datetime.fromisoformat(entry["revocation_date"]))
                )
                reason = x509.ReasonFlags(entry["revocation_reason"] or "unspecified")
                if reason is not x509.ReasonFlags.unspecified:
                    revoked = revoked.add_extension(x509.CRLReason(reason), False)
                builder = builder.add_revoked_certificate(revoked.build())
            crl = builder.sign(ca.key, hashes.SHA256())
            path = self.crl_path(name)
            write_atomic(path, crl.public_bytes(serialization.Encoding.PEM))
            written[name] = path
        self._save_index()
        return written

    def _save_index(self) -> None:
        data = json.dumps(self._index, indent=2, ensure_ascii=False) + "\n"
        write_atomic(self.index_path, data.encode("utf-8"))

    # ------------------------------------------------------------ convenience

    def trust_store(self, *, strict_crl: bool = False) -> TrustStore:
        """A :class:`~certs.truststore.TrustStore` over this PKI's root, intermediates, CRLs."""
        from certs.truststore import TrustStore

        return TrustStore.from_paths(
            roots=[self.trust_roots_path],
            intermediates=[self.trust_intermediates_path],
            crls=[self.crl_dir],
            strict_crl=strict_crl,
        )

    def __repr__(self) -> str:
        return f"DevPKI({str(self._directory)!r}, issued={len(self._index['issued'])})"


def _org_subject(common_name: str, structure_id: str, organisation: str, state: str) -> x509.Name:
    # Encoding order C, ST, O, OU, CN -> RFC 4514 text CN=...,OU=...,O=...,ST=...,C=FR.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, _required(state, "state")),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _required(organisation, "organisation")),
            x509.NameAttribute(
                NameOID.ORGANIZATIONAL_UNIT_NAME, _required(structure_id, "structure_id")
            ),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _rsa_public(cert: x509.Certificate) -> rsa.RSAPublicKey:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise PKIError("CA certificate does not hold an RSA key")
    return key


def _aki_from(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """RFC 5280 §4.2.1.1: the AKI of a child is the issuer's subject key identifier."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(_rsa_public(issuer))
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

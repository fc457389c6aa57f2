"""Certificate path validation against configured IGC-Santé roots, with CRLs.

The IGC-Santé roots are not in public trust stores, and MSSanté asks operators to check peer
and client certificates against CRLs, "keeping the last good CRL when a download fails". The
:class:`TrustStore` here does that without OpenSSL's directory conventions:

* chain building (RFC 5280 §6.1, simplified): from the leaf, find a certificate whose subject
  matches the issuer name (compared after :mod:`certs.dn` normalisation, RFC 5280 §7.1) and
  whose key verifies the signature (``verify_directly_issued_by``), trust anchors first, then
  the intermediates given with the leaf, then the configured ones; issuers must be CAs
  (basicConstraints cA, §4.2.1.9; keyCertSign when keyUsage is present, §4.2.1.3) within
  their pathLenConstraint;
* validity (§4.1.2.5) of every certificate of the chain at the checked time;
* revocation (§6.3) of every non-anchor certificate against its issuer's CRL, the CRL being
  used only if its signature verifies with the issuer's key (§6.3.3 (f)). A CRL past its
  nextUpdate is still used and reported in :attr:`Verification.warnings`. Without a CRL for
  an issuer the result is a warning, or a failure with ``strict_crl=True``.

:meth:`TrustStore.reload_crls` re-reads CRL files and directories; a file that fails to load,
verify, or goes backwards (lower cRLNumber) is reported and the last good CRL from that file
is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from certs._io import CERT_SUFFIXES, CRL_SUFFIXES, StrPath, expand, pem_blocks, pem_labels
from certs._io import load_certificates as _load_certificates
from certs.dn import dn_of_name, name_to_text
from certs.errors import CertificateLoadError, TrustStoreError

__all__ = ["LoadedCRL", "TrustStore", "TrustStoreError", "Verification"]

#: Longest chain accepted (leaf + intermediates + anchor).
MAX_CHAIN_LENGTH = 8

_PURPOSE_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "TLS server authentication",
    ExtendedKeyUsageOID.CLIENT_AUTH: "TLS client authentication",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "e-mail protection",
}


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


@dataclass(frozen=True)
class Verification:
    """Outcome of :meth:`TrustStore.verify`; true in a boolean context when ``ok``."""

    ok: bool
    reason: str  # "ok", or which check failed and why
    chain: tuple[x509.Certificate, ...] = ()  # leaf first, trust anchor last (when built)
    warnings: tuple[str, ...] = ()  # stale or missing CRLs that did not cause a failure

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class LoadedCRL:
    """A CRL held by the trust store, with where it came from."""

    crl: x509.CertificateRevocationList
    source: str
    issuer_dn: str  # normalised (certs.dn)
    issuer_text: str  # RFC 4514
    number: int | None  # cRLNumber, RFC 5280 §5.2.3
    this_update: datetime
    next_update: datetime | None

    @property
    def revoked_count(self) -> int:
        return len(self.crl)

    def is_newer_than(self, other: LoadedCRL) -> bool:
        if self.number is not None and other.number is not None:
            return self.number > other.number
        return self.this_update > other.this_update


def _describe(crl: x509.CertificateRevocationList, source: str) -> LoadedCRL:
    try:
        number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    return LoadedCRL(
        crl=crl,
        source=source,
        issuer_dn=dn_of_name(crl.issuer),
        issuer_text=name_to_text(crl.issuer),
        number=number,
        this_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
    )


def _parse_crls(data: bytes, source: str) -> list[x509.CertificateRevocationList]:
    """CRLs in PEM (``X509 CRL`` blocks, RFC 7468 §6) or one DER CRL."""
    if b"-----BEGIN" in data:
        blocks = pem_blocks(data, "X509 CRL")
        if not blocks:
            labels = ", ".join(sorted(set(pem_labels(data)))) or "nothing usable"
            raise TrustStoreError(f"CRL file {source} holds no PEM CRL (found: {labels})")
        crls = []
        for number, block in enumerate(blocks, start=1):
            try:
                crls.append(x509.load_pem_x509_crl(block))
            except ValueError as exc:
                raise TrustStoreError(
                    f"CRL file {source}: CRL #{number} is invalid ({exc})"
                ) from None
        return crls
    try:
        return [x509.load_der_x509_crl(data)]
    except ValueError:
        raise TrustStoreError(f"CRL file {source} is neither a PEM nor a DER CRL") from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


class TrustStore:
    """Trust anchors, intermediate CA certificates and CRLs; verifies certificate chains.

    Build it with :meth:`from_paths` (files or directories) or from certificate objects.
    Loading problems raise :class:`TrustStoreError` naming the file.
    """

    def __init__(
        self,
        roots: Iterable[x509.Certificate] = (),
        intermediates: Iterable[x509.Certificate] = (),
        *,
        strict_crl: bool = False,
    ) -> None:
        self.strict_crl = strict_crl
        self._roots: dict[bytes, x509.Certificate] = {}
        self._intermediates: dict[bytes, x509.Certificate] = {}
        self._crl_sources: list[Path] = []
        self._crls_by_key: dict[str, LoadedCRL] = {}  # "<file>#<n>" -> last good CRL
        self._crls_by_issuer: dict[str, list[LoadedCRL]] = {}
        self._signature_ok: dict[tuple[bytes, bytes], bool] = {}
        for root in roots:
            self.add_root(root)
        for intermediate in intermediates:
            self.add_intermediate(intermediate)

    @classmethod
    def from_paths(
        cls,
        roots: Iterable[StrPath],
        intermediates: Iterable[StrPath] = (),
        crls: Iterable[StrPath] = (),
        *,
        strict_crl: bool = False,
    ) -> TrustStore:
        """Load roots, intermediates (PEM/DER files or directories of them) and CRLs."""
        store = cls(strict_crl=strict_crl)
        for path in roots:
            store.load_roots(path)
        for path in intermediates:
            store.load_intermediates(path)
        for path in crls:
            store.load_crls(path)
        return store

    # ------------------------------------------------------------- anchors

    @property
    def roots(self) -> list[x509.Certificate]:
        return list(self._roots.values())

    @property
    def intermediates(self) -> list[x509.Certificate]:
        return list(self._intermediates.values())

    def add_root(self, cert: x509.Certificate) -> None:
        """Trust ``cert`` as an anchor (its own validity is still checked)."""
        self._roots[_fingerprint(cert)] = cert

    def add_intermediate(self, cert: x509.Certificate) -> None:
        """Make an intermediate CA available for chain building (it is not trusted by itself)."""
        if not _is_ca(cert):
            raise TrustStoreError(
                f"{name_to_text(cert.subject)} is not a CA certificate (basicConstraints cA)"
            )
        self._intermediates[_fingerprint(cert)] = cert

    def _read_certificates(self, path: StrPath, what: str) -> list[tuple[Path, x509.Certificate]]:
        found: list[tuple[Path, x509.Certificate]] = []
        for file in expand([path], CERT_SUFFIXES):
            try:
                found += [(file, cert) for cert in _load_certificates(file, what)]
            except CertificateLoadError as exc:
                raise TrustStoreError(str(exc)) from None
        if not found:
            raise TrustStoreError(f"no {what} found in {path}")
        return found

    def load_roots(self, path: StrPath) -> int:
        """Trust every certificate in a file or directory; returns how many were loaded."""
        found = self._read_certificates(path, "root certificate")
        for _, cert in found:
            self.add_root(cert)
        return len(found)

    def load_intermediates(self, path: StrPath) -> int:
        """Add intermediate CAs from a file or directory; returns how many were loaded."""
        found = self._read_certificates(path, "intermediate certificate")
        for file, cert in found:
            try:
                self.add_intermediate(cert)
            except TrustStoreError as exc:
                raise TrustStoreError(f"{file}: {exc}") from None
        return len(found)

    # ---------------------------------------------------------------- CRLs

    @property
    def crls(self) -> list[LoadedCRL]:
        """The CRLs in use (the newest per issuer comes first in each issuer's list)."""
        return [crl for crls in self._crls_by_issuer.values() for crl in crls]

    def _ca_candidates(self, issuer_dn: str) -> list[x509.Certificate]:
        return [
            cert
            for cert in (*self._roots.values(), *self._intermediates.values())
            if dn_of_name(cert.subject) == issuer_dn
        ]

    def _read_crl_file(self, path: Path) -> list[tuple[LoadedCRL, list[str]]]:
        """Load and check the CRLs of one file; raises TrustStoreError naming the file."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise TrustStoreError(f"CRL file {path} does not exist") from None
        except OSError as exc:
            raise TrustStoreError(f"cannot read CRL file {path}: {exc.strerror}") from None
        result = []
        for crl in _parse_crls(data, str(path)):
            loaded = _describe(crl, str(path))
            notes: list[str] = []
            try:
                crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
            except x509.ExtensionNotFound:
                pass
            else:
                raise TrustStoreError(f"CRL file {path} is a delta CRL; only full CRLs are used")
            candidates = self._ca_candidates(loaded.issuer_dn)
            if candidates:
                if not any(self._crl_signed_by(loaded, ca) for ca in candidates):
                    raise TrustStoreError(
                        f"CRL file {path}: signature does not verify with the key of "
                        f"{loaded.issuer_text}"
                    )
            else:
                notes.append(
                    f"CRL file {path}: issuer {loaded.issuer_text} is not a CA of this trust "
                    "store; its signature will be checked when a chain uses it"
                )
            result.append((loaded, notes))
        return result

    def load_crls(self, path: StrPath) -> list[str]:
        """Load CRLs from a file or directory and re-read them on :meth:`reload_crls`.

        Raises :class:`TrustStoreError` for unreadable or invalid files (a configuration
        error at start-up); returns warnings (stale CRLs, unknown issuers).
        """
        source = Path(path)
        files = list(expand([source], CRL_SUFFIXES))
        if source.is_dir() and not files:
            raise TrustStoreError(f"no CRL file found in {source}")
        fresh: dict[str, LoadedCRL] = {}
        warnings: list[str] = []
        for file in files:
            for number, (loaded, notes) in enumerate(self._read_crl_file(file)):
                fresh[f"{file}#{number}"] = loaded
                warnings += notes
        if source not in self._crl_sources:
            self._crl_sources.append(source)
        self._crls_by_key.update(fresh)
        self._reindex()
        return warnings + self._stale_warnings(datetime.now(UTC))

    def reload_crls(self) -> list[str]:
        """Re-read every CRL source; never raises, returns what went wrong.

        A file that cannot be read, parsed or verified, or whose CRL is older than the one
        already held, is reported and the last good CRL read from it stays in use.
        """
        warnings: list[str] = []
        fresh: dict[str, LoadedCRL] = {}
        seen: set[str] = set()
        for file in expand(self._crl_sources, CRL_SUFFIXES):
            prefix = f"{file}#"
            previous = {k: v for k, v in self._crls_by_key.items() if k.startswith(prefix)}
            seen.update(previous)
            try:
                loaded = self._read_crl_file(file)
            except TrustStoreError as exc:
                kept = "keeping the last good CRL" if previous else "no earlier CRL to keep"
                warnings.append(f"{exc}; {kept}")
                fresh.update(previous)
                continue
            for number, (crl, notes) in enumerate(loaded):
                key = f"{prefix}{number}"
                old = previous.get(key)
                if old is not None and old.issuer_dn == crl.issuer_dn and old.is_newer_than(crl):
                    warnings.append(
                        f"CRL file {file} went backwards (cRLNumber {crl.number} after "
                        f"{old.number}); keeping the last good CRL"
                    )
                    fresh[key] = old
                else:
                    fresh[key] = crl
                warnings += notes
        for key, old in self._crls_by_key.items():  # files removed from a directory
            if key not in fresh and key not in seen:
                warnings.append(f"CRL file {old.source} disappeared; keeping the last good CRL")
                fresh[key] = old
        self._crls_by_key = fresh
        self._reindex()
        return warnings + self._stale_warnings(datetime.now(UTC))

    def _reindex(self) -> None:
        by_issuer: dict[str, list[LoadedCRL]] = {}
        for crl in self._crls_by_key.values():
            by_issuer.setdefault(crl.issuer_dn, []).append(crl)
        for crls in by_issuer.values():
            crls.sort(key=lambda c: (c.number if c.number is not None else -1, c.this_update))
            crls.reverse()
        self._crls_by_issuer = by_issuer

    def _stale_warnings(self, now: datetime) -> list[str]:
        return [
            _stale_message(crls[0])
            for crls in self._crls_by_issuer.values()
            if crls[0].next_update is not None and crls[0].next_update < now
        ]

    def _crl_signed_by(self, loaded: LoadedCRL, issuer: x509.Certificate) -> bool:
        key = (loaded.crl.fingerprint(hashes.SHA256()), _fingerprint(issuer))
        if key not in self._signature_ok:
            public_key = issuer.public_key()
            try:
                ok = loaded.crl.is_signature_valid(_as_issuer_key(public_key)) and dn_of_name(
                    loaded.crl.issuer
                ) == dn_of_name(issuer.subject)
            except (TypeError, ValueError, UnsupportedAlgorithm):
                ok = False
            self._signature_ok[key] = ok
        return self._signature_ok[key]

    # -------------------------------------------------------------- verify

    def verify(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate] = (),
        *,
        at: datetime | None = None,
        purpose: ObjectIdentifier | None = None,
    ) -> Verification:
        """Validate ``leaf`` at ``at`` (default: now).

        ``intermediates`` are those sent by the peer (they are not trusted, only used to
        build the chain). ``purpose``, an EKU OID, is checked against the leaf's
        extendedKeyUsage when it has one (RFC 5280 §4.2.1.12).
        """
        when = _utc(at) if at is not None else datetime.now(UTC)
        built = self._build_chain(leaf, intermediates)
        if isinstance(built, str):
            return Verification(False, built, (leaf,))
        chain = tuple(built)
        for failure in (
            self._check_cas(chain),
            self._check_validity(chain, when),
            _check_purpose(leaf, purpose),
        ):
            if failure:
                return Verification(False, failure, chain)
        failure, warnings = self._check_revocation(chain, when, explicit_time=at is not None)
        if failure:
            return Verification(False, failure, chain, tuple(warnings))
        return Verification(True, "ok", chain, tuple(warnings))

    def _build_chain(
        self, leaf: x509.Certificate, supplied: Sequence[x509.Certificate]
    ) -> list[x509.Certificate] | str:
        chain = [leaf]
        pool = [*supplied, *self._intermediates.values()]
        current = leaf
        while _fingerprint(current) not in self._roots:
            if len(chain) >= MAX_CHAIN_LENGTH:
                return f"chain longer than {MAX_CHAIN_LENGTH} certificates"
            issuer_dn = dn_of_name(current.issuer)
            used = {_fingerprint(c) for c in chain}
            candidates = [c for c in self._roots.values() if dn_of_name(c.subject) == issuer_dn]
            candidates += [
                c
                for c in pool
                if dn_of_name(c.subject) == issuer_dn and _fingerprint(c) not in used
            ]
            issuer: x509.Certificate | None = None
            bad_signature = False
            for candidate in candidates:
                try:
                    current.verify_directly_issued_by(candidate)
                except InvalidSignature:
                    bad_signature = True
                    continue
                except (ValueError, TypeError, UnsupportedAlgorithm):
                    continue
                issuer = candidate
                break
            subject = name_to_text(current.subject)
            issuer_text = name_to_text(current.issuer)
            if issuer is None:
                if bad_signature:
                    return (
                        f"signature does not verify: {subject} is not signed by the key of "
                        f"{issuer_text}"
                    )
                return f"issuer {issuer_text} of {subject} not trusted"
            chain.append(issuer)
            current = issuer
        return chain

    def _check_cas(self, chain: tuple[x509.Certificate, ...]) -> str | None:
        """RFC 5280 §6.1.4 (k), (l), (m), (n) for every issuing certificate."""
        for depth, cert in enumerate(chain[1:], start=1):
            text = name_to_text(cert.subject)
            anchor = _fingerprint(cert) in self._roots
            try:
                constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            except x509.ExtensionNotFound:
                if anchor:  # a configured anchor is trusted as a CA by configuration
                    continue
                return f"issuer {text} is not a CA (no basicConstraints)"
            if not constraints.ca:
                return f"issuer {text} is not a CA (basicConstraints cA is false)"
            below = depth - 1  # intermediate CA certificates between it and the leaf
            if constraints.path_length is not None and below > constraints.path_length:
                return f"issuer {text} path length constraint {constraints.path_length} exceeded"
            try:
                usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
            except x509.ExtensionNotFound:
                continue
            if not usage.key_cert_sign:
                return f"issuer {text} key usage does not allow certificate signing"
        return None

    @staticmethod
    def _check_validity(chain: tuple[x509.Certificate, ...], when: datetime) -> str | None:
        for position, cert in enumerate(chain):
            who = "certificate" if position == 0 else f"CA certificate {name_to_text(cert.subject)}"
            if when < cert.not_valid_before_utc:
                return f"{who} not yet valid (valid from {_fmt(cert.not_valid_before_utc)})"
            if when > cert.not_valid_after_utc:
                return f"{who} expired on {_fmt(cert.not_valid_after_utc)}"
        return None

    def crl_for(self, issuer: x509.Certificate) -> LoadedCRL | None:
        """The newest CRL for ``issuer`` whose signature verifies with its key."""
        for loaded in self._crls_by_issuer.get(dn_of_name(issuer.subject), []):
            if self._crl_signed_by(loaded, issuer):
                return loaded
        return None

    def _check_revocation(
        self, chain: tuple[x509.Certificate, ...], when: datetime, *, explicit_time: bool
    ) -> tuple[str | None, list[str]]:
        warnings: list[str] = []
        for position, cert in enumerate(chain[:-1]):
            issuer = chain[position + 1]
            issuer_text = name_to_text(issuer.subject)
            loaded = self.crl_for(issuer)
            if loaded is None:
                held = self._crls_by_issuer.get(dn_of_name(issuer.subject), [])
                detail = (
                    f"no CRL for issuer {issuer_text} with a valid signature"
                    if held
                    else f"no CRL for issuer {issuer_text}"
                )
                if self.strict_crl:
                    return detail, warnings
                warnings.append(f"{detail}; revocation not checked")
                continue
            if loaded.next_update is not None and loaded.next_update < when:
                warnings.append(_stale_message(loaded))
            entry = loaded.crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is None:
                continue
            revoked_on = entry.revocation_date_utc
            if explicit_time and revoked_on > when:
                continue  # checked as of a time before the revocation took effect
            try:
                reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
                reason_text = reason.value
            except x509.ExtensionNotFound:
                reason_text = "unspecified"
            who = "certificate" if position == 0 else f"CA certificate {name_to_text(cert.subject)}"
            return f"{who} revoked on {_fmt(revoked_on)} ({reason_text})", warnings
        return None, warnings


def _stale_message(loaded: LoadedCRL) -> str:
    assert loaded.next_update is not None
    return (
        f"CRL for {loaded.issuer_text} ({loaded.source}) is past its nextUpdate "
        f"{_fmt(loaded.next_update)}; still used"
    )


def _check_purpose(leaf: x509.Certificate, purpose: ObjectIdentifier | None) -> str | None:
    if purpose is None:
        return None
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None  # RFC 5280 §4.2.1.12: no EKU means no restriction
    if purpose in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages:
        return None
    label = _PURPOSE_NAMES.get(purpose, purpose.dotted_string)
    return f"certificate not valid for {label} (extendedKeyUsage)"


def _as_issuer_key(key: object) -> CertificateIssuerPublicKeyTypes:
    if isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | dsa.DSAPublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        return key
    raise TypeError("unsupported issuer key type")

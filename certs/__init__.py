"""Certificates for the MSSanté trust space.

MSSanté operators authenticate each other, and professionals and software authenticate to
operators, with IGC-Santé certificates (the French health PKI, whose roots are not in public
trust stores). This package holds everything certificate-related, using :mod:`cryptography`
only:

* :mod:`certs.dn` -- RFC 4514 DN parsing and normalisation, so that a peer certificate's
  subject can be compared with the liste blanche's ``DNCertificatOperateur`` spellings;
* :mod:`certs.pki` -- :class:`DevPKI`, a development PKI shaped like the IGC-Santé TEST range
  (root, PERSONNES and ORGANISATIONS intermediates) issuing server, person and organisation
  certificates, with revocation and CRLs;
* :mod:`certs.truststore` -- :class:`TrustStore`, chain validation against configured roots
  with CRL checking that keeps the last good CRL when a refresh fails;
* :mod:`certs.tls` -- :func:`server_context` / :func:`client_context`, TLS 1.2+ contexts
  offering the MSSanté ECDHE-RSA suites;
* :mod:`certs.identity` -- :func:`identity_of`, the MSSanté identity (person / org / server,
  national identifier, structure, organisation) a certificate carries.

Every error derives from :class:`CertsError` and names the file or value at fault.
"""

from certs.dn import DNSyntaxError, dn_of_name, dns_equal, name_to_text, normalize_dn
from certs.errors import CertificateLoadError, CertsError, PKIError, TLSConfigError, TrustStoreError
from certs.identity import (
    CertificateIdentity,
    identity_of,
    load_certificate,
    load_pem_chain,
    national_id_of,
)
from certs.pki import DevPKI, IssuedCertificate
from certs.tls import MSSANTE_CIPHERS, client_context, server_context
from certs.truststore import LoadedCRL, TrustStore, Verification

__all__ = [
    "MSSANTE_CIPHERS",
    "CertificateIdentity",
    "CertificateLoadError",
    "CertsError",
    "DNSyntaxError",
    "DevPKI",
    "IssuedCertificate",
    "LoadedCRL",
    "PKIError",
    "TLSConfigError",
    "TrustStore",
    "TrustStoreError",
    "Verification",
    "client_context",
    "dn_of_name",
    "dns_equal",
    "identity_of",
    "load_certificate",
    "load_pem_chain",
    "name_to_text",
    "national_id_of",
    "normalize_dn",
    "server_context",
]

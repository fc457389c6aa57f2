"""DN normalisation: spellings of one DN compare equal, different DNs do not."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from certs.dn import DNSyntaxError, dn_of_name, dns_equal, normalize_dn, parse_dn

LISTE_BLANCHE_DN = "CN=smtp.operator.fr,OU=31831002130002,O=Operator,ST=Paris (75),C=FR"


def same(a: str, b: str) -> None:
    assert normalize_dn(a) == normalize_dn(b)


def test_canonical_form_is_lower_case_short_names_without_spaces() -> None:
    assert normalize_dn(
        "CN=mailin.interop-mssante.apicrypt.org, OU=343975235300037, O=APICEM, ST=Nord (59), C=FR"
    ) == ("cn=mailin.interop-mssante.apicrypt.org,ou=343975235300037,o=apicem,st=nord (59),c=fr")


@pytest.mark.parametrize(
    "variant",
    [
        "CN=smtp.operator.fr, OU=31831002130002, O=Operator, ST=Paris (75), C=FR",
        "CN = smtp.operator.fr ,OU= 31831002130002 , O =Operator,ST=Paris (75) ,C=FR",
        "cn=SMTP.OPERATOR.FR,ou=31831002130002,o=OPERATOR,st=PARIS (75),c=fr",
        "commonName=smtp.operator.fr,organizationalUnitName=31831002130002,"
        "organizationName=Operator,stateOrProvinceName=Paris (75),countryName=FR",
        "CN=smtp.operator.fr,OU=31831002130002,O=Operator,S=Paris (75),C=FR",
        "2.5.4.3=smtp.operator.fr,2.5.4.11=31831002130002,2.5.4.10=Operator,"
        "2.5.4.8=Paris (75),2.5.4.6=FR",
        "OID.2.5.4.3=smtp.operator.fr,OU=31831002130002,O=Operator,ST=Paris  (75),C=FR",
        'CN=smtp.operator.fr,OU=31831002130002,O="Operator",ST="Paris (75)",C=FR',
        "CN=smtp.operator.fr,OU=31831002130002,O=Operator,ST=Paris\u00a0(75),C=FR",
        "CN=#0c10736d74702e6f70657261746f722e6672,OU=31831002130002,O=Operator,ST=Paris (75),C=FR",
    ],
)
def test_spellings_of_the_liste_blanche_dn_are_equal(variant: str) -> None:
    same(LISTE_BLANCHE_DN, variant)


def test_real_liste_blanche_quirks_quoted_values_with_double_spaces() -> None:
    # Both spellings appear in the March 2025 liste blanche for the same operator.
    same(
        'CN=mss.ch-cadillac.fr,OU=1330781295,O="C.H. DE  CADILLAC",ST=Gironde (33),C=FR',
        "CN=mss.ch-cadillac.fr,OU=1330781295,O=C.H. DE CADILLAC,ST=Gironde (33),C=FR",
    )
    # An unescaped quote inside a value is accepted literally.
    assert 'crlcc \\"paul strauss\\"' in normalize_dn(
        'CN=mss.strasbourg.unicancer.fr,OU=1670000033,O=CRLCC "PAUL STRAUSS",C=FR'
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("CN=Doe\\, John,O=X", "CN=Doe\\2C John,O=X"),
        ("CN=Doe\\, John,O=X", "CN=Doe\\2c John,O=X"),
        ("CN=a\\+b,O=X", "CN=a\\2Bb,O=X"),
        ('CN=say \\"hi\\",O=X', "CN=say \\22hi\\22,O=X"),
        ("CN=back\\\\slash,O=X", "CN=back\\5Cslash,O=X"),
        ("CN=Pyr\\C3\\A9n\\C3\\A9es,O=X", "CN=Pyrénées,O=X"),
        ("CN=Pyre\u0301ne\u0301es,O=X", "CN=Pyrénées,O=X"),  # NFD vs NFC
        ("CN=\uff33\uff2d\uff34\uff30,O=X", "CN=SMTP,O=X"),  # full-width (NFKC)
        ("CN=STRASSE,O=X", "CN=straße,O=X"),  # case folding, not just lower()
    ],
)
def test_escapes_and_unicode_forms_are_equal(a: str, b: str) -> None:
    same(a, b)


def test_escaped_separators_are_re_escaped_in_the_canonical_string() -> None:
    assert normalize_dn("CN=Doe\\2C John + UID=jd,O=A\\+B") == "cn=doe\\, john+uid=jd,o=a\\+b"
    assert normalize_dn("CN=\\#1 Host") == "cn=\\#1 host"


def test_multi_valued_rdn_order_does_not_matter_but_rdn_order_does() -> None:
    same("CN=Jean+UID=jd,O=X", "UID=jd + CN=Jean,O=X")
    assert normalize_dn("CN=a,O=b") != normalize_dn("O=b,CN=a")
    assert normalize_dn("CN=a+O=b") != normalize_dn("CN=a,O=b")


def test_st_and_l_are_different_attributes() -> None:
    # The liste blanche has one entry with L=Paris (75) instead of ST=...
    assert normalize_dn("CN=h,L=Paris (75),C=FR") != normalize_dn("CN=h,ST=Paris (75),C=FR")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("E=a@b.fr,CN=x", "emailAddress=a@b.fr,CN=x"),
        ("E=a@b.fr,CN=x", "1.2.840.113549.1.9.1=a@b.fr,CN=x"),
        ("GN=Jean,SN=Dupont", "givenName=Jean,surname=Dupont"),
        ("G=Jean,2.5.4.4=Dupont", "2.5.4.42=Jean,SN=Dupont"),
        ("T=Médecin", "title=Médecin"),
        (
            "UID=jd,DC=example,DC=fr",
            "userid=jd,domainComponent=example,0.9.2342.19200300.100.1.25=fr",
        ),
        ("STREET=1 rue X,L=Lyon", "streetAddress=1 rue X,localityName=Lyon"),
        ("SERIALNUMBER=123", "2.5.4.5=123"),
    ],
)
def test_attribute_type_aliases(a: str, b: str) -> None:
    same(a, b)


def test_unknown_oid_is_kept_in_dotted_form() -> None:
    assert normalize_dn("1.2.250.1.71.4.2.1=X,C=FR") == "1.2.250.1.71.4.2.1=x,c=fr"
    assert normalize_dn("1.2.3.4=x") != normalize_dn("CN=x")


def test_parse_dn_exposes_rdns_in_text_order() -> None:
    assert parse_dn("CN=b+UID=a, O=X") == [(("cn", "b"), ("uid", "a")), (("o", "x"),)]


@pytest.mark.parametrize(
    ("dn", "message"),
    [
        ("", "empty DN"),
        ("   ", "empty DN"),
        ("CN", "missing '='"),
        ("CN=a,O", "missing '='"),
        ("=x", "missing attribute type"),
        ("CN=a,", "trailing ','"),
        ("CN=a+", "trailing '+'"),
        ("CN=a,,O=b", "empty RDN"),
        ("CN=a\\", "dangling escape"),
        ("CN=\\zz", "invalid escape"),
        ("CN=\\C3", "valid UTF-8"),
        ('CN="abc', "unterminated quoted value"),
        ('CN="a"b', "after closing quote"),
        ("FOO=bar", "unknown attribute type 'FOO'"),
        ("C N=x", "invalid attribute type"),
        ("CN=#0c0", "hex digits"),
        ("CN=#zz", "'#' hex value"),
    ],
)
def test_malformed_dns_are_refused_with_a_reason(dn: str, message: str) -> None:
    with pytest.raises(DNSyntaxError, match=message.replace("+", "\\+")):
        normalize_dn(dn)


def test_dn_syntax_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        normalize_dn("nonsense")


def _operator_name() -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Paris (75)"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Operator"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "31831002130002"),
            x509.NameAttribute(NameOID.COMMON_NAME, "smtp.operator.fr"),
        ]
    )


def test_dn_of_name_equals_normalize_dn_of_the_liste_blanche_text() -> None:
    name = _operator_name()
    assert name.rfc4514_string() == LISTE_BLANCHE_DN
    assert dn_of_name(name) == normalize_dn(LISTE_BLANCHE_DN)
    assert dn_of_name(name) == normalize_dn(
        "CN=SMTP.operator.fr, OU=31831002130002, O=OPERATOR, S=Paris (75), C=FR"
    )
    assert dns_equal(name, "cn=smtp.operator.fr,ou=31831002130002,o=operator,st=paris (75),c=fr")
    assert not dns_equal(name, LISTE_BLANCHE_DN.replace("Operator", "Other"))


def test_dn_of_name_with_multi_valued_rdn_and_surname() -> None:
    name = x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.SURNAME, "Dupont"),
                    x509.NameAttribute(NameOID.GIVEN_NAME, "Jean"),
                ]
            ),
        ]
    )
    assert dn_of_name(name) == normalize_dn("GN=JEAN+SN=DUPONT,C=FR")
    assert dn_of_name(name) == normalize_dn(name.rfc4514_string())


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20))
def test_any_value_survives_escaping_and_normalisation_is_idempotent(value: str) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, value or "x")])
    text = name.rfc4514_string()
    canonical = normalize_dn(text)
    assert canonical == dn_of_name(name)
    assert normalize_dn(canonical) == canonical

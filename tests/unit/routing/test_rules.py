"""routing.rules and routing.headers: every MSSanté rule, table-driven (docs/mssante.md §1-§4).

Each case states the reply a user (a peer operator, a professional's client, a patient in the
webmail) would get: the SMTP code, the RFC 3463 enhanced status and the words of the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from routing.decisions import Destination, Refusal, Route, Sender, SenderKind
from routing.headers import message_facts
from routing.identifiers import ins_key
from routing.policy import PATIENT_DOMAIN, PATIENT_MAX_MESSAGE_SIZE, Mailbox, Policy
from routing.rules import (
    ContactState,
    ContactUpdate,
    Door,
    MessageFacts,
    check_data_size,
    check_declared_size,
    check_peer_certificate,
    check_peer_sender,
    check_submission_sender,
    contact_updates,
    is_fin,
    route_recipient,
)

# --- the operator and its people -------------------------------------------------------------

MB = 1024 * 1024
SERVER_MAX = 50 * MB
PATIENT_MAX = 25 * MB
assert PATIENT_MAX == PATIENT_MAX_MESSAGE_SIZE  # docs/mssante.md §4: 25 MB for the patient domain

LOCAL_DOMAIN = "ch-x.mssante.fr"
REMOTE_DOMAIN = "clinique-y.mssante.fr"  # another operator, on the liste blanche
FOREIGN_DOMAIN = "gmail.com"  # ordinary Internet mail, not on the liste blanche

# This operator hosts professionals of ch-x and the patients of Mon espace santé...
POLICY = Policy(operator_domains=frozenset({LOCAL_DOMAIN}), patient_domain=PATIENT_DOMAIN)
# ...and a professionals-only operator, whose patients' mail comes from a peer.
PRO_ONLY = Policy(operator_domains=frozenset({LOCAL_DOMAIN}))

OPERATOR_DN = "cn=smtp.clinique-y.fr,ou=12345678900011,o=clinique y,st=paris (75),c=fr"
OTHER_DN = "cn=mx.operateur-z.fr,o=operateur z,c=fr"
UNKNOWN_DN = "cn=mail.example.com,o=example,c=us"


def ins(number13: str) -> str:
    """A valid INS matricule: the 13-character number and its key (docs/mssante.md §4)."""
    return number13 + ins_key(number13)


PATIENT_INS = ins("1460263220001")
assert PATIENT_INS == "146026322000196"  # the documented example
PATIENT = f"{PATIENT_INS}@{PATIENT_DOMAIN}"
OTHER_PATIENT = f"{ins('2690299341732')}@{PATIENT_DOMAIN}"
CORSICA_2A = f"{ins('185052A012345')}@{PATIENT_DOMAIN}".lower()  # addresses arrive lowercased
CORSICA_2B = f"{ins('285052B012345')}@{PATIENT_DOMAIN}".lower()

DR_MARTIN = f"dr.martin@{LOCAL_DOMAIN}"
CARDIO = f"cardiologie@{LOCAL_DOMAIN}"
LABO = f"labo@{LOCAL_DOMAIN}"
DR_DURAND = f"dr.durand@{REMOTE_DOMAIN}"
STRANGER = f"jean.dupont@{FOREIGN_DOMAIN}"

PER_BOX = Mailbox(1, DR_MARTIN, "PER", active=True)
ORG_BOX = Mailbox(2, CARDIO, "ORG", active=True)
APP_BOX = Mailbox(3, LABO, "APP", active=True)
DISABLED_BOX = Mailbox(4, f"dr.parti@{LOCAL_DOMAIN}", "PER", active=False)
PATIENT_BOX = Mailbox(100, PATIENT, "PAT", active=True, patient_state="active")

# Senders as the pipeline builds them for each door.
PRO = Sender(DR_MARTIN, SenderKind.PER, account_id=1, authenticated_as=DR_MARTIN, method="oauth")
PEER_PRO = Sender(DR_DURAND, SenderKind.PEER, method="peer-tls", peer=OPERATOR_DN)
NULL_SENDER = Sender("", SenderKind.PEER, method="peer-tls", peer=OPERATOR_DN)
PAT = Sender(PATIENT, SenderKind.PAT, account_id=100, authenticated_as=PATIENT, method="password")
# A patient of the operator hosting patient.mssante.fr, relayed to us (pipeline.peer_sender).
PEER_PAT = Sender(OTHER_PATIENT, SenderKind.PAT, method="peer-tls", peer=OTHER_DN)
# The same sender as a door that forgot to mark it: the patient domain alone makes it a patient.
PEER_PAT_UNMARKED = Sender(OTHER_PATIENT, SenderKind.PEER, method="peer-tls", peer=OTHER_DN)

DOORS: list[Door] = ["inbound", "submission", "webmail"]
# Who speaks through each door when a professional writes.
PRO_AT: dict[Door, Sender] = {"inbound": PEER_PRO, "submission": PRO, "webmail": PRO}


def patient_box(
    address: str = PATIENT, state: str | None = "active", *, active: bool = True
) -> Mailbox:
    return Mailbox(100, address, "PAT", active=active, patient_state=state)


# --- expectations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """The reply expected: code, enhanced status and words the reason must contain."""

    code: int
    status: str
    words: tuple[str, ...] = ()


def refused(code: int, status: str, *words: str) -> Refused:
    return Refused(code, status, words)


def assert_refused(result: object, expected: Refused) -> None:
    assert isinstance(result, Refusal), f"expected a refusal, got {result!r}"
    assert (result.code, result.status) == (expected.code, expected.status), result.reply()
    for word in expected.words:
        assert word in result.reason, f"{word!r} not in {result.reason!r}"
    assert result.reply() == f"{expected.code} {expected.status} {result.reason}"
    assert result.permanent


def assert_outcome(result: object, expected: Route | Refused | None) -> None:
    if isinstance(expected, Refused):
        assert_refused(result, expected)
    else:
        assert result == expected


# --- check_peer_certificate ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verified", "reason", "expected"),
    [
        pytest.param(True, "", None, id="verified"),
        pytest.param(True, "ignored", None, id="verified-reason-ignored"),
        pytest.param(
            False,
            "certificate has expired",
            refused(550, "5.7.1", "peer certificate refused: certificate has expired"),
            id="expired",
        ),
        pytest.param(
            False,
            "certificate is revoked (CRL of IGC-Santé)",
            refused(550, "5.7.1", "peer certificate refused", "revoked"),
            id="revoked",
        ),
        pytest.param(
            False,
            "unable to get local issuer certificate",
            refused(550, "5.7.1", "unable to get local issuer certificate"),
            id="not-igc-sante",
        ),
    ],
)
def test_check_peer_certificate(verified: bool, reason: str, expected: Refused | None) -> None:
    assert_outcome(check_peer_certificate(verified, reason), expected)


# --- check_peer_sender -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mail_from", "peer_dn", "listed", "dn_is_operator", "expected"),
    [
        pytest.param(
            DR_DURAND,
            None,
            frozenset({OPERATOR_DN}),
            False,
            refused(550, "5.7.1", "IGC-Santé certificate", "mutual TLS"),
            id="no-certificate",
        ),
        pytest.param(
            "",
            None,
            None,
            False,
            refused(550, "5.7.1", "IGC-Santé certificate"),
            id="no-certificate-null-sender",
        ),
        pytest.param(
            STRANGER,
            UNKNOWN_DN,
            None,
            False,
            refused(
                550, "5.7.1", FOREIGN_DOMAIN, "outside the MSSanté trust space", "liste blanche"
            ),
            id="domain-not-listed",
        ),
        pytest.param(
            STRANGER,
            OPERATOR_DN,
            None,
            True,
            refused(550, "5.7.1", FOREIGN_DOMAIN, "trust space"),
            id="domain-not-listed-even-from-a-known-operator",
        ),
        pytest.param(
            DR_DURAND,
            OTHER_DN,
            frozenset({OPERATOR_DN}),
            True,
            refused(550, "5.7.1", OTHER_DN, REMOTE_DOMAIN, "not listed", "liste blanche"),
            id="dn-of-another-operator",
        ),
        pytest.param(
            DR_DURAND,
            UNKNOWN_DN,
            frozenset(),
            False,
            refused(550, "5.7.1", UNKNOWN_DN, REMOTE_DOMAIN),
            id="listed-domain-without-dn",
        ),
        pytest.param(DR_DURAND, OPERATOR_DN, frozenset({OPERATOR_DN}), True, None, id="listed-dn"),
        pytest.param(
            DR_DURAND,
            OPERATOR_DN,
            frozenset({OTHER_DN, OPERATOR_DN}),
            True,
            None,
            id="one-of-several-listed-dns",
        ),
        pytest.param("", OPERATOR_DN, None, True, None, id="null-sender-known-operator"),
        pytest.param(
            "",
            UNKNOWN_DN,
            None,
            False,
            refused(550, "5.7.1", UNKNOWN_DN, "not listed for any domain", "liste blanche"),
            id="null-sender-unknown-dn",
        ),
    ],
)
def test_check_peer_sender(
    mail_from: str,
    peer_dn: str | None,
    listed: frozenset[str] | None,
    dn_is_operator: bool,
    expected: Refused | None,
) -> None:
    result = check_peer_sender(mail_from, peer_dn, listed, dn_is_operator=dn_is_operator)
    assert_outcome(result, expected)


# --- check_submission_sender -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "mail_from", "may_send_as", "active", "expected"),
    [
        pytest.param(PER_BOX, DR_MARTIN, False, True, None, id="per-own-box"),
        pytest.param(PER_BOX, CARDIO, True, True, None, id="per-as-its-org"),
        pytest.param(
            PER_BOX,
            f"dr.dupond@{LOCAL_DOMAIN}",
            False,
            True,
            refused(
                550,
                "5.7.1",
                f"{DR_MARTIN} may not send as dr.dupond@{LOCAL_DOMAIN}",
                "ORG box it belongs to",
            ),
            id="per-as-another-box",
        ),
        pytest.param(
            PER_BOX,
            CARDIO,
            False,
            True,
            refused(550, "5.7.1", DR_MARTIN, CARDIO, "may not send as"),
            id="per-as-an-org-it-is-not-in",
        ),
        pytest.param(
            PER_BOX,
            "",
            True,
            True,
            refused(550, "5.7.1", "sender address", "MAIL FROM:<>"),
            id="null-sender",
        ),
        pytest.param(
            PER_BOX,
            DR_MARTIN,
            False,
            False,
            refused(550, "5.7.1", DR_MARTIN, "not active in the annuaire", "professional"),
            id="per-no-longer-in-annuaire",
        ),
        pytest.param(
            PER_BOX,
            CARDIO,
            True,
            False,
            refused(550, "5.7.1", "not active in the annuaire"),
            id="per-no-longer-in-annuaire-as-org",
        ),
        pytest.param(
            PER_BOX,
            "",
            False,
            False,
            refused(550, "5.7.1", "MAIL FROM:<>"),
            id="null-sender-reported-first",
        ),
        pytest.param(ORG_BOX, CARDIO, False, False, None, id="org-no-annuaire-check"),
        pytest.param(APP_BOX, LABO, False, False, None, id="app-no-annuaire-check"),
        pytest.param(PATIENT_BOX, PATIENT, False, False, None, id="patient-own-box"),
        pytest.param(
            APP_BOX,
            DR_MARTIN,
            False,
            True,
            refused(550, "5.7.1", f"{LABO} may not send as {DR_MARTIN}"),
            id="app-as-a-professional",
        ),
        pytest.param(
            PATIENT_BOX,
            OTHER_PATIENT,
            False,
            True,
            refused(550, "5.7.1", f"{PATIENT} may not send as {OTHER_PATIENT}"),
            id="patient-as-another-patient",
        ),
    ],
)
def test_check_submission_sender(
    box: Mailbox, mail_from: str, may_send_as: bool, active: bool, expected: Refused | None
) -> None:
    result = check_submission_sender(
        box, mail_from, may_send_as=may_send_as, professional_active=active
    )
    assert_outcome(result, expected)


# --- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "policy", "expected"),
    [
        pytest.param(None, POLICY, None, id="no-size-announced"),
        pytest.param(0, POLICY, None, id="zero"),
        pytest.param(30 * MB, POLICY, None, id="over-patient-limit-not-checked-at-mail"),
        pytest.param(SERVER_MAX, POLICY, None, id="exactly-server-limit"),
        pytest.param(
            SERVER_MAX + 1,
            POLICY,
            refused(552, "5.3.4", f"message size {SERVER_MAX + 1}", f"limit of {SERVER_MAX}"),
            id="one-byte-over-server-limit",
        ),
        pytest.param(
            1001,
            Policy(frozenset({LOCAL_DOMAIN}), max_message_size=1000),
            refused(552, "5.3.4", "1001", "1000 bytes"),
            id="configured-limit",
        ),
    ],
)
def test_check_declared_size(
    declared: int | None, policy: Policy, expected: Refused | None
) -> None:
    assert_outcome(check_declared_size(declared, policy), expected)


LOCAL_ROUTE = Route(DR_MARTIN, Destination.LOCAL, 1)
PATIENT_ROUTE = Route(PATIENT, Destination.PATIENT, 100)
RELAY_ROUTE = Route(DR_DURAND, Destination.RELAY)
PATIENT_TOO_BIG = refused(552, "5.3.4", f"message size {PATIENT_MAX + 1}", "25 MB", PATIENT_DOMAIN)


@pytest.mark.parametrize(
    ("size", "route", "policy", "expected"),
    [
        pytest.param(PATIENT_MAX, PATIENT_ROUTE, POLICY, None, id="patient-exactly-25mb"),
        pytest.param(PATIENT_MAX + 1, PATIENT_ROUTE, POLICY, PATIENT_TOO_BIG, id="patient-25mb+1"),
        pytest.param(
            30 * MB,
            PATIENT_ROUTE,
            POLICY,
            refused(552, "5.3.4", "25 MB limit of patient.mssante.fr"),
            id="patient-30mb",
        ),
        pytest.param(30 * MB, LOCAL_ROUTE, POLICY, None, id="professional-30mb"),
        pytest.param(30 * MB, RELAY_ROUTE, POLICY, None, id="relay-30mb"),
        pytest.param(SERVER_MAX, LOCAL_ROUTE, POLICY, None, id="professional-exactly-server-limit"),
        pytest.param(
            SERVER_MAX + 1,
            LOCAL_ROUTE,
            POLICY,
            refused(552, "5.3.4", f"limit of {SERVER_MAX}"),
            id="professional-server-limit+1",
        ),
        pytest.param(
            SERVER_MAX + 1,
            RELAY_ROUTE,
            POLICY,
            refused(552, "5.3.4", f"limit of {SERVER_MAX}"),
            id="relay-server-limit+1",
        ),
        pytest.param(
            SERVER_MAX + 1,
            PATIENT_ROUTE,
            POLICY,
            refused(552, "5.3.4", f"limit of {SERVER_MAX}"),
            id="patient-server-limit-reported-first",
        ),
        pytest.param(
            10 * MB + 1,
            PATIENT_ROUTE,
            Policy(frozenset({LOCAL_DOMAIN}), PATIENT_DOMAIN, patient_max_message_size=10 * MB),
            refused(552, "5.3.4", "10 MB limit of patient.mssante.fr"),
            id="configured-patient-limit",
        ),
    ],
)
def test_check_data_size(size: int, route: Route, policy: Policy, expected: Refused | None) -> None:
    assert_outcome(check_data_size(size, route, policy), expected)


# --- route_recipient: a professional writes (the same answer through every door) -----------

BAD_KEY = f"{PATIENT_INS[:-2]}97@{PATIENT_DOMAIN}"
BAD_CORSICA_KEY = f"{CORSICA_2A[:13]}00@{PATIENT_DOMAIN}"


@dataclass(frozen=True)
class Case:
    address: str
    mailbox: Mailbox | None
    listed: bool
    expected: Route | Refused
    declared_size: int | None = None
    policy: Policy = POLICY


PROFESSIONAL_CASES = [
    pytest.param(Case(DR_MARTIN, PER_BOX, True, LOCAL_ROUTE), id="local-box"),
    pytest.param(Case(CARDIO, ORG_BOX, True, Route(CARDIO, Destination.LOCAL, 2)), id="org-box"),
    pytest.param(Case(LABO, APP_BOX, True, Route(LABO, Destination.LOCAL, 3)), id="app-box"),
    pytest.param(
        Case(f"personne@{LOCAL_DOMAIN}", None, True, refused(550, "5.1.1", "no such mailbox")),
        id="local-box-missing",
    ),
    pytest.param(
        Case(DISABLED_BOX.address, DISABLED_BOX, True, refused(550, "5.2.1", "disabled")),
        id="local-box-disabled",
    ),
    pytest.param(
        Case(DR_MARTIN, PER_BOX, True, LOCAL_ROUTE, declared_size=40 * MB),
        id="local-box-40mb-declared",
    ),
    pytest.param(Case(PATIENT, patient_box(), True, PATIENT_ROUTE), id="patient"),
    pytest.param(
        Case(PATIENT, patient_box(), True, PATIENT_ROUTE, declared_size=PATIENT_MAX),
        id="patient-declared-exactly-25mb",
    ),
    pytest.param(
        Case(
            PATIENT,
            patient_box(),
            True,
            refused(552, "5.3.4", "25 MB", PATIENT_DOMAIN),
            declared_size=PATIENT_MAX + 1,
        ),
        id="patient-declared-over-25mb",
    ),
    pytest.param(
        Case(
            CORSICA_2A, patient_box(CORSICA_2A), True, Route(CORSICA_2A, Destination.PATIENT, 100)
        ),
        id="patient-corsica-2a",
    ),
    pytest.param(
        Case(
            CORSICA_2B, patient_box(CORSICA_2B), True, Route(CORSICA_2B, Destination.PATIENT, 100)
        ),
        id="patient-corsica-2b",
    ),
    pytest.param(
        Case(
            BAD_KEY,
            None,
            True,
            refused(550, "5.1.3", BAD_KEY, "wrong key: expected 96, got 97"),
        ),
        id="patient-ins-wrong-key",
    ),
    pytest.param(
        Case(
            BAD_CORSICA_KEY,
            None,
            True,
            refused(550, "5.1.3", f"wrong key: expected {CORSICA_2A[13:15]}, got 00"),
        ),
        id="patient-corsica-wrong-key",
    ),
    pytest.param(
        Case(
            f"14602632200019@{PATIENT_DOMAIN}",
            None,
            True,
            refused(550, "5.1.3", "must be 15 characters, got 14"),
        ),
        id="patient-ins-too-short",
    ),
    pytest.param(
        Case(
            f"jean.dupont@{PATIENT_DOMAIN}",
            None,
            True,
            refused(550, "5.1.3", f"jean.dupont@{PATIENT_DOMAIN}", "INS"),
        ),
        id="patient-not-an-ins",
    ),
    pytest.param(
        Case(
            f"1460263x2000196@{PATIENT_DOMAIN}",
            None,
            True,
            refused(550, "5.1.3", "illegal characters", "position 8"),
        ),
        id="patient-ins-letter",
    ),
    pytest.param(
        Case(
            f"546026322000196@{PATIENT_DOMAIN}",
            None,
            True,
            refused(550, "5.1.3", "invalid first digit '5'"),
        ),
        id="patient-ins-bad-sex-digit",
    ),
    pytest.param(
        Case(
            PATIENT,
            None,
            True,
            refused(550, "5.1.1", PATIENT, "no Mon espace santé mailbox for this INS"),
        ),
        id="patient-unknown",
    ),
    pytest.param(
        Case(
            PATIENT,
            Mailbox(100, PATIENT, "PER", active=True),
            True,
            refused(550, "5.1.1", "no Mon espace santé mailbox"),
        ),
        id="patient-domain-box-that-is-not-a-patient",
    ),
    pytest.param(
        Case(
            PATIENT,
            patient_box(state="opposed"),
            True,
            refused(550, "5.1.1", PATIENT, "opposed"),
        ),
        id="patient-opposed",
    ),
    pytest.param(
        Case(PATIENT, patient_box(state="closed"), True, refused(550, "5.1.1", PATIENT, "closed")),
        id="patient-closed",
    ),
    pytest.param(
        Case(PATIENT, patient_box(active=False), True, refused(550, "5.1.1", "closed")),
        id="patient-account-disabled",
    ),
    pytest.param(
        Case(
            PATIENT,
            patient_box(state="opposed"),
            True,
            refused(550, "5.1.1", "opposed"),
            declared_size=PATIENT_MAX + 1,
        ),
        id="patient-opposed-reported-before-size",
    ),
]


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("case", PROFESSIONAL_CASES)
def test_route_professional_to_this_operator(door: Door, case: Case) -> None:
    result = route_recipient(
        case.address,
        door=door,
        sender=PRO_AT[door],
        policy=case.policy,
        mailbox=case.mailbox,
        domain_listed=case.listed,
        contact=None,
        declared_size=case.declared_size,
    )
    assert_outcome(result, case.expected)


NOT_HERE = refused(550, "5.1.1", "is not a mailbox of this operator")
OUTSIDE = refused(550, "5.7.1", "outside the MSSanté trust space", "liste blanche")


@pytest.mark.parametrize(
    ("door", "address", "listed", "policy", "expected"),
    [
        pytest.param(
            "submission", DR_DURAND, True, POLICY, RELAY_ROUTE, id="submission-listed-relay"
        ),
        pytest.param("webmail", DR_DURAND, True, POLICY, RELAY_ROUTE, id="webmail-listed-relay"),
        pytest.param(
            "inbound",
            DR_DURAND,
            True,
            POLICY,
            refused(550, "5.1.1", DR_DURAND, "not a mailbox of this operator"),
            id="inbound-listed-no-open-relay",
        ),
        pytest.param(
            "submission",
            STRANGER,
            False,
            POLICY,
            refused(550, "5.7.1", STRANGER, "outside the MSSanté trust space"),
            id="submission-unlisted",
        ),
        pytest.param("webmail", STRANGER, False, POLICY, OUTSIDE, id="webmail-unlisted"),
        pytest.param("inbound", STRANGER, False, POLICY, NOT_HERE, id="inbound-unlisted"),
        pytest.param(
            "submission",
            PATIENT,
            True,
            PRO_ONLY,
            Route(PATIENT, Destination.RELAY),
            id="submission-patient-hosted-elsewhere",
        ),
        pytest.param(
            "inbound", PATIENT, True, PRO_ONLY, NOT_HERE, id="inbound-patient-hosted-elsewhere"
        ),
        pytest.param(
            "submission",
            PATIENT,
            False,
            PRO_ONLY,
            refused(550, "5.7.1", "trust space"),
            id="submission-patient-domain-unlisted",
        ),
    ],
)
def test_route_professional_to_another_operator(
    door: Door, address: str, listed: bool, policy: Policy, expected: Route | Refused
) -> None:
    result = route_recipient(
        address,
        door=door,
        sender=PRO_AT[door],
        policy=policy,
        mailbox=None,
        domain_listed=listed,
        contact=None,
    )
    assert_outcome(result, expected)


@pytest.mark.parametrize(
    ("address", "mailbox", "expected"),
    [
        pytest.param(DR_MARTIN, PER_BOX, LOCAL_ROUTE, id="to-professional"),
        pytest.param(PATIENT, patient_box(), PATIENT_ROUTE, id="to-patient"),
        pytest.param(
            PATIENT,
            patient_box(state="closed"),
            refused(550, "5.1.1", "closed"),
            id="to-closed-patient",
        ),
    ],
)
def test_route_null_sender_delivery_report(
    address: str, mailbox: Mailbox, expected: Route | Refused
) -> None:
    """A peer's delivery report (MAIL FROM:<>) reaches professionals and patients alike."""
    result = route_recipient(
        address,
        door="inbound",
        sender=NULL_SENDER,
        policy=POLICY,
        mailbox=mailbox,
        domain_listed=True,
        contact=None,
    )
    assert_outcome(result, expected)


# --- route_recipient: a patient writes -------------------------------------------------------

NO_FIRST = refused(550, "5.7.1", "a patient can only answer a professional who wrote first")
PATIENT_TO_PATIENT = refused(550, "5.7.1", "a patient cannot write to a patient")


@dataclass(frozen=True)
class PatientCase:
    sender: Sender
    door: Door
    address: str
    mailbox: Mailbox | None
    listed: bool
    contact: ContactState | None
    expected: Route | Refused
    policy: Policy = POLICY


PATIENT_CASES = [
    pytest.param(
        PatientCase(PAT, "webmail", DR_MARTIN, PER_BOX, True, "open", LOCAL_ROUTE),
        id="open-contact-local",
    ),
    pytest.param(
        PatientCase(PAT, "webmail", DR_DURAND, None, True, "open", RELAY_ROUTE),
        id="open-contact-remote",
    ),
    pytest.param(
        PatientCase(
            PAT,
            "webmail",
            DR_MARTIN,
            PER_BOX,
            True,
            "closed",
            refused(550, "5.7.1", DR_MARTIN, "closed the exchange", "X-MSS-MES: FIN"),
        ),
        id="closed-contact",
    ),
    pytest.param(
        PatientCase(
            PAT,
            "webmail",
            DR_DURAND,
            None,
            True,
            "closed",
            refused(550, "5.7.1", "closed the exchange"),
        ),
        id="closed-contact-remote",
    ),
    pytest.param(
        PatientCase(
            PAT,
            "webmail",
            DR_MARTIN,
            PER_BOX,
            True,
            None,
            refused(
                550,
                "5.7.1",
                "a patient can only answer a professional who wrote first",
                f"{DR_MARTIN} has not written to you",
            ),
        ),
        id="no-contact-local",
    ),
    pytest.param(
        PatientCase(PAT, "webmail", DR_DURAND, None, True, None, NO_FIRST),
        id="no-contact-remote",
    ),
    pytest.param(
        PatientCase(
            PAT,
            "webmail",
            f"personne@{LOCAL_DOMAIN}",
            None,
            True,
            "open",
            refused(550, "5.1.1", "no such mailbox"),
        ),
        id="open-contact-but-box-gone",
    ),
    pytest.param(
        PatientCase(PAT, "webmail", STRANGER, None, False, "open", OUTSIDE),
        id="outside-trust-space",
    ),
    pytest.param(
        PatientCase(
            PAT,
            "webmail",
            OTHER_PATIENT,
            patient_box(OTHER_PATIENT),
            True,
            None,
            PATIENT_TO_PATIENT,
        ),
        id="to-local-patient",
    ),
    pytest.param(
        PatientCase(
            PAT,
            "webmail",
            OTHER_PATIENT,
            patient_box(OTHER_PATIENT),
            True,
            "open",
            PATIENT_TO_PATIENT,
        ),
        id="to-local-patient-even-if-listed-as-contact",
    ),
    pytest.param(
        PatientCase(PAT, "webmail", PATIENT, PATIENT_BOX, True, None, PATIENT_TO_PATIENT),
        id="to-itself",
    ),
    pytest.param(
        PatientCase(
            PAT, "webmail", OTHER_PATIENT, None, True, "open", PATIENT_TO_PATIENT, PRO_ONLY
        ),
        id="to-patient-domain-hosted-elsewhere",
    ),
    pytest.param(
        PatientCase(
            PAT,
            "webmail",
            BAD_KEY,
            None,
            True,
            None,
            refused(550, "5.1.3", "wrong key"),
        ),
        id="to-bad-ins",
    ),
    # A sender from the patient domain arriving from a peer counts as a patient.
    pytest.param(
        PatientCase(PEER_PAT, "inbound", PATIENT, PATIENT_BOX, True, None, PATIENT_TO_PATIENT),
        id="peer-patient-to-local-patient",
    ),
    pytest.param(
        PatientCase(
            PEER_PAT_UNMARKED, "inbound", PATIENT, PATIENT_BOX, True, None, PATIENT_TO_PATIENT
        ),
        id="peer-patient-domain-sender-to-local-patient",
    ),
    pytest.param(
        PatientCase(PEER_PAT, "inbound", DR_MARTIN, PER_BOX, True, None, LOCAL_ROUTE, PRO_ONLY),
        id="peer-patient-answers-our-professional",
    ),
    pytest.param(
        PatientCase(PEER_PAT, "inbound", DR_DURAND, None, True, None, NOT_HERE, PRO_ONLY),
        id="peer-patient-no-relay",
    ),
    pytest.param(
        PatientCase(PEER_PAT, "inbound", DR_MARTIN, PER_BOX, True, None, NO_FIRST),
        id="patient-domain-hosted-here-from-a-peer",
    ),
]


@pytest.mark.parametrize("case", PATIENT_CASES)
def test_route_patient_sender(case: PatientCase) -> None:
    result = route_recipient(
        case.address,
        door=case.door,
        sender=case.sender,
        policy=case.policy,
        mailbox=case.mailbox,
        domain_listed=case.listed,
        contact=case.contact,
    )
    assert_outcome(result, case.expected)


@pytest.mark.parametrize(("contact", "allowed"), [("open", True), ("closed", True), (None, False)])
def test_read_receipt_goes_back_even_after_fin_but_only_to_who_wrote(
    contact: ContactState | None, allowed: bool
) -> None:
    """mssante.md §4: a patient cannot refuse an MDN, even once the exchange is closed."""
    result = route_recipient(
        DR_MARTIN,
        door="webmail",
        sender=PAT,
        policy=POLICY,
        mailbox=PER_BOX,
        domain_listed=True,
        contact=contact,
        read_receipt=True,
    )
    if allowed:
        assert_outcome(result, LOCAL_ROUTE)
    else:
        assert_outcome(result, refused(550, "5.7.1", f"{DR_MARTIN} has not written to you"))


@pytest.mark.parametrize("contact", [None, "open", "closed"])
@pytest.mark.parametrize("door", DOORS)
def test_professionals_ignore_contacts(door: Door, contact: ContactState | None) -> None:
    """The contact rule binds patients only: a professional writes to any professional."""
    result = route_recipient(
        DR_MARTIN,
        door=door,
        sender=PRO_AT[door],
        policy=POLICY,
        mailbox=PER_BOX,
        domain_listed=True,
        contact=contact,
    )
    assert result == LOCAL_ROUTE


# --- FIN and the patient's authorised contacts -----------------------------------------------


def facts(
    subject: str | None = None, reply_to: tuple[str, ...] = (), mes: str | None = None
) -> MessageFacts:
    return MessageFacts(subject=subject, reply_to=list(reply_to), x_mss_mes=mes)


@pytest.mark.parametrize(
    ("message", "fin"),
    [
        pytest.param(facts(mes="FIN"), True, id="header-FIN"),
        pytest.param(facts(mes="fin"), True, id="header-lowercase"),
        pytest.param(facts(mes="Fin"), True, id="header-mixed-case"),
        pytest.param(facts(mes="  FIN \t"), True, id="header-whitespace"),
        pytest.param(facts(subject="Résultats", mes="FIN"), True, id="header-with-any-subject"),
        pytest.param(facts(subject="[FIN]"), True, id="subject-exactly"),
        pytest.param(facts(subject=" [FIN] "), True, id="subject-surrounding-space"),
        pytest.param(facts(subject="[FIN] suite"), False, id="subject-fin-then-text"),
        pytest.param(facts(subject="Re: [FIN]"), False, id="subject-reply-to-fin"),
        pytest.param(facts(subject="FIN"), False, id="subject-without-brackets"),
        pytest.param(facts(subject="[fin]"), False, id="subject-lowercase"),
        pytest.param(facts(subject="Résultats d'analyse"), False, id="ordinary-subject"),
        pytest.param(facts(mes="FIN DE PRISE EN CHARGE"), False, id="header-other-value"),
        pytest.param(facts(mes="DEBUT"), False, id="header-not-fin"),
        pytest.param(facts(mes=""), False, id="header-empty"),
        pytest.param(facts(), False, id="nothing"),
    ],
)
def test_is_fin(message: MessageFacts, fin: bool) -> None:
    assert is_fin(message) is fin


SECRETARIAT = f"secretariat@{LOCAL_DOMAIN}"
REMOTE_SECRETARIAT = f"secretariat@{REMOTE_DOMAIN}"
PERSONAL = "dr.martin.perso@gmail.com"
SECOND_PATIENT_ROUTE = Route(OTHER_PATIENT, Destination.PATIENT, 101)
ORG = Sender(CARDIO, SenderKind.ORG, account_id=2, authenticated_as=DR_MARTIN, method="oauth")
APP = Sender(LABO, SenderKind.APP, account_id=3, authenticated_as=LABO, method="certificate")


@pytest.mark.parametrize(
    ("sender", "message", "routes", "mssante", "expected"),
    [
        pytest.param(
            PRO,
            facts("Résultats"),
            [PATIENT_ROUTE],
            set(),
            [ContactUpdate(100, DR_MARTIN, True)],
            id="professional-opens-itself",
        ),
        pytest.param(
            PEER_PRO,
            facts("Résultats"),
            [PATIENT_ROUTE],
            set(),
            [ContactUpdate(100, DR_DURAND, True)],
            id="peer-professional-opens-itself",
        ),
        pytest.param(
            ORG, facts(), [PATIENT_ROUTE], set(), [ContactUpdate(100, CARDIO, True)], id="org"
        ),
        pytest.param(
            APP, facts(), [PATIENT_ROUTE], set(), [ContactUpdate(100, LABO, True)], id="app"
        ),
        pytest.param(
            PRO,
            facts(reply_to=(SECRETARIAT,)),
            [PATIENT_ROUTE],
            {SECRETARIAT},
            [ContactUpdate(100, SECRETARIAT, True)],
            id="reply-to-mssante-opens-reply-to-only",
        ),
        pytest.param(
            PRO,
            facts(reply_to=(PERSONAL,)),
            [PATIENT_ROUTE],
            set(),
            [ContactUpdate(100, DR_MARTIN, True)],
            id="reply-to-outside-mssante-ignored",
        ),
        pytest.param(
            PRO,
            facts(reply_to=(PERSONAL, REMOTE_SECRETARIAT, SECRETARIAT)),
            [PATIENT_ROUTE],
            {REMOTE_SECRETARIAT, SECRETARIAT},
            [ContactUpdate(100, REMOTE_SECRETARIAT, True)],
            id="first-mssante-reply-to-wins",
        ),
        pytest.param(
            PRO,
            facts(mes="FIN"),
            [PATIENT_ROUTE],
            set(),
            [ContactUpdate(100, DR_MARTIN, False)],
            id="fin-closes",
        ),
        pytest.param(
            PRO,
            facts(subject="[FIN]"),
            [PATIENT_ROUTE],
            set(),
            [ContactUpdate(100, DR_MARTIN, False)],
            id="fin-subject-closes",
        ),
        pytest.param(
            PRO,
            facts(subject="Re: [FIN]"),
            [PATIENT_ROUTE],
            set(),
            [ContactUpdate(100, DR_MARTIN, True)],
            id="re-fin-reopens",
        ),
        pytest.param(
            PRO,
            facts(reply_to=(SECRETARIAT,), mes="FIN"),
            [PATIENT_ROUTE],
            {SECRETARIAT},
            [ContactUpdate(100, SECRETARIAT, False), ContactUpdate(100, DR_MARTIN, False)],
            id="fin-with-reply-to-closes-both",
        ),
        pytest.param(
            PRO,
            facts(reply_to=(DR_MARTIN,), mes="FIN"),
            [PATIENT_ROUTE],
            {DR_MARTIN},
            [ContactUpdate(100, DR_MARTIN, False)],
            id="fin-reply-to-is-sender-closes-once",
        ),
        pytest.param(
            PRO,
            facts(reply_to=(PERSONAL,), mes="FIN"),
            [PATIENT_ROUTE],
            set(),
            [ContactUpdate(100, DR_MARTIN, False)],
            id="fin-with-foreign-reply-to",
        ),
        pytest.param(
            PRO,
            facts("Compte rendu"),
            [PATIENT_ROUTE, SECOND_PATIENT_ROUTE],
            set(),
            [ContactUpdate(100, DR_MARTIN, True), ContactUpdate(101, DR_MARTIN, True)],
            id="every-patient-recipient",
        ),
        pytest.param(
            PRO,
            facts(reply_to=(SECRETARIAT,), mes="fin"),
            [PATIENT_ROUTE, SECOND_PATIENT_ROUTE],
            {SECRETARIAT},
            [
                ContactUpdate(100, SECRETARIAT, False),
                ContactUpdate(100, DR_MARTIN, False),
                ContactUpdate(101, SECRETARIAT, False),
                ContactUpdate(101, DR_MARTIN, False),
            ],
            id="fin-every-patient-recipient",
        ),
        pytest.param(PAT, facts(), [SECOND_PATIENT_ROUTE], set(), [], id="patient-sender"),
        pytest.param(
            PEER_PAT, facts(mes="FIN"), [PATIENT_ROUTE], set(), [], id="peer-patient-sender"
        ),
        pytest.param(NULL_SENDER, facts(), [PATIENT_ROUTE], set(), [], id="null-sender"),
        pytest.param(
            NULL_SENDER,
            facts(reply_to=(SECRETARIAT,)),
            [PATIENT_ROUTE],
            {SECRETARIAT},
            [],
            id="null-sender-with-reply-to",
        ),
        pytest.param(PRO, facts(), [], set(), [], id="no-patient-recipient"),
        pytest.param(
            PRO,
            facts(),
            [Route(PATIENT, Destination.PATIENT)],
            set(),
            [],
            id="patient-route-without-account",
        ),
    ],
)
def test_contact_updates(
    sender: Sender,
    message: MessageFacts,
    routes: list[Route],
    mssante: set[str],
    expected: list[ContactUpdate],
) -> None:
    assert contact_updates(sender, message, routes, is_mssante=mssante) == expected


# --- routing.headers.message_facts on raw messages -------------------------------------------


def crlf(*lines: str) -> bytes:
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize(
    ("raw", "subject", "reply_to", "mes"),
    [
        pytest.param(
            crlf(
                f"From: Dr Martin <{DR_MARTIN}>",
                f"To: {PATIENT}",
                "Subject: =?UTF-8?Q?R=C3=A9sultats_d=27analyse?=",
                f"Reply-To: {SECRETARIAT}",
                "X-MSS-NIL: LPS-LABO-1.2",
                "MIME-Version: 1.0",
                "",
                "Bonjour,",
            ),
            "Résultats d'analyse",
            [SECRETARIAT],
            None,
            id="typical-lab-result",
        ),
        pytest.param(
            crlf("Subject: Compte rendu", " de consultation", "\tdu 12 mars", "", "body"),
            "Compte rendu de consultation du 12 mars",
            [],
            None,
            id="folded-subject",
        ),
        pytest.param(
            crlf("Subject:", " [FIN]", "", "body"),
            "[FIN]",
            [],
            None,
            id="folded-fin-subject",
        ),
        pytest.param(
            crlf("Subject: =?UTF-8?B?W0ZJTl0=?=", "", "body"),
            "[FIN]",
            [],
            None,
            id="encoded-fin-subject",
        ),
        pytest.param(
            crlf(
                "Reply-To: =?UTF-8?Q?Dr_M=C3=BCller?= <Dr.Muller@CH-X.mssante.fr>,",
                f' "Secrétariat, cardio" <{REMOTE_SECRETARIAT}>, {PERSONAL}',
                "",
                "",
            ),
            None,
            [f"dr.muller@{LOCAL_DOMAIN}", REMOTE_SECRETARIAT, PERSONAL],
            None,
            id="several-reply-to-encoded-names",
        ),
        pytest.param(
            crlf(f"Reply-To: {SECRETARIAT}", f"Reply-To: {REMOTE_SECRETARIAT}", "", ""),
            None,
            [SECRETARIAT, REMOTE_SECRETARIAT],
            None,
            id="reply-to-twice",
        ),
        pytest.param(
            crlf("Reply-To: <<>>, not an address, @@, nobody@, <a b@c.fr>", "", ""),
            None,
            [],
            None,
            id="reply-to-without-usable-address",
        ),
        pytest.param(
            crlf("X-MSS-MES:   fin  ", "Subject: Suivi", "", ""),
            "Suivi",
            [],
            "fin",
            id="x-mss-mes-spaces",
        ),
        pytest.param(
            crlf("x-mss-mes: FIN", "SUBJECT: a", "", ""),
            "a",
            [],
            "FIN",
            id="header-names-any-case",
        ),
        pytest.param(
            b"Subject: [FIN]\nReply-To: secretariat@ch-x.mssante.fr\nX-MSS-MES: FIN\n\nbody\n",
            "[FIN]",
            [SECRETARIAT],
            "FIN",
            id="lf-only",
        ),
        pytest.param(
            crlf("Subject: Suivi", f"Reply-To: {SECRETARIAT}"),
            "Suivi",
            [SECRETARIAT],
            None,
            id="no-separator-no-body",
        ),
        pytest.param(
            crlf("Subject: Suivi", "", "Subject: [FIN]", "X-MSS-MES: FIN", f"Reply-To: {PERSONAL}"),
            "Suivi",
            [],
            None,
            id="header-lookalikes-in-body-ignored",
        ),
        pytest.param(
            b"Subject: Suivi\r\n\r\nbody\n\nX-MSS-MES: FIN\n\n",
            "Suivi",
            [],
            None,
            id="crlf-message-with-lf-blank-lines-in-body",
        ),
        pytest.param(
            crlf("Subject: Suivi", "this line is not a header", "X-MSS-MES: FIN", "", ""),
            "Suivi",
            [],
            None,
            id="broken-header-line-ends-the-header",
        ),
        pytest.param(
            crlf("Subject: =?x-unknown?q?abc?=", "", ""),
            "=?x-unknown?q?abc?=",
            [],
            None,
            id="unknown-charset-kept-as-is",
        ),
        pytest.param(
            crlf("Subject: =?utf-8?q?=FF=FE?=", "", ""),
            "=?utf-8?q?=FF=FE?=",
            [],
            None,
            id="bad-bytes-kept-as-is",
        ),
        pytest.param(b"", None, [], None, id="empty"),
        pytest.param(b"\r\n\r\nSubject: [FIN]\r\n", None, [], None, id="no-header-at-all"),
        pytest.param(b"\x00\xff\xfe garbage \x80", None, [], None, id="binary-garbage"),
    ],
)
def test_message_facts(
    raw: bytes, subject: str | None, reply_to: list[str], mes: str | None
) -> None:
    assert message_facts(raw) == MessageFacts(subject=subject, reply_to=reply_to, x_mss_mes=mes)


def test_message_facts_raw_utf8_headers() -> None:
    """RFC 6532 (SMTPUTF8): raw UTF-8 in headers; the rules still find Reply-To and FIN."""
    raw = (
        'Reply-To: "Dr Müller, secrétariat" <muller@ch-x.mssante.fr>\r\n'
        "Subject: Résultats\r\n"
        "X-MSS-MES: FIN\r\n\r\nCorps été\r\n"
    ).encode()
    found = message_facts(raw)
    assert found.reply_to == ["muller@ch-x.mssante.fr"]
    assert found.x_mss_mes == "FIN"
    assert found.subject is not None and found.subject.endswith("sultats")
    assert is_fin(found)


def test_message_facts_huge_header_block_does_not_hang() -> None:
    """A header section with no end (only headers, megabytes long) is read up to a bound."""
    raw = b"Subject: [FIN]\r\n" + b"X-Filler: " + b"a" * (3 * MB) + b"\r\n\r\nbody"
    assert message_facts(raw).subject == "[FIN]"


@pytest.mark.parametrize(
    ("raw", "fin"),
    [
        pytest.param(crlf("X-MSS-MES: FIN", "Subject: Fin de suivi", "", ""), True, id="header"),
        pytest.param(crlf("Subject: [FIN]", "", ""), True, id="subject"),
        pytest.param(crlf("Subject: =?utf-8?q?=5BFIN=5D?=", "", ""), True, id="encoded-subject"),
        pytest.param(crlf("Subject: Re: [FIN]", "", ""), False, id="reply"),
        pytest.param(crlf("Subject: [FIN] suite", "", ""), False, id="fin-then-text"),
        pytest.param(crlf("Subject: Suivi", "", "X-MSS-MES: FIN"), False, id="fin-in-body"),
    ],
)
def test_fin_read_from_raw_message(raw: bytes, fin: bool) -> None:
    assert is_fin(message_facts(raw)) is fin


@pytest.mark.parametrize(
    ("mail_from", "listed"),
    [
        pytest.param(DR_DURAND, frozenset({OPERATOR_DN}), id="dn-not-listed-for-domain"),
        pytest.param("", None, id="null-sender-unknown-dn"),
    ],
)
def test_check_peer_sender_names_the_dn_as_written(
    mail_from: str, listed: frozenset[str] | None
) -> None:
    """The peer's administrator reads the DN as their certificate spells it, not normalised."""
    written = "CN=mx.operateur-z.fr, O=Opérateur Z, C=FR"
    result = check_peer_sender(mail_from, OTHER_DN, listed, dn_is_operator=False, shown_dn=written)
    assert_refused(result, refused(550, "5.7.1", written))
    assert isinstance(result, Refusal) and OTHER_DN not in result.reason

"""routing.pipeline.Pipeline through in-memory directory and store (tests/unit/routing/fakes.py).

identify the sender -> route each recipient -> deliver: what a peer, a professional's client
or a patient is answered, and what the pipeline hands the store to make durable.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from routing.decisions import Destination, Refusal, Route, Sender, SenderKind
from routing.identifiers import ins_key
from routing.pipeline import (
    Accepted,
    DeliveryPlan,
    FailedCopy,
    LocalCopy,
    Pipeline,
    RelayCopy,
)
from routing.policy import PATIENT_DOMAIN, Mailbox, Policy
from routing.rules import ContactState, ContactUpdate, Door
from tests.unit.routing.fakes import FakeDirectory, FakeStore, Who

MB = 1024 * 1024
LOCAL_DOMAIN = "ch-x.mssante.fr"
REMOTE_DOMAIN = "clinique-y.mssante.fr"
FOREIGN_DOMAIN = "gmail.com"

OUR_DN = "cn=smtp.ch-x.fr,o=operateur x,c=fr"
OPERATOR_DN = "cn=smtp.clinique-y.fr,o=clinique y,c=fr"  # listed for REMOTE_DOMAIN
CNAM_DN = "cn=smtp.patient.mssante.fr,o=cnam,c=fr"  # hosts the patients when we do not
UNKNOWN_DN = "cn=mail.example.com,o=example,c=us"

HOSTS_PATIENTS = Policy(frozenset({LOCAL_DOMAIN}), patient_domain=PATIENT_DOMAIN)
PRO_ONLY = Policy(frozenset({LOCAL_DOMAIN}))

PATIENT = f"{'1460263220001' + ins_key('1460263220001')}@{PATIENT_DOMAIN}"
OTHER_PATIENT = f"{'2690299341732' + ins_key('2690299341732')}@{PATIENT_DOMAIN}"
OPPOSED_PATIENT = f"{'1850575123456' + ins_key('1850575123456')}@{PATIENT_DOMAIN}"
DR_MARTIN = f"dr.martin@{LOCAL_DOMAIN}"
DR_BERNARD = f"dr.bernard@{LOCAL_DOMAIN}"
CARDIO = f"cardiologie@{LOCAL_DOMAIN}"
SECRETARIAT = f"secretariat@{LOCAL_DOMAIN}"
LABO = f"labo@{LOCAL_DOMAIN}"
DR_DURAND = f"dr.durand@{REMOTE_DOMAIN}"
REMOTE_SECRETARIAT = f"secretariat@{REMOTE_DOMAIN}"
STRANGER = f"jean.dupont@{FOREIGN_DOMAIN}"

BOXES = [
    Mailbox(1, DR_MARTIN, "PER", active=True),
    Mailbox(2, CARDIO, "ORG", active=True),
    Mailbox(3, LABO, "APP", active=True),
    Mailbox(4, DR_BERNARD, "PER", active=True),
    Mailbox(5, SECRETARIAT, "ORG", active=True),
    Mailbox(100, PATIENT, "PAT", active=True, patient_state="active"),
    Mailbox(101, OTHER_PATIENT, "PAT", active=True, patient_state="active"),
    Mailbox(102, OPPOSED_PATIENT, "PAT", active=False, patient_state="opposed"),
]

DR_MARTIN_CPS = Who(1, DR_MARTIN, "PER", "certificate")
PATIENT_LOGIN = Who(100, PATIENT, "PAT", "password")


@dataclass
class World:
    pipeline: Pipeline
    directory: FakeDirectory
    store: FakeStore

    @property
    def plan(self) -> DeliveryPlan:
        assert len(self.store.plans) == 1, f"expected one plan, got {len(self.store.plans)}"
        return self.store.plans[0]


def make_world(policy: Policy = HOSTS_PATIENTS) -> World:
    directory = FakeDirectory()
    for box in BOXES:
        if policy.is_local_domain(box.address.split("@")[1]):
            directory.add(box)
    directory.list_domain(LOCAL_DOMAIN, OUR_DN)
    directory.list_domain(REMOTE_DOMAIN, OPERATOR_DN)
    directory.list_domain(PATIENT_DOMAIN, OUR_DN if policy.patient_domain else CNAM_DN)
    directory.members.add((1, CARDIO))
    store = FakeStore()
    return World(Pipeline(policy, directory, store), directory, store)


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def pro_only() -> World:
    return make_world(PRO_ONLY)


def assert_refused(result: object, code: int, status: str, *words: str) -> None:
    assert isinstance(result, Refusal), f"expected a refusal, got {result!r}"
    assert (result.code, result.status) == (code, status), result.reply()
    for word in words:
        assert word in result.reason, f"{word!r} not in {result.reason!r}"


# --- peer_sender -----------------------------------------------------------------------------


def peer(address: str, dn: str, kind: SenderKind = SenderKind.PEER) -> Sender:
    return Sender(address, kind, method="peer-tls", peer=dn)


@pytest.mark.parametrize(
    ("policy", "mail_from", "dn", "expected"),
    [
        pytest.param(
            HOSTS_PATIENTS, DR_DURAND, OPERATOR_DN, peer(DR_DURAND, OPERATOR_DN), id="listed-dn"
        ),
        pytest.param(
            HOSTS_PATIENTS,
            "Dr.Durand@Clinique-Y.MSSANTE.fr",
            OPERATOR_DN,
            peer(DR_DURAND, OPERATOR_DN),
            id="mixed-case-normalised",
        ),
        pytest.param(HOSTS_PATIENTS, "", OPERATOR_DN, peer("", OPERATOR_DN), id="null-sender"),
        pytest.param(
            PRO_ONLY,
            OTHER_PATIENT,
            CNAM_DN,
            peer(OTHER_PATIENT, CNAM_DN, SenderKind.PAT),
            id="patient-domain-sender-is-a-patient",
        ),
    ],
)
async def test_peer_sender_accepted(
    policy: Policy, mail_from: str, dn: str, expected: Sender
) -> None:
    world = make_world(policy)
    assert await world.pipeline.peer_sender(mail_from, dn) == expected


@pytest.mark.parametrize(
    ("mail_from", "dn", "code", "status", "words"),
    [
        pytest.param(
            DR_DURAND,
            CNAM_DN,
            550,
            "5.7.1",
            (CNAM_DN, REMOTE_DOMAIN, "not listed", "liste blanche"),
            id="dn-of-another-operator",
        ),
        pytest.param(
            STRANGER,
            UNKNOWN_DN,
            550,
            "5.7.1",
            (FOREIGN_DOMAIN, "outside the MSSanté trust space"),
            id="unlisted-domain",
        ),
        pytest.param(
            DR_DURAND,
            None,
            550,
            "5.7.1",
            ("IGC-Santé certificate",),
            id="no-certificate",
        ),
        pytest.param(
            "",
            UNKNOWN_DN,
            550,
            "5.7.1",
            (UNKNOWN_DN, "not listed for any domain"),
            id="null-sender-unknown-dn",
        ),
        pytest.param(
            DR_MARTIN,
            OPERATOR_DN,
            550,
            "5.7.1",
            (OPERATOR_DN, LOCAL_DOMAIN),
            id="peer-claims-one-of-our-domains",
        ),
        pytest.param(
            PATIENT,
            CNAM_DN,
            550,
            "5.7.1",
            (CNAM_DN, PATIENT_DOMAIN),
            id="peer-claims-our-patients",
        ),
        pytest.param(
            "dr durand@clinique-y.mssante.fr",
            OPERATOR_DN,
            501,
            "5.1.7",
            ("bad sender address",),
            id="bad-syntax",
        ),
    ],
)
async def test_peer_sender_refused(
    world: World, mail_from: str, dn: str | None, code: int, status: str, words: tuple[str, ...]
) -> None:
    assert_refused(await world.pipeline.peer_sender(mail_from, dn), code, status, *words)


# --- authenticated_sender --------------------------------------------------------------------


async def test_professional_sends_as_itself(world: World) -> None:
    sender = await world.pipeline.authenticated_sender(DR_MARTIN_CPS, "Dr.Martin@CH-X.mssante.fr")
    assert sender == Sender(
        DR_MARTIN, SenderKind.PER, account_id=1, authenticated_as=DR_MARTIN, method="certificate"
    )
    assert world.directory.annuaire_lookups == [1]


async def test_professional_sends_as_its_org(world: World) -> None:
    who = Who(1, DR_MARTIN, "PER", "oauth")
    sender = await world.pipeline.authenticated_sender(who, CARDIO)
    assert sender == Sender(
        CARDIO, SenderKind.ORG, account_id=2, authenticated_as=DR_MARTIN, method="oauth"
    )


@pytest.mark.parametrize(
    ("who", "mail_from", "inactive", "code", "status", "words"),
    [
        pytest.param(
            DR_MARTIN_CPS,
            DR_BERNARD,
            set(),
            550,
            "5.7.1",
            (f"{DR_MARTIN} may not send as {DR_BERNARD}",),
            id="another-professional",
        ),
        pytest.param(
            DR_MARTIN_CPS,
            SECRETARIAT,
            set(),
            550,
            "5.7.1",
            (f"{DR_MARTIN} may not send as {SECRETARIAT}",),
            id="an-org-it-is-not-in",
        ),
        pytest.param(
            DR_MARTIN_CPS,
            DR_DURAND,
            set(),
            550,
            "5.7.1",
            ("may not send as", DR_DURAND),
            id="another-operator-box",
        ),
        pytest.param(
            Who(4, DR_BERNARD, "PER", "oauth"),
            CARDIO,
            set(),
            550,
            "5.7.1",
            (f"{DR_BERNARD} may not send as {CARDIO}",),
            id="org-of-someone-else",
        ),
        pytest.param(
            DR_MARTIN_CPS,
            DR_MARTIN,
            {1},
            550,
            "5.7.1",
            ("not active in the annuaire",),
            id="per-no-longer-active",
        ),
        pytest.param(
            DR_MARTIN_CPS,
            CARDIO,
            {1},
            550,
            "5.7.1",
            ("not active in the annuaire",),
            id="per-no-longer-active-as-org",
        ),
        pytest.param(DR_MARTIN_CPS, "", set(), 550, "5.7.1", ("MAIL FROM:<>",), id="null-sender"),
        pytest.param(
            Who(9, f"dr.parti@{LOCAL_DOMAIN}", "PER", "oauth"),
            f"dr.parti@{LOCAL_DOMAIN}",
            set(),
            550,
            "5.7.1",
            ("no longer exists",),
            id="box-deleted-since-login",
        ),
        pytest.param(
            DR_MARTIN_CPS, "dr.martin@", set(), 501, "5.1.7", ("bad sender address",), id="syntax"
        ),
        pytest.param(
            PATIENT_LOGIN,
            OTHER_PATIENT,
            set(),
            550,
            "5.7.1",
            (f"{PATIENT} may not send as {OTHER_PATIENT}",),
            id="patient-as-another-patient",
        ),
    ],
)
async def test_authenticated_sender_refused(
    world: World,
    who: Who,
    mail_from: str,
    inactive: set[int],
    code: int,
    status: str,
    words: tuple[str, ...],
) -> None:
    world.directory.inactive_professionals |= inactive
    assert_refused(await world.pipeline.authenticated_sender(who, mail_from), code, status, *words)


@pytest.mark.parametrize(
    ("who", "mail_from", "expected"),
    [
        pytest.param(
            Who(2, CARDIO, "ORG", "certificate"),
            CARDIO,
            Sender(CARDIO, SenderKind.ORG, 2, CARDIO, "certificate"),
            id="org-certificate",
        ),
        pytest.param(
            Who(3, LABO, "APP", "certificate"),
            LABO,
            Sender(LABO, SenderKind.APP, 3, LABO, "certificate"),
            id="app-certificate",
        ),
        pytest.param(
            PATIENT_LOGIN,
            PATIENT,
            Sender(PATIENT, SenderKind.PAT, 100, PATIENT, "password"),
            id="patient-webmail",
        ),
    ],
)
async def test_non_professionals_skip_the_annuaire(
    world: World, who: Who, mail_from: str, expected: Sender
) -> None:
    world.directory.inactive_professionals |= {2, 3, 100}  # would refuse them if consulted
    assert await world.pipeline.authenticated_sender(who, mail_from) == expected
    assert world.directory.annuaire_lookups == []


@pytest.mark.parametrize(
    ("declared", "refused"),
    [(None, False), (50 * MB, False), (50 * MB + 1, True)],
    ids=["none", "at-limit", "over"],
)
def test_check_size(world: World, declared: int | None, refused: bool) -> None:
    result = world.pipeline.check_size(declared)
    if refused:
        assert_refused(result, 552, "5.3.4", str(declared))
    else:
        assert result is None


# --- route -----------------------------------------------------------------------------------

PRO = Sender(DR_MARTIN, SenderKind.PER, 1, DR_MARTIN, "certificate")
PEER_PRO = peer(DR_DURAND, OPERATOR_DN)
PAT = Sender(PATIENT, SenderKind.PAT, 100, PATIENT, "password")


@pytest.mark.parametrize(
    ("door", "sender", "recipient", "expected"),
    [
        pytest.param(
            "submission",
            PRO,
            "Dr.Bernard@CH-X.MSSante.fr",
            Route(DR_BERNARD, Destination.LOCAL, 4),
            id="local-mixed-case",
        ),
        pytest.param(
            "submission", PRO, PATIENT, Route(PATIENT, Destination.PATIENT, 100), id="patient"
        ),
        pytest.param(
            "inbound", PEER_PRO, PATIENT, Route(PATIENT, Destination.PATIENT, 100), id="peer-to-pat"
        ),
        pytest.param(
            "submission",
            PRO,
            REMOTE_SECRETARIAT,
            Route(REMOTE_SECRETARIAT, Destination.RELAY),
            id="remote-listed",
        ),
    ],
)
async def test_route_accepted(
    world: World, door: Door, sender: Sender, recipient: str, expected: Route
) -> None:
    assert await world.pipeline.route(door, sender, recipient) == expected
    assert world.directory.contact_lookups == []  # only patients' recipients are checked


@pytest.mark.parametrize(
    ("door", "sender", "recipient", "declared", "code", "status", "words"),
    [
        pytest.param(
            "submission",
            PRO,
            f"personne@{LOCAL_DOMAIN}",
            None,
            550,
            "5.1.1",
            ("no such mailbox",),
            id="unknown-local",
        ),
        pytest.param(
            "submission",
            PRO,
            STRANGER,
            None,
            550,
            "5.7.1",
            ("outside the MSSanté trust space",),
            id="unlisted",
        ),
        pytest.param(
            "inbound",
            PEER_PRO,
            REMOTE_SECRETARIAT,
            None,
            550,
            "5.1.1",
            ("not a mailbox of this operator",),
            id="inbound-relay-attempt",
        ),
        pytest.param(
            "submission",
            PRO,
            OPPOSED_PATIENT,
            None,
            550,
            "5.1.1",
            ("opposed",),
            id="opposed-patient",
        ),
        pytest.param(
            "submission",
            PRO,
            f"{PATIENT[:13]}00@{PATIENT_DOMAIN}",
            None,
            550,
            "5.1.3",
            ("wrong key",),
            id="bad-ins",
        ),
        pytest.param(
            "submission",
            PRO,
            f"{'2690299341733' + ins_key('2690299341733')}@{PATIENT_DOMAIN}",
            None,
            550,
            "5.1.1",
            ("no Mon espace santé mailbox",),
            id="unknown-patient",
        ),
        pytest.param(
            "submission",
            PRO,
            PATIENT,
            30 * MB,
            552,
            "5.3.4",
            ("25 MB", PATIENT_DOMAIN),
            id="patient-declared-30mb",
        ),
        pytest.param(
            "submission",
            PRO,
            "dr martin@ch-x.mssante.fr",
            None,
            501,
            "5.1.3",
            ("invalid address",),
            id="syntax",
        ),
    ],
)
async def test_route_refused(
    world: World,
    door: Door,
    sender: Sender,
    recipient: str,
    declared: int | None,
    code: int,
    status: str,
    words: tuple[str, ...],
) -> None:
    result = await world.pipeline.route(door, sender, recipient, declared)
    assert_refused(result, code, status, *words)


async def test_route_declared_size_only_binds_patients(world: World) -> None:
    assert await world.pipeline.route("submission", PRO, DR_BERNARD, 30 * MB) == Route(
        DR_BERNARD, Destination.LOCAL, 4
    )


@pytest.mark.parametrize(
    ("recipient", "contacts", "expected"),
    [
        pytest.param(
            "Dr.Martin@ch-x.mssante.fr",
            {(100, DR_MARTIN): "open"},
            Route(DR_MARTIN, Destination.LOCAL, 1),
            id="open-local",
        ),
        pytest.param(
            DR_DURAND,
            {(100, DR_DURAND): "open"},
            Route(DR_DURAND, Destination.RELAY),
            id="open-remote",
        ),
        pytest.param(
            DR_MARTIN,
            {(100, DR_MARTIN): "closed"},
            (550, "5.7.1", "closed the exchange"),
            id="closed",
        ),
        pytest.param(
            DR_MARTIN,
            {(100, DR_BERNARD): "open", (101, DR_MARTIN): "open"},
            (550, "5.7.1", "a patient can only answer a professional who wrote first"),
            id="no-contact-of-this-patient",
        ),
        pytest.param(
            OTHER_PATIENT,
            {(100, OTHER_PATIENT): "open"},
            (550, "5.7.1", "a patient cannot write to a patient"),
            id="another-patient",
        ),
    ],
)
async def test_route_patient_contact_lookup(
    world: World,
    recipient: str,
    contacts: dict[tuple[int, str], ContactState],
    expected: Route | tuple[int, str, str],
) -> None:
    world.directory.contacts.update(contacts)
    result = await world.pipeline.route("webmail", PAT, recipient)
    if isinstance(expected, Route):
        assert result == expected
    else:
        assert_refused(result, *expected)
    # The lookup is for this patient and the normalised recipient.
    assert world.directory.contact_lookups == [(100, recipient.lower())]


async def test_route_peer_patient_answers_our_professional(pro_only: World) -> None:
    """A Mon espace santé patient relayed by the patients' operator reaches our professional:
    that operator holds the patient's contacts and applied the first-contact rule."""
    sender = await pro_only.pipeline.peer_sender(OTHER_PATIENT, CNAM_DN)
    assert isinstance(sender, Sender) and sender.is_patient
    assert await pro_only.pipeline.route("inbound", sender, DR_MARTIN) == Route(
        DR_MARTIN, Destination.LOCAL, 1
    )
    assert_refused(
        await pro_only.pipeline.route("inbound", sender, DR_DURAND),
        550,
        "5.1.1",
        "not a mailbox of this operator",
    )


async def test_route_professional_to_patient_hosted_elsewhere(pro_only: World) -> None:
    assert await pro_only.pipeline.route("submission", PRO, PATIENT) == Route(
        PATIENT, Destination.RELAY
    )


# --- deliver ---------------------------------------------------------------------------------


def message(
    subject: str = "Compte rendu", *extra: str, body: str = "Bonjour,", size: int = 0
) -> bytes:
    head = "\r\n".join(
        [f"From: {DR_MARTIN}", f"To: {PATIENT}", f"Subject: {subject}", *extra, "", ""]
    ).encode()
    text = body.encode()
    return head + text + b"x" * max(0, size - len(head) - len(text))


def local(address: str, account_id: int) -> Accepted:
    return Accepted(Route(address, Destination.LOCAL, account_id))


def patient(address: str = PATIENT, account_id: int = 100, **dsn: str) -> Accepted:
    return Accepted(Route(address, Destination.PATIENT, account_id), **dsn)


def relay(address: str, **dsn: str) -> Accepted:
    return Accepted(Route(address, Destination.RELAY), **dsn)


async def test_deliver_one_plan_for_local_patient_and_relay_copies(world: World) -> None:
    data = message()
    outcome = await world.pipeline.deliver(
        PRO,
        [local(DR_BERNARD, 4), patient(), relay(DR_DURAND)],
        data,
        envid="ENV-42",
        ret="HDRS",
        remote_address="192.0.2.7",
        smtputf8=True,
    )
    assert outcome.refused == {}
    assert outcome.delivered == 3
    assert outcome.all_refused is None
    assert world.plan == DeliveryPlan(
        data=data,
        sender=DR_MARTIN,
        envid="ENV-42",
        ret="HDRS",
        local=[
            LocalCopy(4, DR_BERNARD, None, None, patient=False),
            LocalCopy(100, PATIENT, None, None, patient=True),
        ],
        relay=[RelayCopy(DR_DURAND, None, None)],
        failed=[],
        contacts=[ContactUpdate(100, DR_MARTIN, True)],
        actor=DR_MARTIN,
        method="certificate",
        remote_address="192.0.2.7",
        smtputf8=True,
        completes=(),
    )


async def test_deliver_30mb_refuses_the_patient_and_stores_the_professional(
    world: World,
) -> None:
    data = message(size=30 * MB)
    outcome = await world.pipeline.deliver(
        PRO, [patient(notify="FAILURE", orcpt=f"rfc822;{PATIENT}"), local(DR_BERNARD, 4)], data
    )
    assert outcome.delivered == 1
    assert outcome.all_refused is None  # the door answers 250: the professional got it
    assert list(outcome.refused) == [PATIENT]
    assert_refused(outcome.refused[PATIENT], 552, "5.3.4", "25 MB", PATIENT_DOMAIN)
    plan = world.plan
    assert plan.local == [LocalCopy(4, DR_BERNARD, None, None, patient=False)]
    assert plan.relay == []
    assert plan.failed == [
        FailedCopy(
            PATIENT,
            "FAILURE",
            f"rfc822;{PATIENT}",
            "5.3.4",
            outcome.refused[PATIENT].reason,
        )
    ]
    assert plan.contacts == []  # the patient never got it: no contact opened


async def test_deliver_25mb_exactly_reaches_the_patient(world: World) -> None:
    data = message(size=25 * MB)
    assert len(data) == 25 * MB
    outcome = await world.pipeline.deliver(PRO, [patient()], data)
    assert outcome.delivered == 1 and outcome.refused == {}
    assert world.plan.local == [LocalCopy(100, PATIENT, None, None, patient=True)]


async def test_deliver_all_refused_stores_nothing(world: World) -> None:
    outcome = await world.pipeline.deliver(
        PRO, [patient(), patient(OTHER_PATIENT, 101)], message(size=25 * MB + 1)
    )
    assert world.store.plans == []
    assert outcome.delivered == 0
    assert set(outcome.refused) == {PATIENT, OTHER_PATIENT}
    refusal = outcome.all_refused
    assert refusal is not None
    assert_refused(refusal, 552, "5.3.4", "25 MB")


async def test_deliver_over_server_limit_refuses_everyone(world: World) -> None:
    outcome = await world.pipeline.deliver(
        PRO, [local(DR_BERNARD, 4), relay(DR_DURAND)], message(size=50 * MB + 1)
    )
    assert world.store.plans == []
    assert set(outcome.refused) == {DR_BERNARD, DR_DURAND}
    assert outcome.all_refused is not None
    assert_refused(outcome.all_refused, 552, "5.3.4", str(50 * MB))


async def test_deliver_store_failure_propagates(world: World) -> None:
    """Acceptance is a promise: when the store cannot make it durable, deliver raises (the door
    answers 451) instead of reporting a delivery."""
    world.store.fail = OSError(28, "No space left on device")
    with pytest.raises(OSError, match="No space left"):
        await world.pipeline.deliver(PRO, [local(DR_BERNARD, 4)], message())


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            (f"Reply-To: {SECRETARIAT}",),
            [ContactUpdate(100, SECRETARIAT, True)],
            id="reply-to-local-domain",
        ),
        pytest.param(
            (f"Reply-To: Secrétariat <{REMOTE_SECRETARIAT}>",),
            [ContactUpdate(100, REMOTE_SECRETARIAT, True)],
            id="reply-to-on-liste-blanche",
        ),
        pytest.param(
            ("Reply-To: dr.martin.perso@gmail.com",),
            [ContactUpdate(100, DR_MARTIN, True)],
            id="reply-to-not-mssante",
        ),
        pytest.param(
            (f"Reply-To: dr.martin.perso@gmail.com, {REMOTE_SECRETARIAT}",),
            [ContactUpdate(100, REMOTE_SECRETARIAT, True)],
            id="first-mssante-reply-to",
        ),
        pytest.param(
            ("X-MSS-MES: FIN",),
            [ContactUpdate(100, DR_MARTIN, False)],
            id="fin",
        ),
        pytest.param(
            (f"Reply-To: {SECRETARIAT}", "X-MSS-MES: fin"),
            [ContactUpdate(100, SECRETARIAT, False), ContactUpdate(100, DR_MARTIN, False)],
            id="fin-with-reply-to",
        ),
    ],
)
async def test_deliver_contact_updates_reach_the_store(
    world: World, headers: tuple[str, ...], expected: list[ContactUpdate]
) -> None:
    await world.pipeline.deliver(PRO, [patient()], message("Suivi", *headers))
    assert world.plan.contacts == expected


async def test_deliver_fin_subject(world: World) -> None:
    await world.pipeline.deliver(PRO, [patient()], message("[FIN]"))
    assert world.plan.contacts == [ContactUpdate(100, DR_MARTIN, False)]


async def test_deliver_mixed_recipients_only_patients_get_contacts(world: World) -> None:
    await world.pipeline.deliver(
        PRO,
        [local(DR_BERNARD, 4), patient(), relay(DR_DURAND), patient(OTHER_PATIENT, 101)],
        message(),
    )
    assert world.plan.contacts == [
        ContactUpdate(100, DR_MARTIN, True),
        ContactUpdate(101, DR_MARTIN, True),
    ]


@pytest.mark.parametrize(
    "sender",
    [
        pytest.param(PAT, id="patient"),
        pytest.param(peer("", OPERATOR_DN), id="null-sender"),
    ],
)
async def test_deliver_patients_and_reports_change_no_contact(world: World, sender: Sender) -> None:
    await world.pipeline.deliver(
        sender, [patient(OTHER_PATIENT, 101)], message("Re: Suivi", f"Reply-To: {SECRETARIAT}")
    )
    assert world.plan.contacts == []


async def test_deliver_from_peer_opens_the_peer_professional(world: World) -> None:
    await world.pipeline.deliver(PEER_PRO, [patient()], message(), remote_address="198.51.100.4")
    plan = world.plan
    assert plan.contacts == [ContactUpdate(100, DR_DURAND, True)]
    assert (plan.sender, plan.actor, plan.method) == (DR_DURAND, OPERATOR_DN, "peer-tls")
    assert plan.remote_address == "198.51.100.4"


async def test_deliver_dsn_parameters_travel(world: World) -> None:
    await world.pipeline.deliver(
        PRO,
        [
            Accepted(Route(DR_BERNARD, Destination.LOCAL, 4), "SUCCESS,DELAY", "rfc822;b@x.fr"),
            patient(notify="NEVER"),
            relay(DR_DURAND, notify="SUCCESS,FAILURE", orcpt=f"rfc822;{DR_DURAND}"),
        ],
        message(),
        envid="QQ314159",
        ret="FULL",
    )
    plan = world.plan
    assert (plan.envid, plan.ret) == ("QQ314159", "FULL")
    assert plan.local == [
        LocalCopy(4, DR_BERNARD, "SUCCESS,DELAY", "rfc822;b@x.fr", patient=False),
        LocalCopy(100, PATIENT, "NEVER", None, patient=True),
    ]
    assert plan.relay == [RelayCopy(DR_DURAND, "SUCCESS,FAILURE", f"rfc822;{DR_DURAND}")]


async def test_deliver_report_completes_queue_entries(world: World) -> None:
    """A DSN generated for queue entries 7 and 9 marks them done in the same store call."""
    report = peer("", OPERATOR_DN)
    await world.pipeline.deliver(report, [local(DR_BERNARD, 4)], message(), completes=[7, 9])
    plan = world.plan
    assert plan.completes == [7, 9]
    assert plan.sender == ""
    assert plan.actor == OPERATOR_DN


async def test_deliver_org_sender_actor_is_the_member(world: World) -> None:
    org = Sender(CARDIO, SenderKind.ORG, 2, DR_MARTIN, "oauth")
    await world.pipeline.deliver(org, [patient()], message())
    plan = world.plan
    assert (plan.sender, plan.actor, plan.method) == (CARDIO, DR_MARTIN, "oauth")
    assert plan.contacts == [ContactUpdate(100, CARDIO, True)]


# --- the whole transaction, as a door drives it ----------------------------------------------


async def test_professional_writes_patient_answers_until_fin(world: World) -> None:
    """Dr Martin writes (secretariat as Reply-To); the patient may answer the secretariat, not
    Dr Martin; after FIN the patient can answer neither."""
    pipeline, directory = world.pipeline, world.directory

    async def send(who: Who, mail_from: str, rcpt: str, data: bytes) -> Route | Refusal:
        sender = await pipeline.authenticated_sender(who, mail_from)
        assert isinstance(sender, Sender)
        door: Door = "webmail" if sender.is_patient else "submission"
        route = await pipeline.route(door, sender, rcpt, len(data))
        if isinstance(route, Route):
            await pipeline.deliver(sender, [Accepted(route)], data)
            for update in world.store.plans[-1].contacts:  # what the real store records
                key = (update.patient_account_id, update.address)
                directory.contacts[key] = "open" if update.open else "closed"
        return route

    reply = message("Re: Compte rendu")
    assert_refused(
        await send(PATIENT_LOGIN, PATIENT, DR_MARTIN, reply), 550, "5.7.1", "wrote first"
    )
    first = message("Compte rendu", f"Reply-To: {SECRETARIAT}")
    assert isinstance(await send(DR_MARTIN_CPS, DR_MARTIN, PATIENT, first), Route)
    assert await send(PATIENT_LOGIN, PATIENT, SECRETARIAT, reply) == Route(
        SECRETARIAT, Destination.LOCAL, 5
    )
    assert_refused(
        await send(PATIENT_LOGIN, PATIENT, DR_MARTIN, reply), 550, "5.7.1", "wrote first"
    )
    fin = message("Fin de suivi", f"Reply-To: {SECRETARIAT}", "X-MSS-MES: FIN")
    assert isinstance(await send(DR_MARTIN_CPS, DR_MARTIN, PATIENT, fin), Route)
    for address in (SECRETARIAT, DR_MARTIN):
        assert_refused(await send(PATIENT_LOGIN, PATIENT, address, reply), 550, "5.7.1", "closed")


async def test_peer_sender_keeps_the_dn_as_written(world: World) -> None:
    written = "CN=smtp.clinique-y.fr, O=Clinique Y, C=FR"
    sender = await world.pipeline.peer_sender(DR_DURAND, OPERATOR_DN, written)
    assert sender == peer(DR_DURAND, written)
    refusal = await world.pipeline.peer_sender(f"x@{LOCAL_DOMAIN}", OPERATOR_DN, written)
    assert_refused(refusal, 550, "5.7.1", written, LOCAL_DOMAIN)

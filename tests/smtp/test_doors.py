"""The SMTP doors end to end: a real server, real clients, the demo's boxes and PKI.

Each test is something a newcomer with the demo does (issue "SMTP doors", "Done when"):
professionals and the laboratory send to patients, patients answer, and every refusal comes
back with its status code and a reason naming the rule.
"""

from __future__ import annotations

import base64
import contextlib
import smtplib
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from certs.oidc import DevIssuer
from certs.pki import DevPKI
from certs.tls import server_context
from tests.cli.conftest import make_install
from tests.conftest import BACKENDS
from tests.smtp.running import Running, edit_config, start_server

PATIENT = "146026322000196@patient.mssante.fr"
OTHER_PATIENT = "285052A12345680@patient.mssante.fr"
OPPOSED = "192037512304512@patient.mssante.fr"
CAMILLE = "camille.martin@demo.mssante.fr"
PEER_USER = "dr.durand@peer-demo.mssante.fr"
AUDIENCE = "mssante-demo"


def message(sender: str, to: str, subject: str = "Résultats", body: str = "Bonjour,\n",
            **headers: str) -> bytes:  # fmt: skip
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<{time.monotonic_ns()}@test>"
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    return m.as_bytes(policy=default.clone(linesep="\r\n"))


class _PeerHandler:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes, Any]] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        peer_cert = session.ssl.get("peercert") if session.ssl else None
        data = envelope.original_content or b""
        self.received.append((envelope.mail_from or "", list(envelope.rcpt_tos), data, peer_cert))
        return "250 2.0.0 OK"


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Running, _PeerHandler]]:
    root = tmp_path_factory.mktemp("smtp")
    install = make_install(root, request.param, request)
    peer = install.demo["peer_operator"]
    trust = [install.dir / install.demo["trust"]["roots"],
             install.dir / install.demo["trust"]["intermediates"]]  # fmt: skip
    handler = _PeerHandler()
    ctx = server_context(install.dir / peer["chain"], install.dir / peer["key"],
                         trust_files=trust, require_client_cert=True)  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        peer_port = s.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=peer_port,
                            tls_context=ctx, require_starttls=True)  # fmt: skip
    controller.start()
    issuer = DevIssuer.create(install.dir / "oidc", "https://psc.test.local/auth/realms/esante")
    edit_config(install, oauth={"enabled": True, "issuer": issuer.issuer, "audience": AUDIENCE,
                                "jwks": str(issuer.jwks_path)})  # fmt: skip
    edit_config(install, relay={"static_routes": {peer["domain"]: f"127.0.0.1:{peer_port}"},
                                "retry_initial": 1.0, "poll_interval": 0.2})  # fmt: skip
    running = start_server(install, root / "server.log")
    yield running, handler
    running.stop()
    controller.stop()


@pytest.fixture
def srv(server: tuple[Running, _PeerHandler]) -> Running:
    return server[0]


def _acct(srv: Running, address: str) -> dict[str, Any]:
    return next(a for a in srv.install.demo["accounts"] if a["address"] == address)


def _external(s: smtplib.SMTP) -> tuple[int, bytes]:
    return s.docmd("AUTH", "EXTERNAL =")


def _refusal(exc: smtplib.SMTPException) -> tuple[int, str]:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return code, text.decode()
    assert isinstance(exc, smtplib.SMTPResponseException)
    error = exc.smtp_error
    return exc.smtp_code, error.decode() if isinstance(error, bytes) else error


def send_as(srv: Running, account: dict[str, Any], to: str, data: bytes,
            mail_from: str | None = None) -> None:  # fmt: skip
    """Submission with the account's certificate (SASL EXTERNAL)."""
    with srv.submission(account) as s:
        code, text = _external(s)
        assert code == 235, text
        s.sendmail(mail_from or account["address"], [to], data)


def patient_client(srv: Running, address: str) -> smtplib.SMTP:
    s = srv.submission()
    s.login(address, _acct(srv, address)["app_password"])
    return s


# --- the demo's story -------------------------------------------------------------------------


def test_professional_writes_patient_answers_then_fin_closes(srv: Running) -> None:
    camille = _acct(srv, CAMILLE)
    send_as(srv, camille, PATIENT, message(CAMILLE, PATIENT, "Compte rendu"))
    inbox = srv.inbox(PATIENT)
    assert inbox, "the message is in the patient's INBOX"
    stored = BytesParser(policy=default).parsebytes(inbox[-1])
    assert stored["Subject"] == "Compte rendu"
    assert stored["Received"] and "ESMTPSA" in stored["Received"]
    assert "smtp.auth=" + CAMILLE in stored["Authentication-Results"]

    with patient_client(srv, PATIENT) as s:  # the patient answers: accepted
        s.sendmail(PATIENT, [CAMILLE], message(PATIENT, CAMILLE, "Re: Compte rendu"))
    assert any(b"Re: Compte rendu" in m for m in srv.inbox(CAMILLE))

    # A patient Camille never wrote to.
    with (
        patient_client(srv, OTHER_PATIENT) as s,
        pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
    ):
        s.sendmail(OTHER_PATIENT, [CAMILLE], message(OTHER_PATIENT, CAMILLE, "Bonjour"))
    code, text = _refusal(refused.value)
    assert code == 550 and "5.7.1" in text
    assert "a patient can only answer a professional who wrote first" in text

    fin = message(CAMILLE, PATIENT, "Fin du suivi", X_MSS_MES="FIN")
    send_as(srv, camille, PATIENT, fin)
    with (
        patient_client(srv, PATIENT) as s,
        pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
    ):
        s.sendmail(PATIENT, [CAMILLE], message(PATIENT, CAMILLE, "Re: Fin du suivi"))
    code, text = _refusal(refused.value)
    assert code == 550 and "closed the exchange" in text


def test_reply_to_becomes_the_contact(srv: Running) -> None:
    lab = _acct(srv, "laboratoire@demo.mssante.fr")
    data = message(lab["address"], OTHER_PATIENT, "Résultat", Reply_To=CAMILLE)
    send_as(srv, lab, OTHER_PATIENT, data)
    with patient_client(srv, OTHER_PATIENT) as s:
        s.sendmail(OTHER_PATIENT, [CAMILLE], message(OTHER_PATIENT, CAMILLE, "Question"))
        with pytest.raises(smtplib.SMTPRecipientsRefused):  # the lab box itself: no
            s.sendmail(OTHER_PATIENT, [lab["address"]], message(OTHER_PATIENT, lab["address"]))


def test_patient_never_writes_to_a_patient(srv: Running) -> None:
    with (
        patient_client(srv, PATIENT) as s,
        pytest.raises(smtplib.SMTPRecipientsRefused) as refused,
    ):
        s.sendmail(PATIENT, [OTHER_PATIENT], message(PATIENT, OTHER_PATIENT))
    code, text = _refusal(refused.value)
    assert code == 550 and "5.7.1" in text and "patient" in text


@pytest.mark.parametrize(
    ("rcpt", "code", "status", "words"),
    [
        ("someone@gmail.com", 550, "5.7.1", "outside the MSSanté trust space"),
        ("146026322000197@patient.mssante.fr", 550, "5.1.3", "wrong key"),
        ("12345@patient.mssante.fr", 550, "5.1.3", "INS"),
        (OPPOSED, 550, "5.1.1", "opposed"),
        ("299999999999999@patient.mssante.fr", 550, "5.1", "INS"),
        ("nobody@demo.mssante.fr", 550, "5.1.1", "no such mailbox"),
    ],
    ids=["foreign-domain", "bad-ins-key", "ins-syntax", "opposed", "bad-ins", "unknown-box"],
)
def test_recipient_refusals(srv: Running, rcpt: str, code: int, status: str, words: str) -> None:
    with srv.submission(_acct(srv, CAMILLE)) as s:
        assert _external(s)[0] == 235
        s.mail(CAMILLE)
        got, text = s.rcpt(rcpt)
    assert got == code and status in text.decode() and words in text.decode()


def test_professional_absent_from_annuaire_cannot_authenticate(srv: Running) -> None:
    paul = _acct(srv, "paul.lefevre@demo.mssante.fr")
    with srv.submission(paul) as s:
        code, text = _external(s)
    assert code == 535 and "not active in the annuaire" in text.decode()


def test_submission_refusals(srv: Running) -> None:
    camille = _acct(srv, CAMILLE)
    with smtplib.SMTP("127.0.0.1", srv.port("submission"), timeout=10) as s:
        s.ehlo("x")
        assert "auth" not in s.esmtp_features  # no AUTH before TLS
        code, text = s.docmd("AUTH", "PLAIN AGEAYg==")
        assert code == 530 or code == 538
        code, text = s.docmd("MAIL", "FROM:<" + CAMILLE + ">")
        assert code == 530 and b"STARTTLS" in text
    with srv.submission(camille) as s:
        code, text = s.docmd("MAIL", "FROM:<" + CAMILLE + ">")
        assert code == 530 and b"authentication required" in text
        assert _external(s)[0] == 235
        code, text = s.docmd("MAIL", "FROM:<paul.lefevre@demo.mssante.fr>")
        assert code == 550 and b"may not send as" in text
        code, text = s.docmd("MAIL", "FROM:<cardiologie@demo.mssante.fr>")
        assert code == 250, text  # an ORG box she belongs to
        s.rset()
        code, text = s.docmd("MAIL", f"FROM:<{CAMILLE}> SIZE=999999999999")
        assert code == 552 and b"5.3.4" in text


def test_patient_size_limit_declared(srv: Running) -> None:
    with srv.submission(_acct(srv, CAMILLE)) as s:
        assert _external(s)[0] == 235
        s.mail(CAMILLE, [f"SIZE={26 * 1024 * 1024}"])
        code, text = s.rcpt(PATIENT)
        assert code == 552 and b"25 MB" in text
        code, _ = s.rcpt("cardiologie@demo.mssante.fr")
        assert code == 250  # the professional recipient is fine


def test_smuggling_and_bare_lf_refused(srv: Running) -> None:
    with srv.submission(_acct(srv, CAMILLE)) as s:
        assert _external(s)[0] == 235
        before = len(srv.inbox(PATIENT))
        s.mail(CAMILLE)
        s.rcpt(PATIENT)
        code, _ = s.docmd("DATA")
        assert code == 354
        s.send(b"Subject: x\r\n\r\nhello\n.\nMAIL FROM:<evil@x>\r\n.\r\n")
        code, text = s.getreply()
        assert code == 550 and b"bare LF" in text
    assert len(srv.inbox(PATIENT)) == before


def test_inbound_from_peer_operator(srv: Running) -> None:
    peer = srv.install.demo["peer_operator"]
    cert = (srv.path(peer["chain"]), srv.path(peer["key"]))
    with srv.inbound(cert) as s:
        s.sendmail(PEER_USER, [CAMILLE], message(PEER_USER, CAMILLE, "Avis"))
    stored = srv.inbox(CAMILLE)[-1]
    assert b"Subject: Avis" in stored and b"peer certificate CN=mail.peer-demo" in stored
    with srv.inbound(cert) as s:  # peers hand us mail for our boxes only
        s.mail(PEER_USER)
        code, text = s.rcpt("x@gmail.com")
        assert code == 550 and b"5.1.1" in text


def test_inbound_refusals(srv: Running, tmp_path: Path) -> None:
    peer = srv.install.demo["peer_operator"]
    cert = (srv.path(peer["chain"]), srv.path(peer["key"]))
    with srv.inbound(cert) as s:  # domain not on the liste blanche
        code, text = s.docmd("MAIL", "FROM:<x@gmail.com>")
        assert code == 550 and b"liste blanche" in text
    with srv.inbound(cert) as s:  # listed domain, but not this operator's certificate
        code, text = s.docmd("MAIL", f"FROM:<someone@{srv.install.demo['domain']}>")
        assert code == 550 and b"is not listed for sender domain" in text
    pki = DevPKI.open(srv.install.dir / "pki")
    rogue = pki.issue_server("mail.rogue.test", organisation="Rogue", structure_id="99999999700036")
    with srv.inbound((str(rogue.chain_path), str(rogue.key_path))) as s:
        code, text = s.docmd("MAIL", f"FROM:<{PEER_USER}>")
        assert code == 550 and b"CN=mail.rogue.test" in text and b"not listed" in text
    with srv.inbound(None) as s:
        code, text = s.docmd("MAIL", f"FROM:<{PEER_USER}>")
        assert code == 550 and b"must present its IGC-Sant" in text
    with smtplib.SMTP("127.0.0.1", srv.port("smtp_inbound"), timeout=10) as s:
        s.ehlo("x")
        code, text = s.docmd("MAIL", f"FROM:<{PEER_USER}>")
        assert code == 530 and b"STARTTLS" in text


def test_relay_to_peer_with_success_dsn(server: tuple[Running, _PeerHandler]) -> None:
    srv, peer = server
    camille = _acct(srv, CAMILLE)
    before = len(srv.inbox(CAMILLE))
    with srv.submission(camille) as s:
        assert _external(s)[0] == 235
        s.mail(CAMILLE, ["RET=HDRS", "ENVID=case42"])
        code, _ = s.rcpt(PEER_USER, ["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{PEER_USER}"])
        assert code == 250
        s.data(message(CAMILLE, PEER_USER, "Adressage"))
    deadline = time.monotonic() + 20
    while not any(PEER_USER in r[1] for r in peer.received) and time.monotonic() < deadline:
        time.sleep(0.2)
    mail_from, _rcpts, data, peer_cert = next(r for r in peer.received if PEER_USER in r[1])
    assert mail_from == CAMILLE and b"Subject: Adressage" in data
    assert b"DKIM-Signature:" in data  # signed for the other operator
    assert peer_cert is not None  # we presented our certificate (mutual TLS)
    reports = srv.wait_inbox(CAMILLE, before + 1)
    assert len(reports) == before + 1, srv.logs()
    dsn = BytesParser(policy=default).parsebytes(reports[-1])
    assert dsn.get_content_type() == "multipart/report"
    text = reports[-1].decode(errors="replace")
    assert "Action: relayed" in text and f"Final-Recipient: rfc822; {PEER_USER}" in text
    assert "Original-Envelope-Id: case42" in text


def test_unknown_peer_domain_bounces_with_failure_dsn(srv: Running) -> None:
    camille = _acct(srv, CAMILLE)
    before = len(srv.inbox(CAMILLE))
    target = "x@" + next(iter(["ch-exemple.mssante.fr"]))
    with srv.submission(camille) as s:
        assert _external(s)[0] == 235
        s.mail(CAMILLE)
        code, text = s.rcpt(target)
    # Not on the demo's liste blanche (no national list imported): refused at once.
    assert code == 550 and b"outside the MSSant" in text
    assert len(srv.inbox(CAMILLE)) == before


def test_tls_garbage_and_long_lines_do_not_crash(srv: Running) -> None:
    with socket.create_connection(("127.0.0.1", srv.port("submissions")), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x05hello-not-tls\r\n")
        raw.settimeout(5)
        with contextlib.suppress(TimeoutError, ConnectionError):
            raw.recv(100)
    with socket.create_connection(("127.0.0.1", srv.port("smtp_inbound")), timeout=10) as raw:
        raw.recv(200)
        raw.sendall(b"EHLO " + b"a" * 20000 + b"\r\n")
        assert raw.recv(200).startswith(b"500")
        raw.sendall(b"STARTTLS\r\n")
        assert raw.recv(200).startswith(b"220")
        raw.sendall(b"this is not a TLS client hello\r\n" * 3)
    with smtplib.SMTP_SSL("127.0.0.1", srv.port("submissions"), timeout=10,
                          context=srv.context()) as s:  # fmt: skip
        code, _ = s.ehlo("x")
        assert code == 250 and "auth" in s.esmtp_features
    assert "Traceback" not in srv.logs()


def test_implicit_tls_submission_with_plain_for_patients(srv: Running) -> None:
    ctx = srv.context()
    with smtplib.SMTP_SSL("127.0.0.1", srv.port("submissions"), timeout=10, context=ctx) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            s.login(PATIENT, "wrong password")
        assert failed.value.smtp_code == 535
        s.login(PATIENT, _acct(srv, PATIENT)["app_password"])
        code, _ = s.docmd("MAIL", f"FROM:<{PATIENT}>")
        assert code == 250


def test_queue_commands(srv: Running) -> None:
    from tests.cli.conftest import mailserver

    listed = mailserver("queue", "list", "-c", srv.install.config)
    assert (
        listed.returncode == 0 and "queued" in listed.stdout and "report(s) owed" in listed.stdout
    )
    retried = mailserver("queue", "retry", "-c", srv.install.config)
    assert retried.returncode == 0 and "due now" in retried.stdout
    missing = mailserver("queue", "delete", "999999", "-c", srv.install.config)
    assert missing.returncode != 0 and "no pending entry with id 999999" in missing.stderr


def test_oauth_tokens_open_the_professional_box(srv: Running) -> None:
    issuer = DevIssuer.open(srv.install.dir / "oidc")
    national_id = _acct(srv, CAMILLE)["national_id"]
    token = issuer.mint(national_id=national_id, audience=AUDIENCE)
    bearer = base64.b64encode(f"n,a={CAMILLE},\x01auth=Bearer {token}\x01\x01".encode())
    with srv.submission() as s:
        code, text = s.docmd("AUTH", "OAUTHBEARER " + bearer.decode())
        assert code == 235 and CAMILLE.encode() in text
        s.sendmail(CAMILLE, [PATIENT], message(CAMILLE, PATIENT, "Par jeton"))
    xoauth2 = base64.b64encode(f"user={CAMILLE}\x01auth=Bearer {token}\x01\x01".encode())
    with srv.submission() as s:
        assert s.docmd("AUTH", "XOAUTH2 " + xoauth2.decode())[0] == 235
    old = issuer.mint(national_id=national_id, audience=AUDIENCE,
                      now=datetime.now(UTC) - timedelta(hours=2))  # fmt: skip
    expired = base64.b64encode(f"n,,\x01auth=Bearer {old}\x01\x01".encode())
    with srv.submission() as s:
        code, challenge = s.docmd("AUTH", "OAUTHBEARER " + expired.decode())
        assert code == 334  # RFC 7628 §3.2.2: the error challenge, then the failure
        assert b"invalid_token" in base64.b64decode(challenge)
        code, text = s.docmd(base64.b64encode(b"\x01").decode())
        assert code == 535 and b"expired" in text
    stranger = issuer.mint(national_id=national_id, audience="another-service")
    wrong_aud = base64.b64encode(f"n,,\x01auth=Bearer {stranger}\x01\x01".encode())
    with srv.submission() as s:
        code, _ = s.docmd("AUTH", "OAUTHBEARER " + wrong_aud.decode())
        code, text = s.docmd(base64.b64encode(b"\x01").decode())
        assert code == 535 and b"audience" in text


def test_swaks_submission(srv: Running) -> None:
    """The README's example: swaks with STARTTLS and PLAIN (allowed in the demo)."""
    import subprocess

    camille = _acct(srv, CAMILLE)
    base = ["swaks", "--server", f"127.0.0.1:{srv.port('submission')}", "--tls",
            "--auth", "PLAIN", "--auth-user", CAMILLE, "--auth-password", camille["password"],
            "--from", CAMILLE]  # fmt: skip
    ok = subprocess.run([*base, "--to", PATIENT], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "250 2.0.0" in ok.stdout, ok.stdout + ok.stderr
    refused = subprocess.run(
        [*base, "--to", "someone@gmail.com"], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and "outside the MSSanté trust space" in refused.stdout

"""Logging in to the IMAP door with real clients, and the refusals (issue #5)."""

from __future__ import annotations

import imaplib
from base64 import b64encode

import pytest

from tests.imap.running_imap import CAMILLE, PATIENT, PAUL, ImapServer, message


def test_starttls_port_advertises_logindisabled_and_refuses_login_before_tls(
    imap_server: ImapServer,
) -> None:
    c = imap_server.plain()
    try:
        assert "STARTTLS" in c.capabilities and "LOGINDISABLED" in c.capabilities
        assert not any(cap.startswith("AUTH=") for cap in c.capabilities)
        typ, data = c._simple_command("LOGIN", CAMILLE, "whatever")  # imaplib refuses itself
    except imaplib.IMAP4.error as exc:
        assert "PRIVACYREQUIRED" in str(exc) or "LOGINDISABLED" in str(exc)
    else:
        assert typ == "NO" and b"PRIVACYREQUIRED" in b"".join(data)
    finally:
        c.shutdown()


def test_login_over_starttls_and_implicit_tls(imap_server: ImapServer) -> None:
    c = imap_server.login()
    typ, caps = c.capability()
    assert typ == "OK"
    for name in (b"IDLE", b"UIDPLUS", b"MOVE", b"CONDSTORE", b"QRESYNC", b"SPECIAL-USE",
                 b"NAMESPACE", b"ESEARCH", b"LIST-STATUS", b"QUOTA", b"APPENDLIMIT="):  # fmt: skip
        assert name in caps[0]
    assert b"STARTTLS" not in caps[0]
    c.logout()
    s = imap_server.imaps()
    assert "AUTH=EXTERNAL" in s.capabilities and "STARTTLS" not in s.capabilities
    typ, _ = s.login(CAMILLE, imap_server.account(CAMILLE)["password"])
    assert typ == "OK"
    assert s.select("INBOX")[0] == "OK"
    s.logout()


def test_authenticate_external_with_the_cps_certificate(imap_server: ImapServer) -> None:
    camille = imap_server.account(CAMILLE)
    c = imap_server.imaps(camille)
    typ, data = c.authenticate("EXTERNAL", lambda _challenge: b"")
    assert typ == "OK" and CAMILLE.encode() in data[0]
    c.logout()
    # SASL-IR (RFC 4959): the empty initial response as "=".
    c = imap_server.starttls(camille)
    typ, data = c._simple_command("AUTHENTICATE", "EXTERNAL", "=")
    assert typ == "OK"
    c.logout()


def test_authenticate_plain_with_initial_response(imap_server: ImapServer) -> None:
    password = imap_server.account(CAMILLE)["password"]
    token = b64encode(b"\0" + CAMILLE.encode() + b"\0" + password.encode())
    raw = imap_server.raw()
    raw.send(b"a1 AUTHENTICATE PLAIN " + token + b"\r\n")
    assert raw.until(b"a1")[-1].startswith(b"a1 OK [CAPABILITY IMAP4rev1")
    raw.send(b"a2 SELECT INBOX\r\n")
    assert raw.until(b"a2")[-1].startswith(b"a2 OK [READ-WRITE]")
    # Without initial response: an empty challenge, then the response line.
    raw = imap_server.raw()
    raw.send(b"b1 AUTHENTICATE PLAIN\r\n")
    assert raw.line() == b"+ "
    raw.send(token + b"\r\n")
    assert raw.until(b"b1")[-1].startswith(b"b1 OK")
    raw.send(b"b2 AUTHENTICATE PLAIN\r\n")
    assert raw.until(b"b2")[-1].startswith(b"b2 BAD already authenticated")
    # Cancelled with "*".
    raw = imap_server.raw()
    raw.send(b"c1 AUTHENTICATE PLAIN\r\n")
    raw.line()
    raw.send(b"*\r\n")
    assert raw.until(b"c1")[-1].startswith(b"c1 BAD")


def test_bad_password_and_unknown_mechanism_are_refused(imap_server: ImapServer) -> None:
    c = imap_server.starttls()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        c.login(CAMILLE, "not-the-password")
    typ, data = c._simple_command("AUTHENTICATE", "CRAM-MD5")
    assert typ == "NO" and b"not offered" in data[-1]
    c.logout()


def test_professional_absent_from_annuaire_is_refused(imap_server: ImapServer) -> None:
    c = imap_server.starttls()
    with pytest.raises(imaplib.IMAP4.error, match="annuaire"):
        c.login(PAUL, imap_server.account(PAUL)["password"])
    c.logout()


def test_patient_needs_an_app_password(imap_server: ImapServer) -> None:
    c = imap_server.starttls()
    with pytest.raises(imaplib.IMAP4.error, match="app password"):
        c.login(PATIENT, imap_server.account(PATIENT)["password"])
    c.logout()
    c = imap_server.login(PATIENT, app=True)
    assert c.select("INBOX")[0] == "OK"
    c.logout()


def test_patient_mailbox_access_is_audited(imap_server: ImapServer) -> None:
    imap_server.deliver(PATIENT, message(CAMILLE, PATIENT, "Compte rendu audit"))
    c = imap_server.login(PATIENT, app=True)
    c.select("INBOX")
    typ, found = c.search(None, "SUBJECT", '"Compte rendu audit"')
    assert typ == "OK" and found[0]
    seq = found[0].split()[-1].decode()
    c.fetch(seq, "(BODY[])")
    c.store(seq, "+FLAGS", "(\\Flagged)")
    c.copy(seq, "Archive")
    c.logout()
    events = imap_server.audit(PATIENT.split("@")[0])
    actions = [e.action for e in events]
    for action in ("imap.select", "imap.fetch", "imap.store", "imap.copy"):
        assert action in actions, actions
    fetch = next(e for e in events if e.action == "imap.fetch")
    assert fetch.actor == PATIENT and fetch.auth_method == "app-password"
    assert fetch.remote_address == "127.0.0.1"


def test_commands_in_the_wrong_state(imap_server: ImapServer) -> None:
    raw = imap_server.raw()
    raw.send(b"a1 SELECT INBOX\r\n")
    assert raw.until(b"a1")[-1].startswith(b"a1 BAD")
    raw.login(CAMILLE, imap_server.account(CAMILLE)["password"])
    raw.send(b"a2 FETCH 1 FLAGS\r\n")
    assert b"no mailbox selected" in raw.until(b"a2")[-1]
    raw.send(b"a3 LOGOUT\r\n")
    lines = raw.until(b"a3")
    assert lines[0].startswith(b"* BYE") and lines[-1].startswith(b"a3 OK")
    raw.close()

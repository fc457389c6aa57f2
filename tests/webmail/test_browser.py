"""The patient's journey in a real browser (issue #6 "Tests"): headless Chromium (Debian's
package) driven by Playwright against the real ``mailserver serve`` of a demo installation.

A professional sends a message and the laboratory a result by SMTP (certificates, SASL
EXTERNAL); the patient logs in with the password and the code read from the outbox, reads
the message, sees the result in the dossier, answers, cannot write to anyone else, hides a
document, checks the access log and logs out. Every page is screenshotted on a phone-sized
(390×844) and a desktop-sized (1280×800) window into ``$MAILSERVER_ARTEFACTS`` (default: the
test's temporary directory) and checked for accessibility (tests/webmail/a11y.py).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

import playwright.sync_api as playwright_api
import pytest

from tests.cli.conftest import Install, make_install
from tests.conftest import BACKENDS
from tests.smtp.running import Running, edit_config, start_server
from tests.tools import require
from tests.webmail.a11y import check_page
from tests.xdm_fixtures import pdf_bytes

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
PATIENT = "146026322000196@patient.mssante.fr"
CAMILLE = "camille.martin@demo.mssante.fr"
LAB = "laboratoire@demo.mssante.fr"


@pytest.fixture(autouse=True)
def _chromium_installed() -> None:
    require(None if Path(CHROMIUM).exists() else f"Debian chromium is missing ({CHROMIUM})")


def submit(running: Running, account: dict[str, object], data: bytes, to: str) -> None:
    """SMTP submission with the account's certificate (SASL EXTERNAL)."""
    with running.submission(account) as s:  # type: ignore[arg-type]
        code, text = s.docmd("AUTH", "EXTERNAL =")
        assert code == 235, text
        s.sendmail(str(account["address"]), [to], data)


def message(sender: str, subject: str, body: str, **headers: str) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, PATIENT, subject
    m["Message-ID"] = f"<{time.monotonic_ns()}@demo.test>"
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    return m


def crlf(m: EmailMessage) -> bytes:
    return m.as_bytes(policy=default.clone(linesep="\r\n"))


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("browser")
    install: Install = make_install(root, BACKENDS[0], request)
    edit_config(install, webmail={"notify_poll_interval": 0.5})
    running = start_server(install, root / "server.log")
    assert "webmail=https://" in running.logs()
    yield running
    running.stop()


@pytest.fixture
def artefacts(tmp_path: Path) -> Path:
    base = Path(os.environ.get("MAILSERVER_ARTEFACTS", tmp_path))
    target = base / "webmail-screenshots"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    return target


def wait_inbox(running: Running, address: str, count: int) -> list[bytes]:
    """Running.wait_inbox from a thread: Playwright's sync API keeps an event loop running."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(running.wait_inbox, address, count).result()


def outbox_code(running: Running, email: str, after: int) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        files = sorted((running.install.dir / "data" / "outbox").glob("*.eml"))
        for path in reversed(files[after:]):
            m = BytesParser(policy=default).parsebytes(path.read_bytes())
            found = re.search(r"est : (\d{6})", str(m.get_body().get_content()))  # type: ignore[union-attr]
            if m["To"] == email and found:
                return found.group(1)
        time.sleep(0.1)
    raise AssertionError("no code in the outbox")


def test_patient_journey_in_chromium(server: Running, artefacts: Path) -> None:
    demo = server.install.demo
    accounts = {a["address"]: a for a in demo["accounts"]}
    patient = accounts[PATIENT]
    # A professional writes and asks for a read receipt; the laboratory sends a result.
    doctor_message = message(
        CAMILLE,
        "Votre rendez-vous de contrôle",
        "Bonjour,\nVotre contrôle est prévu jeudi à 10 h.\nDr Martin\n",
        Disposition_Notification_To=CAMILLE,
    )
    submit(server, accounts[CAMILLE], crlf(doctor_message), PATIENT)
    lab_message = message(
        LAB,
        "XDM/1.0/DDM+Compte rendu de biologie DUPONT Camille",
        "Veuillez trouver ci-joint vos résultats.\n",
    )
    lab_message.add_attachment(
        pdf_bytes("Glycemie 0,95 g/L"),
        maintype="application",
        subtype="pdf",
        filename="resultats-biologie.pdf",
    )
    submit(server, accounts[LAB], crlf(lab_message), PATIENT)
    assert len(server.wait_inbox(PATIENT, 2)) >= 2

    url = f"https://127.0.0.1:{server.port('webmail')}"
    shots: list[str] = []
    problems: dict[str, list[str]] = {}
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(ignore_https_errors=True, viewport=DESKTOP, locale="fr-FR")
        page = context.new_page()

        def shot(name: str) -> None:
            found = check_page(page)
            if found:
                problems[name] = found
            page.screenshot(path=str(artefacts / f"{name}-desktop.png"), full_page=True)
            page.set_viewport_size(PHONE)
            page.screenshot(path=str(artefacts / f"{name}-phone.png"), full_page=True)
            page.set_viewport_size(DESKTOP)
            shots.append(name)

        # Login: password, then the code e-mailed to the personal address (outbox).
        outbox = server.install.dir / "data" / "outbox"
        before = len(list(outbox.glob("*.eml"))) if outbox.exists() else 0
        page.goto(f"{url}/connexion")
        shot("01-connexion")
        page.get_by_label("Identifiant").fill(patient["ins"])
        page.get_by_label("Mot de passe").fill(patient["password"])
        page.get_by_role("button", name="Continuer").click()
        page.wait_for_url("**/connexion/code")
        shot("02-code")
        page.get_by_label("Code à 6 chiffres").fill(
            outbox_code(server, patient["personal_email"], before)
        )
        page.get_by_role("button", name="Se connecter").click()
        page.wait_for_url("**/messages")
        assert "Dr Camille Martin" in page.content()
        assert "XDM/1.0/DDM+" not in page.content()
        shot("03-messages")

        # Reading the professional's message sends the read receipt (RFC 8098).
        page.get_by_role("link", name=re.compile("Votre rendez-vous de contrôle")).click()
        page.wait_for_url(re.compile(r".*/messages/\d+$"))
        assert "Votre contrôle est prévu jeudi" in page.content()
        shot("04-message")
        receipts = [
            BytesParser(policy=default).parsebytes(d) for d in wait_inbox(server, CAMILLE, 1)
        ]
        assert any(m.get_content_type() == "multipart/report" for m in receipts)

        # The laboratory's result: filed automatically, or saved by the patient.
        page.goto(f"{url}/messages")
        page.get_by_role("link", name=re.compile("Compte rendu de biologie")).click()
        page.wait_for_url(re.compile(r".*/messages/\d+$"))
        shot("05-resultat")
        lab_page = page.url
        deadline = time.monotonic() + 10
        while "Dans votre dossier" not in page.content() and time.monotonic() < deadline:
            time.sleep(0.5)
            page.reload()
        if "Dans votre dossier" not in page.content():  # the filing worker did not file it
            page.get_by_role(
                "button", name=re.compile("Enregistrer resultats-biologie.pdf")
            ).click()
            page.wait_for_url(re.compile(r".*enregistre=\d+"))
        assert "Dans votre dossier" in page.content()

        page.goto(f"{url}/dossier")
        assert "resultats-biologie" in page.content() or "biologie" in page.content()
        shot("06-dossier")
        page.locator("ul.documents a").first.click()
        page.wait_for_url(re.compile(r".*/dossier/\d+$"))
        shot("07-document")
        page.get_by_role("button", name="Masquer aux professionnels").click()
        page.wait_for_url(re.compile(r".*/dossier/\d+\?modifie=1$"))
        assert "Masqué aux professionnels de santé" in page.content()
        with page.expect_download() as download:
            page.get_by_role("link", name="Télécharger le PDF").click()
        assert download.value.suggested_filename.endswith(".pdf")

        # Answering the professional, from the list of contacts only.
        page.goto(f"{url}/messages")
        page.get_by_role("link", name=re.compile("Votre rendez-vous de contrôle")).click()
        page.get_by_role("link", name=re.compile("Répondre à Dr Camille Martin")).click()
        page.wait_for_url("**/ecrire?**")
        options = page.locator("#destinataire option").all_inner_texts()
        assert options and all("Martin" in o or "Laboratoire" in o for o in options)
        assert page.locator("input[type=email]").count() == 0
        shot("08-ecrire")
        page.get_by_label("Message").fill("Merci docteur, je serai là jeudi.")
        page.get_by_role("button", name="Envoyer").click()
        page.wait_for_url("**/envoyes?envoye=1")
        assert "Votre message a été envoyé" in page.content()
        shot("09-envoyes")
        got = [BytesParser(policy=default).parsebytes(d) for d in wait_inbox(server, CAMILLE, 2)]
        assert any(
            "je serai là jeudi" in str(m.get_body().get_content())  # type: ignore[union-attr]
            for m in got
            if m.get_content_type() == "text/plain"
        )

        # Nobody else: a forged recipient is refused by the routing rules.
        page.goto(f"{url}/ecrire")
        page.evaluate(
            "() => { const o = document.querySelector('#destinataire option');"
            " o.value = '285052A12345680@patient.mssante.fr'; o.selected = true; }"
        )
        page.get_by_label("Message").fill("Bonjour")
        page.get_by_role("button", name="Envoyer").click()
        assert "Vous ne pouvez pas écrire à un autre patient" in page.content()
        shot("10-refus")

        page.goto(f"{url}/acces")
        text = page.content()
        assert "Lecture d&#39;un message" in text or "Lecture d'un message" in text
        assert "Document masqué aux professionnels" in text
        shot("11-acces")
        page.goto(f"{url}/compte")
        shot("12-compte")
        page.goto(lab_page)

        page.get_by_role("button", name="Se déconnecter").click()
        page.wait_for_load_state()
        assert "déconnecté" in page.content()
        shot("13-deconnexion")
        page.goto(f"{url}/messages")
        assert page.url.endswith("/connexion")
        browser.close()

    # The notification (no health data) went through the separate route: the outbox.
    notices = [
        BytesParser(policy=default).parsebytes(p.read_bytes()) for p in sorted(outbox.glob("*.eml"))
    ]
    mine = [
        n
        for n in notices
        if n["To"] == patient["personal_email"] and "nouveau message" in str(n["Subject"]).lower()
    ]
    assert mine
    assert all("rendez-vous" not in n.as_string().lower() for n in mine)
    assert len(shots) == 13 and len(list(artefacts.glob("*.png"))) == 26
    assert not problems, problems

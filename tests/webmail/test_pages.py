"""Long lists a page at a time (issue #6, performance): the inbox, the dossier and the access
log show 50 rows per page with "page précédente / page suivante" links; a page that does not
exist is a clean 404; another patient's rows never show; reading a message again writes
nothing."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text, update

from storage import audit, dossier
from storage.dossier import Provenance
from storage.models import Account, Folder, Message
from tests.webmail.conftest import open_site
from tests.webmail.site import CAMILLE, PATIENT, Site, mail
from webmail.dossier import Author, SavedAttachment

OTHER = "285052a12345680@patient.mssante.fr"  # the demo's second patient
INS = "146026322000196"
PAGE = 50  # webmail.context.WebmailSettings.page_size
MESSAGES = PAGE + 5
DOCUMENTS = PAGE + 7
EVENTS = 2 * PAGE + 10
TYPES = [("11502-2", "CR d'examens biologiques"), ("18748-4", "CR d'imagerie médicale")]
BAD_PAGES = ["0", "-1", "abc", "2.5", "1e3", "%C2%B2", "99999999999", ""]


def message_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'href="/messages/(\d+)"', html)]


def document_titles(html: str) -> list[str]:
    return re.findall(r'<a href="/dossier/\d+">(Document \d+)</a>', html)


def access_actors(html: str) -> list[int]:
    """The numbers of the test's professionals, in the order the access log lists them."""
    return [int(n) for n in re.findall(r"<td>pro(\d+)@demo\.mssante\.fr", html)]


def pager_links(html: str) -> dict[str, str]:
    nav = re.search(r'<nav class="pager" aria-label="[^"]+">(.*?)</nav>', html, re.S)
    assert nav, "no pager"
    return {
        text: href.replace("&amp;", "&")
        for href, text in re.findall(r'<a href="([^"]+)"[^>]*>(Page [a-zé]+)</a>', nav.group(1))
    }


async def ids_of(site: Site) -> tuple[int, int]:
    """The patient's account id and INBOX folder id."""
    async with site.db.session() as s:
        account_id = await s.scalar(select(Account.id).where(Account.address == PATIENT))
        inbox = await s.scalar(
            select(Folder.id).where(Folder.account_id == account_id, Folder.name == "INBOX")
        )
    assert account_id is not None and inbox is not None
    return account_id, inbox


async def file_documents(site: Site) -> None:
    """DOCUMENTS documents, "Document 0" the oldest, alternating two types."""
    account_id, inbox = await ids_of(site)
    now = datetime.now(UTC)
    provenance = Provenance(None, inbox, 999_999, CAMILLE, CAMILLE, "certificate", INS)
    for n in range(DOCUMENTS):
        code, display = TYPES[n % 2]
        doc = SavedAttachment(
            unique_id=f"1.2.250.1.999.7.{n}",
            mime_type="application/pdf",
            title=f"Document {n}",
            author=Author(name="Dr Camille Martin"),
            creation_time=now - timedelta(days=DOCUMENTS - n),
            type_code=code,
            type_display=display,
        )
        content = b"%PDF-1.4 document " + str(n).encode()
        store = site.side.webmail.store
        assert await store.file_attachment(account_id, doc, content, provenance, now)


async def record_accesses(site: Site) -> None:
    """EVENTS accesses by professionals pro0 (the first) to pro<EVENTS-1> (the last)."""
    async with site.db.write() as s:
        for n in range(EVENTS):
            actor = audit.Actor(f"pro{n}@demo.mssante.fr", "certificate", "192.0.2.1")
            audit.record(s, actor, "message.read", object_type="message", patient_ins=INS)


@pytest.fixture
async def filled(site: Site) -> Site:
    """The patient with more than a page of messages, documents and accesses, logged in (the
    module's tests share one installation: it is filled once)."""
    account_id, _ = await ids_of(site)
    async with site.db.session() as s:
        empty = await dossier.count_documents(s, account_id, viewer="patient") == 0
    if empty:
        for n in range(MESSAGES):
            await site.deliver(CAMILLE, PATIENT, mail(CAMILLE, PATIENT, f"Message {n}"))
        await file_documents(site)
        await record_accesses(site)
    await site.login()
    return site


async def test_inbox_pages_show_the_next_messages(filled: Site) -> None:
    first = (await filled.client.get("/messages")).text
    assert 'aria-label="Pages des messages reçus"' in first
    assert f"Page 1 sur {-(-MESSAGES // PAGE)}" in first
    links = pager_links(first)
    assert links == {"Page suivante": "?page=2"}
    on_first = message_ids(first)
    assert len(on_first) == PAGE and "Message 54" in first  # newest first

    second = (await filled.client.get("/messages" + links["Page suivante"])).text
    on_second = message_ids(second)
    assert len(on_second) == MESSAGES - PAGE and "Message 0" in second
    assert not set(on_first) & set(on_second)
    assert max(on_second) < min(on_first)  # older ones
    assert pager_links(second) == {"Page précédente": "?page=1"}


@pytest.mark.parametrize("path", ["/messages", "/envoyes", "/dossier", "/acces"])
async def test_a_page_that_does_not_exist_is_a_clean_404(filled: Site, path: str) -> None:
    for page in [*BAD_PAGES, "40"]:
        r = await filled.client.get(f"{path}?page={page}")
        assert r.status_code == 404, (path, page)
        assert "Page introuvable" in r.text and "Menu principal" in r.text
    assert (await filled.client.get(f"{path}?page=1")).status_code == 200


async def test_dossier_pages_by_date_and_type(filled: Site) -> None:
    first = (await filled.client.get("/dossier")).text
    assert f"{DOCUMENTS} documents, du plus récent au plus ancien" in first
    titles = document_titles(first)
    assert titles == [f"Document {n}" for n in range(DOCUMENTS - 1, DOCUMENTS - 1 - PAGE, -1)]
    assert 'aria-label="Pages du dossier"' in first
    second = (await filled.client.get("/dossier" + pager_links(first)["Page suivante"])).text
    assert document_titles(second) == [f"Document {n}" for n in range(DOCUMENTS - PAGE - 1, -1, -1)]

    # One type: the filter lists every type, and the pages keep the filter.
    label = TYPES[0][1]
    for _, display in TYPES:
        assert f'<option value="{display}"' in first.replace("&#39;", "'")
    r = await filled.client.get("/dossier", params={"type": label})
    chosen = (DOCUMENTS + 1) // 2
    assert f"{chosen} documents de type « {label} »" in r.text.replace("&#39;", "'")
    assert document_titles(r.text) == [f"Document {n}" for n in range(DOCUMENTS - 1, -1, -2)]
    assert "Page suivante" not in r.text  # 29 documents: one page
    r = await filled.client.get("/dossier", params={"type": "Inconnu"})
    assert r.status_code == 200 and document_titles(r.text) == []


async def test_the_access_log_lists_every_access_over_its_pages(filled: Site) -> None:
    seen: list[int] = []
    path, pages = "/acces", 0
    while True:
        page = (await filled.client.get(path)).text
        pages += 1
        assert 'aria-label="Pages du journal des accès"' in page or pages == 1
        seen += access_actors(page)
        following = pager_links(page).get("Page suivante")
        if following is None:
            break
        path = "/acces" + following
    assert pages >= 3
    assert seen == list(range(EVENTS - 1, -1, -1))  # each once, most recent first


async def test_another_patient_sees_none_of_these_rows(filled: Site) -> None:
    other = await open_site(filled.install, address="203.0.113.11")
    try:
        await other.login(OTHER)
        for path in ("/dossier?page=2", "/acces?page=3"):
            assert (await other.client.get(path)).status_code == 404, path
        dossier = (await other.client.get("/dossier")).text
        assert document_titles(dossier) == []
        log = (await other.client.get("/acces")).text
        assert access_actors(log) == []
        inbox = (await other.client.get("/messages")).text
        assert "Message 54" not in inbox
    finally:
        await other.client.aclose()
        await other.db.close()


async def test_the_dossier_is_read_in_index_order(filled: Site) -> None:
    """A page of the dossier comes from ix_dossier_documents_patient_date (migration 0009),
    not from sorting every document of the patient; on PostgreSQL the index exists."""
    if filled.db.dialect != "sqlite":
        async with filled.db.read() as conn:
            names = await conn.scalars(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'dossier_documents'")
            )
            assert "ix_dossier_documents_patient_date" in set(names)
        return
    listed: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM dossier_documents" in statement and "ORDER BY coalesce" in statement:
            listed.append((statement, parameters))

    engine = filled.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert (await filled.client.get("/dossier?page=2")).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    ((statement, parameters),) = listed
    async with filled.db.read() as conn:
        plan = " ".join(
            str(row[-1])
            for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        )
    assert "ix_dossier_documents_patient_date" in plan and "ORDER BY" not in plan, plan


async def test_reading_a_message_again_writes_no_flag(filled: Site) -> None:
    _, inbox = await ids_of(filled)
    listed = (await filled.client.get("/messages?page=2")).text
    unread = message_ids(listed)[-1]  # the oldest: nobody read it yet

    async def highest_modseq() -> int:
        async with filled.db.session() as s:
            value = await s.scalar(select(Folder.highestmodseq).where(Folder.id == inbox))
        assert value is not None
        return value

    before = await highest_modseq()
    assert (await filled.client.get(f"/messages/{unread}")).status_code == 200
    after_first = await highest_modseq()
    assert after_first > before  # \Seen was set
    assert (await filled.client.get(f"/messages/{unread}")).status_code == 200
    assert await highest_modseq() == after_first  # already seen: nothing written


async def test_a_flag_already_set_is_not_written_even_while_another_writer_holds_the_lock(
    filled: Site,
) -> None:
    """Reading a seen message does not queue behind other writers (SQLite has one)."""
    message = message_ids((await filled.client.get("/messages")).text)[0]
    assert (await filled.client.get(f"/messages/{message}")).status_code == 200
    async with filled.db.session() as s:
        row = (
            await s.execute(select(Message.folder_id, Message.uid).where(Message.id == message))
        ).one()
    async with filled.db.engine.connect() as holder:
        # An open write: SQLite's database-wide write lock, PostgreSQL's lock on the folder row.
        await holder.execute(
            update(Folder).where(Folder.id == row.folder_id).values(uidnext=Folder.uidnext)
        )
        store = filled.side.webmail.store
        flags = await asyncio.wait_for(store.add_flags(row.folder_id, row.uid, ["\\Seen"]), 5)
        await holder.rollback()
    assert "\\Seen" in flags

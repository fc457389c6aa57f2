"""Importing the annuaire: by column name, atomic replacement, who disappeared."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, func, select

from directory import annuaire
from directory.annuaire_layout import MSSANTE_HEADERS, PERSONNE_HEADERS
from directory.errors import DirectoryError
from routing.identifiers import national_id_for_rpps, rpps_with_key
from storage.db import Database
from storage.models import AnnuairePerson, Base

DR_A = national_id_for_rpps(rpps_with_key("1000000101"))
DR_B = national_id_for_rpps(rpps_with_key("1000000102"))
DR_C = national_id_for_rpps(rpps_with_key("1000000103"))


def _personne(
    path: Path,
    people: list[tuple[str, str, str]],
    layout: str = "2021",
    extra_lines: list[str] = (),
) -> Path:  # type: ignore[assignment]
    header = PERSONNE_HEADERS[layout]
    lines = ["|".join(header) + "|"]
    for nid, last, first in people:
        row = {h: "" for h in header}
        row["Identification nationale PP"] = nid
        row["Identifiant PP"] = nid[1:]
        row["Type d'identifiant PP"] = "8"
        row["Nom d'exercice"] = last
        row["Prénom d'exercice"] = first
        row["Code profession"] = "10"
        row["Libellé profession"] = "Médecin"
        lines.append("|".join(row[h] for h in header) + "|")
    lines.extend(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_import_then_reimport_reports_who_disappeared(db: Database, tmp_path: Path) -> None:
    first = _personne(
        tmp_path / "p1.txt",
        [
            (DR_A, "Lefèvre-Dœuf", "Hélène"),
            (DR_A, "Lefèvre-Dœuf", "Hélène"),  # 2 activities
            (DR_B, "O'Brien", 'Jean "Jo"'),
        ],
    )
    r1 = await annuaire.import_annuaire(db, first)
    assert (r1.records, r1.previous_records, r1.disappeared_count) == (3, 0, 0)
    async with db.session() as s:
        assert await annuaire.is_active_professional(s, DR_A)
        assert await annuaire.is_active_professional(s, DR_B)
        pro = await annuaire.professional(s, DR_B)
        assert pro is not None and pro.last_name == "O'Brien" and pro.first_name == 'Jean "Jo"'

    second = _personne(
        tmp_path / "p2.txt",
        [(DR_A, "Lefèvre-Dœuf", "Hélène"), (DR_C, "Martin", "Luc")],
        layout="new",
    )
    r2 = await annuaire.import_annuaire(db, second)
    assert r2.records == 2 and r2.previous_records == 3
    assert r2.disappeared == [DR_B] and r2.disappeared_count == 1
    async with db.session() as s:
        assert not await annuaire.is_active_professional(s, DR_B)  # can no longer send as PRO
        assert await annuaire.is_active_professional(s, DR_C)
        # the old cache is gone: the table holds exactly the new file
        assert await s.scalar(select(func.count()).select_from(AnnuairePerson)) == 2

    # The swapped-in table is exactly the schema the migrations define (names included).
    def diff(conn: Connection) -> list[object]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    r3 = await annuaire.import_annuaire(db, first)  # and a third import still works
    assert r3.disappeared == [DR_C]


async def test_malformed_lines_are_reported_and_skipped(db: Database, tmp_path: Path) -> None:
    f = _personne(
        tmp_path / "p.txt", [(DR_A, "Martin", "Luc")], extra_lines=["8|123|not-enough-fields|", ""]
    )
    r = await annuaire.import_annuaire(db, f)
    assert r.records == 1
    assert r.error_count == 1 and r.errors[0].line_no == 3


async def test_a_refused_file_leaves_the_previous_cache(db: Database, tmp_path: Path) -> None:
    await annuaire.import_annuaire(db, _personne(tmp_path / "ok.txt", [(DR_A, "Martin", "Luc")]))
    junk = tmp_path / "junk.txt"
    junk.write_text("nom|prénom|ville\nx|y|z\n", encoding="utf-8")
    with pytest.raises(DirectoryError, match=r"junk\.txt"):
        await annuaire.import_annuaire(db, junk)
    only_bad = _personne(tmp_path / "bad.txt", [], extra_lines=["1|2|3"])
    with pytest.raises(DirectoryError, match="previous cache stays"):
        await annuaire.import_annuaire(db, only_bad)
    async with db.session() as s:
        assert await annuaire.is_active_professional(s, DR_A)


async def test_an_interrupted_import_is_swept_and_invisible(db: Database, tmp_path: Path) -> None:
    await annuaire.import_annuaire(db, _personne(tmp_path / "ok.txt", [(DR_A, "Martin", "Luc")]))

    def boom(done: int, total: int, lines: int) -> None:
        raise KeyboardInterrupt  # the operator pressed Ctrl-C in the middle

    with pytest.raises(KeyboardInterrupt):
        await annuaire.import_annuaire(
            db, _personne(tmp_path / "next.txt", [(DR_B, "X", "Y")]), progress=boom
        )
    async with db.session() as s:
        assert await annuaire.is_active_professional(s, DR_A)
        assert not await annuaire.is_active_professional(s, DR_B)
        assert await s.scalar(select(func.count()).select_from(AnnuairePerson)) == 1


async def test_mssante_extraction_publishes_boxes(db: Database, tmp_path: Path) -> None:
    header = MSSANTE_HEADERS["2021"]
    rows = [
        {
            "Type de BAL": "PER",
            "Adresse BAL": "Helene.Lefevre@Medecin.MSSante.fr",
            "Identification nationale PP": DR_A,
            "Nom d'exercice": "Lefèvre",
            "Prénom d'exercice": "Hélène",
        },
        {
            "Type de BAL": "ORG",
            "Adresse BAL": "cardio@ch-arles.mssante.fr",
            "Raison Sociale structure BAL": "CENTRE HOSPITALIER D'ARLES",
        },
    ]
    f = tmp_path / "Extraction_Correspondance_MSSante_202611230000.txt"
    f.write_text(
        "|".join(header)
        + "|\n"
        + "".join("|".join(r.get(h, "") for h in header) + "|\n" for r in rows),
        encoding="utf-8",
    )
    r = await annuaire.import_annuaire(db, f)
    assert r.kind == "Extraction_Correspondance_MSSante" and r.records == 2
    async with db.session() as s:
        boxes = await annuaire.published_mailbox(s, "helene.lefevre@medecin.mssante.fr")
        assert [b.national_id for b in boxes] == [DR_A]
        assert await annuaire.is_active_professional(s, DR_A)
        org = await annuaire.published_mailbox(s, "cardio@ch-arles.mssante.fr")
        assert org[0].bal_type == "ORG" and org[0].national_id is None


def _big_file(path: Path, bad_every: int = 700) -> tuple[Path, list[int]]:
    """~3,000 generated lines with malformed ones spread over the whole file."""
    from bench.gen_annuaire import write_personne_activite

    write_personne_activite(path, 3000, seed=7)
    lines = path.read_text(encoding="utf-8").splitlines()
    bad_at = list(range(bad_every, len(lines), bad_every))
    for n in bad_at:
        lines[n - 1] = "8|x|broken line|"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, bad_at


async def test_parallel_import_is_the_same_import(db: Database, tmp_path: Path) -> None:
    f, bad_at = _big_file(tmp_path / "PS_LibreAcces_Personne_activite_big.txt")
    single = await annuaire.import_annuaire(db, f, workers=1)
    seen: list[tuple[int, int, int]] = []
    parallel = await annuaire.import_annuaire(
        db, f, workers=3, progress=lambda done, total, lines: seen.append((done, total, lines))
    )
    assert [e.line_no for e in single.errors] == bad_at  # numbered as in the file
    assert [e.line_no for e in parallel.errors] == bad_at  # across the parts too
    assert (parallel.records, parallel.lines, parallel.error_count) == (
        single.records,
        single.lines,
        single.error_count,
    )
    assert parallel.previous_records == single.records and parallel.disappeared_count == 0
    assert seen and seen[-1][0] == seen[-1][1] == f.stat().st_size  # progress reaches 100 %
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(AnnuairePerson)) == single.records


async def test_parallel_import_interrupted_leaves_the_cache(db: Database, tmp_path: Path) -> None:
    await annuaire.import_annuaire(db, _personne(tmp_path / "ok.txt", [(DR_A, "Martin", "Luc")]))
    f, _ = _big_file(tmp_path / "big.txt")

    def boom(done: int, total: int, lines: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await annuaire.import_annuaire(db, f, workers=2, progress=boom)
    async with db.session() as s:
        assert await annuaire.is_active_professional(s, DR_A)
        assert await s.scalar(select(func.count()).select_from(AnnuairePerson)) == 1
    assert _workers_left() == []  # no worker process left behind


def _workers_left() -> list[str]:
    left = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "directory.annuaire_load" in cmdline:
            left.append(cmdline)
    return left

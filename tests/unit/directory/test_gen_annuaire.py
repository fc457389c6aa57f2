"""bench/gen_annuaire.py: synthetic Annuaire Santé files in the published layouts."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from directory.annuaire_file import AnnuaireKind, open_annuaire
from routing.identifiers import check_national_id

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))  # the repository root, for bench
from bench.gen_annuaire import (  # noqa: E402
    MSSANTE_HEADERS,
    PERSONNE_HEADERS,
    main,
    write_personne_activite,
)


def test_published_column_counts() -> None:
    assert len(PERSONNE_HEADERS["2021"]) == 52
    assert len(PERSONNE_HEADERS["new"]) == 56
    assert len(MSSANTE_HEADERS["2021"]) == 31


@pytest.mark.parametrize(
    ("kind", "layout", "columns"),
    [("personne", "2021", 52), ("personne", "new", 56), ("mssante", "2021", 31),
     ("mssante", "new", 32)],
)  # fmt: skip
def test_cli_writes_the_layout(tmp_path: Path, kind: str, layout: str, columns: int) -> None:
    out = tmp_path / "out.txt"
    assert main([str(out), "--lines", "120", "--kind", kind, "--layout", layout]) == 0
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 122  # header + 120 lines + final newline
    assert all(line.count("|") == columns and line.endswith("|") for line in lines[:-1])
    with open_annuaire(out) as reader:
        expected = AnnuaireKind.PERSONNE_ACTIVITE if kind == "personne" else AnnuaireKind.MSSANTE
        assert reader.kind is expected
        records = list(reader.records())
        assert reader.errors == [] and len(records) == 120


def test_ids_are_valid_and_people_have_several_activities(tmp_path: Path) -> None:
    out = tmp_path / "p.txt"
    write_personne_activite(out, 2000, seed=11)
    with open_annuaire(out, AnnuaireKind.PERSONNE_ACTIVITE) as reader:
        records = list(reader.records())
    kinds = Counter(check_national_id(r.national_id).kind for r in records)  # Luhn for RPPS
    assert kinds["RPPS"] > kinds["ADELI"] > 0
    activities = Counter(r.national_id for r in records)
    assert max(activities.values()) >= 3
    assert 1.2 < len(records) / len(activities) < 2.5


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    write_personne_activite(a, 300, seed=1)
    write_personne_activite(b, 300, seed=1)
    write_personne_activite(c, 300, seed=2)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_runs_as_a_script(tmp_path: Path) -> None:
    out = tmp_path / "script.txt"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gen_annuaire.py"), str(out), "--lines", "5"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert "5 personne lines" in result.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 6

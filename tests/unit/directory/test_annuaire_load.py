"""The import worker reports failures as a message, never as a traceback."""

from __future__ import annotations

import io
import json
from pathlib import Path

from directory.annuaire_file import AnnuaireKind, split_annuaire
from directory.annuaire_load import LoadTask, load_part


def test_worker_reports_an_unusable_database(tmp_path: Path) -> None:
    from bench.gen_annuaire import write_personne_activite

    f = tmp_path / "p.txt"
    write_personne_activite(f, 10)
    ((start, end),) = split_annuaire(f, 1)
    task = LoadTask(
        "sqlite",
        str(tmp_path / "missing" / "x.db"),
        "annuaire_persons_import",
        ("national_id",),
        str(f),
        AnnuaireKind.PERSONNE_ACTIVITE.value,
        start,
        end,
    )
    out = io.StringIO()
    load_part(task, out)
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    assert messages[-1][0] == "error" and "unable to open database" in messages[-1][1]

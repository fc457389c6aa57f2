"""Cutting an extraction file into parts for parallel loading."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from directory.annuaire_file import AnnuaireKind, open_annuaire_part, split_annuaire


@pytest.mark.parametrize("parts", [1, 2, 3, 7, 50])
def test_parts_cover_the_data_at_line_starts(tmp_path: Path, parts: int) -> None:
    from bench.gen_annuaire import write_personne_activite

    f = tmp_path / "p.txt"
    write_personne_activite(f, 40, seed=1)
    data = f.read_bytes()
    ranges = split_annuaire(f, parts)
    assert ranges[0][0] == data.index(b"\n") + 1  # after the header
    assert ranges[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))  # contiguous
    assert all(data[start - 1 : start] == b"\n" for start, _ in ranges)  # at line starts
    assert len(ranges) <= parts
    # Reading every part gives every record once, in order.
    records = []
    for start, end in ranges:
        with open_annuaire_part(f, AnnuaireKind.PERSONNE_ACTIVITE, start, end) as reader:
            records += list(reader.records())
    with open_annuaire_part(f, AnnuaireKind.PERSONNE_ACTIVITE, ranges[0][0], len(data)) as r:
        assert records == list(r.records())
    assert len(records) == 40

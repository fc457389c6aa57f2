"""directory.annuaire_file: Annuaire Santé extraction readers (docs/mssante.md §3)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import directory.annuaire_file as annuaire_file
from directory.annuaire_file import (
    FIELD_ALIASES,
    MAX_ERRORS_KEPT,
    AnnuaireFileError,
    AnnuaireKind,
    LineError,
    MssanteRecord,
    PersonActivityRecord,
    normalise_label,
    open_annuaire,
)
from routing.identifiers import check_national_id

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root, for bench
from bench.gen_annuaire import (
    MSSANTE_HEADERS,
    PERSONNE_HEADERS,
    write_mssante,
    write_personne_activite,
)

# Which 2021 label each record field comes from (the ground truth the tests compare to).
PERSONNE_SOURCE = {
    "national_id": "Identification nationale PP",
    "id_pp_type": "Type d'identifiant PP",
    "id_pp": "Identifiant PP",
    "civility": "Code civilité d'exercice",
    "last_name": "Nom d'exercice",
    "first_name": "Prénom d'exercice",
    "profession_code": "Code profession",
    "profession_label": "Libellé profession",
    "specialty_code": "Code savoir-faire",
    "specialty_label": "Libellé savoir-faire",
    "mode_code": "Code mode exercice",
    "structure_id": "Identifiant technique de la structure",
    "siret": "Numéro SIRET site",
    "finess": "Numéro FINESS site",
    "structure_name": "Raison sociale site",
    "postal_code": "Code postal (coord. structure)",
    "city": "Libellé commune (coord. structure)",
}
MSSANTE_SOURCE = {
    "bal_type": "Type de BAL",
    "address": "Adresse BAL",
    "national_id": "Identification nationale PP",
    "id_pp_type": "Type Identifiant PP",
    "id_pp": "Identifiant PP",
    "structure_id_type": "Type identifiant structure",
    "structure_id": "Identification Structure",
    "service": "Service de rattachement",
    "civility": "Civilité d'exercice",
    "last_name": "Nom d'exercice",
    "first_name": "Prénom d'exercice",
    "profession_code": "Code Profession",
    "profession_label": "Libellé Profession",
    "specialty_code": "Code savoir-faire",
    "specialty_label": "Libellé savoir-faire",
    "dematerialisation": "Dématérialisation",
    "structure_name": "Raison Sociale structure BAL",
    "postal_code": "Code postal structure BAL",
}


def naive_rows(path: Path, labels_2021: tuple[str, ...]) -> list[dict[str, str]]:
    """Independent reading: every line as {2021 label: value}, by position in the layout."""
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for line in lines[1:]:
        cells = line.split("|")
        assert cells[-1] == ""  # the generator ends every line with "|"
        rows.append(dict(zip(labels_2021, cells[:-1], strict=True)))
    return rows


def as_2021(headers: dict[str, tuple[str, ...]], layout: str) -> tuple[str, ...]:
    """Labels of a layout spelled as in 2021 (so one source table serves both)."""
    by_norm = {normalise_label(label): label for label in headers["2021"]}
    renamed = {
        "libelle civilite exercice": "Libellé civilité d'exercice",
        "code departement coord structure": "Code Département (structure)",
        "libelle departement coord structure": "Libellé Département (structure)",
        "type bal": "Type de BAL",
        "type d identifiant pp": "Type Identifiant PP",
        "type d identifiant structure": "Type identifiant structure",
        "identifiant structure": "Identification Structure",
        "civilite exercice": "Civilité d'exercice",
        "nom exercice": "Nom d'exercice",
        "prenom exercice": "Prénom d'exercice",
        "raison sociale structure": "Raison Sociale structure BAL",
        "code postal structure": "Code postal structure BAL",
    }
    result = []
    for label in headers[layout]:
        norm = normalise_label(label)
        result.append(by_norm.get(norm) or renamed.get(norm) or label)
    return tuple(result)


# -- generated files in both layouts ----------------------------------------------------------


@pytest.mark.parametrize("layout", ["2021", "new"])
def test_personne_activite_file(tmp_path: Path, layout: str) -> None:
    path = tmp_path / f"PS_LibreAcces_Personne_activite_{layout}.txt"
    assert write_personne_activite(path, 800, layout=layout, seed=7) == 800  # type: ignore[arg-type]
    expected = naive_rows(path, as_2021(PERSONNE_HEADERS, layout))
    with open_annuaire(path, AnnuaireKind.PERSONNE_ACTIVITE) as reader:
        assert reader.kind is AnnuaireKind.PERSONNE_ACTIVITE
        assert reader.missing_optional == ()
        records = list(reader.records())
        assert reader.errors == [] and reader.error_count == 0
        assert reader.lines_read == 801
        assert reader.bytes_read == reader.total_size == path.stat().st_size
    assert len(records) == 800
    assert all(isinstance(r, PersonActivityRecord) for r in records)
    for record, row in zip(records, expected, strict=True):
        assert record == tuple(row[PERSONNE_SOURCE[f]].strip() for f in record.FIELDS)
        assert check_national_id(record.national_id).kind in ("RPPS", "ADELI")
    # several activity lines per professional
    assert len({r.national_id for r in records}) < 700
    # accented names, ligatures, apostrophes and double quotes survive
    names = {r.last_name for r in records} | {r.first_name for r in records}
    assert {"Lefèvre-Dœuf", "N'Diaye", 'DURAND "LE JEUNE"', "Hélène"} <= names


@pytest.mark.parametrize("layout", ["2021", "new"])
def test_mssante_file(tmp_path: Path, layout: str) -> None:
    path = tmp_path / f"Extraction_Correspondance_MSSante_{layout}.txt"
    write_mssante(path, 600, layout=layout, seed=3)  # type: ignore[arg-type]
    expected = naive_rows(path, as_2021(MSSANTE_HEADERS, layout))
    with open_annuaire(path, AnnuaireKind.MSSANTE) as reader:
        assert reader.kind is AnnuaireKind.MSSANTE
        records = list(reader.records())
        assert reader.errors == []
    assert len(records) == 600
    for record, row in zip(records, expected, strict=True):
        values = {f: row[MSSANTE_SOURCE[f]].strip() for f in MssanteRecord.FIELDS}
        values["address"] = values["address"].lower()
        assert record._asdict() == {**values, "national_id": values["national_id"] or None}
    kinds = {r.bal_type for r in records}
    assert kinds == {"PER", "ORG"}
    assert all(r.national_id is None for r in records if r.bal_type == "ORG")
    assert all(r.national_id and r.national_id[0] == "8" for r in records if r.bal_type == "PER")
    assert all(r.address == r.address.lower() for r in records)


def test_batches_are_tuples_in_field_order(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    write_personne_activite(path, 250, seed=1)
    with open_annuaire(path) as reader:
        records = list(reader.records())
    with open_annuaire(path) as reader:
        batches = list(reader.batches(100))
    assert [len(b) for b in batches] == [100, 100, 50]
    assert [tuple(r) for r in records] == [row for b in batches for row in b]
    assert all(type(row) is tuple for b in batches for row in b)
    with open_annuaire(path) as reader, pytest.raises(ValueError, match="at least 1"):
        next(reader.batches(0))


def test_fields_constants() -> None:
    assert PersonActivityRecord.FIELDS == (
        "national_id", "id_pp_type", "id_pp", "civility", "last_name", "first_name",
        "profession_code", "profession_label", "specialty_code", "specialty_label",
        "mode_code", "structure_id", "siret", "finess", "structure_name", "postal_code", "city",
    )  # fmt: skip
    assert MssanteRecord.FIELDS == (
        "bal_type", "address", "national_id", "id_pp_type", "id_pp", "structure_id_type",
        "structure_id", "service", "civility", "last_name", "first_name", "profession_code",
        "profession_label", "specialty_code", "specialty_label", "dematerialisation",
        "structure_name", "postal_code",
    )  # fmt: skip
    assert set(FIELD_ALIASES[AnnuaireKind.MSSANTE]) == set(MssanteRecord.FIELDS)
    assert set(FIELD_ALIASES[AnnuaireKind.PERSONNE_ACTIVITE]) == set(PersonActivityRecord.FIELDS)


# -- hand-written files -----------------------------------------------------------------------

HEADER = (
    "Type d'identifiant PP|Identifiant PP|Identification nationale PP|Nom d'exercice|"
    "Prénom d'exercice|Code profession|Identifiant technique de la structure|"
)
GOOD = "8|10001045367|810001045367|GUIGNARD|Éric|10|R10100000328372|"


def write_lines(tmp_path: Path, *lines: str | bytes, name: str = "f.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(
        b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)
    )
    return path


def test_malformed_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        HEADER,
        GOOD,  # line 2
        "8|10001045367|810001045367|TOO|FEW|",  # line 3
        "",  # line 4: empty, skipped silently
        "0|012600631||DUPONT|Marie|60|C1|",  # line 5: no national identifier
        "8|1|81|DUPONT|Marie|60|C1|",  # line 6: malformed identifier
        b"8|10001045367|810001045367|LEF\xe8VRE|H\xe9l\xe8ne|10|C1|",  # line 7: Latin-1 bytes
        "0|012600631|0012600631|D'ARGENTRÉ|Zoé|60|C2|",  # line 8: ADELI
        "8|10001045367|810001045367|A|B|10|C3|extra|",  # line 9: one field too many
        "   ",  # line 10: blank
        "8|10001045367|810001045367|GUIGNARD|Éric|10|C4",  # line 11: no trailing "|"
        "8|10001045367|810001045367|GUIGNARD|Éric|10||",  # line 12: empty structure id, ok
    )
    with open_annuaire(path, AnnuaireKind.PERSONNE_ACTIVITE) as reader:
        records = list(reader.records())
        errors = reader.errors
        assert reader.lines_read == 12
    assert [r.structure_id for r in records] == ["R10100000328372", "C2", "C4", ""]
    assert [e.line_no for e in errors] == [3, 5, 6, 7, 9]
    messages = dict((e.line_no, e.message) for e in errors)
    assert messages[3] == "expected 7 fields, got 5"
    assert messages[5] == "missing national identifier (Identification nationale PP)"
    assert messages[6].startswith("invalid national identifier '81'")
    assert messages[7].startswith("invalid UTF-8: byte 0xE8")
    assert messages[9] == "expected 7 fields, got 8"
    assert all(isinstance(e, LineError) for e in errors)


def test_values_are_stripped_and_quotes_are_plain_characters(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path,
        HEADER,
        ' 8 | 10001045367 |810001045367 | "DURAND" dit "Le Jeune" |\u00a0Zoé\t| 10 |C1 |',
        '8|10001045367|810001045367|O"Brien|"|10|C2|',
    )
    with open_annuaire(path, AnnuaireKind.PERSONNE_ACTIVITE) as reader:
        records = list(reader.records())
    assert records[0].last_name == '"DURAND" dit "Le Jeune"'
    assert records[0].first_name == "Zoé"
    assert (records[0].id_pp_type, records[0].profession_code) == ("8", "10")
    assert (records[1].last_name, records[1].first_name) == ('O"Brien', '"')


def test_bom_crlf_and_no_trailing_separator(tmp_path: Path) -> None:
    header = HEADER.rstrip("|")
    line = GOOD.rstrip("|")
    path = tmp_path / "crlf.txt"
    path.write_bytes(("\ufeff" + header + "\r\n" + line + "\r\n" + line).encode())
    with open_annuaire(path, AnnuaireKind.PERSONNE_ACTIVITE) as reader:
        assert reader.header[0] == "Type d'identifiant PP"
        records = list(reader.records())
        assert reader.errors == []
    assert [r.structure_id for r in records] == ["R10100000328372", "R10100000328372"]


def test_trailing_separator_only_on_data_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path, HEADER.rstrip("|"), GOOD, GOOD.rstrip("|"))
    with open_annuaire(path, AnnuaireKind.PERSONNE_ACTIVITE) as reader:
        assert len(list(reader.records())) == 2 and reader.errors == []


def test_missing_optional_columns_read_empty(tmp_path: Path) -> None:
    path = write_lines(tmp_path, HEADER, GOOD)
    with open_annuaire(path, AnnuaireKind.PERSONNE_ACTIVITE) as reader:
        assert "city" in reader.missing_optional and "national_id" not in reader.missing_optional
        (record,) = reader.records()
    assert record.city == "" and record.last_name == "GUIGNARD"


def test_header_aliases_and_normalisation(tmp_path: Path) -> None:
    # Reordered columns, other case and punctuation, no accents, renamed labels.
    header = (
        "CODE PROFESSION|Prenom exercice|  nom  d’exercice |identification NATIONALE pp|"
        "Identifiant technique structure|Code mode d'exercice|Libellé commune|Colonne nouvelle|"
    )
    path = write_lines(tmp_path, header, "10|Éric|GUIGNARD|810001045367|R1|L|Arles|x|")
    with open_annuaire(path, AnnuaireKind.PERSONNE_ACTIVITE) as reader:
        assert reader.kind is AnnuaireKind.PERSONNE_ACTIVITE
        (record,) = reader.records()
    assert (record.profession_code, record.first_name, record.last_name) == (
        "10",
        "Éric",
        "GUIGNARD",
    )
    assert (record.structure_id, record.mode_code, record.city) == ("R1", "L", "Arles")


def test_normalise_label() -> None:
    assert (
        normalise_label("Libellé commune (coord. Structure)") == "libelle commune coord structure"
    )
    assert normalise_label(" Prénom d’exercice ") == "prenom d exercice"
    assert normalise_label("DÉMATÉRIALISATION") == "dematerialisation"
    assert normalise_label("Numéro  FINESS_site") == "numero finess site"


def test_random_header_is_refused_naming_missing_columns(tmp_path: Path) -> None:
    path = write_lines(tmp_path, "Nom|Prénom|Ville|Code postal|", "a|b|c|d|", name="random.txt")
    with pytest.raises(AnnuaireFileError) as info:
        open_annuaire(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not an Annuaire Santé extraction file")
    assert (
        "Extraction_Correspondance_MSSante (missing columns: 'Type de BAL', 'Adresse BAL'"
        in message
    )
    assert (
        "PS_LibreAcces_Personne_activite (missing columns: 'Identification nationale PP'" in message
    )
    assert "'Identifiant technique de la structure'" in message


def test_wrong_kind_requested(tmp_path: Path) -> None:
    path = write_lines(tmp_path, HEADER, GOOD)
    with pytest.raises(AnnuaireFileError, match="not a Extraction_Correspondance_MSSante file: "
                       "missing columns: 'Type de BAL', 'Adresse BAL'"):  # fmt: skip
        open_annuaire(path, AnnuaireKind.MSSANTE)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "the file is empty"),
        (b"\xff\xfeT\x00y\x00p\x00e\x00\n", "header line is not valid UTF-8"),
    ],
)
def test_unreadable_headers(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(AnnuaireFileError, match=fragment):
        open_annuaire(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AnnuaireFileError, match="cannot read the file"):
        open_annuaire(tmp_path / "absent.txt")


NATIONAL = "Identification nationale PP"


def test_mssante_line_checks(tmp_path: Path) -> None:
    header = "|".join(MSSANTE_HEADERS["2021"]) + "|"
    blank = [""] * 31

    def line(**cells: str) -> str:
        values = list(blank)
        for label, value in cells.items():
            values[MSSANTE_HEADERS["2021"].index(label)] = value
        return "|".join(values) + "|"

    path = write_lines(
        tmp_path,
        header,
        line(**{"Type de BAL": "ORG", "Adresse BAL": "Cardio@CH-X.mssante.fr"}),
        line(**{"Type de BAL": "PER", "Adresse BAL": "not-an-address"}),
        line(**{"Type de BAL": "", "Adresse BAL": "a@b.fr"}),
        line(**{"Type de BAL": "PER", "Adresse BAL": ""}),
        line(**{"Type de BAL": "PER", "Adresse BAL": "a@b.fr", NATIONAL: "8123"}),
        line(**{"Type de BAL": "PER", "Adresse BAL": "a@b.fr", NATIONAL: "0012600631"}),
    )  # fmt: skip
    with open_annuaire(path, AnnuaireKind.MSSANTE) as reader:
        records = list(reader.records())
        messages = [(e.line_no, e.message.split(" ")[0:2]) for e in reader.errors]
    assert [(r.address, r.national_id) for r in records] == [
        ("cardio@ch-x.mssante.fr", None),
        ("a@b.fr", "0012600631"),
    ]
    assert messages == [
        (3, ["invalid", "mailbox"]),
        (4, ["missing", "mailbox"]),
        (5, ["missing", "mailbox"]),
        (6, ["invalid", "national"]),
    ]


def test_error_list_is_capped(tmp_path: Path) -> None:
    path = write_lines(tmp_path, HEADER, *(["x|y|"] * (MAX_ERRORS_KEPT + 500)), GOOD)
    with open_annuaire(path) as reader:
        assert len(list(reader.records())) == 1
        assert len(reader.errors) == MAX_ERRORS_KEPT
        assert reader.error_count == MAX_ERRORS_KEPT + 500
        assert reader.errors[-1].line_no == MAX_ERRORS_KEPT + 1


def test_reader_is_single_use(tmp_path: Path) -> None:
    path = write_lines(tmp_path, HEADER, GOOD)
    reader = open_annuaire(path)
    assert len(list(reader.records())) == 1
    with pytest.raises(RuntimeError, match="already been consumed"):
        list(reader.records())
    reader.close()


def test_small_blocks_give_the_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.txt"
    write_personne_activite(path, 300, layout="new", seed=5)
    last = path.read_bytes().splitlines()[-1]
    with path.open("ab") as out:  # an invalid line and a final line without newline
        out.write(b"8|\xff\n" + last)
    with open_annuaire(path) as reader:
        expected = (list(reader.records()), reader.errors)
    for size in (1, 7, 64, 1000):  # blocks that cut lines and multi-byte characters
        monkeypatch.setattr(annuaire_file, "BLOCK_SIZE", size)
        with open_annuaire(path) as reader:
            assert (list(reader.records()), reader.errors) == expected
            assert reader.bytes_read == reader.total_size
    assert expected[1] == [LineError(302, "invalid UTF-8: byte 0xFF at byte 3 of the line")]
    assert len(expected[0]) == 301 and expected[0][-1] == expected[0][-2]


def test_over_long_line_is_reported_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(annuaire_file, "BLOCK_SIZE", 16)
    monkeypatch.setattr(annuaire_file, "MAX_LINE_BYTES", 200)
    path = write_lines(tmp_path, HEADER, GOOD, "8|" + "x" * 1000 + "|", GOOD)
    with open_annuaire(path) as reader:
        assert len(list(reader.records())) == 2
        assert reader.errors == [LineError(3, "line longer than 200 bytes")]
        assert reader.bytes_read == reader.total_size


_cell_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="|\n\r"), max_size=12)


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_cell_text, _cell_text, _cell_text), min_size=1, max_size=8))
def test_arbitrary_cell_text_round_trips(tmp_path: Path, rows: list[tuple[str, str, str]]) -> None:
    lines = [HEADER] + [f"8|10001045367|810001045367|{a}|{b}|10|{c}|" for a, b, c in rows]
    path = tmp_path / "rt.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open_annuaire(path, AnnuaireKind.PERSONNE_ACTIVITE) as reader:
        records = list(reader.records())
        assert reader.errors == []
    assert [(r.last_name, r.first_name, r.structure_id) for r in records] == [
        (a.strip(), b.strip(), c.strip()) for a, b, c in rows
    ]

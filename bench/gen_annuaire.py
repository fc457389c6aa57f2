"""Generate synthetic Annuaire Santé extraction files in the published layouts.

    python bench/gen_annuaire.py OUT --lines N [--kind personne|mssante] [--layout 2021|new]
                                 [--seed S]

Files follow docs/mssante.md §3: UTF-8, ``|``-separated, one header line, every line (header
included) ending with a trailing ``|``. Identities are fake but well formed: national
identifiers are ``8`` + RPPS with a valid Luhn key or ``0`` + ADELI; names carry accents,
ligatures, apostrophes and double quotes. The personne kind writes several activity lines per
professional. Generation streams (constant memory) and is deterministic for a given seed.

Layouts:

* ``personne`` ``2021``: the 52-column ``PS_LibreAcces_Personne_activite`` header of 2021.
* ``personne`` ``new``: the 56-column header of later extractions (a few labels renamed, such
  as ``Libellé civilité exercice``; ``Code fonction`` and ``Code genre d'activité`` added).
* ``mssante`` ``2021``: the 31-column ``Extraction_Correspondance_MSSante`` header.
* ``mssante`` ``new``: synthetic variant (relabelled and reordered columns, one extra column)
  to exercise the reader's alias table; not a published layout.

Tests import :func:`write_personne_activite` and :func:`write_mssante`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, Literal, TypeVar

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from directory.annuaire_layout import (
    MSSANTE_HEADERS,
    PERSONNE_HEADERS,
    PERSONNE_RENAMED_IN_NEW,
)
from routing.identifiers import rpps_with_key

_T = TypeVar("_T")
Layout = Literal["2021", "new"]
Kind = Literal["personne", "mssante"]

__all__ = [
    "MSSANTE_HEADERS",
    "PERSONNE_HEADERS",
    "iter_mssante_lines",
    "iter_personne_lines",
    "main",
    "write_mssante",
    "write_personne_activite",
]


# --------------------------------------------------------------------------------------------
# Pools of realistic values (fictitious people and places)
# --------------------------------------------------------------------------------------------

_LAST_NAMES: Final = (
    "MARTIN", "Lefèvre-Dœuf", "D'ARGENTRÉ", "N'Diaye", "Le Gall", "MÜLLER", "Nuñez",
    "DE LA FONTAINE", "O'Brien", 'DURAND "LE JEUNE"', "Bénard", "FAURÉ", "Cœurderoy",
    "Lætitia-Roux", "ÉTIENNE", "Pérez Ibáñez", "Saint-Exupéry", "LOPEZ", "Nguyễn", "GARÇON",
    "Bouchard", "L'Hôte", "Dubois", "Moreau", "Lambert", "Girard", "Rousseau", "Fontaine",
)  # fmt: skip
_FIRST_NAMES: Final = (
    ("Hélène", "F"), ("Éloïse", "F"), ("Jean-François", "M"), ("Maëlle", "F"), ("Zoé", "F"),
    ("Chloé", "F"), ("Anaïs", "F"), ("Noël", "M"), ("Gaëtan", "M"), ("Bérénice", "F"),
    ("François", "M"), ("Cécile", "F"), ("Jérôme", "M"), ("Loïc", "M"), ("Aurélien", "M"),
    ("Clémence", "F"), ("Agnès", "F"), ("Thérèse", "F"), ("Joël", "M"), ("Mélanie", "F"),
    ("Marie-Ève", "F"), ("Benoît", "M"), ("Raphaël", "M"), ("Inès", "F"), ("José", "M"),
)  # fmt: skip
# (code, label, probability weight, specialties [(type, type label, code, label)])
_PROFESSIONS: Final = (
    ("10", "Médecin", 30, (
        ("S", "Spécialité ordinale", "SM54", "Médecine générale"),
        ("S", "Spécialité ordinale", "SM04", "Cardiologie et maladies vasculaires"),
        ("S", "Spécialité ordinale", "SM26", "Gynécologie-obstétrique"),
        ("S", "Spécialité ordinale", "SM42", "Pédiatrie"),
    )),
    ("21", "Pharmacien", 12, ()),
    ("40", "Chirurgien-Dentiste", 6, (
        ("S", "Spécialité ordinale", "SCD01", "Orthopédie dento-faciale"),
    )),
    ("50", "Sage-Femme", 4, ()),
    ("60", "Infirmier", 30, ()),
    ("70", "Masseur-Kinésithérapeute", 10, ()),
    ("91", "Orthophoniste", 4, ()),
    ("26", "Audioprothésiste", 1, ()),
    ("28", "Opticien-Lunetier", 3, ()),
)  # fmt: skip
_MODES: Final = (("L", "Libéral"), ("S", "Salarié"), ("B", "Bénévole"))
_CITIES: Final = (
    ("13004", "13200", "Arles", "13", "Bouches-du-Rhône"),
    ("42218", "42000", "Saint-Étienne", "42", "Loire"),
    ("94038", "94240", "L'Haÿ-les-Roses", "94", "Val-de-Marne"),
    ("75115", "75015", "Paris 15e Arrondissement", "75", "Paris"),
    ("2A004", "20000", "Ajaccio", "2A", "Corse-du-Sud"),
    ("97411", "97400", "Saint-Denis", "974", "La Réunion"),
    ("69123", "69003", "Lyon", "69", "Rhône"),
    ("59350", "59000", "Lille", "59", "Nord"),
    ("29019", "29200", "Brest", "29", "Finistère"),
)  # fmt: skip
_STREETS: Final = (
    ("RUE", "Rue", "DE L'ÉGLISE"), ("AV", "Avenue", "DU GÉNÉRAL LECLERC"),
    ("BD", "Boulevard", "DES JUSTES"), ("PL", "Place", "VIOLET"),
    ("CHE", "Chemin", "DES BLANCS"), ("IMP", "Impasse", "DU STADE"),
)  # fmt: skip
_SECTORS: Final = (
    ("SA07", "Cabinet individuel"), ("SA08", "Cabinet de groupe"),
    ("SA01", "Etablissement public de santé"), ("SA05", "Centre de santé"),
    ("SA33", "Officine"), ("SA42", "Appareillage médical"),
)  # fmt: skip
_SERVICES: Final = (
    "Cardiologie", "Urgences", "Laboratoire d'analyses", "Imagerie médicale", "Secrétariat",
    "Pédiatrie", "Maternité", "Pharmacie à usage intérieur",
)  # fmt: skip
_ORGANISATIONS: Final = (
    ("CENTRE HOSPITALIER D'ARLES", "ch-arles.mssante.fr"),
    ("CHU DE SAINT-ÉTIENNE", "chu-st-etienne.mssante.fr"),
    ('CLINIQUE "LES MIMOSAS"', "clinique-mimosas.mssante.fr"),
    ("LABORATOIRE BIOMÉDICAL DE L'OUEST", "labo-ouest.mssante.fr"),
    ("EHPAD « LE CLOS FLEURI »", "clos-fleuri.mssante.fr"),
)  # fmt: skip
_PERSONAL_DOMAINS: Final = (
    "medecin.mssante.fr", "pharmacien.mssante.fr", "infirmier.mssante.fr",
    "sagefemme.mssante.fr", "chirurgiendentiste.mssante.fr", "masseur-kine.mssante.fr",
)  # fmt: skip


def _ascii_slug(text: str) -> str:
    """ "Lefèvre-Dœuf" -> "lefevre-doeuf" (for synthetic mail addresses)."""
    text = text.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae").replace("Æ", "AE")
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = "".join(c if c.isalnum() or c == "-" else "-" for c in plain.lower())
    return "-".join(part for part in slug.split("-") if part)


def _personne_label_keys(layout: Layout) -> tuple[str, ...]:
    """Column order of the layout expressed with the 2021 labels (values are keyed by them)."""
    renamed = {new: old for old, new in PERSONNE_RENAMED_IN_NEW.items()}
    return tuple(renamed.get(label, label) for label in PERSONNE_HEADERS[layout])


def iter_personne_lines(lines: int, *, layout: Layout = "2021", seed: int = 0) -> Iterator[str]:
    """Yield the header then ``lines`` activity lines (each ending with ``|`` and ``\\n``)."""
    rng = random.Random(seed)
    rand = rng.random
    keys = _personne_label_keys(layout)
    yield "|".join(PERSONNE_HEADERS[layout]) + "|\n"
    # Rows are lists indexed by column position; the hot loop only assigns slots.
    col = {key: index for index, key in enumerate(keys)}.__getitem__
    width = len(keys)
    professions = [p for p in _PROFESSIONS for _ in range(p[2])]  # weighted draw by index
    cities = [(*c, f"{c[1]} {c[2].upper()}") for c in _CITIES]
    (i_type, i_id, i_nat, i_civ, i_civ_l, i_sex, i_sex_l, i_last, i_first, i_prof, i_prof_l,
     i_cat, i_cat_l, i_sft, i_sft_l, i_sf, i_sf_l) = map(col, (
        "Type d'identifiant PP", "Identifiant PP", "Identification nationale PP",
        "Code civilité d'exercice", "Libellé civilité d'exercice", "Code civilité",
        "Libellé civilité", "Nom d'exercice", "Prénom d'exercice", "Code profession",
        "Libellé profession", "Code catégorie professionnelle",
        "Libellé catégorie professionnelle", "Code type savoir-faire",
        "Libellé type savoir-faire", "Code savoir-faire", "Libellé savoir-faire",
    ))  # fmt: skip
    (i_mode, i_mode_l, i_siret, i_siren, i_finess, i_struct, i_name, i_dest, i_num, i_street_c,
     i_street_t, i_street, i_cedex, i_postal, i_commune, i_city, i_phone, i_dept, i_dept_l,
     i_old, i_auth, i_sector, i_sector_l) = map(col, (
        "Code mode exercice", "Libellé mode exercice", "Numéro SIRET site",
        "Numéro SIREN site", "Numéro FINESS site", "Identifiant technique de la structure",
        "Raison sociale site", "Complément destinataire (coord. structure)",
        "Numéro Voie (coord. structure)", "Code type de voie (coord. structure)",
        "Libellé type de voie (coord. structure)", "Libellé Voie (coord. structure)",
        "Bureau cedex (coord. structure)", "Code postal (coord. structure)",
        "Code commune (coord. structure)", "Libellé commune (coord. structure)",
        "Téléphone (coord. structure)", "Code Département (structure)",
        "Libellé Département (structure)", "Ancien identifiant de la structure",
        "Autorité d'enregistrement", "Code secteur d'activité", "Libellé secteur d'activité",
    ))  # fmt: skip

    def pick(seq: Sequence[_T]) -> _T:
        return seq[int(rand() * len(seq))]

    # Activity sites are drawn from a pool (professionals share structures, as in reality);
    # this also keeps generation fast: one draw per line for all the site columns.
    sites: list[tuple[bool, tuple[tuple[int, str], ...]]] = []
    for _ in range(4096):
        mode_code, mode_label = pick(_MODES)
        commune, postal, city, dept, dept_label, cedex = pick(cities)
        siret = str(10**13 + int(rand() * 9 * 10**13))
        site = [
            (i_mode, mode_code), (i_mode_l, mode_label), (i_siret, siret),
            (i_siren, siret[:9]), (i_old, "3" + siret), (i_num, str(int(rand() * 200) + 1)),
            *zip((i_street_c, i_street_t, i_street), pick(_STREETS), strict=True),
            (i_cedex, cedex), (i_postal, postal), (i_commune, commune), (i_city, city),
            (i_phone, f"0{int(rand() * 900_000_000) + 100_000_000}"), (i_dept, dept),
            (i_dept_l, dept_label), *zip((i_sector, i_sector_l), pick(_SECTORS), strict=True),
        ]  # fmt: skip
        if mode_code != "L":
            finess = f"{dept[:2]}{int(rand() * 10**7):07d}"
            name = pick(_ORGANISATIONS)[0]
            site += [(i_finess, finess), (i_struct, "F" + finess), (i_name, name), (i_dest, name)]
        sites.append((mode_code == "L", tuple(site)))
    n_sites = len(sites)

    written = 0
    person = 0
    while written < lines:
        person += 1
        code, label, _, specialties = pick(professions)
        first_name, sex = pick(_FIRST_NAMES)
        last_name = pick(_LAST_NAMES)
        base = [""] * width
        if rand() < 0.8:  # RPPS, Luhn key computed by routing.identifiers
            id_type = "8"
            id_pp = rpps_with_key(f"10{person % 100_000_000:08d}")
        else:  # ADELI: department(2) + profession(2) + order(4) + key(1)
            id_type = "0"
            id_pp = f"{int(rand() * 95) + 1:02d}{code}{person % 10_000:04d}{int(rand() * 10)}"
        base[i_type] = id_type
        base[i_id] = id_pp
        base[i_nat] = id_type + id_pp
        if code in ("10", "40"):
            base[i_civ] = "DR"
            base[i_civ_l] = "Docteur"
        base[i_sex], base[i_sex_l] = ("MME", "Madame") if sex == "F" else ("M", "Monsieur")
        base[i_last] = last_name
        base[i_first] = first_name
        base[i_prof] = code
        base[i_prof_l] = label
        base[i_cat] = "C"
        base[i_cat_l] = "Civil"
        base[i_auth] = "ARS/CPAM/CPAM"
        if specialties:
            base[i_sft], base[i_sft_l], base[i_sf], base[i_sf_l] = pick(specialties)
        cabinet = (
            f"CABINET DU DR {last_name.upper()}"
            if code == "10"
            else f"CABINET {first_name.upper()} {last_name.upper()}"
        )
        activities = min(1 + int(rng.expovariate(1.6)), lines - written)
        for number in range(activities):
            row = base.copy()
            liberal, assignments = sites[int(rand() * n_sites)]
            for index, value in assignments:
                row[index] = value
            if liberal:  # a private practice: the professional's own cabinet
                row[i_struct] = f"C{id_pp}{number:02d}"
                row[i_name] = row[i_dest] = cabinet
            yield "|".join(row) + "|\n"
        written += activities


def iter_mssante_lines(lines: int, *, layout: Layout = "2021", seed: int = 0) -> Iterator[str]:
    """Yield the header then ``lines`` mailbox lines (about 85 % PER, 15 % ORG)."""
    rng = random.Random(seed)
    rand = rng.random
    header = MSSANTE_HEADERS[layout]
    # Values are placed by their 2021 label; map the synthetic "new" labels onto them.
    renamed = dict(zip(MSSANTE_HEADERS["new"][:31], _MSSANTE_NEW_AS_2021, strict=True))
    keys = tuple(renamed.get(label, label) for label in header) if layout == "new" else header
    col = {key: index for index, key in enumerate(keys)}.__getitem__
    width = len(keys)
    yield "|".join(header) + "|\n"

    def pick(seq: Sequence[_T]) -> _T:
        return seq[int(rand() * len(seq))]

    professions = [p for p in _PROFESSIONS for _ in range(p[2])]  # weighted draw by index
    slug = {name: _ascii_slug(name) for name in (*_LAST_NAMES, *_SERVICES)}
    slug.update({name: _ascii_slug(name) for name, _ in _FIRST_NAMES})
    (i_sid, i_sid_type, i_org, i_postal, i_l6, i_dept, i_country, i_demat, i_type, i_address,
     i_pp_type, i_pp, i_nat, i_civ, i_last, i_first, i_cat, i_cat_l, i_prof, i_prof_l, i_sf,
     i_sf_l, i_service) = map(col, (
        "Identification Structure", "Type identifiant structure",
        "Raison Sociale structure BAL", "Code postal structure BAL",
        "L6LIGNEACHEMINEMENT structure BAL", "Département structure BAL", "Pays structure BAL",
        "Dématérialisation", "Type de BAL", "Adresse BAL", "Type Identifiant PP",
        "Identifiant PP", "Identification nationale PP", "Civilité d'exercice",
        "Nom d'exercice", "Prénom d'exercice", "Catégorie profession",
        "Libellé de catégorie profession", "Code Profession", "Libellé Profession",
        "Code savoir-faire", "Libellé savoir-faire", "Service de rattachement",
    ))  # fmt: skip
    i_updated = col("Date de mise à jour BAL") if layout == "new" else None
    for index in range(lines):
        row = [""] * width
        _commune, postal, city, dept, _ = pick(_CITIES)
        organisation, org_domain = pick(_ORGANISATIONS)
        finess = f"{dept[:2]}{int(rand() * 10**7):07d}"
        row[i_sid] = "1" + finess
        row[i_sid_type] = "1"
        row[i_org] = organisation
        row[i_postal] = postal
        row[i_l6] = f"{postal} {city.upper()}"
        row[i_dept] = dept
        row[i_country] = "France"
        row[i_demat] = "O" if rand() < 0.5 else "N"
        if rand() < 0.85:
            code, label, _, specialties = pick(professions)
            first_name, _sex = pick(_FIRST_NAMES)
            last_name = pick(_LAST_NAMES)
            rpps = rpps_with_key(f"10{index % 100_000_000:08d}")
            local = f"{slug[first_name]}.{slug[last_name]}"
            if rand() < 0.05:  # mixed case, as some operators publish them
                local = local.title()
            domain = org_domain if rand() < 0.3 else pick(_PERSONAL_DOMAINS)
            row[i_type] = "PER"
            row[i_address] = f"{local}{index % 97 or ''}@{domain}"
            row[i_pp_type] = "8"
            row[i_pp] = rpps
            row[i_nat] = "8" + rpps
            row[i_civ] = "DR" if code in ("10", "40") else ""
            row[i_last] = last_name
            row[i_first] = first_name
            row[i_cat] = "C"
            row[i_cat_l] = "Civil"
            row[i_prof] = code
            row[i_prof_l] = label
            if specialties:
                _, _, row[i_sf], row[i_sf_l] = pick(specialties)
        else:
            service = pick(_SERVICES)
            row[i_type] = "ORG"
            row[i_address] = f"{slug[service]}{index % 13 or ''}@{org_domain}"
            row[i_service] = service
        if i_updated is not None:
            row[i_updated] = "2025-03-13"
        yield "|".join(row) + "|\n"


# The synthetic "new" MSSanté labels, in the same order, spelled as in 2021.
_FIRST_IN_NEW: Final = ("Adresse BAL", "Type de BAL", "Identification nationale PP")
_MSSANTE_NEW_AS_2021: Final = _FIRST_IN_NEW + tuple(
    label for label in MSSANTE_HEADERS["2021"] if label not in _FIRST_IN_NEW
)


def _write(path: Path, chunks: Iterator[str], buffer_lines: int = 10_000) -> int:
    """Write lines in blocks; return the number of data lines (header excluded)."""
    count = -1
    block: list[str] = []
    with path.open("w", encoding="utf-8", newline="") as out:
        for line in chunks:
            block.append(line)
            count += 1
            if len(block) >= buffer_lines:
                out.write("".join(block))
                block.clear()
        out.write("".join(block))
    return max(count, 0)


def write_personne_activite(
    path: Path, lines: int, *, layout: Layout = "2021", seed: int = 0
) -> int:
    """Write a ``PS_LibreAcces_Personne_activite`` file with ``lines`` data lines."""
    return _write(path, iter_personne_lines(lines, layout=layout, seed=seed))


def write_mssante(path: Path, lines: int, *, layout: Layout = "2021", seed: int = 0) -> int:
    """Write an ``Extraction_Correspondance_MSSante`` file with ``lines`` data lines."""
    return _write(path, iter_mssante_lines(lines, layout=layout, seed=seed))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="file to write")
    parser.add_argument("--lines", type=int, required=True, help="number of data lines")
    parser.add_argument("--kind", choices=("personne", "mssante"), default="personne")
    parser.add_argument("--layout", choices=("2021", "new"), default="2021")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.lines < 0:
        parser.error("--lines must be >= 0")
    started = time.perf_counter()
    writer = write_personne_activite if args.kind == "personne" else write_mssante
    written = writer(args.out, args.lines, layout=args.layout, seed=args.seed)
    elapsed = time.perf_counter() - started
    print(
        f"{args.out}: {written} {args.kind} lines ({args.layout} layout) in {elapsed:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Installing the liste blanche: real file, quirks, atomic refusals, change reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from certs.dn import normalize_dn
from directory import listeblanche
from directory.errors import DirectoryError
from storage.db import Database

REAL = Path(__file__).resolve().parents[1] / "data" / "listeblanchemssante.xml"
CNAM_1 = "CN=smtps1.ens.atos-infogerance.fr,OU=318003502400041,O=CNAM,ST=Paris (75),C=FR"
CNAM_2 = "CN=smtps2.ens.atos-infogerance.fr,OU=318003502400041,O=CNAM,ST=Paris (75),C=FR"


def _mini(domains: list[tuple[str, str | None]]) -> str:
    entries = "".join(
        f"<Domaine><Nom>{d}</Nom><Description>x</Description>"
        + (f"<DNCertificatOperateur>{dn}</DNCertificatOperateur>" if dn else "")
        + "<DateMAJ>2025-03-13T14:54:10Z</DateMAJ></Domaine>"
        for d, dn in domains
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema">'
        "<DateDeGeneration>2025-03-13T14:54:10Z</DateDeGeneration>"
        f"<ListeDomaines>{entries}</ListeDomaines>"  # no closing root tag, like the real ones
    )


@pytest.fixture(scope="module")
def real_file() -> Path:
    assert REAL.exists(), f"the published liste blanche is expected at {REAL}"
    return REAL


async def test_real_file_imports_with_its_quirks(db: Database, real_file: Path) -> None:
    report = await listeblanche.import_listeblanche(db, real_file)
    assert report.entries == 6554
    assert report.domains == 5002
    assert len(report.added) == 5002 and report.removed == []
    async with db.session() as s:
        assert await listeblanche.counts(s) == (6554, 5002)
        # Mixed-case names in the file are found case-insensitively.
        assert await listeblanche.is_listed(s, "PATIENT.MSSANTE.FR")
        dns = await listeblanche.operator_dns(s, "patient.mssante.fr")
        assert dns == {normalize_dn(CNAM_1), normalize_dn(CNAM_2)}
        # A DN written with ", " separators matches its canonical spelling.
        apicrypt = await listeblanche.operator_dns(s, "interop-mssante.apicrypt.org")
        if apicrypt:
            assert (
                normalize_dn(
                    "CN=mailin.interop-mssante.apicrypt.org,OU=343975235300037,O=APICEM,"
                    "ST=Nord (59),C=FR"
                )
                in apicrypt
            )


async def test_a_cut_file_is_refused_and_the_previous_list_stays(
    db: Database, real_file: Path, tmp_path: Path
) -> None:
    await listeblanche.import_listeblanche(db, real_file)
    data = real_file.read_bytes()
    cut_at = data.index(b"</ListeDomaines>")
    for size in (len(data) // 2, cut_at - 1, 100):
        cut = tmp_path / f"cut-{size}.xml"
        cut.write_bytes(data[:size])
        with pytest.raises(DirectoryError, match="truncated"):
            await listeblanche.import_listeblanche(db, cut)
    async with db.session() as s:
        assert await listeblanche.counts(s) == (6554, 5002)


async def test_checksum_mismatch_is_refused(db: Database, real_file: Path) -> None:
    import hashlib

    good = hashlib.sha256(real_file.read_bytes()).hexdigest()
    report = await listeblanche.import_listeblanche(db, real_file, expected_sha256=good)
    assert report.domains == 5002
    with pytest.raises(DirectoryError, match=r"(?i)checksum|sha-?256"):
        await listeblanche.import_listeblanche(db, real_file, expected_sha256="0" * 64)


async def test_not_a_liste_blanche_is_refused(db: Database, tmp_path: Path) -> None:
    other = tmp_path / "feed.xml"
    other.write_text('<?xml version="1.0"?><rss><channel/></rss>')
    with pytest.raises(DirectoryError, match=r"(?i)not .*liste blanche"):
        await listeblanche.import_listeblanche(db, other)


async def test_reimport_reports_domains_added_removed_and_changed(
    db: Database, tmp_path: Path
) -> None:
    first = tmp_path / "v1.xml"
    first.write_text(
        _mini(
            [
                ("a.mssante.fr", "CN=smtp.a,O=A,C=FR"),
                ("B.mssante.fr", "CN=smtp.b,O=B,C=FR"),
                ("c.mssante.fr", None),
            ]
        )
    )
    r1 = await listeblanche.import_listeblanche(db, first)
    assert r1.added == ["a.mssante.fr", "b.mssante.fr", "c.mssante.fr"]
    second = tmp_path / "v2.xml"
    second.write_text(
        _mini(
            [
                ("a.mssante.fr", "CN=smtp.a, O=A, C=FR"),  # same DN, respelled
                ("b.mssante.fr", "CN=smtp2.b,O=B,C=FR"),
                ("d.mssante.fr", "CN=smtp.d,O=D,C=FR"),
            ]
        )
    )
    r2 = await listeblanche.import_listeblanche(db, second)
    assert r2.added == ["d.mssante.fr"]
    assert r2.removed == ["c.mssante.fr"]
    assert r2.dn_changed == ["b.mssante.fr"]
    async with db.session() as s:
        assert not await listeblanche.is_listed(s, "c.mssante.fr")


async def test_local_entries_survive_national_imports(db: Database, tmp_path: Path) -> None:
    async with db.session() as s, s.begin():
        await listeblanche.add_local_entry(s, "peer-demo.mssante.fr", "CN=mail.peer,O=P,C=FR")
    f = tmp_path / "v1.xml"
    f.write_text(_mini([("a.mssante.fr", "CN=smtp.a,O=A,C=FR")]))
    await listeblanche.import_listeblanche(db, f)
    async with db.session() as s:
        assert await listeblanche.operator_dns(s, "peer-demo.mssante.fr") == {
            normalize_dn("CN=mail.peer,O=P,C=FR")
        }
    async with db.session() as s, s.begin():
        with pytest.raises(DirectoryError, match="invalid certificate DN"):
            await listeblanche.add_local_entry(s, "x.mssante.fr", "not a dn")

"""directory.listeblanche_file: the liste blanche XML reader (docs/mssante.md §1)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from directory.listeblanche_file import (
    ListeBlancheError,
    ListeBlancheFile,
    is_valid_domain,
    parse_listeblanche,
)

REAL_FILE = Path(__file__).resolve().parents[2] / "data" / "listeblanchemssante.xml"


NS = "https://listeblanche.mssante.fr/schema"
CNAM_1 = "CN=smtps1.ens.atos-infogerance.fr,OU=318003502400041,O=CNAM,ST=Paris (75),C=FR"
CNAM_2 = "CN=smtps2.ens.atos-infogerance.fr,OU=318003502400041,O=CNAM,ST=Paris (75),C=FR"


def domaine(name: str | None, dn: str | None = "CN=smtp.op.fr,OU=1,O=Op,C=FR") -> str:
    parts = ["        <Domaine>"]
    if name is not None:
        parts.append(f"            <Nom>{name}</Nom>")
    parts.append("            <Description>Test &amp; co</Description>")
    if dn is not None:
        parts.append(f"            <DNCertificatOperateur>{dn}</DNCertificatOperateur>")
    parts.append("            <DateMAJ>2025-03-13T14:54:10Z</DateMAJ>")
    parts.append("        </Domaine>")
    return "\n".join(parts)


def document(*domaines: str, close_root: bool = False, namespace: str = NS) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ListeBlancheMSSante xmlns="{namespace}">\n'
        "    <DateDeGeneration>2025-03-13T14:54:10Z</DateDeGeneration>\n"
        "    <ListeDomaines>\n" + "\n".join(domaines) + "\n    </ListeDomaines>\n"
        + ("</ListeBlancheMSSante>\n" if close_root else "")
    )  # fmt: skip


SAMPLE = document(
    domaine("Example.MSSante.fr", "CN=smtp.op.fr, OU=123, O=Op, C=FR"),
    domaine("example.mssante.fr", "CN=smtp2.op.fr,OU=123,O=Op,C=FR"),
    domaine("  autre.mssante.fr  ", None),
)


def write(tmp_path: Path, text: str | bytes, name: str = "lb.xml") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def refused(path: Path, *, expected_sha256: str | None = None, max_invalid_names: int = 10) -> str:
    with pytest.raises(ListeBlancheError) as info:
        parse_listeblanche(
            path, expected_sha256=expected_sha256, max_invalid_names=max_invalid_names
        )
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# -- the real published file ------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> ListeBlancheFile:
    return parse_listeblanche(REAL_FILE)


def test_real_file_counts(real: ListeBlancheFile) -> None:
    # 6,554 <Domaine> in the file; one has an e-mail address as its <Nom>: kept as
    # published, and reported.
    assert len(real.entries) == 6554
    assert [(r.line, r.name) for r in real.invalid_names] == [
        (48458, "sessad@ase.ditepbeziers.mssante.fr")
    ]
    # 5,002 distinct names case-insensitively, of which 5,001 are valid domain names.
    assert len(real.domains) == 5002
    assert sum(is_valid_domain(d) for d in real.domains) == 5001
    assert len({e.dn for e in real.entries}) == 392
    assert real.generated_at == datetime(2025, 3, 13, 14, 54, 10, tzinfo=UTC)
    assert not real.root_closed  # the published file lacks </ListeBlancheMSSante>
    assert real.sha256 == hashlib.sha256(REAL_FILE.read_bytes()).hexdigest()


def test_real_file_patient_domain_has_the_two_cnam_dns(real: ListeBlancheFile) -> None:
    dns = sorted(e.dn or "" for e in real.entries if e.domain == "patient.mssante.fr")
    assert dns == [CNAM_1, CNAM_2]


def test_real_file_domains_are_lowercased(real: ListeBlancheFile) -> None:
    assert "uc-cmp.mssante.fr" in real.domains
    assert all(d == d.lower().strip() for d in real.domains)
    assert {d for d in real.domains if not is_valid_domain(d)} == {
        "sessad@ase.ditepbeziers.mssante.fr"
    }


def test_real_file_strict_mode_refuses_the_invalid_name() -> None:
    message = refused(REAL_FILE, max_invalid_names=0)
    assert "line 48458" in message and "sessad@ase.ditepbeziers.mssante.fr" in message


def test_real_file_checksum(tmp_path: Path) -> None:
    digest = hashlib.sha256(REAL_FILE.read_bytes()).hexdigest()
    assert parse_listeblanche(REAL_FILE, expected_sha256=digest.upper()).sha256 == digest
    assert parse_listeblanche(REAL_FILE, expected_sha256=f"{digest}  lb.xml\n").sha256 == digest
    message = refused(REAL_FILE, expected_sha256="0" * 64)
    assert f"checksum mismatch: expected {'0' * 64}, got {digest}" in message


@pytest.mark.parametrize("where", ["start", "quarter", "half", "before_end", "inside_end_tag"])
def test_real_file_truncated_copies_are_refused(tmp_path: Path, where: str) -> None:
    data = REAL_FILE.read_bytes()
    end_tag = data.rfind(b"</ListeDomaines>")
    cut = {
        "start": 300,
        "quarter": len(data) // 4,
        "half": len(data) // 2,
        "before_end": end_tag,
        "inside_end_tag": end_tag + 5,
    }[where]
    path = write(tmp_path, data[:cut])
    message = refused(path)
    last_line = data[:cut].count(b"\n") + 1
    assert f"file is truncated: it ends before </ListeDomaines> (line {last_line})" in message


def test_real_file_cut_right_after_liste_domaines_is_accepted(tmp_path: Path) -> None:
    data = REAL_FILE.read_bytes()
    end = data.rfind(b"</ListeDomaines>") + len(b"</ListeDomaines>")
    assert len(parse_listeblanche(write(tmp_path, data[:end])).entries) == 6554


def test_real_file_with_root_closed(tmp_path: Path) -> None:
    data = REAL_FILE.read_bytes() + b"\n</ListeBlancheMSSante>\n"
    parsed = parse_listeblanche(write(tmp_path, data))
    assert parsed.root_closed and len(parsed.entries) == 6554


# -- small files ------------------------------------------------------------------------------


def test_sample_entries(tmp_path: Path) -> None:
    parsed = parse_listeblanche(write(tmp_path, SAMPLE))
    assert parsed.domains == frozenset({"example.mssante.fr", "autre.mssante.fr"})
    assert [(e.domain, e.dn) for e in parsed.entries] == [
        ("example.mssante.fr", "CN=smtp.op.fr, OU=123, O=Op, C=FR"),  # raw DN text kept
        ("example.mssante.fr", "CN=smtp2.op.fr,OU=123,O=Op,C=FR"),
        ("autre.mssante.fr", None),  # entry without DNCertificatOperateur kept
    ]
    first = parsed.entries[0]
    assert first.description == "Test & co"
    assert first.updated_at == datetime(2025, 3, 13, 14, 54, 10, tzinfo=UTC)
    assert first.line == 4
    assert parsed.invalid_names == []
    assert not parsed.root_closed


def test_closed_root_is_accepted(tmp_path: Path) -> None:
    text = document(domaine("a.mssante.fr"), close_root=True)
    parsed = parse_listeblanche(write(tmp_path, text))
    assert parsed.root_closed and parsed.domains == {"a.mssante.fr"}


def test_empty_dn_element_means_no_dn(tmp_path: Path) -> None:
    text = document(domaine("a.mssante.fr", dn="   "))
    assert parse_listeblanche(write(tmp_path, text)).entries[0].dn is None


def test_checksum_mismatch_wins_over_a_parse_error(tmp_path: Path) -> None:
    path = write(tmp_path, b"garbage, not xml")
    assert "checksum mismatch" in refused(path, expected_sha256="a" * 64)
    assert "not an XML file" in refused(path)


def test_bad_expected_checksum_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE)
    with pytest.raises(ListeBlancheError, match="not a SHA-256 digest"):
        parse_listeblanche(path, expected_sha256="abc")


def test_other_xml_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '<?xml version="1.0"?><rss version="2.0"><channel/></rss>')
    message = refused(path)
    assert "not the liste blanche: the root element is <rss> without namespace" in message


def test_wrong_namespace_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, document(domaine("a.mssante.fr"), namespace="urn:other"))
    assert "<ListeBlancheMSSante> in namespace urn:other" in refused(path)


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    lol = (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        + "".join(
            f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
            for i in range(1, 10)
        )
        + "]>\n<ListeBlancheMSSante>&lol9;</ListeBlancheMSSante>\n"
    )
    assert "declares a DOCTYPE (line 2)" in refused(write(tmp_path, lol))


def test_external_entity_is_refused(tmp_path: Path) -> None:
    xxe = (
        '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        f'<ListeBlancheMSSante xmlns="{NS}">&x;</ListeBlancheMSSante>'
    )
    assert "DOCTYPE" in refused(write(tmp_path, xxe))


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00", b"Nom;DN\nexample.mssante.fr;CN=x\n", b"{}"],
)
def test_non_xml_is_refused(tmp_path: Path, content: bytes) -> None:
    assert "not an XML file" in refused(write(tmp_path, content))


def test_empty_file_is_refused(tmp_path: Path) -> None:
    assert "the file is empty" in refused(write(tmp_path, b""))


def test_malformed_xml_after_the_root_is_refused(tmp_path: Path) -> None:
    text = SAMPLE.replace("<Description>Test &amp; co</Description>", "<Description>a < b")
    assert "malformed XML" in refused(write(tmp_path, text))


def test_domaine_without_nom_is_refused(tmp_path: Path) -> None:
    text = document(domaine("a.mssante.fr"), domaine(None))
    assert "the <Domaine> at line 10 has no <Nom>" in refused(write(tmp_path, text))


def test_zero_domains_is_refused(tmp_path: Path) -> None:
    assert "lists no domain" in refused(write(tmp_path, document()))


@pytest.mark.parametrize(
    "bad", ["", "sans-point", "a..mssante.fr", "-a.mssante.fr", "a_b.mssante.fr", "é.fr", "x@a.fr"]
)
def test_invalid_names_are_reported_then_refused(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, document(domaine("ok.mssante.fr"), domaine(bad)))
    parsed = parse_listeblanche(path)
    # kept as published (an empty name has nothing to keep), never a valid domain
    assert parsed.domains == {"ok.mssante.fr", bad.lower()} - {""}
    assert [r.line for r in parsed.invalid_names] == [10]
    message = refused(path, max_invalid_names=0)
    assert "the <Domaine> at line 10 has an invalid name" in message


def test_too_many_invalid_names_refuse_the_file(tmp_path: Path) -> None:
    text = document(domaine("ok.mssante.fr"), *(domaine(f"bad{i}") for i in range(3)))
    assert "(3 invalid names, at most 2 tolerated)" in refused(
        write(tmp_path, text), max_invalid_names=2
    )


def test_all_names_invalid_is_refused(tmp_path: Path) -> None:
    assert "lists no domain" in refused(write(tmp_path, document(domaine("bad"))))


def test_bad_generation_date_is_refused(tmp_path: Path) -> None:
    text = SAMPLE.replace("<DateDeGeneration>2025-03-13T14:54:10Z", "<DateDeGeneration>hier")
    assert "<DateDeGeneration> 'hier' at line 2 is not an ISO 8601" in refused(
        write(tmp_path, text)
    )


def test_bad_entry_date_is_none(tmp_path: Path) -> None:
    text = document(domaine("a.mssante.fr").replace("2025-03-13T14:54:10Z", "13/03/2025"))
    assert parse_listeblanche(write(tmp_path, text)).entries[0].updated_at is None


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read the file" in refused(tmp_path / "absent.xml")


def test_is_valid_domain() -> None:
    assert is_valid_domain("patient.mssante.fr")
    assert is_valid_domain("xn--bcher-kva.example")
    assert is_valid_domain("1and1.fr")
    assert not is_valid_domain("a" * 64 + ".fr")
    assert not is_valid_domain("a.fr.")
    assert not is_valid_domain("Patient.mssante.fr")  # callers lower-case first


# -- every cut of a small file: refused before </ListeDomaines>, accepted after ---------------

SMALL = document(domaine("a.mssante.fr"), domaine("b.mssante.fr", None)).encode()
SMALL_END = SMALL.rfind(b"</ListeDomaines>") + len(b"</ListeDomaines>")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=len(SMALL)))
def test_any_cut(tmp_path: Path, cut: int) -> None:
    path = write(tmp_path, SMALL[:cut], name=f"cut{cut}.xml")
    if cut >= SMALL_END:
        assert parse_listeblanche(path).domains == {"a.mssante.fr", "b.mssante.fr"}
    else:
        message = refused(path)
        # A cut file is always called what it is (an empty one, "empty").
        assert ("the file is empty" if cut == 0 else "truncated") in message

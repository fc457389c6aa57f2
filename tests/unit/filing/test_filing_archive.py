"""filing.archive: the ZIP checks of docs/mssante.md §6, before and while decompressing."""

from __future__ import annotations

import io
import zipfile

import pytest

from filing.archive import open_archive
from filing.model import FilingSettings, Refused
from tests import xdm_fixtures as fx

SETTINGS = FilingSettings()


def _refusal(data: bytes, settings: FilingSettings = SETTINGS, *, verify: bool = True) -> Refused:
    with pytest.raises(Refused) as info:
        archive = open_archive(data, "IHE_XDM.ZIP", settings)
        if verify:
            archive.verify_contents()
    return info.value


def test_a_real_xdm_archive_opens_and_reads() -> None:
    archive = open_archive(fx.xdm_zip(), "IHE_XDM.ZIP", SETTINGS)
    archive.verify_contents()
    assert archive.names[:3] == ("INDEX.HTM", "README.TXT", "IHE_XDM/SUBSET01/METADATA.XML")
    assert archive.read("README.TXT") == fx.README_TXT
    assert archive.find("ihe_xdm/subset01/doc0001.xml") == "IHE_XDM/SUBSET01/DOC0001.XML"
    assert archive.find("IHE_XDM/SUBSET01/NOPE.XML") is None


def test_too_many_entries_are_refused_before_reading_the_directory() -> None:
    refused = _refusal(fx.too_many_entries_zip(101), verify=False)
    assert refused.code == "archive-too-many-entries"
    assert "101 entries" in refused.reason and "100 allowed" in refused.reason
    open_archive(fx.too_many_entries_zip(100), "IHE_XDM.ZIP", SETTINGS)  # the bound itself


def test_an_end_record_that_lies_about_the_count_does_not_help() -> None:
    data = bytearray(fx.too_many_entries_zip(150))
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = b"\x02\x00\x02\x00"  # declare 2 entries
    assert _refusal(bytes(data), verify=False).code == "archive-too-many-entries"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../../etc/passwd", "path outside the archive ('..' component)"),
        ("IHE_XDM/SUBSET01/../../../x", "'..' component"),
        ("/etc/passwd", "absolute path"),
        ("C:/Windows/system.ini", "drive letter"),
        ("c:evil", "drive letter"),
        ("IHE_XDM\\..\\..\\x", "backslash"),
        ("\\\\server\\share", "backslash"),
        ("IHE_XDM/\x01name", "control characters"),
    ],
)
def test_unsafe_entry_names_are_refused(name: str, problem: str) -> None:
    refused = _refusal(fx.zip_with_names([name]), verify=False)
    assert refused.code == "archive-path"
    assert f"entry {name!r}" in refused.reason and problem in refused.reason
    assert refused.reason.startswith("IHE_XDM.ZIP: ")


def test_duplicate_names_are_refused_case_insensitively() -> None:
    refused = _refusal(fx.zip_with_names(["IHE_XDM/SUBSET01/doc0001.xml"]), verify=False)
    assert refused.code == "archive-duplicate"
    assert "more than once" in refused.reason


def test_encrypted_entries_are_refused() -> None:
    refused = _refusal(fx.encrypted_zip(), verify=False)
    assert refused.code == "archive-encrypted"
    assert "DOC0001.XML' is encrypted" in refused.reason


def test_other_compression_methods_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", b"<x/>")
    refused = _refusal(buffer.getvalue(), verify=False)
    assert refused.code == "archive-unsupported"
    assert "compression method 12" in refused.reason


def test_a_bomb_is_refused_by_its_declared_ratio_before_inflating() -> None:
    refused = _refusal(fx.deflate_bomb_zip(), verify=False)
    assert refused.code == "archive-bomb"
    assert "declares 1073741824 bytes" in refused.reason and "ratio above 100" in refused.reason


def test_a_lying_bomb_is_stopped_at_the_first_byte_beyond_its_declared_size() -> None:
    data = fx.deflate_bomb_zip(declared=2000)
    archive = open_archive(data, "IHE_XDM.ZIP", SETTINGS)  # every declared bound passes
    with pytest.raises(Refused) as info:
        archive.verify_contents()
    assert info.value.code == "archive-bomb"
    assert "expands beyond the 2000 bytes it declares" in info.value.reason


def test_a_bomb_within_the_ratio_is_still_stopped_by_its_declared_size() -> None:
    # 64 MiB declared for ~1 MB compressed: ratio ~63, under the bound; it inflates to 1 GiB
    refused = _refusal(fx.deflate_bomb_zip(declared=64 << 20))
    assert refused.code == "archive-bomb"
    assert f"expands beyond the {64 << 20} bytes" in refused.reason


def test_total_declared_size_is_bounded() -> None:
    settings = FilingSettings(max_total_size=5000)
    refused = _refusal(
        fx.xdm_zip(extra={"IHE_XDM/SUBSET01/BIG.PDF": fx.pdf_bytes(size=6000)}),
        settings,
        verify=False,
    )
    assert refused.code == "archive-too-large"
    assert "more than the 5000 allowed" in refused.reason


def test_overall_ratio_is_bounded() -> None:
    settings = FilingSettings(max_ratio=3, ratio_floor=1000)
    big = b"abc" * 100_000  # compresses far better than 3:1
    refused = _refusal(fx.xdm_zip(extra={"IHE_XDM/SUBSET01/X.TXT": big}), settings, verify=False)
    assert refused.code == "archive-bomb"
    assert "ratio above 3" in refused.reason


def test_small_entries_are_not_judged_by_their_ratio() -> None:
    # 60 KB of blank HTML compresses ~1000:1 but sits under ratio_floor (64 KiB)
    data = fx.xdm_zip(extra={"INDEX2.HTM": b" " * 60_000})
    open_archive(data, "IHE_XDM.ZIP", SETTINGS).verify_contents()


def test_overlapping_entries_are_refused() -> None:
    entry = fx.deflated_entry("A.TXT", b"hello" * 10)
    data = bytearray(fx.raw_zip([entry, fx.deflated_entry("B.TXT", b"world")]))
    # point B's central directory header at A's local header: both share one payload
    second = data.rfind(b"PK\x01\x02")
    data[second + 42 : second + 46] = (0).to_bytes(4, "little")
    refused = _refusal(bytes(data), verify=False)
    assert refused.code == "archive-bomb"
    assert "overlaps" in refused.reason


def test_nesting_one_level_is_allowed_two_are_refused() -> None:
    open_archive(fx.nested_zip(1), "IHE_XDM.ZIP", SETTINGS).verify_contents()
    refused = _refusal(fx.nested_zip(2))
    assert refused.code == "archive-nested"
    assert "'IHE_XDM/SUBSET01/ANNEXES.ZIP': entry 'LEVEL2.ZIP'" in refused.reason
    assert _refusal(fx.nested_zip(1), FilingSettings(max_nesting=0)).code == "archive-nested"


def test_a_nested_archive_is_checked_like_the_outer_one() -> None:
    inner = fx.zip_with_names(["../escape"])
    refused = _refusal(fx.xdm_zip(extra={"IHE_XDM/SUBSET01/ANNEX.ZIP": inner}))
    assert refused.code == "archive-path"
    assert "ANNEX.ZIP': entry '../escape'" in refused.reason


def test_crc_errors_and_truncation_are_corrupt() -> None:
    content = b"<x>" + b"y" * 100 + b"</x>"
    bad_crc = fx.raw_zip([fx.deflated_entry("A.XML", content, crc=1234)])
    refused = _refusal(bad_crc)
    assert refused.code == "archive-corrupt" and "CRC-32" in refused.reason
    short = fx.raw_zip([fx.deflated_entry("A.XML", content, file_size=len(content) + 10)])
    refused = _refusal(short)
    assert refused.code == "archive-corrupt"
    assert f"holds {len(content)} bytes, not the {len(content) + 10}" in refused.reason
    garbage = fx.raw_zip([fx.RawEntry("A.XML", b"\xff" * 50, 0, 10)])
    assert _refusal(garbage).code == "archive-corrupt"


def test_not_a_zip_at_all() -> None:
    refused = _refusal(b"PK\x03\x04 and then nothing", verify=False)
    assert refused.code == "archive-corrupt"
    assert refused.reason.startswith("IHE_XDM.ZIP is not a readable ZIP archive")

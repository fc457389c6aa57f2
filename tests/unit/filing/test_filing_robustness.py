"""plan_filing on hostile input: bounded memory on zip bombs, and fuzzing that never raises."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filing.plan import FilingPlan, plan_filing
from tests import xdm_fixtures as fx

MEMORY_BOUND = 100 * 1024 * 1024  # what the end-to-end test allows the whole worker


@pytest.mark.parametrize(
    "declared",
    [None, 2000, 64 << 20],
    ids=["honest-1GiB", "lying-2000-bytes", "lying-64MiB-under-the-ratio"],
)
def test_a_zip_bomb_is_refused_in_bounded_memory(declared: int | None) -> None:
    message = fx.xdm_message(fx.deflate_bomb_zip(declared=declared))  # 1 GiB of zeros inside
    tracemalloc.start()
    try:
        plan = plan_filing(message, fx.PATIENT_INS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r.code for r in plan.refusals] == ["archive-bomb"]
    assert plan.documents == ()
    assert peak < MEMORY_BOUND, f"peak {peak / 1e6:.1f} MB"


def _check(plan: FilingPlan) -> None:
    assert isinstance(plan, FilingPlan)
    # "unreadable" is the last-resort guard: reaching it means an unexpected exception
    assert all(refusal.code != "unreadable" for refusal in plan.refusals), plan.refusals


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_ARCHIVE = fx.xdm_zip(fx.discharge_docs())
_METADATA = fx.metadata_xml(fx.lab_docs())
_CDA = fx.cda_lab_report()


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_as_a_message(data: bytes) -> None:
    _check(plan_filing(data, fx.PATIENT_INS))


@FUZZ
@given(
    st.binary(max_size=2048),
    st.sampled_from(
        ["application/pdf", "application/zip", "text/xml", "application/octet-stream", "x/y"]
    ),
)
def test_random_bytes_as_an_attachment(content: bytes, declared: str) -> None:
    _check(plan_filing(fx.mime_message([fx.Part(content, "f", declared)]), fx.PATIENT_INS))


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    mutated = bytearray(data)
    for position, value in edits:
        mutated[position % len(mutated)] = value
    return bytes(mutated[:cut] if cut is not None else mutated)


_EDITS = st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=12)


@FUZZ
@given(_EDITS, st.none() | st.integers(min_value=0, max_value=len(_ARCHIVE)))
def test_mutated_archives(edits: list[tuple[int, int]], cut: int | None) -> None:
    archive = _mutate(_ARCHIVE, edits, cut)
    _check(plan_filing(fx.xdm_message(archive), fx.PATIENT_INS))


@FUZZ
@given(_EDITS, _EDITS)
def test_mutated_metadata_and_cda_in_a_valid_archive(
    metadata_edits: list[tuple[int, int]], cda_edits: list[tuple[int, int]]
) -> None:
    archive = fx.xdm_zip(
        metadata=_mutate(_METADATA, metadata_edits, None),
        extra={"IHE_XDM/SUBSET01/DOC0001.XML": _mutate(_CDA, cda_edits, None)},
    )
    _check(plan_filing(fx.xdm_message(archive), fx.PATIENT_INS))


@FUZZ
@given(_EDITS, st.none() | st.integers(min_value=0))
def test_mutated_messages(edits: list[tuple[int, int]], cut: int | None) -> None:
    message = fx.xdm_message(_ARCHIVE)
    _check(plan_filing(_mutate(message, edits, cut), fx.PATIENT_INS))

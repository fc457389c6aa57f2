"""routing.identifiers: INS matricule (docs/mssante.md §4), RPPS/ADELI (§3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.identifiers import (
    Ins,
    InvalidIdentifier,
    NationalId,
    check_ins,
    check_national_id,
    ins_key,
    is_valid_ins,
    is_valid_national_id,
    luhn_check_digit,
    luhn_is_valid,
    national_id_for_rpps,
    rpps_with_key,
)

# -- INS examples -----------------------------------------------------------------------------


def test_documented_example_is_valid() -> None:
    # docs/mssante.md §4: 146026322000196@patient.mssante.fr
    assert check_ins("146026322000196") == Ins(
        matricule="146026322000196", number="1460263220001", key="96"
    )
    assert is_valid_ins("146026322000196")
    assert ins_key("1460263220001") == "96"


def test_wrong_key_message_is_exact() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        check_ins("146026322000197")
    assert str(info.value) == "INS 146026322000197 has a wrong key: expected 96, got 97"
    assert not is_valid_ins("146026322000197")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("14602632200019", "must be 15 characters, got 14"),
        ("1460263220001966", "must be 15 characters, got 16"),
        ("", "must be 15 characters, got 0"),
        ("1460263X2000196", "illegal characters: 'X' at position 8"),
        ("14602632200019X", "illegal characters: 'X' at position 15"),
        ("14602632200 196", "illegal characters: ' ' at position 12"),
        ("1460263220001٩6", "illegal characters"),  # an Arabic-Indic digit is not a digit here
        ("546026322000196", "invalid first digit '5'"),
        ("046026322000196", "invalid first digit '0'"),
        ("146022C22000196", "illegal characters: 'C' at position 7"),
        ("1460A2322000196", "illegal characters: 'A' at position 5"),  # 2A outside 6-7
    ],
)
def test_invalid_ins_messages(value: str, fragment: str) -> None:
    with pytest.raises(InvalidIdentifier, match=fragment.replace("(", r"\(")):
        check_ins(value)
    assert not is_valid_ins(value)


def test_invalid_identifier_is_a_value_error() -> None:
    assert issubclass(InvalidIdentifier, ValueError)


def test_corsica_examples() -> None:
    # 2A counts as 19, 2B as 18 (docs/mssante.md §4)
    assert ins_key("185022A123456") == ins_key("1850219123456")
    assert ins_key("185022B123456") == ins_key("1850218123456")
    matricule = "185022A123456" + ins_key("185022A123456")
    assert check_ins(matricule).number == "185022A123456"
    # lower-case letters are accepted and normalised
    assert check_ins(matricule.lower()).matricule == matricule


def test_ins_key_rejects_bad_numbers() -> None:
    with pytest.raises(InvalidIdentifier, match="must be 13 characters, got 12"):
        ins_key("146026322000")
    with pytest.raises(InvalidIdentifier, match="invalid first digit"):
        ins_key("9460263220001")


# -- INS properties ---------------------------------------------------------------------------

_digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


@st.composite
def ins_numbers(draw: st.DrawFn) -> str:
    """A 13-character NIR/NIA: sex, year, month, department (maybe 2A/2B), 6 digits."""
    sex = draw(st.sampled_from("123478"))
    year_month = draw(st.text(alphabet="0123456789", min_size=4, max_size=4))
    dept = draw(st.one_of(st.text(alphabet="0123456789", min_size=2, max_size=2),
                          st.sampled_from(["2A", "2B"])))  # fmt: skip
    rest = draw(st.text(alphabet="0123456789", min_size=6, max_size=6))
    return sex + year_month + dept + rest


@given(ins_numbers())
def test_every_number_with_its_key_validates(number: str) -> None:
    key = ins_key(number)
    assert len(key) == 2 and key.isdigit() and 1 <= int(key) <= 97
    ins = check_ins(number + key)
    assert (ins.number, ins.key, ins.matricule) == (number, key, number + key)


@given(ins_numbers(), st.integers(min_value=0, max_value=14), st.sampled_from("0123456789"))
def test_any_single_digit_change_is_detected(number: str, position: int, digit: str) -> None:
    matricule = number + ins_key(number)
    if not matricule[position].isdigit() or matricule[position] == digit:
        return  # not a change of a digit
    changed = matricule[:position] + digit + matricule[position + 1 :]
    assert not is_valid_ins(changed)


@given(ins_numbers())
def test_corsica_equivalence(number: str) -> None:
    dept = number[5:7]
    numeric = {"2A": "19", "2B": "18"}.get(dept, dept)
    same_number = number[:5] + numeric + number[7:]
    assert ins_key(number) == ins_key(same_number)
    assert int(ins_key(same_number)) == 97 - int(same_number) % 97


@given(st.text(max_size=20))
def test_check_ins_never_crashes(value: str) -> None:
    try:
        check_ins(value)
    except InvalidIdentifier as exc:
        assert "\n" not in str(exc)


# -- National professional identifiers --------------------------------------------------------


def test_real_rpps_examples() -> None:
    for rpps in ("10001045367", "10100779536", "10104335319"):
        assert luhn_is_valid(rpps)
        assert check_national_id("8" + rpps) == NationalId(
            value="8" + rpps, kind="RPPS", number=rpps
        )
        assert national_id_for_rpps(rpps) == "8" + rpps
        assert rpps_with_key(rpps[:10]) == rpps


def test_adeli() -> None:
    assert check_national_id("0012600631") == NationalId(
        value="0012600631", kind="ADELI", number="012600631"
    )
    assert check_national_id("02A1234567").kind == "ADELI"  # our choice: Corsican department


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "is empty"),
        ("910001045367", "wrong prefix '9'"),
        ("R10001045367", "wrong prefix 'R'"),
        ("81000104536", "must be 12 characters"),
        ("8100010453671", "must be 12 characters"),
        ("810001045368", "wrong RPPS check digit: expected 7, got 8"),
        ("81000104536X", "non-digits"),
        ("001260063", "must be 10 characters"),
        ("00126006311", "must be 10 characters"),
        ("001260063X", "non-digits"),
    ],
)
def test_invalid_national_ids(value: str, fragment: str) -> None:
    with pytest.raises(InvalidIdentifier, match=fragment):
        check_national_id(value)
    assert not is_valid_national_id(value)


def test_luhn_reference_value() -> None:
    # The classic ISO/IEC 7812-1 example: 7992739871 -> check digit 3.
    assert luhn_check_digit("7992739871") == "3"
    assert luhn_is_valid("79927398713")
    assert not luhn_is_valid("79927398710")
    assert not luhn_is_valid("7")
    assert not luhn_is_valid("79a")


def test_helpers_reject_bad_input() -> None:
    with pytest.raises(InvalidIdentifier, match="must be 10 digits, got 9"):
        rpps_with_key("100010453")
    with pytest.raises(InvalidIdentifier, match="only digits"):
        rpps_with_key("100010453X")
    with pytest.raises(InvalidIdentifier, match="wrong RPPS check digit"):
        national_id_for_rpps("10001045368")
    with pytest.raises(InvalidIdentifier):
        luhn_check_digit("")


@given(st.text(alphabet="0123456789", min_size=10, max_size=10))
def test_rpps_luhn_round_trip(stem: str) -> None:
    rpps = rpps_with_key(stem)
    assert rpps[:10] == stem and luhn_is_valid(rpps)
    national = national_id_for_rpps(rpps)
    assert check_national_id(national) == NationalId(value=national, kind="RPPS", number=rpps)


@given(
    st.text(alphabet="0123456789", min_size=10, max_size=10),
    st.integers(min_value=0, max_value=10),
    st.sampled_from("0123456789"),
)
def test_rpps_single_digit_change_is_detected(stem: str, position: int, digit: str) -> None:
    rpps = rpps_with_key(stem)
    if rpps[position] == digit:
        return
    changed = rpps[:position] + digit + rpps[position + 1 :]
    assert not luhn_is_valid(changed)
    assert not is_valid_national_id("8" + changed)


@given(st.text(max_size=14))
def test_check_national_id_never_crashes(value: str) -> None:
    try:
        check_national_id(value)
    except InvalidIdentifier as exc:
        assert "\n" not in str(exc)

"""Is a document about the recipient? The INS checks behind refusals 903, 904 and 905.

docs/mssante.md §4-§6: the receiver identifies the patient from ``patientId``
(``<INS>^^^&1.2.250.1.213.1.4.8&ISO^NH``) and checks it is the recipient's INS. The codes
are the MSSanté integration error codes (§5): 903 INS absent, 904 INS mismatch (another
patient), 905 incomplete INS (wrong length or key).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from filing.cda import PatientIdentifier
from filing.hl7 import parse_cx
from filing.model import FilingSettings, Refused
from routing.identifiers import InvalidIdentifier, check_ins

__all__ = [
    "INS_ABSENT",
    "INS_INCOMPLETE",
    "INS_MISMATCH",
    "INS_OIDS",
    "PRODUCTION_INS_OIDS",
    "TEST_INS_OIDS",
    "check_cda_patient",
    "check_identity",
    "check_patient_id",
    "same_ins",
]

INS_ABSENT: Final = "903"
INS_MISMATCH: Final = "904"
INS_INCOMPLETE: Final = "905"

# docs/mssante.md §4: the INS assigning authorities.
PRODUCTION_INS_OIDS: Final = frozenset({"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9"})  # NIR, NIA
TEST_INS_OIDS: Final = frozenset({"1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"})  # test, demo
INS_OIDS: Final = PRODUCTION_INS_OIDS | TEST_INS_OIDS


def _normalised(ins: str) -> str:
    """The matricule as :func:`check_ins` returns it (2a/2b upper-cased), else as given."""
    try:
        return check_ins(ins.strip()).matricule
    except InvalidIdentifier:
        return ins.strip().upper()


def same_ins(first: str, second: str) -> bool:
    return _normalised(first) == _normalised(second)


def check_identity(
    ins: str, oid: str, recipient_ins: str, settings: FilingSettings, where: str
) -> str:
    """Check one INS (value and assigning authority OID) against the recipient.

    Returns the INS matricule; raises :class:`Refused` with 903 (no INS, or an authority that
    is not an INS one, or a test/demo INS on a production server), 905 (wrong length or key)
    or 904 (another patient). ``where`` names the value in the reason ("patientId of
    DOC0001.XML in IHE_XDM.ZIP").
    """
    if not ins:
        raise Refused(INS_ABSENT, f"{where} carries no INS")
    if oid in TEST_INS_OIDS and not settings.allow_test_ins:
        raise Refused(
            INS_ABSENT,
            f"{where} is a test or demo INS (authority {oid}), not accepted on this server",
        )
    if oid not in INS_OIDS:
        shown = f"authority {oid}" if oid else "no assigning authority"
        raise Refused(
            INS_ABSENT,
            f"{where} is not an INS ({shown}; an INS is issued under "
            f"{' or '.join(sorted(PRODUCTION_INS_OIDS))})",
        )
    try:
        matricule = check_ins(ins).matricule
    except InvalidIdentifier as error:
        raise Refused(INS_INCOMPLETE, f"{where} is an incomplete INS: {error}") from None
    if matricule != _normalised(recipient_ins):
        raise Refused(
            INS_MISMATCH,
            f"{where} is the INS {matricule}, not the recipient's INS {recipient_ins}",
        )
    return matricule


def check_patient_id(value: str, recipient_ins: str, settings: FilingSettings, where: str) -> str:
    """:func:`check_identity` on an XDS patientId (HL7 v2 CX, ITI TF-3 §4.2.3.2)."""
    cx = parse_cx(value)
    return check_identity(cx.id, cx.authority_oid, recipient_ins, settings, where)


def check_cda_patient(
    patient_ids: Iterable[PatientIdentifier],
    recipient_ins: str,
    settings: FilingSettings,
    where: str,
) -> str:
    """Check the INS among a CDA's ``recordTarget/patientRole/id`` (docs/mssante.md §6).

    Only identifiers issued under an INS authority are looked at (the others are local
    patient numbers); each must be the recipient's INS. Returns the INS, ``""`` when the
    CDA carries none.
    """
    found = ""
    for identifier in patient_ids:
        if identifier.root in INS_OIDS:
            found = check_identity(
                identifier.extension, identifier.root, recipient_ins, settings, where
            )
    return found

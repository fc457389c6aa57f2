"""The patient registry: Mon espace santé boxes `<INS>@<patient domain>` and their states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from directory.addresses import normalize_address
from directory.errors import DirectoryError
from directory.passwords import hash_password, new_password
from routing.identifiers import InvalidIdentifier, check_ins
from storage.mailstore import create_default_folders
from storage.models import Account, AppPassword, Patient, utcnow

# mssante.md §4: a box exists unless the person opposed it; it can be closed later.
STATES = ("active", "opposed", "closed")


@dataclass(frozen=True)
class PatientSummary:
    ins: str
    address: str
    state: str
    personal_email: str | None
    contacts: int


def _ins(value: str) -> str:
    try:
        return check_ins(value.strip()).matricule
    except InvalidIdentifier as exc:
        raise DirectoryError(str(exc)) from None


async def get_patient(session: AsyncSession, ins: str) -> Patient | None:
    return await session.scalar(select(Patient).where(Patient.ins == _ins(ins)))


async def add_patient(
    session: AsyncSession,
    ins: str,
    *,
    domain: str,
    personal_email: str | None = None,
    password: str | None = None,
    display_name: str = "",
    state: str = "active",
) -> Patient:
    matricule = _ins(ins)
    if state not in STATES:
        raise DirectoryError(f"unknown patient state {state!r}")
    existing = await get_patient(session, matricule)
    if existing is not None:
        raise DirectoryError(f"patient {matricule} already exists ({existing.state})")
    email = normalize_address(personal_email) if personal_email else None
    account = Account(
        address=f"{matricule.lower()}@{domain.lower()}",  # addresses are stored lowercase
        kind="PAT",
        display_name=display_name,
        state="active",
        password_hash=hash_password(password) if password else None,
    )
    session.add(account)
    await session.flush()
    patient = Patient(account_id=account.id, ins=matricule, state=state, personal_email=email)
    session.add(patient)
    await create_default_folders(session, account.id)
    await session.flush()
    return patient


async def _transition(session: AsyncSession, ins: str, state: str, *, domain: str) -> Patient:
    patient = await get_patient(session, ins)
    if patient is None:
        if state == "opposed":
            # Opposition may come before the box is created: record it so none is created.
            return await add_patient(session, ins, domain=domain, state="opposed")
        raise DirectoryError(f"no patient with INS {_ins(ins)}")
    if patient.state == state:
        raise DirectoryError(f"patient {patient.ins} is already {state}")
    if patient.state == "closed":
        raise DirectoryError(f"patient {patient.ins} is closed: a closed box is not reopened")
    patient.state = state
    patient.state_changed_at = utcnow()
    return patient


async def oppose(session: AsyncSession, ins: str, *, domain: str) -> Patient:
    return await _transition(session, ins, "opposed", domain=domain)


async def close(session: AsyncSession, ins: str, *, domain: str) -> Patient:
    return await _transition(session, ins, "closed", domain=domain)


async def add_app_password(session: AsyncSession, ins: str, label: str = "") -> str:
    """A new password for one of the patient's mail clients; returned once, stored hashed."""
    patient = await get_patient(session, ins)
    if patient is None:
        raise DirectoryError(f"no patient with INS {_ins(ins)}")
    if patient.state != "active":
        raise DirectoryError(f"patient {patient.ins} is {patient.state}")
    password = new_password(18)
    session.add(
        AppPassword(
            account_id=patient.account_id, label=label, password_hash=hash_password(password)
        )
    )
    await session.flush()
    return password


async def list_patients(
    session: AsyncSession, state: str | None = None
) -> Sequence[PatientSummary]:
    from storage.models import PatientContact

    stmt = select(Patient, Account).join(Account, Account.id == Patient.account_id)
    if state:
        stmt = stmt.where(Patient.state == state)
    out = []
    for patient, account in (await session.execute(stmt.order_by(Patient.ins))).all():
        contacts = (
            await session.scalars(
                select(PatientContact.id).where(
                    PatientContact.patient_id == patient.account_id,
                    PatientContact.state == "open",
                )
            )
        ).all()
        out.append(
            PatientSummary(
                ins=patient.ins,
                address=account.address,
                state=patient.state,
                personal_email=patient.personal_email,
                contacts=len(contacts),
            )
        )
    return out

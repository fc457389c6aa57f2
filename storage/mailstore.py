"""The mail store: folders (IMAP mailboxes) and messages of each account.

Only the parts the foundation needs live here so far: creating an account's folders with
their special uses. Delivery, flags and MODSEQ arrive with the SMTP and IMAP doors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Folder

# RFC 6154 §2: special-use attributes for the folders every account gets.
DEFAULT_FOLDERS: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


async def _next_uidvalidity(session: AsyncSession) -> int:
    # RFC 3501 §2.3.1.1: UIDVALIDITY must change when a name is reused for a new mailbox.
    # Seconds since the epoch, kept strictly increasing across the whole store.
    current = await session.scalar(select(func.max(Folder.uidvalidity)))
    return max(int(time.time()), (current or 0) + 1)


async def create_folder(
    session: AsyncSession, account_id: int, name: str, special_use: str | None = None
) -> Folder:
    folder = Folder(
        account_id=account_id,
        name=name,
        special_use=special_use,
        uidvalidity=await _next_uidvalidity(session),
        uidnext=1,
        highestmodseq=1,
    )
    session.add(folder)
    await session.flush()
    return folder


async def create_default_folders(session: AsyncSession, account_id: int) -> list[Folder]:
    return [await create_folder(session, account_id, n, s) for n, s in DEFAULT_FOLDERS]


async def folders_of(session: AsyncSession, account_id: int) -> Sequence[Folder]:
    stmt = select(Folder).where(Folder.account_id == account_id).order_by(Folder.id)
    return (await session.scalars(stmt)).all()

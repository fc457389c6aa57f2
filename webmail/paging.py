"""Long lists shown a page at a time (inbox, sent, dossier, access log): the ``page`` query
parameter and the links to the pages before and after (templates/_pager.html)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from starlette.requests import Request

__all__ = ["PAGE_PARAM", "Pager", "requested_page", "requested_pager"]

PAGE_PARAM: Final = "page"
MAX_PAGE: Final = 100_000
_NUMBER: Final = re.compile(r"[1-9][0-9]{0,5}")  # ASCII digits only, no sign, no zero


def requested_page(request: Request) -> int | None:
    """The page number asked for (1 when absent); None when it is not a page number."""
    raw = request.query_params.get(PAGE_PARAM, "1")
    if not _NUMBER.fullmatch(raw) or int(raw) > MAX_PAGE:
        return None
    return int(raw)


@dataclass(frozen=True)
class Pager:
    """Page ``number`` of ``total`` rows, ``size`` per page; ``keep`` are the other query
    parameters the links carry (a filter)."""

    number: int
    size: int
    total: int = 0
    keep: tuple[tuple[str, str], ...] = ()

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def exists(self) -> bool:
        """Whether there is such a page (the first always exists, even empty)."""
        return self.number <= self.pages

    def counted(self, total: int) -> Pager:
        return Pager(self.number, self.size, total, self.keep)

    def href(self, number: int) -> str:
        """The link to another page of the same list."""
        return "?" + urlencode([*self.keep, (PAGE_PARAM, str(number))])


def requested_pager(
    request: Request, size: int, keep: tuple[tuple[str, str], ...] = ()
) -> Pager | None:
    """The page asked for, before counting; None when ``page`` is not a page number."""
    number = requested_page(request)
    return None if number is None else Pager(number, size, keep=keep)

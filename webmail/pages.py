"""Server-rendered pages: Jinja2 with autoescape on, French dates and sizes."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from starlette.responses import HTMLResponse

__all__ = ["Pages", "date_fr", "size_fr"]

TEMPLATES = Path(__file__).parent / "templates"
MONTHS = (
    "janv.",
    "févr.",
    "mars",
    "avr.",
    "mai",
    "juin",
    "juil.",
    "août",
    "sept.",
    "oct.",
    "nov.",
    "déc.",
)
try:
    PARIS: ZoneInfo | None = ZoneInfo("Europe/Paris")
except ZoneInfoNotFoundError:  # pragma: no cover - no tz database: show UTC
    PARIS = None


@lru_cache(maxsize=4096)  # the same messages' dates on every view of a page
def date_fr(value: datetime | None, *, time: bool = True) -> str:
    if value is None:
        return ""
    local = value.astimezone(PARIS) if PARIS is not None else value
    text = f"{local.day} {MONTHS[local.month - 1]} {local.year}"
    return f"{text} à {local:%H:%M}" if time else text


def size_fr(value: int) -> str:
    if value < 1024:
        return f"{value} o"
    if value < 1024 * 1024:
        return f"{value / 1024:.0f} Ko"
    return f"{value / (1024 * 1024):.1f} Mo".replace(".", ",")


class Pages:
    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,  # every value is escaped unless marked safe (sanitised HTML)
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["date_fr"] = date_fr
        self.env.filters["size_fr"] = size_fr

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**context), status_code=status)

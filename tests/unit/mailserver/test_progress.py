"""The import progress bar: drawn on a terminal, silent in pipes and cron jobs."""

from __future__ import annotations

import io

from mailserver.progress import ProgressBar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_and_cleared() -> None:
    out = _Terminal()
    bar = ProgressBar("PS_LibreAcces.txt", stream=out, interval=0)
    bar(250, 1000, 5000)
    bar(1000, 1000, 20000)
    text = out.getvalue()
    assert "PS_LibreAcces.txt [#######-----------------------]  25.0% 5,000 lines" in text
    assert " 100.0% 20,000 lines" in text
    bar.finish()
    assert out.getvalue().endswith("\r")


def test_progress_is_silent_when_not_a_terminal() -> None:
    out = io.StringIO()
    bar = ProgressBar("x", stream=out, interval=0)
    bar(1, 2, 3)
    bar.finish()
    assert out.getvalue() == ""

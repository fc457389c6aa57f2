"""Tools the README's test command installs (Postfix, mbsync, Chromium) are required by the
tests that use them: a missing one fails with the reason instead of skipping, so CI can
never pass by silently leaving those tests out."""

from __future__ import annotations

import pytest


def require(missing: str | None) -> None:
    """Fail the calling test when ``missing`` names an absent tool."""
    if missing:
        pytest.fail(f"{missing} (scripts/test installs it)", pytrace=False)

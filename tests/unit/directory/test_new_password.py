"""Generated passwords (demo accounts, patients' app passwords) can be typed on a command line."""

from __future__ import annotations

from directory.passwords import new_password


def test_a_generated_password_never_starts_with_a_dash() -> None:
    # One draw in 64 would start with "-" (URL-safe base64), which swaks and other command
    # line tools read as an option: 5,000 draws would see ~78 of them.
    passwords = [new_password(12) for _ in range(5000)]
    assert not [p for p in passwords if p.startswith("-")]
    assert len(set(passwords)) == 5000 and all(len(p) == 16 for p in passwords)

"""directory.throttle: failed-authentication limits per client address and per account, the
growing delay, the window, and the events shared with the server's other processes."""

from __future__ import annotations

import pytest

from directory.throttle import Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, **kw: float) -> Throttle:
    args: dict[str, float] = {"per_address": 4, "per_account": 3, "window": 900.0, **kw}
    return Throttle(
        per_address=int(args["per_address"]),
        per_account=int(args["per_account"]),
        window=args["window"],
        clock=clock,
    )


def test_account_limit_counts_every_address(clock: Clock) -> None:
    t = make(clock)
    for n in range(3):
        assert t.blocked(f"10.0.0.{n}", "Box@Demo.fr") is None
        t.failure(f"10.0.0.{n}", "Box@Demo.fr")
    reason = t.blocked("10.0.0.9", "box@demo.fr")  # any address, any case
    assert reason == "too many failed authentications for this account; try again in 15 min"
    assert t.blocked("10.0.0.9") is None  # the address is not blocked
    assert t.blocked("10.0.0.9", "other@demo.fr") is None


def test_address_limit_counts_every_account(clock: Clock) -> None:
    t = make(clock)
    for n in range(4):
        assert t.blocked("10.0.0.1") is None
        t.failure("10.0.0.1", f"user{n}@demo.fr")
    reason = "too many failed authentications from 10.0.0.1; try again in 15 min"
    assert t.blocked("10.0.0.1") == reason
    assert t.blocked("10.0.0.1", "someone@demo.fr") == reason  # whatever the account
    assert t.blocked("10.0.0.2") is None
    t.failure("10.0.0.7")  # no account named (a certificate that was refused)
    assert t.blocked("10.0.0.7") is None


def test_growing_delay_per_address(clock: Clock) -> None:
    t = make(clock, per_address=100, per_account=100)
    delays = [t.failure("10.0.0.1", f"u{n}") for n in range(7)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert t.failure("10.0.0.2", "u0") == 0.0  # another address starts again


def test_window_expiry(clock: Clock) -> None:
    t = make(clock, window=60.0)
    for _ in range(3):
        t.failure("10.0.0.1", "box@demo.fr")
        clock.now += 10
    assert t.blocked("10.0.0.2", "box@demo.fr") is not None
    assert t.blocked("10.0.0.2", "box@demo.fr") == (
        "too many failed authentications for this account; try again in 1 min"
    )
    clock.now += 60 - 30  # the first failure is 60 s old: out of the window
    assert t.blocked("10.0.0.2", "box@demo.fr") is None
    t.failure("10.0.0.1", "box@demo.fr")  # two in the window again, then three
    assert t.blocked("10.0.0.2", "box@demo.fr") is not None
    clock.now += 1000
    assert t.blocked("10.0.0.2", "box@demo.fr") is None
    assert t.failure("10.0.0.1", "box@demo.fr") == 0.0  # the delay starts over too


def test_success_forgets_the_account_not_the_address(clock: Clock) -> None:
    t = make(clock)
    t.failure("10.0.0.1", "box@demo.fr")
    t.failure("10.0.0.1", "box@demo.fr")
    t.success("BOX@demo.fr")
    t.failure("10.0.0.1", "box@demo.fr")
    t.failure("10.0.0.1", "box@demo.fr")
    assert t.blocked("10.0.0.2", "box@demo.fr") is None  # 2 since the success, not 4
    assert t.blocked("10.0.0.1") is not None  # the address's 4 still count


def test_shared_tells_the_other_processes(clock: Clock) -> None:
    t = make(clock)
    told: list[tuple[str | None, ...]] = []
    t.shared = lambda *args: told.append(args)
    t.failure("10.0.0.1", "box@demo.fr")
    t.failure("10.0.0.2")
    t.success("box@demo.fr")
    assert told == [
        ("failure", "10.0.0.1", "box@demo.fr"),
        ("failure", "10.0.0.2", None),
        ("success", "box@demo.fr"),
    ]


def test_apply_records_without_sharing_again(clock: Clock) -> None:
    """What another process shared counts here, and is not sent back (no echo loop)."""
    t = make(clock)
    told: list[tuple[str | None, ...]] = []
    t.shared = lambda *args: told.append(args)
    for _ in range(3):
        t.apply("failure", "10.0.0.1", "box@demo.fr")
    assert told == []
    assert t.blocked("10.0.0.3", "box@demo.fr") is not None
    t.apply("failure", "10.0.0.1", None)
    assert t.blocked("10.0.0.1") is not None  # 4 from that address
    t.apply("success", "box@demo.fr")
    assert t.blocked("10.0.0.3", "box@demo.fr") is None
    assert told == []
    # The next local failure's delay counts the applied ones (5 from that address).
    assert t.failure("10.0.0.1", "x") == 4.0


def test_apply_ignores_malformed_events(clock: Clock) -> None:
    t = make(clock, per_address=1, per_account=1)
    t.apply("failure", None, "box@demo.fr")
    t.apply("failure", "10.0.0.1")
    t.apply("success")
    t.apply("success", None)
    t.apply("reboot", "10.0.0.1", "box@demo.fr")
    assert t.blocked("10.0.0.1", "box@demo.fr") is None

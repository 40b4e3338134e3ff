"""Circuit breaker transitions and latency EWMA, with an injected clock."""

from __future__ import annotations

from nuri.config import RoutingSettings
from nuri.routing.health import HealthBook


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def book(**kw) -> tuple[HealthBook, Clock]:
    clock = Clock()
    settings = RoutingSettings(breaker_failures=3, breaker_reset_seconds=10, **kw)
    return HealthBook(settings, clock=clock), clock


def test_closed_until_consecutive_failures_then_open():
    h, _ = book()
    for _ in range(2):
        h.record_failure("a", "500")
        assert h.state("a") == "closed" and h.allow("a")
    h.record_success("a", 0.1)          # a success resets the count
    for _ in range(2):
        h.record_failure("a", "500")
    assert h.state("a") == "closed"
    h.record_failure("a", "timeout")
    assert h.state("a") == "open"
    assert not h.allow("a") and not h.available("a")
    assert "open" in h.describe("a") and "timeout" in h.describe("a")


def test_half_open_single_probe_then_close_on_success():
    h, clock = book()
    for _ in range(3):
        h.record_failure("a", "500")
    clock.now += 9.9
    assert not h.allow("a")
    clock.now += 0.2
    assert h.state("a") == "half_open" and h.available("a")
    assert h.allow("a")                 # the probe
    assert not h.allow("a")             # only one probe at a time
    assert not h.available("a")
    h.record_success("a", 0.2)
    assert h.state("a") == "closed" and h.allow("a")


def test_half_open_probe_failure_reopens_for_a_full_period():
    h, clock = book()
    for _ in range(3):
        h.record_failure("a", "500")
    clock.now += 10
    assert h.allow("a")
    h.record_failure("a", "500")
    assert h.state("a") == "open"
    clock.now += 5
    assert not h.allow("a")
    clock.now += 5
    assert h.allow("a")


def test_abandoned_probe_is_released_and_lost_probe_expires():
    h, clock = book()
    for _ in range(3):
        h.record_failure("a", "500")
    clock.now += 10
    assert h.allow("a")
    h.abandon("a")                      # cancelled: another request may probe
    assert h.allow("a")
    clock.now += 10                     # a probe that never reports back expires
    assert h.allow("a")


def test_release_closes_after_a_client_error_answer():
    h, clock = book()
    for _ in range(3):
        h.record_failure("a", "500")
    clock.now += 10
    assert h.allow("a")
    h.release("a")
    assert h.state("a") == "closed"


def test_latency_ewma_prefers_ttft():
    h, _ = book(ewma_alpha=0.5)
    assert h.latency("a") is None
    h.record_success("a", 1.0)
    h.record_success("a", 3.0)
    assert h.latency("a") == 2.0
    h.record_success("a", 5.0, ttft_s=0.4)
    assert h.latency("a") == 0.4
    assert h.snapshot()["a"]["latency_s"] == 3.5
    assert h.state("never-seen") == "closed" and h.allow("never-seen")

"""The lease book on its own: no Redis, no sleeping — a clock the test moves.

Each test plays the replies Redis would send (lease.lua's {ok, item, retry, spent, grants...}) and
checks what a replica then admits locally, what it hands back and when.
"""

from __future__ import annotations

from nuri.ledger.quota.counters import Ask, Scope, Settle
from nuri.ledger.quota.leasing import BUDGET_IDLE_SECONDS, FETCH_AHEAD_AFTER, LeaseBook

T0 = 1_800_000_000


class Clock:
    def __init__(self) -> None:
        self.wall = T0 + 0.1
        self.mono = 100.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def ask(clock: Clock, *, rpm: int | None = 1000, budget: int | None = None, cost: int = 0) -> Ask:
    return Ask([Scope("team:t", rpm, None)], 10, "t", "2026-11", budget, cost, int(clock.time()))


def never(_fid: object) -> bool:
    return False


def test_a_granted_lease_admits_locally_until_used_up() -> None:
    clock = Clock()
    book = LeaseBook("p:", 0.05, clock)            # cap: 50 of rpm 1000
    first = ask(clock)
    draws = book.draws(first)
    assert draws is not None and not book.admit_locally(draws)
    short = book.top_up(draws, first.now)
    assert short and short[0][1] >= 1              # asks Redis for this request plus a lease
    verdict, back = book.granted(first, draws, short, [1, 0, 0, -1, 10])
    assert verdict.ok and back == []
    admitted = 0
    while (d := book.draws(ask(clock))) is not None and book.admit_locally(d):
        admitted += 1
    assert admitted == 9                           # the grant of 10 less the first request's unit


def test_small_limits_are_not_leased() -> None:
    book = LeaseBook("p:", 0.05, Clock())
    assert book.draws(ask(Clock(), rpm=20)) is None   # 5 % of 20 is one request: exact per request


def test_unused_rate_lease_goes_back_once_its_second_ends() -> None:
    clock = Clock()
    book = LeaseBook("p:", 0.05, clock)
    a = ask(clock)
    draws = book.draws(a)
    assert draws is not None
    short = book.top_up(draws, a.now)
    book.granted(a, draws, short, [1, 0, 0, -1, 10])
    assert book.reap(never) == []                  # the second is still running
    clock.advance(1.0)
    assert book.reap(never) == [("p:rl:req:team:t", str(a.now), 9)]
    assert book.left(draws[0]) == 0


def test_idle_budget_lease_goes_back_and_the_header_counts_only_what_was_used() -> None:
    clock = Clock()
    book = LeaseBook("p:", 0.05, clock)            # budget cap: 5 % of 1_000_000
    a = ask(clock, rpm=None, budget=1_000_000, cost=1000)
    draws = book.draws(a)
    assert draws is not None
    short = book.top_up(draws, a.now)
    verdict, _ = book.granted(a, draws, short, [1, 0, 0, 3000, 3000])   # Redis: 3000 counted as spent
    assert verdict.ok and verdict.spent_nanos == 1000                  # ... of which 2000 held unused
    clock.advance(BUDGET_IDLE_SECONDS + 0.1)
    assert book.reap(never) == [("p:budget:t:2026-11", "", 2000)]
    assert book.spent_view(a) == 1000


def test_refusal_undoes_what_the_admission_took() -> None:
    clock = Clock()
    book = LeaseBook("p:", 0.05, clock)
    a = ask(clock)
    draws = book.draws(a)
    assert draws is not None
    short = book.top_up(draws, a.now)
    book.granted(a, draws, short, [1, 0, 0, -1, 1])    # exactly this request: nothing left over
    b = ask(clock)
    draws_b = book.draws(b)
    assert draws_b is not None and not book.admit_locally(draws_b)
    short_b = book.top_up(draws_b, b.now)
    verdict, back = book.granted(b, draws_b, short_b, [0, 1, 42, -1])
    assert not verdict.ok and verdict.limit == "rpm" and verdict.retry_after == 42 and back == []


def test_fetch_ahead_only_late_in_a_second() -> None:
    clock = Clock()
    book = LeaseBook("p:", 0.05, clock)
    a = ask(clock)
    draws = book.draws(a)
    assert draws is not None
    book.granted(a, draws, book.top_up(draws, a.now), [1, 0, 0, -1, 10])
    assert book.ahead(a, draws, never) == ([], [])
    clock.wall = a.now + FETCH_AHEAD_AFTER + 0.01
    rate, budget = book.ahead(a, draws, never)
    assert [key for key, _, _ in rate] == ["p:rl:req:team:t"] and budget == []
    assert book.ahead(a, draws, lambda fid: True) == ([], [])      # one fetch under way is enough


def test_settle_absorbs_corrections_in_a_held_token_lease() -> None:
    clock = Clock()
    book = LeaseBook("p:", 0.05, clock)
    a = Ask([Scope("team:t", None, 100_000)], 100, "t", "2026-11", None, 0, int(clock.time()))
    draws = book.draws(a)
    assert draws is not None
    book.granted(a, draws, book.top_up(draws, a.now), [1, 0, 0, -1, 1000])
    held = book.left(draws[0])
    # 40 tokens fewer than estimated go into the lease; nothing for Redis
    assert book.settle_locally(Settle(["team:t"], a.now, "t", "2026-11", -40, 0)) == []
    assert book.left(draws[0]) == held + 40
    # more than the lease holds: the rest goes to Redis
    rest = book.settle_locally(Settle(["team:t"], a.now, "t", "2026-11", held + 1000, 0))
    assert [r.token_delta for r in rest] == [960] and book.left(draws[0]) == 0


def test_everything_held_goes_back_at_close() -> None:
    clock = Clock()
    book = LeaseBook("p:", 0.05, clock)
    a = ask(clock, budget=1_000_000, cost=1000)
    draws = book.draws(a)
    assert draws is not None
    book.granted(a, draws, book.top_up(draws, a.now), [1, 0, 0, 5000, 10, 5000])
    back = sorted(book.release_all())
    assert back == [("p:budget:t:2026-11", "", 4000), ("p:rl:req:team:t", str(a.now), 9)]
    assert not book.holding

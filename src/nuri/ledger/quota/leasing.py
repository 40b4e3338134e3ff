"""Quota leases: the book of what one replica holds leased from Redis, with no I/O in it.

A replica leases quota: Redis counts a block of units in a rate window's bucket for one second
(or a block of nanos against a budget) within the same atomic limit check, and the replica then
admits against that block locally until it is used up. Redis therefore always counts at least what
was admitted, so limits stay exact across replicas; what a replica holds unused is the only
under-admission, at most `share` of a limit, and goes back when its second ends (a budget lease
after ~2 s, or when idle).

`LeaseBook` decides: which counters an admission draws on, whether the leases cover it, how big the
next lease is, what a Redis reply grants, what goes back and when. It never awaits and reads time
only from the injected `Clock`, so it is tested without Redis or sleeping; redis_counters.py does
the round trips and hands the book their replies. Methods that free units return them as
`Return`s, for the caller to send back to Redis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nuri.ledger.quota.counters import Ask, Settle, Verdict

HEADROOM = 1.5               # a lease covers this many times the recent demand
FETCH_AHEAD_AFTER = 0.75     # how far into a second the next second's leases are fetched ahead
BUDGET_LEASE_SECONDS = 2.0   # an unused budget lease goes back after this long, or ...
BUDGET_IDLE_SECONDS = 1.0    # ... after this long without an admission drawing on it

Fid = tuple[str, int | None]          # a counter's key and bucket second (None: a budget)
Return = tuple[str, str, int]         # key, field ('' for a budget counter), units to hand back
Want = tuple[str, int, int]           # key, units wanted, limit (a fetch ahead)


class Clock(Protocol):
    """Wall time (the counters' seconds) and monotonic time (lease ages)."""

    def time(self) -> float: ...
    def monotonic(self) -> float: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass(slots=True)
class Rate:
    """Units asked for on this replica in the current and the previous second: sizes the next lease."""

    second: int = 0
    current: int = 0
    previous: int = 0

    def add(self, second: int, units: int) -> None:
        self._roll(second)
        self.current += units

    def per_second(self, second: int) -> int:
        self._roll(second)
        return max(self.current, self.previous)

    def _roll(self, second: int) -> None:
        if second > self.second:
            self.previous = self.current if second == self.second + 1 else 0
            self.current, self.second = 0, second


@dataclass(slots=True)
class Slot:
    """This replica's leases on one rate window (the requests or the tokens of one scope)."""

    leases: dict[int, int] = field(default_factory=dict)   # second → units Redis counted, unused here
    rate: Rate = field(default_factory=Rate)
    cap: int = 0              # share × limit; below 2 the window is not leased


@dataclass(slots=True)
class Purse:
    """This replica's lease on one budget counter: nanos Redis counts as spent that no admission
    here has used yet."""

    left: int = 0
    spent: int = 0            # the Redis counter as last seen (or adjusted by this replica)
    granted_at: float = 0.0   # monotonic
    used_at: float = 0.0
    rate: Rate = field(default_factory=Rate)
    cap: int = 0


@dataclass(slots=True)
class Draw:
    """What one admission draws from one counter."""

    key: str
    second: int | None        # the bucket of a rate window; None: the budget
    use: int                  # units the admission consumes
    need: int                 # units that must be there (budget: at least 1, as spent must stay below it)
    limit: int
    label: str                # rpm | tpm | budget
    scope: str
    taken: int = 0            # consumed from the local lease before the round trip

    @property
    def fid(self) -> Fid:
        return self.key, self.second


Short = tuple[Draw, int]      # a draw the leases fall short on, and the units to ask Redis for


class LeaseBook:
    """The leases one replica holds, keyed by Redis key (see the module docstring)."""

    def __init__(self, prefix: str, share: float, clock: Clock | None = None) -> None:
        self.prefix = prefix
        self.share = max(float(share), 0.0)
        self.clock: Clock = clock or SystemClock()
        self.slots: dict[str, Slot] = {}
        self.purses: dict[str, Purse] = {}
        self.live_from = 0           # rate leases for earlier seconds have gone back to Redis

    # --- keys ------------------------------------------------------------------------------

    def requests_key(self, scope: str) -> str:
        return f"{self.prefix}rl:req:{scope}"

    def tokens_key(self, scope: str) -> str:
        return f"{self.prefix}rl:tok:{scope}"

    def budget_key(self, team: str, period: str) -> str:
        return f"{self.prefix}budget:{team}:{period}"

    @property
    def holding(self) -> bool:
        return bool(self.slots or self.purses)

    # --- admission -------------------------------------------------------------------------

    def draws(self, ask: Ask) -> list[Draw] | None:
        """The counters `ask` draws on, or None when none of its limits is large enough to lease.
        Counts the demand, which sizes the next leases."""
        if self.share <= 0:
            return None
        draws: list[Draw] = []
        for sc in ask.scopes:
            if sc.rpm is not None:
                draws.append(Draw(self.requests_key(sc.name), ask.now, 1, 1, sc.rpm, "rpm", sc.name))
            if sc.tpm is not None:
                draws.append(Draw(self.tokens_key(sc.name), ask.now, ask.tokens, ask.tokens, sc.tpm, "tpm", sc.name))
        if ask.budget_nanos is not None:
            draws.append(Draw(self.budget_key(ask.team, ask.period), None, ask.cost_nanos,
                              max(ask.cost_nanos, 1), ask.budget_nanos, "budget", f"team:{ask.team}"))
        caps = [int(self.share * d.limit) for d in draws]
        if not any(c >= 2 for c in caps):
            return None
        for d, cap in zip(draws, caps, strict=True):
            holder = self._purse(d.key) if d.second is None else self._slot(d.key)
            holder.cap = cap
            holder.rate.add(ask.now, d.use)
        return draws

    def left(self, d: Draw) -> int:
        if d.second is None:
            purse = self.purses.get(d.key)
            return purse.left if purse is not None else 0
        slot = self.slots.get(d.key)
        return slot.leases.get(d.second, 0) if slot is not None else 0

    def admit_locally(self, draws: Sequence[Draw]) -> bool:
        """Take every draw from the leases if they cover all of them; False (nothing taken) if not."""
        if not all(self.left(d) >= d.need for d in draws):
            return False
        for d in draws:
            self._take(d, d.use)
        return True

    def top_up(self, draws: Sequence[Draw], now: int) -> list[Short]:
        """Consume what the leases hold toward each draw; the draws still short, with the units to
        ask Redis for (their shortfall plus a fresh lease)."""
        short: list[Short] = []
        for d in draws:
            have = self.left(d)
            d.taken = d.use if have >= d.need else min(have, d.use)
            self._take(d, d.taken)
            if have < d.need:
                short.append((d, self._want(d, now, d.need - d.taken)))
        return short

    def granted(self, ask: Ask, draws: Sequence[Draw], short: Sequence[Short],
                reply: Sequence[Any]) -> tuple[Verdict, list[Return]]:
        """Book the reply of lease.lua for a `top_up`: the verdict, and what goes back to Redis."""
        rate = [(d, w) for d, w in short if d.second is not None]
        budget = [(d, w) for d, w in short if d.second is None]
        ok, idx, retry, spent = (int(x) for x in reply[:4])
        back: list[Return] = []
        if budget and spent >= 0:
            self._purse(budget[0][0].key).spent = spent
        if ok != 1:
            back += self.give_back(draws)
            d = (rate + budget)[idx - 1][0]
            if d.second is None:   # the spend that refused it, as with leasing off
                return Verdict(False, "budget", d.scope, 0, spent), back
            return Verdict(False, d.label, d.scope, max(retry, 1)), back
        grants = [int(g) for g in reply[4:]]
        for (d, _), units in zip(rate, grants, strict=False):
            back += self._credit(d.key, d.second, units - (d.use - d.taken), granted=True)
        if budget:
            d = budget[0][0]
            self._purse(d.key).granted_at = self.clock.monotonic()
            back += self._credit(d.key, None, grants[-1] - (d.use - d.taken), granted=True)
        return Verdict(True, spent_nanos=self.spent_view(ask)), back

    def give_back(self, draws: Sequence[Draw], *, used: bool = False) -> list[Return]:
        """Undo the draws' local takes (a failed or refused round trip), or with `used` their whole
        use (an admission whose caller went away)."""
        back: list[Return] = []
        for d in draws:
            back += self._credit(d.key, d.second, d.use if used else d.taken)
        return back

    def spent_view(self, ask: Ask) -> int | None:
        """Spend for the budget headers: Redis's counter as last seen, less the nanos this replica
        holds unused (other replicas' unused leases still count as spent)."""
        if ask.budget_nanos is None:
            return None
        purse = self.purses.get(self.budget_key(ask.team, ask.period))
        return None if purse is None else purse.spent - purse.left

    # --- fetching ahead --------------------------------------------------------------------

    def ahead(self, ask: Ask, draws: Sequence[Draw],
              in_flight: Callable[[Fid], bool]) -> tuple[list[Want], list[Want]]:
        """Late in a second, the next second's rate leases to fetch; budget leases running low, to
        refill before they run dry. So a steady stream of admissions almost never waits."""
        t = self.clock.time()
        late = int(t) == ask.now and t - ask.now >= FETCH_AHEAD_AFTER
        rate: list[Want] = []
        budget: list[Want] = []
        for d in draws:
            if d.second is not None:
                slot = self.slots.get(d.key)
                if not late or slot is None or ask.now + 1 in slot.leases or in_flight((d.key, ask.now + 1)):
                    continue
                want = min(slot.cap, math.ceil(HEADROOM * slot.rate.per_second(ask.now)))
                if want >= max(2, d.use):     # a lease smaller than one request serves none
                    rate.append((d.key, want, d.limit))
            else:
                purse = self.purses.get(d.key)
                if purse is None or in_flight(d.fid):
                    continue
                want = min(purse.cap, math.ceil(HEADROOM * purse.rate.per_second(ask.now)))
                if want >= max(2, d.use) and purse.left < want // 2:
                    budget.append((d.key, want - purse.left, d.limit))
        return rate, budget

    def prefetched(self, second: int, rate: Sequence[Want], budget: Sequence[Want],
                   reply: Sequence[Any]) -> list[Return]:
        """Book the reply of a soft lease.lua call (a fetch ahead)."""
        if int(reply[0]) != 1:    # the budget counter is not seeded yet: the next admission seeds it
            return []
        grants = [int(g) for g in reply[4:]]
        back: list[Return] = []
        for (key, _, _), units in zip(rate, grants, strict=False):
            if second >= self.live_from:   # marks the second as fetched, even if nothing was granted
                self._slot(key).leases.setdefault(second, 0)
            back += self._credit(key, second, units, granted=True)
        for key, _, _ in budget:
            purse = self._purse(key)
            purse.spent = int(reply[3])
            purse.granted_at = self.clock.monotonic()
            back += self._credit(key, None, grants[-1], granted=True)
        return back

    # --- giving back -----------------------------------------------------------------------

    def reap(self, in_flight: Callable[[Fid], bool]) -> list[Return]:
        """What ended seconds and stale or idle budget leases left unused; forgets idle counters."""
        live = int(self.clock.time())
        mono = self.clock.monotonic()
        self.live_from = max(self.live_from, live)
        back: list[Return] = []
        for key, slot in list(self.slots.items()):
            for second in [s for s in slot.leases if s < live]:
                unused = slot.leases.pop(second)
                if unused > 0:
                    back.append((key, str(second), unused))
            if not slot.leases and slot.rate.second < live - 2:
                del self.slots[key]
        for key, purse in list(self.purses.items()):
            if purse.left > 0 and (mono - purse.granted_at > BUDGET_LEASE_SECONDS
                                   or mono - purse.used_at > BUDGET_IDLE_SECONDS):
                back.append((key, "", purse.left))
                purse.spent -= purse.left
                purse.left = 0
            if purse.left == 0 and mono - purse.used_at > 2 * BUDGET_LEASE_SECONDS and not in_flight((key, None)):
                del self.purses[key]
        return back

    def release_all(self) -> list[Return]:
        """Everything held, to hand back at close; the book is empty after."""
        back: list[Return] = []
        for key, slot in self.slots.items():
            back += [(key, str(second), unused) for second, unused in slot.leases.items() if unused > 0]
        for key, purse in self.purses.items():
            if purse.left > 0:
                back.append((key, "", purse.left))
        self.slots.clear()
        self.purses.clear()
        return back

    # --- settling --------------------------------------------------------------------------

    def settle_locally(self, s: Settle) -> list[Settle]:
        """Absorb a correction in a lease still held (for the admission's second; a budget lease
        granted lately): fewer tokens or nanos than reserved go into it (Redis counted them), more
        are drawn from it. Returns the corrections the leases could not absorb, for Redis."""
        by_delta: dict[int, list[str]] = {}
        for name in s.scopes:
            key = self.tokens_key(name)
            slot = self.slots.get(key)
            delta = s.token_delta
            if delta and slot is not None and slot.cap >= 2 and s.second in slot.leases:
                delta = self._absorb(key, s.second, delta)
            by_delta.setdefault(delta, []).append(name)
        key = self.budget_key(s.team, s.period)
        purse = self.purses.get(key)
        cost = s.cost_delta_nanos
        if cost and purse is not None and purse.cap >= 2 and \
                self.clock.monotonic() - purse.granted_at < BUDGET_LEASE_SECONDS:
            cost = self._absorb(key, None, cost)
            if cost > 0:
                purse.spent += cost
        rest = [Settle(names, s.second, s.team, s.period, delta, 0) for delta, names in by_delta.items() if delta]
        if cost:
            if rest:
                rest[0].cost_delta_nanos = cost
            else:
                rest.append(Settle([], s.second, s.team, s.period, 0, cost))
        return rest

    # --- internals -------------------------------------------------------------------------

    def _slot(self, key: str) -> Slot:
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = Slot()
        return slot

    def _purse(self, key: str) -> Purse:
        purse = self.purses.get(key)
        if purse is None:
            purse = self.purses[key] = Purse()
        return purse

    def _take(self, d: Draw, units: int) -> None:
        """Consume units the caller has just seen in the lease."""
        if d.second is None:
            purse = self._purse(d.key)
            purse.left -= units
            purse.used_at = self.clock.monotonic()
        elif units:
            self._slot(d.key).leases[d.second] -= units

    def _want(self, d: Draw, now: int, need: int) -> int:
        """Lease size: about one second of this replica's recent demand (for the rest of the
        current second), at most share × limit, never below what the admission needs."""
        if d.second is None:
            purse = self._purse(d.key)
            cap, target = purse.cap, HEADROOM * purse.rate.per_second(now)
        else:
            slot = self._slot(d.key)
            cap, target = slot.cap, HEADROOM * slot.rate.per_second(now) * self._rest_of(now)
        if cap < 2:
            return need
        return max(need, min(cap, math.ceil(target)))

    def _rest_of(self, second: int) -> float:
        """The share of `second` still ahead, which a lease for it can still serve; at least a
        quarter while it lasts, as a burst late in a second would otherwise ask Redis in tiny steps."""
        t = self.clock.time()
        if int(t) < second:
            return 1.0
        if int(t) > second:
            return 0.0
        return max(1.0 - (t - second), 0.25)

    def _credit(self, key: str, second: int | None, units: int, *, granted: bool = False) -> list[Return]:
        """Units Redis counts that no admission here used: kept as lease, the rest to hand back.
        A fresh grant is kept whole (admissions waiting for it have claimed it, and its size was
        already held to the cap); anything else up to the cap."""
        rest = self._keep(key, second, units, granted=granted)
        if rest <= 0:
            return []
        purse = self.purses.get(key) if second is None else None
        if purse is not None:
            purse.spent -= rest
        return [(key, "" if second is None else str(second), rest)]

    def _keep(self, key: str, second: int | None, units: int, *, granted: bool = False) -> int:
        """Add up to `units` to the local lease (within its cap unless `granted`); returns what
        did not fit."""
        if units <= 0:
            return 0
        if second is None:
            purse = self._purse(key)
            kept = units if granted else max(min(units, purse.cap - purse.left), 0)
            purse.left += kept
            return units - kept
        if second < self.live_from:
            return units
        slot = self._slot(key)
        have = slot.leases.get(second, 0)
        kept = units if granted else max(min(units, slot.cap - have), 0)
        if kept or second in slot.leases:
            slot.leases[second] = have + kept
        return units - kept

    def _absorb(self, key: str, second: int | None, delta: int) -> int:
        """The part of a correction the local lease cannot take."""
        if delta < 0:
            return -self._keep(key, second, -delta)
        if second is None:
            purse = self._purse(key)
            drawn = min(delta, max(purse.left, 0))
            purse.left -= drawn
            purse.rate.add(int(self.clock.time()), delta)   # the next lease covers real use, not estimates
        else:
            slot = self._slot(key)
            drawn = min(delta, max(slot.leases.get(second, 0), 0))
            if drawn:
                slot.leases[second] -= drawn
            slot.rate.add(second, delta)
        return delta - drawn

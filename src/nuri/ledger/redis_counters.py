"""Rate and budget counters in Redis: exact across replicas, and mostly without a round trip.

Each admission is one Lua script that checks every window and the budget, then counts. With
`lease_share` a replica instead has Redis count a block of quota in the same atomic check, then
admits against it locally with no round trip: on a host where a paced round trip costs 0.3–0.5 ms
that is most of the ledger's time. Redis then always counts at least what the replicas admitted, so
the limits stay exact; unused quota goes back shortly after its second ends (budgets: after ~2 s).
Semantics (rolling 60-second windows, budgets per team and period) are those of counters.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from nuri.ledger.counters import Ask, Seed, Settle, Verdict
from nuri.ledger.resp import RedisLink, ReplyError

log = logging.getLogger("nuri.ledger")


_ADMIT = """
local now = tonumber(ARGV[1]); local n = tonumber(ARGV[2]); local tokens = tonumber(ARGV[3])
local blimit = tonumber(ARGV[4]); local est = tonumber(ARGV[5])
local lo = now - 59
local function window(key)
  local flat = redis.call('HGETALL', key)
  local sum = 0; local oldest = now; local stale = {}
  for i = 1, #flat, 2 do
    local sec = tonumber(flat[i])
    if sec < lo then stale[#stale + 1] = flat[i]
    else sum = sum + tonumber(flat[i + 1]); if sec < oldest then oldest = sec end end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  return sum, oldest
end
for i = 1, n do
  local rpm = tonumber(ARGV[5 + 2 * i - 1]); local tpm = tonumber(ARGV[5 + 2 * i])
  if rpm >= 0 then
    local s, o = window(KEYS[2 * i - 1])
    if s + 1 > rpm then return {0, 'rpm', i, o + 60 - now, -1} end
  end
  if tpm >= 0 then
    local s, o = window(KEYS[2 * i])
    if s + tokens > tpm then return {0, 'tpm', i, o + 60 - now, -1} end
  end
end
local spent = -1
if blimit >= 0 then
  local v = redis.call('GET', KEYS[2 * n + 1])
  if not v then return {-1, 'seed', 0, 0, -1} end
  spent = tonumber(v)
  if spent >= blimit or spent + est > blimit then return {0, 'budget', 0, 0, spent} end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[2 * i - 1], now, 1); redis.call('EXPIRE', KEYS[2 * i - 1], 130)
  redis.call('HINCRBY', KEYS[2 * i], now, tokens); redis.call('EXPIRE', KEYS[2 * i], 130)
end
if blimit >= 0 and est > 0 then spent = redis.call('INCRBY', KEYS[2 * n + 1], est) end
return {1, 'ok', 0, 0, spent}
"""

_SETTLE = """
local n = tonumber(ARGV[1]); local sec = ARGV[2]; local dt = tonumber(ARGV[3]); local dc = tonumber(ARGV[4])
if dt ~= 0 then
  for i = 1, n do
    if redis.call('HEXISTS', KEYS[i], sec) == 1 then redis.call('HINCRBY', KEYS[i], sec, dt) end
  end
end
if dc ~= 0 and redis.call('EXISTS', KEYS[n + 1]) == 1 then redis.call('INCRBY', KEYS[n + 1], dc) end
return 1
"""

# Grant leases: KEYS are n rate-window hashes, then the budget counter if ARGV[3] is 1. Each rate
# item (second, want, need, limit) gets min(want, room) units in its bucket for `second`, where the
# room counts every bucket from second - 59 on, future ones included (leases fetched ahead), so no
# 60-second span can go over the limit whichever second a grant is for; the budget item (want,
# need, limit) likewise. All or nothing: a grant below its `need` refuses the whole call, unless
# ARGV[4] is 1 (fetching ahead: grant what there is, down to nothing). Reply: {1, 0, 0, spent,
# grant per rate item..., budget grant}, {0, item, retry_after, spent}, or {-1} to seed the budget.
_LEASE = """
local now = tonumber(ARGV[1]); local n = tonumber(ARGV[2]); local nb = tonumber(ARGV[3])
local soft = tonumber(ARGV[4]) == 1
local grants = {}
for i = 1, n do
  local a = 4 + 4 * (i - 1)
  local sec = tonumber(ARGV[a + 1]); local want = tonumber(ARGV[a + 2])
  local need = tonumber(ARGV[a + 3]); local limit = tonumber(ARGV[a + 4])
  local flat = redis.call('HGETALL', KEYS[i])
  local sum = 0; local oldest = sec; local stale = {}
  for j = 1, #flat, 2 do
    local b = tonumber(flat[j])
    if b < now - 62 then stale[#stale + 1] = flat[j]
    elseif b > sec - 60 then
      sum = sum + tonumber(flat[j + 1]); if b < oldest then oldest = b end
    end
  end
  if #stale > 0 then redis.call('HDEL', KEYS[i], unpack(stale)) end
  local g = math.min(want, limit - sum)
  if g < need then
    if not soft then return {0, i, oldest + 60 - now, -1} end
    g = 0
  end
  grants[i] = math.max(g, 0)
end
local spent = -1; local gb = 0
if nb == 1 then
  local a = 4 + 4 * n
  local want = tonumber(ARGV[a + 1]); local need = tonumber(ARGV[a + 2]); local limit = tonumber(ARGV[a + 3])
  local v = redis.call('GET', KEYS[n + 1])
  if not v then return {-1, 0, 0, -1} end
  spent = tonumber(v)
  gb = math.min(want, limit - spent)
  if gb < need then
    if not soft then return {0, n + 1, 0, spent} end
    gb = 0
  end
  gb = math.max(gb, 0)
end
for i = 1, n do
  if grants[i] > 0 then redis.call('HINCRBY', KEYS[i], ARGV[4 + 4 * (i - 1) + 1], grants[i]) end
  redis.call('EXPIRE', KEYS[i], 130)
end
if gb > 0 then spent = redis.call('INCRBY', KEYS[n + 1], gb) end
local out = {1, 0, 0, spent}
for i = 1, n do out[#out + 1] = grants[i] end
out[#out + 1] = gb
return out
"""

# Hand back leased units no admission used: per key a field (a rate bucket; '' for a budget
# counter) and an amount. What is gone (expired, or lost with Redis's data) is left alone, and
# nothing goes below zero, so a late return can only leave a counter high, never low.
_RETURN = """
for i = 1, #KEYS do
  local f = ARGV[2 * i - 1]; local d = tonumber(ARGV[2 * i])
  if f == '' then
    if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('DECRBY', KEYS[i], d) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
  elseif redis.call('HEXISTS', KEYS[i], f) == 1 and redis.call('HINCRBY', KEYS[i], f, -d) < 0 then
    redis.call('HSET', KEYS[i], f, 0)
  end
end
return 1
"""

_BUDGET_TTL = {"day": 3 * 86400, "month": 40 * 86400}
_ADMIT_SHA = hashlib.sha1(_ADMIT.encode()).hexdigest()
_SETTLE_SHA = hashlib.sha1(_SETTLE.encode()).hexdigest()
_LEASE_SHA = hashlib.sha1(_LEASE.encode()).hexdigest()
_RETURN_SHA = hashlib.sha1(_RETURN.encode()).hexdigest()

HEADROOM = 1.5               # a lease covers this many times the recent demand
FETCH_AHEAD_AFTER = 0.75     # how far into a second the next second's leases are fetched ahead
BUDGET_LEASE_SECONDS = 2.0   # an unused budget lease goes back after this long, or ...
BUDGET_IDLE_SECONDS = 1.0    # ... after this long without an admission drawing on it
REAP_DELAY = 0.02            # past each second boundary, when ended seconds' leases go back
JOIN_ROUNDS = 3              # a short admission waits for at most this many fetches under way


@dataclass(slots=True)
class _Rate:
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
class _Slot:
    """This replica's leases on one rate window (the requests or the tokens of one scope)."""

    leases: dict[int, int] = field(default_factory=dict)   # second → units Redis counted, unused here
    rate: _Rate = field(default_factory=_Rate)
    cap: int = 0              # lease_share × limit; below 2 the window is not leased


@dataclass(slots=True)
class _Purse:
    """This replica's lease on one budget counter: nanos Redis counts as spent that no admission
    here has used yet."""

    left: int = 0
    spent: int = 0            # the Redis counter as last seen (or adjusted by this replica)
    granted_at: float = 0.0   # monotonic
    used_at: float = 0.0
    rate: _Rate = field(default_factory=_Rate)
    cap: int = 0


@dataclass(slots=True)
class _Draw:
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
    def fid(self) -> tuple[str, int | None]:
        return self.key, self.second


@dataclass(slots=True)
class _Flight:
    """A lease fetch under way; admissions short on its counters may wait for it instead of
    asking Redis themselves, while units it asks beyond its own admission's need are unclaimed."""

    task: asyncio.Task[Any]
    spare: dict[tuple[str, int | None], int]


class RedisCounters:
    """Exact across replicas: one Lua script checks every scope and the budget, then increments.

    With `lease_share` > 0 a replica leases quota instead: Redis counts a block of units in a rate
    window's bucket for one second (or a block of nanos against a budget) within the same atomic
    limit check, and the replica then admits against that block with no round trip until it is
    used up. Redis therefore always counts at least what was admitted, so the limits stay exact
    across replicas; what a replica holds unused is the only under-admission, at most
    `lease_share` of a limit per replica, and goes back when its second ends (a budget lease
    after ~2 s, or when idle), and all of it at `close`. Limits too small to lease (share × limit
    below 2) take one exact round trip per admission, as with leasing off.
    """

    def __init__(self, url: str, prefix: str, seed: Seed, lease_share: float = 0.0) -> None:
        self.prefix = prefix
        self._link = RedisLink(url)   # one pipelined connection: admission's round trip is the only wait
        self._seed = seed
        self._share = max(float(lease_share), 0.0)
        self._pending: list[Settle] = []
        self._batch: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._slots: dict[str, _Slot] = {}
        self._purses: dict[str, _Purse] = {}
        self._flights: dict[tuple[str, int | None], _Flight] = {}
        self._live_from = 0           # rate leases for earlier seconds have gone back to Redis
        self._returns: list[tuple[str, str, int]] = []
        self._returner: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    def _budget_key(self, team: str, period: str) -> str:
        return f"{self.prefix}budget:{team}:{period}"

    async def admit(self, ask: Ask) -> Verdict:
        draws = self._draws(ask) if self._share > 0 and not self._closing else None
        if draws is None:
            return await self._admit_exact(ask)
        return await self._admit_leased(ask, draws)

    async def _admit_exact(self, ask: Ask) -> Verdict:
        """One round trip: the Lua script checks every window and the budget, then counts."""
        keys: list[str] = []
        argv: list[Any] = [ask.now, len(ask.scopes), ask.tokens,
                           -1 if ask.budget_nanos is None else ask.budget_nanos, ask.cost_nanos]
        for sc in ask.scopes:
            keys += [f"{self.prefix}rl:req:{sc.name}", f"{self.prefix}rl:tok:{sc.name}"]
            argv += [-1 if sc.rpm is None else sc.rpm, -1 if sc.tpm is None else sc.tpm]
        keys.append(self._budget_key(ask.team, ask.period))
        for _ in range(3):
            ok, limit, idx, retry, spent = await self._script(_ADMIT, _ADMIT_SHA, keys, argv)
            if int(ok) == -1:
                await self._seed_budget(keys[-1], ask.team, ask.period)
                continue
            spent_n = None if int(spent) < 0 else int(spent)
            if int(ok) == 1:
                return Verdict(True, spent_nanos=spent_n)
            scope = ask.scopes[int(idx) - 1].name if int(idx) > 0 else f"team:{ask.team}"
            return Verdict(False, str(limit), scope, max(int(retry), 1) if limit != "budget" else 0, spent_n)
        raise RuntimeError("budget counter could not be seeded in Redis")

    async def _seed_budget(self, key: str, team: str, period: str) -> None:
        seeded = await self._seed(team, period)
        ttl = _BUDGET_TTL.get(period)
        await self._link.call("SET", key, seeded, "NX", *(("EX", ttl) if ttl else ()))

    # --- leases: admission ----------------------------------------------------------------

    def _draws(self, ask: Ask) -> list[_Draw] | None:
        """The counters `ask` draws on, or None when none of its limits is large enough to lease."""
        draws: list[_Draw] = []
        for sc in ask.scopes:
            if sc.rpm is not None:
                draws.append(_Draw(f"{self.prefix}rl:req:{sc.name}", ask.now, 1, 1, sc.rpm, "rpm", sc.name))
            if sc.tpm is not None:
                draws.append(_Draw(f"{self.prefix}rl:tok:{sc.name}", ask.now, ask.tokens, ask.tokens, sc.tpm,
                                   "tpm", sc.name))
        if ask.budget_nanos is not None:
            draws.append(_Draw(self._budget_key(ask.team, ask.period), None, ask.cost_nanos,
                               max(ask.cost_nanos, 1), ask.budget_nanos, "budget", f"team:{ask.team}"))
        caps = [int(self._share * d.limit) for d in draws]
        if not any(c >= 2 for c in caps):
            return None
        for d, cap in zip(draws, caps, strict=True):
            holder = self._purse(d.key) if d.second is None else self._slot(d.key)
            holder.cap = cap
            holder.rate.add(ask.now, d.use)
        return draws

    def _slot(self, key: str) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        return slot

    def _purse(self, key: str) -> _Purse:
        purse = self._purses.get(key)
        if purse is None:
            purse = self._purses[key] = _Purse()
        return purse

    def _left(self, d: _Draw) -> int:
        if d.second is None:
            purse = self._purses.get(d.key)
            return purse.left if purse is not None else 0
        slot = self._slots.get(d.key)
        return slot.leases.get(d.second, 0) if slot is not None else 0

    def _take(self, d: _Draw, units: int) -> None:
        """Consume units the caller has just seen in the lease (no await in between)."""
        if d.second is None:
            purse = self._purse(d.key)
            purse.left -= units
            purse.used_at = time.monotonic()
        elif units:
            self._slot(d.key).leases[d.second] -= units

    async def _admit_leased(self, ask: Ask, draws: list[_Draw]) -> Verdict:
        """From the local leases if they cover it; else after a fetch under way that will, or with
        one round trip of its own. A refusal stands only once the leases that landed meanwhile,
        and the fetches still under way, cannot cover the request either."""
        refusal: Verdict | None = None
        for _ in range(JOIN_ROUNDS + 1):
            if all(self._left(d) >= d.need for d in draws):   # check and take: no await in between
                for d in draws:
                    self._take(d, d.use)
                self._fetch_ahead(ask, draws)
                return Verdict(True, spent_nanos=self._spent_view(ask))
            flights = self._joinable(draws)
            if flights:
                await asyncio.wait(flights)   # their own callers see how they ended
                continue
            if refusal is not None:
                return refusal
            verdict = await self._top_up(ask, draws)
            if verdict.ok:
                self._fetch_ahead(ask, draws)
                return verdict
            refusal = verdict
        return refusal if refusal is not None else await self._top_up(ask, draws)

    def _joinable(self, draws: list[_Draw]) -> set[asyncio.Task[Any]]:
        """The fetches under way whose unclaimed units cover every shortfall of this admission,
        claiming them; empty if any shortfall is not covered (the admission then asks itself)."""
        claims: list[tuple[_Flight, tuple[str, int | None], int]] = []
        for d in draws:
            short = d.need - self._left(d)
            if short <= 0:
                continue
            flight = self._flights.get(d.fid)
            if flight is None or flight.spare.get(d.fid, 0) < short:
                return set()
            claims.append((flight, d.fid, short))
        for flight, fid, short in claims:
            flight.spare[fid] -= short
        return {flight.task for flight, _, _ in claims}

    async def _top_up(self, ask: Ask, draws: list[_Draw]) -> Verdict:
        """One round trip for every counter the local leases fall short on: consume what they hold,
        and ask Redis in one Lua call for the rest plus a fresh lease."""
        short: list[tuple[_Draw, int]] = []
        for d in draws:                 # no await until the fetch is under way
            have = self._left(d)
            d.taken = d.use if have >= d.need else min(have, d.use)
            self._take(d, d.taken)
            if have < d.need:
                short.append((d, self._want(d, ask.now, d.need - d.taken)))
        task = asyncio.get_running_loop().create_task(self._fetch(ask, draws, short))
        flight = _Flight(task, {d.fid: want - (d.need - d.taken) for d, want in short})
        self._track(task, flight)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:   # the caller left: whatever the fetch admitted is not used
            task.add_done_callback(lambda t: self._abandon(t, draws))
            raise

    def _abandon(self, task: asyncio.Task[Verdict], draws: list[_Draw]) -> None:
        if not task.cancelled() and task.exception() is None and task.result().ok:
            for d in draws:
                self._give_back(d, d.use)

    def _want(self, d: _Draw, now: int, need: int) -> int:
        """Lease size: about one second of this replica's recent demand (for the rest of the
        current second), at most lease_share × limit, never below what the admission needs."""
        if d.second is None:
            purse = self._purse(d.key)
            cap, target = purse.cap, HEADROOM * purse.rate.per_second(now)
        else:
            slot = self._slot(d.key)
            cap, target = slot.cap, HEADROOM * slot.rate.per_second(now) * _rest_of(now)
        if cap < 2:
            return need
        return max(need, min(cap, math.ceil(target)))

    async def _fetch(self, ask: Ask, draws: list[_Draw], short: list[tuple[_Draw, int]]) -> Verdict:
        """The round trip of `_top_up`, in a task of its own: a grant is booked even if the caller
        goes away."""
        rate = [(d, w) for d, w in short if d.second is not None]
        budget = [(d, w) for d, w in short if d.second is None]
        keys = [d.key for d, _ in rate + budget]
        argv: list[Any] = [ask.now, len(rate), len(budget), 0]
        for d, want in rate:
            argv += [d.second, want, d.need - d.taken, d.limit]
        for d, want in budget:
            argv += [want, d.need - d.taken, d.limit]
        try:
            reply = await self._lease_call(keys, argv, ask.team, ask.period)
        except BaseException:
            for d in draws:
                self._give_back(d, d.taken)
            raise
        ok, idx, retry, spent = (int(x) for x in reply[:4])
        if budget and spent >= 0:
            self._purse(budget[0][0].key).spent = spent
        if ok != 1:
            for d in draws:
                self._give_back(d, d.taken)
            d = (rate + budget)[idx - 1][0]
            if d.second is None:   # the spend that refused it, as with leasing off
                return Verdict(False, "budget", d.scope, 0, spent)
            return Verdict(False, d.label, d.scope, max(retry, 1))
        grants = [int(g) for g in reply[4:]]
        for (d, _), granted in zip(rate, grants, strict=False):
            self._credit(d.key, d.second, granted - (d.use - d.taken), granted=True)
        if budget:
            d = budget[0][0]
            self._purse(d.key).granted_at = time.monotonic()
            self._credit(d.key, None, grants[-1] - (d.use - d.taken), granted=True)
        return Verdict(True, spent_nanos=self._spent_view(ask))

    async def _lease_call(self, keys: list[str], argv: list[Any], team: str, period: str) -> list[Any]:
        for _ in range(3):
            reply = await self._script(_LEASE, _LEASE_SHA, keys, argv)
            if int(reply[0]) != -1:
                return list(reply)
            await self._seed_budget(keys[-1], team, period)
        raise RuntimeError("budget counter could not be seeded in Redis")

    def _spent_view(self, ask: Ask) -> int | None:
        """Spend for the budget headers: Redis's counter as last seen, less the nanos this replica
        holds unused (other replicas' unused leases still count as spent)."""
        if ask.budget_nanos is None:
            return None
        purse = self._purses.get(self._budget_key(ask.team, ask.period))
        return None if purse is None else purse.spent - purse.left

    # --- leases: fetching ahead, giving back ----------------------------------------------

    def _fetch_ahead(self, ask: Ask, draws: list[_Draw]) -> None:
        """Late in a second, fetch the next second's rate leases in the background; refill a budget
        lease before it runs dry, so that a steady stream of admissions almost never waits."""
        if self._closing:
            return
        t = time.time()
        late = int(t) == ask.now and t - ask.now >= FETCH_AHEAD_AFTER
        rate: list[tuple[str, int, int]] = []
        budget: list[tuple[str, int, int]] = []
        for d in draws:
            if d.second is not None:
                slot = self._slots.get(d.key)
                if not late or slot is None or ask.now + 1 in slot.leases or (d.key, ask.now + 1) in self._flights:
                    continue
                want = min(slot.cap, math.ceil(HEADROOM * slot.rate.per_second(ask.now)))
                if want >= max(2, d.use):     # a lease smaller than one request serves none
                    rate.append((d.key, want, d.limit))
            else:
                purse = self._purses.get(d.key)
                if purse is None or d.fid in self._flights:
                    continue
                want = min(purse.cap, math.ceil(HEADROOM * purse.rate.per_second(ask.now)))
                if want >= max(2, d.use) and purse.left < want // 2:
                    budget.append((d.key, want - purse.left, d.limit))
        if not rate and not budget:
            return
        task = asyncio.get_running_loop().create_task(self._prefetch(ask, rate, budget))
        spare: dict[tuple[str, int | None], int] = {(k, ask.now + 1): w for k, w, _ in rate}
        spare.update({(k, None): w for k, w, _ in budget})
        self._track(task, _Flight(task, spare))

    async def _prefetch(self, ask: Ask, rate: list[tuple[str, int, int]], budget: list[tuple[str, int, int]]) -> None:
        second = ask.now + 1
        argv: list[Any] = [ask.now, len(rate), len(budget), 1]
        for _, want, limit in rate:
            argv += [second, want, 0, limit]
        for _, want, limit in budget:
            argv += [want, 0, limit]
        try:
            reply = await self._script(_LEASE, _LEASE_SHA, [k for k, _, _ in rate + budget], argv)
        except Exception as exc:
            log.warning("counter lease fetch failed", extra={"error_type": type(exc).__name__})
            return
        if int(reply[0]) != 1:    # the budget counter is not seeded yet: the next admission seeds it
            return
        grants = [int(g) for g in reply[4:]]
        for (key, _, _), granted in zip(rate, grants, strict=False):
            if second >= self._live_from:   # marks the second as fetched, even if nothing was granted
                self._slot(key).leases.setdefault(second, 0)
            self._credit(key, second, granted, granted=True)
        for key, _, _ in budget:
            purse = self._purse(key)
            purse.spent = int(reply[3])
            purse.granted_at = time.monotonic()
            self._credit(key, None, grants[-1], granted=True)

    def _track(self, task: asyncio.Task[Any], flight: _Flight) -> None:
        for fid in flight.spare:
            self._flights[fid] = flight
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            for fid in flight.spare:
                if self._flights.get(fid) is flight:
                    del self._flights[fid]

        task.add_done_callback(done)
        self._ensure_reaper()

    def _give_back(self, d: _Draw, units: int) -> None:
        self._credit(d.key, d.second, units)

    def _credit(self, key: str, second: int | None, units: int, *, granted: bool = False) -> None:
        """Units Redis counts that no admission here used: kept as lease, the rest handed back to
        Redis in the background. A fresh grant is kept whole (admissions waiting for it have
        claimed it, and its size was already held to the cap); anything else up to the cap."""
        rest = self._keep(key, second, units, granted=granted)
        if rest > 0:
            purse = self._purses.get(key) if second is None else None
            if purse is not None:
                purse.spent -= rest
            self._queue_returns([(key, "" if second is None else str(second), rest)])

    def _keep(self, key: str, second: int | None, units: int, *, granted: bool = False) -> int:
        """Add up to `units` to the local lease (within its cap unless `granted`); returns what
        did not fit."""
        if units <= 0:
            return 0
        if second is None:
            purse = self._purse(key)
            kept = units if granted else max(min(units, purse.cap - purse.left), 0)
            purse.left += kept
            if kept:
                self._ensure_reaper()
            return units - kept
        if second < self._live_from:
            return units
        slot = self._slot(key)
        have = slot.leases.get(second, 0)
        kept = units if granted else max(min(units, slot.cap - have), 0)
        if kept or second in slot.leases:
            slot.leases[second] = have + kept
            self._ensure_reaper()
        return units - kept

    def _ensure_reaper(self) -> None:
        if not self._closing and (self._reaper is None or self._reaper.done()):
            self._reaper = asyncio.get_running_loop().create_task(self._reap_loop())

    async def _reap_loop(self) -> None:
        """Just past every second boundary, give back what ended seconds and stale budget leases
        left unused; stops when nothing is held."""
        while not self._closing:
            t = time.time()
            await asyncio.sleep(math.floor(t) + 1 - t + REAP_DELAY)
            self._reap(time.time(), time.monotonic())
            if not self._slots and not self._purses:
                return

    def _reap(self, wall: float, mono: float) -> None:
        live = int(wall)
        self._live_from = max(self._live_from, live)
        back: list[tuple[str, str, int]] = []
        for key, slot in list(self._slots.items()):
            for second in [s for s in slot.leases if s < live]:
                unused = slot.leases.pop(second)
                if unused > 0:
                    back.append((key, str(second), unused))
            if not slot.leases and slot.rate.second < live - 2:
                del self._slots[key]
        for key, purse in list(self._purses.items()):
            if purse.left > 0 and (mono - purse.granted_at > BUDGET_LEASE_SECONDS
                                   or mono - purse.used_at > BUDGET_IDLE_SECONDS):
                back.append((key, "", purse.left))
                purse.spent -= purse.left
                purse.left = 0
            if purse.left == 0 and mono - purse.used_at > 2 * BUDGET_LEASE_SECONDS and \
                    (key, None) not in self._flights:
                del self._purses[key]
        self._queue_returns(back)

    def _queue_returns(self, back: list[tuple[str, str, int]]) -> None:
        if not back:
            return
        self._returns.extend(back)
        if self._returner is None or self._returner.done():
            self._returner = asyncio.get_running_loop().create_task(self._send_returns())

    async def _send_returns(self) -> None:
        """Unused leases back to Redis in one script call per batch. A failed batch is dropped, not
        retried (it may have been applied): the units stay counted, which errs on the safe side."""
        while self._returns:
            back, self._returns = self._returns[:500], self._returns[500:]
            argv: list[Any] = []
            for _, fld, units in back:
                argv += [fld, units]
            try:
                await self._script(_RETURN, _RETURN_SHA, [k for k, _, _ in back], argv)
            except Exception as exc:
                log.warning("unused counter leases could not be returned to Redis; they stay counted",
                            extra={"error_type": type(exc).__name__, "leases": len(back)})

    # --- settle -----------------------------------------------------------------------------

    async def settle(self, s: Settle) -> None:
        """Correct the local leases first; queue the rest, and corrections that arrive together go
        to Redis in one pipeline."""
        if not s.token_delta and not s.cost_delta_nanos:
            return
        rest = self._settle_locally(s) if self._slots or self._purses else [s]
        if not rest:
            return
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
        batch = self._batch
        self._pending.extend(rest)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        await asyncio.shield(batch)

    def _settle_locally(self, s: Settle) -> list[Settle]:
        """Absorb a correction in a lease still held (for the admission's second; a budget lease
        granted lately): fewer tokens or nanos than reserved go into it (Redis counted them), more
        are drawn from it; what the leases cannot absorb goes to Redis."""
        by_delta: dict[int, list[str]] = {}
        for name in s.scopes:
            key = f"{self.prefix}rl:tok:{name}"
            slot = self._slots.get(key)
            delta = s.token_delta
            if delta and slot is not None and slot.cap >= 2 and s.second in slot.leases:
                delta = self._absorb(key, s.second, delta)
            by_delta.setdefault(delta, []).append(name)
        key = self._budget_key(s.team, s.period)
        purse = self._purses.get(key)
        cost = s.cost_delta_nanos
        if cost and purse is not None and purse.cap >= 2 and \
                time.monotonic() - purse.granted_at < BUDGET_LEASE_SECONDS:
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

    def _absorb(self, key: str, second: int | None, delta: int) -> int:
        """The part of a correction the local lease cannot take (no await)."""
        if delta < 0:
            return -self._keep(key, second, -delta)
        if second is None:
            purse = self._purse(key)
            drawn = min(delta, max(purse.left, 0))
            purse.left -= drawn
            purse.rate.add(int(time.time()), delta)   # the next lease covers real use, not estimates
        else:
            slot = self._slot(key)
            drawn = min(delta, max(slot.leases.get(second, 0), 0))
            if drawn:
                slot.leases[second] -= drawn
            slot.rate.add(second, delta)
        return delta - drawn

    async def _script(self, source: str, sha: str, keys: list[str], argv: list[Any]) -> Any:
        """EVALSHA, loading the script once if Redis does not have it (first use, or a restart)."""
        try:
            return await self._link.call("EVALSHA", sha, len(keys), *keys, *argv)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self._link.call("SCRIPT", "LOAD", source)
        return await self._link.call("EVALSHA", sha, len(keys), *keys, *argv)

    async def _flush(self) -> None:
        while self._pending:
            pending, batch = self._pending, self._batch
            self._pending, self._batch = [], None
            try:
                await self._send_settles(pending)
            except Exception as exc:
                if batch is not None and not batch.done():
                    batch.set_exception(exc)
                continue
            if batch is not None and not batch.done():
                batch.set_result(None)

    async def _send_settles(self, pending: list[Settle]) -> None:
        """Every queued correction in one write; those Redis lacked the script for go again after
        one SCRIPT LOAD."""
        commands = []
        for s in pending:
            keys = [f"{self.prefix}rl:tok:{n}" for n in s.scopes] + [self._budget_key(s.team, s.period)]
            commands.append(("EVALSHA", _SETTLE_SHA, len(keys), *keys, len(s.scopes), s.second, s.token_delta,
                             s.cost_delta_nanos))
        replies = await self._link.pipeline(commands)
        retry = []
        for command, reply in zip(commands, replies, strict=True):
            if isinstance(reply, ReplyError) and str(reply).startswith("NOSCRIPT"):
                retry.append(command)
            elif isinstance(reply, BaseException):
                raise reply
        if retry:
            await self._link.call("SCRIPT", "LOAD", _SETTLE)
            for reply in await self._link.pipeline(retry):
                if isinstance(reply, BaseException):
                    raise reply

    async def close(self) -> None:
        """Stop leasing and hand every unused lease back, then close the connection."""
        self._closing = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(BaseException):
                await self._reaper
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        back: list[tuple[str, str, int]] = []
        for key, slot in self._slots.items():
            back += [(key, str(second), unused) for second, unused in slot.leases.items() if unused > 0]
        for key, purse in self._purses.items():
            if purse.left > 0:
                back.append((key, "", purse.left))
        self._slots.clear()
        self._purses.clear()
        self._queue_returns(back)
        if self._returner is not None:
            with contextlib.suppress(Exception):
                await self._returner
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        await self._link.close()


def _rest_of(second: int) -> float:
    """The share of `second` still ahead, which a lease for it can still serve; at least a quarter
    while it lasts, as a burst late in a second would otherwise ask Redis in tiny steps."""
    t = time.time()
    if int(t) < second:
        return 1.0
    if int(t) > second:
        return 0.0
    return max(1.0 - (t - second), 0.25)

"""Rate and budget counters in Redis: exact across replicas, and mostly without a round trip.

With leasing off (or limits too small to lease) each admission is one Lua script (lua/admit.lua)
that checks every window and the budget, then counts. With `lease_share` a replica instead has
Redis count a block of quota in the same atomic check (lua/lease.lua) and admits against it
locally: leasing.py keeps that book, this module does the round trips — lease fetches, fetches
ahead, unused leases handed back (lua/return.lua) and corrections (lua/settle.lua). Scripts run
through redis-py's `Script` on `redis.asyncio` (hiredis parses replies), which loads a script
again whenever Redis has forgotten it. Semantics are those of counters.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from nuri.ledger.quota.counters import Ask, Seed, Settle, Verdict
from nuri.ledger.quota.leasing import Clock, Draw, Fid, LeaseBook, Return, Short, Want

log = logging.getLogger("nuri.ledger")

CONNECT_TIMEOUT = 10.0
MAX_CONNECTIONS = 64       # Redis connections per replica
REPLY_TIMEOUT = 5.0          # a Redis that accepts commands but does not answer must not hold requests
REAP_DELAY = 0.02            # past each second boundary, when ended seconds' leases go back
JOIN_ROUNDS = 3              # a short admission waits for at most this many fetches under way
_BUDGET_TTL = {"day": 3 * 86400, "month": 40 * 86400}


def lua(name: str) -> str:
    """The text of lua/<name>.lua, shipped as package data."""
    return resources.files("nuri.ledger.quota").joinpath("lua", f"{name}.lua").read_text("utf-8")


def connect(url: str, reply_timeout: float = REPLY_TIMEOUT) -> Redis:
    """A client for the counters. A burst beyond MAX_CONNECTIONS concurrent calls waits for a free
    connection (up to the reply timeout) rather than failing. No retries: a command that failed
    may have counted, and a request waiting on Redis is refused (fail closed) rather than held
    through reconnects."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=reply_timeout, decode_responses=True,
        socket_timeout=reply_timeout, socket_connect_timeout=CONNECT_TIMEOUT, retry=Retry(NoBackoff(), 0))
    return Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))


@dataclass(slots=True)
class _Flight:
    """A lease fetch under way; admissions short on its counters may wait for it instead of
    asking Redis themselves, while units it asks beyond its own admission's need are unclaimed."""

    task: asyncio.Task[Any]
    spare: dict[Fid, int]


class RedisCounters:
    """Exact across replicas: one Lua script checks every scope and the budget, then counts.

    With `lease_share` > 0 admissions draw on quota leased from Redis (see leasing.py); what a
    replica holds unused goes back when its second ends (a budget lease after ~2 s, or when
    idle), and all of it at `close`. `round_trips` counts the calls sent to Redis.
    """

    def __init__(self, url: str, prefix: str, seed: Seed, lease_share: float = 0.0, *,
                 reply_timeout: float = REPLY_TIMEOUT, clock: Clock | None = None) -> None:
        self.prefix = prefix
        self.leases = LeaseBook(prefix, lease_share, clock)
        self.round_trips = 0
        self._redis = connect(url, reply_timeout)
        self._admit_script = self._redis.register_script(lua("admit"))
        self._lease_script = self._redis.register_script(lua("lease"))
        self._return_script = self._redis.register_script(lua("return"))
        self._settle_script = self._redis.register_script(lua("settle"))
        self._seed = seed
        self._pending: list[Settle] = []
        self._batch: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flights: dict[Fid, _Flight] = {}
        self._returns: list[Return] = []
        self._returner: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Budget lease calls go one at a time: the spend each reply reports must be booked in the
        # order Redis counted it, or the budget headers would count a grant not yet booked as spent.
        self._budget_order = asyncio.Lock()
        self._closing = False

    async def admit(self, ask: Ask) -> Verdict:
        draws = None if self._closing else self.leases.draws(ask)
        if draws is None:
            return await self._admit_exact(ask)
        return await self._admit_leased(ask, draws)

    # --- exact: one round trip per admission ----------------------------------------------

    async def _admit_exact(self, ask: Ask) -> Verdict:
        keys: list[str] = []
        argv: list[Any] = [ask.now, len(ask.scopes), ask.tokens,
                           -1 if ask.budget_nanos is None else ask.budget_nanos, ask.cost_nanos]
        for sc in ask.scopes:
            keys += [self.leases.requests_key(sc.name), self.leases.tokens_key(sc.name)]
            argv += [-1 if sc.rpm is None else sc.rpm, -1 if sc.tpm is None else sc.tpm]
        keys.append(self.leases.budget_key(ask.team, ask.period))
        for _ in range(3):
            self.round_trips += 1
            ok, limit, idx, retry, spent = await self._admit_script(keys, argv)
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
        self.round_trips += 1
        await self._redis.set(key, seeded, nx=True, ex=_BUDGET_TTL.get(period))

    # --- leased ----------------------------------------------------------------------------

    async def _admit_leased(self, ask: Ask, draws: list[Draw]) -> Verdict:
        """From the local leases if they cover it; else after a fetch under way that will, or with
        one round trip of its own. A refusal stands only once the leases that landed meanwhile,
        and the fetches still under way, cannot cover the request either."""
        refusal: Verdict | None = None
        for _ in range(JOIN_ROUNDS + 1):
            if self.leases.admit_locally(draws):     # check and take: no await in between
                self._fetch_ahead(ask, draws)
                return Verdict(True, spent_nanos=self.leases.spent_view(ask))
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

    def _joinable(self, draws: list[Draw]) -> set[asyncio.Task[Any]]:
        """The fetches under way whose unclaimed units cover every shortfall of this admission,
        claiming them; empty if any shortfall is not covered (the admission then asks itself)."""
        claims: list[tuple[_Flight, Fid, int]] = []
        for d in draws:
            short = d.need - self.leases.left(d)
            if short <= 0:
                continue
            flight = self._flights.get(d.fid)
            if flight is None or flight.spare.get(d.fid, 0) < short:
                return set()
            claims.append((flight, d.fid, short))
        for flight, fid, short in claims:
            flight.spare[fid] -= short
        return {flight.task for flight, _, _ in claims}

    async def _top_up(self, ask: Ask, draws: list[Draw]) -> Verdict:
        """One round trip for every counter the local leases fall short on: consume what they hold,
        and ask Redis in one call for the rest plus a fresh lease."""
        short = self.leases.top_up(draws, ask.now)          # no await until the fetch is under way
        task = asyncio.get_running_loop().create_task(self._fetch(ask, draws, short))
        self._track(task, _Flight(task, {d.fid: want - (d.need - d.taken) for d, want in short}))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:   # the caller left: whatever the fetch admitted is not used
            task.add_done_callback(lambda t: self._abandon(t, draws))
            raise

    def _abandon(self, task: asyncio.Task[Verdict], draws: list[Draw]) -> None:
        if not task.cancelled() and task.exception() is None and task.result().ok:
            self._send_back(self.leases.give_back(draws, used=True))

    async def _fetch(self, ask: Ask, draws: list[Draw], short: list[Short]) -> Verdict:
        """The round trip of `_top_up`, in a task of its own: a grant is booked even if the caller
        goes away."""
        rate = [(d, w) for d, w in short if d.second is not None]
        budget = [(d, w) for d, w in short if d.second is None]
        argv: list[Any] = [ask.now, len(rate), len(budget), 0]
        for d, want in rate:
            argv += [d.second, want, d.need - d.taken, d.limit]
        for d, want in budget:
            argv += [want, d.need - d.taken, d.limit]
        async with self._budget_order if budget else contextlib.nullcontext():
            try:
                reply = await self._lease_call([d.key for d, _ in rate + budget], argv, ask.team, ask.period)
            except BaseException:
                self._send_back(self.leases.give_back(draws))
                raise
            verdict, back = self.leases.granted(ask, draws, rate + budget, reply)
        self._send_back(back)
        return verdict

    async def _lease_call(self, keys: list[str], argv: list[Any], team: str, period: str) -> list[Any]:
        for _ in range(3):
            self.round_trips += 1
            reply = await self._lease_script(keys, argv)
            if int(reply[0]) != -1:
                return list(reply)
            await self._seed_budget(keys[-1], team, period)
        raise RuntimeError("budget counter could not be seeded in Redis")

    # --- fetching ahead, giving back --------------------------------------------------------

    def _fetch_ahead(self, ask: Ask, draws: list[Draw]) -> None:
        if self._closing:
            return
        rate, budget = self.leases.ahead(ask, draws, self._flights.__contains__)
        if not rate and not budget:
            return
        task = asyncio.get_running_loop().create_task(self._prefetch(ask, rate, budget))
        spare: dict[Fid, int] = {(k, ask.now + 1): w for k, w, _ in rate}
        spare.update({(k, None): w for k, w, _ in budget})
        self._track(task, _Flight(task, spare))

    async def _prefetch(self, ask: Ask, rate: list[Want], budget: list[Want]) -> None:
        second = ask.now + 1
        argv: list[Any] = [ask.now, len(rate), len(budget), 1]
        for _, want, limit in rate:
            argv += [second, want, 0, limit]
        for _, want, limit in budget:
            argv += [want, 0, limit]
        async with self._budget_order if budget else contextlib.nullcontext():
            try:
                self.round_trips += 1
                reply = await self._lease_script([k for k, _, _ in rate + budget], argv)
            except Exception as exc:
                log.warning("counter lease fetch failed", extra={"error_type": type(exc).__name__})
                return
            back = self.leases.prefetched(second, rate, budget, reply)
        self._send_back(back)

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

    def _send_back(self, back: list[Return]) -> None:
        """Queue units for Redis, and keep the reaper running while the book holds leases."""
        if self.leases.holding:
            self._ensure_reaper()
        if not back:
            return
        self._returns.extend(back)
        if self._returner is None or self._returner.done():
            self._returner = asyncio.get_running_loop().create_task(self._send_returns())

    def _ensure_reaper(self) -> None:
        if not self._closing and (self._reaper is None or self._reaper.done()):
            self._reaper = asyncio.get_running_loop().create_task(self._reap_loop())

    async def _reap_loop(self) -> None:
        """Just past every second boundary, give back what ended seconds and stale budget leases
        left unused; stops when nothing is held."""
        clock = self.leases.clock
        while not self._closing:
            t = clock.time()
            await asyncio.sleep(math.floor(t) + 1 - t + REAP_DELAY)
            self._send_back(self.leases.reap(self._flights.__contains__))
            if not self.leases.holding:
                return

    async def _send_returns(self) -> None:
        """Unused leases back to Redis in one script call per batch. A failed batch is dropped, not
        retried (it may have been applied): the units stay counted, which errs on the safe side."""
        while self._returns:
            back, self._returns = self._returns[:500], self._returns[500:]
            argv: list[Any] = []
            for _, fld, units in back:
                argv += [fld, units]
            try:
                self.round_trips += 1
                await self._return_script([k for k, _, _ in back], argv)
            except Exception as exc:
                log.warning("unused counter leases could not be returned to Redis; they stay counted",
                            extra={"error_type": type(exc).__name__, "leases": len(back)})

    # --- settle -----------------------------------------------------------------------------

    async def settle(self, s: Settle) -> None:
        """Correct the local leases first; queue the rest, and corrections that arrive together go
        to Redis in one pipeline."""
        if not s.token_delta and not s.cost_delta_nanos:
            return
        rest = self.leases.settle_locally(s) if self.leases.holding else [s]
        if self.leases.holding:
            self._ensure_reaper()
        if not rest:
            return
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
        batch = self._batch
        self._pending.extend(rest)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        await asyncio.shield(batch)

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
        """Every queued correction in one pipeline (the pipeline loads the script first if Redis
        lacks it)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for s in pending:
                keys = [self.leases.tokens_key(n) for n in s.scopes] + [self.leases.budget_key(s.team, s.period)]
                await self._settle_script(keys, [len(s.scopes), s.second, s.token_delta, s.cost_delta_nanos],
                                          client=pipe)
            self.round_trips += 2     # SCRIPT EXISTS, then the batch
            await pipe.execute()

    async def close(self) -> None:
        """Stop leasing and hand every unused lease back, then close the connections."""
        self._closing = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(BaseException):
                await self._reaper
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        self._send_back(self.leases.release_all())
        if self._returner is not None:
            with contextlib.suppress(Exception):
                await self._returner
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
        # the client was given its pool, so it does not close it by default: without this a
        # closed ledger (a gateway stopping in a process that goes on, a test) would hold its
        # connections open until the collector found them
        await self._redis.aclose(close_connection_pool=True)

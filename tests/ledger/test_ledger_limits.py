"""Rate limits and budgets are exact under concurrency, for every counter implementation."""

from __future__ import annotations

import asyncio

import pytest

from nuri.errors import BudgetExceeded, RateLimited
from nuri.ledger import AuditRecord, Ledger


async def _admit_all(ledger: Ledger, principal, n: int, tokens: int = 10, **kw) -> tuple[list, list]:  # type: ignore[no-untyped-def]
    results = await asyncio.gather(*[ledger.admit(principal, tokens, **kw) for _ in range(n)],
                                   return_exceptions=True)
    admitted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    for r in refused:
        if not isinstance(r, RateLimited):
            raise r
    return admitted, refused


async def test_key_rpm_exact_under_concurrency(counters) -> None:  # type: ignore[no-untyped-def]
    led = await counters.open()
    try:
        new = await led.create_key("t", rpm=17)
        p = await led.authenticate(f"Bearer {new.key}")
        admitted, refused = await _admit_all(led, p, 60)
        assert len(admitted) == 17 and len(refused) == 43
        err = refused[0]
        assert err.status == 429 and err.code == "rate_limit_exceeded"
        assert 1 <= int(err.headers["retry-after"]) <= 60
        assert "17 requests per minute" in err.message
    finally:
        await led.close()


async def test_team_rpm_shared_by_keys_and_replicas(counters) -> None:  # type: ignore[no-untyped-def]
    if counters.name == "memory":
        pytest.skip("memory counters are exact within one process only")
    a = await counters.open()
    b = await counters.open()
    try:
        k1 = await a.create_key("team", team_rpm=23)
        k2 = await a.create_key("team")
        p1 = await a.authenticate(f"Bearer {k1.key}")
        p2 = await b.authenticate(f"Bearer {k2.key}")
        results = await asyncio.gather(
            _admit_all(a, p1, 30), _admit_all(b, p2, 30), _admit_all(a, p2, 10), _admit_all(b, p1, 10))
        assert sum(len(ad) for ad, _ in results) == 23
    finally:
        await a.close()
        await b.close()


async def test_tpm_exact_and_settled_to_actual(counters) -> None:  # type: ignore[no-untyped-def]
    led = await counters.open()
    try:
        new = await led.create_key("t", tpm=1000)
        p = await led.authenticate(f"Bearer {new.key}")
        admitted, _ = await _admit_all(led, p, 40, tokens=100)
        assert len(admitted) == 10
        # each request really used 30 tokens: settling frees 70 × 10 = 700 tokens of the window
        await asyncio.gather(*[led.finish(a, AuditRecord(request_id=f"r{i}", endpoint="chat", team="t",
                                                         key_id=new.key_id, prompt_tokens=20, completion_tokens=10))
                               for i, a in enumerate(admitted)])
        await led.drain()
        again, _ = await _admit_all(led, p, 20, tokens=100)
        assert len(again) == 7
    finally:
        await led.close()


async def test_budget_hard_stop_with_reservation(counters) -> None:  # type: ignore[no-untyped-def]
    led = await counters.open()
    try:
        new = await led.create_key("spend", budget=1.0)
        p = await led.authenticate(f"Bearer {new.key}")
        results = await asyncio.gather(*[led.admit(p, 10, estimated_cost=0.3) for _ in range(10)],
                                       return_exceptions=True)
        admitted = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BudgetExceeded)]
        assert len(admitted) == 3 and len(refused) == 7          # 3 × 0.3 ≤ 1.0 < 4 × 0.3
        assert refused[0].status == 429 and refused[0].code == "budget_exceeded"
        assert "budget" in refused[0].message and "spend" in refused[0].message
        # the calls really cost 0.1 each: after settling, 0.7 is left → 2 more reservations of 0.3
        for i, a in enumerate(admitted):
            await led.finish(a, AuditRecord(request_id=f"b{i}", endpoint="chat", team="spend", cost=0.1,
                                            prompt_tokens=5, completion_tokens=5, deployment="d"))
        await led.drain()
        more = await asyncio.gather(*[led.admit(p, 10, estimated_cost=0.3) for _ in range(5)],
                                    return_exceptions=True)
        assert sum(not isinstance(r, BaseException) for r in more) == 2
    finally:
        await led.close()


async def test_budget_stop_after_spend_and_warning_flag(counters) -> None:  # type: ignore[no-untyped-def]
    led = await counters.open()
    try:
        new = await led.create_key("w", budget=0.01)
        p = await led.authenticate(f"Bearer {new.key}")
        first = await led.admit(p, 10)
        assert first.budget_warning is False and first.budget_remaining == pytest.approx(0.01)
        await led.finish(first, AuditRecord(request_id="x1", endpoint="chat", team="w", cost=0.0085))
        await led.drain()
        second = await led.admit(p, 10)
        assert second.budget_warning is True and second.headers()["x-nuri-budget-warning"] == "true"
        await led.finish(second, AuditRecord(request_id="x2", endpoint="chat", team="w", cost=0.002))
        await led.drain()
        with pytest.raises(BudgetExceeded):
            await led.admit(p, 10)
    finally:
        await led.close()


async def test_budget_survives_restart(counters) -> None:  # type: ignore[no-untyped-def]
    """Spend is seeded from the durable usage table when a fresh counter store has none."""
    led = await counters.open()
    new = await led.create_key("r", budget=0.05)
    p = await led.authenticate(f"Bearer {new.key}")
    a = await led.admit(p, 10)
    await led.finish(a, AuditRecord(request_id="s1", endpoint="chat", team="r", cost=0.06, deployment="d"))
    await led.close()
    if counters.name == "postgres-redis":   # lose Redis state: the counter must be rebuilt from usage
        import redis

        client = redis.Redis.from_url(counters.settings.redis_url)
        for key in client.scan_iter(match=counters.settings.redis_prefix + "*"):
            client.delete(key)
        client.close()
    led = await counters.open()
    try:
        with pytest.raises(BudgetExceeded):
            await led.admit(p, 10)
    finally:
        await led.close()


async def test_unlimited_and_anonymous_need_no_counters(ledger: Ledger) -> None:
    from nuri.principal import ANONYMOUS

    adm = await ledger.admit(ANONYMOUS, 10_000)
    assert adm.counted is False
    new = await ledger.create_key("free")
    p = await ledger.authenticate(f"Bearer {new.key}")
    adm = await ledger.admit(p, 10_000)
    assert adm.counted is False and adm.budget_remaining is None

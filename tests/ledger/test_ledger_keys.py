"""Keys: create, authenticate, revoke; only a salted hash is stored; wrong keys get 401."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import pytest
from sqlalchemy import text

from nuri.errors import ServiceUnavailable, Unauthorized
from nuri.ledger import Ledger
from nuri.ledger.keys import rows as keys
from nuri.ledger.keys import split_key
from nuri.ledger.keys.cache import revocation_wait
from nuri.principal import ANONYMOUS


async def test_open_mode_until_first_key(ledger: Ledger) -> None:
    assert ledger.open_mode
    assert await ledger.authenticate(None) is ANONYMOUS
    assert await ledger.authenticate("Bearer anything") is ANONYMOUS
    new = await ledger.create_key("alpha")
    assert not ledger.open_mode
    with pytest.raises(Unauthorized):
        await ledger.authenticate(None)
    principal = await ledger.authenticate(f"Bearer {new.key}")
    assert principal.team == "alpha" and principal.key_id == new.key_id


async def test_key_created_elsewhere_closes_open_mode(store) -> None:  # type: ignore[no-untyped-def]
    a = await store.open()
    b = await store.open()       # a second replica / the CLI on the same store
    try:
        assert a.open_mode
        await b.create_key("alpha")
        with pytest.raises(Unauthorized):
            await a.authenticate(None)
        assert not a.open_mode
    finally:
        await a.close()
        await b.close()


async def test_limits_and_models_reach_the_principal(ledger: Ledger) -> None:
    new = await ledger.create_key("beta", budget=2.5, rpm=7, tpm=900, team_rpm=70, team_tpm=9000,
                                  models=["default", "global-mini"])
    p = await ledger.authenticate(f"Bearer {new.key}")
    assert (p.budget, p.rpm, p.tpm, p.team_rpm, p.team_tpm) == (2.5, 7, 900, 70, 9000)
    assert p.allowed_models == frozenset({"default", "global-mini"})
    assert new.key.startswith("nuri-") and split_key(new.key) is not None


async def test_only_salted_hash_is_stored(ledger: Ledger) -> None:
    new = await ledger.create_key("gamma")
    other = await ledger.create_key("gamma")
    key_id, secret = split_key(new.key)  # type: ignore[misc]
    rows = await ledger.db.run(lambda c: c.execute(text("SELECT * FROM api_keys")).mappings().all())
    dump = repr([dict(r) for r in rows])
    assert secret not in dump and new.key not in dump
    row = next(r for r in rows if r["key_id"] == key_id)
    assert row["secret_hash"] == hashlib.sha256(bytes.fromhex(row["salt"]) + secret.encode()).hexdigest()
    assert row["secret_hash"] != hashlib.sha256(secret.encode()).hexdigest()   # salted
    salts = {r["salt"] for r in rows}
    assert len(salts) == 2 and other.key_id in {r["key_id"] for r in rows}
    # and nothing in the audit trail either
    audit = await ledger.db.run(lambda c: c.execute(text("SELECT body FROM audit_log")).scalars().all())
    assert all(secret not in body for body in audit)


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Basic abc", "Bearer nuri-", "Bearer sk-123", "Bearer nuri-zzzzzzzzzzzz-abc",
])
async def test_missing_or_malformed_key(ledger: Ledger, header: str | None) -> None:
    await ledger.create_key("delta")
    with pytest.raises(Unauthorized) as info:
        await ledger.authenticate(header)
    assert info.value.status == 401


async def test_wrong_secret_and_unknown_id(ledger: Ledger) -> None:
    new = await ledger.create_key("eps")
    key_id, secret = split_key(new.key)  # type: ignore[misc]
    for bad in (f"nuri-{key_id}-{secret}x", f"nuri-{key_id}-{secret[:-1]}", f"nuri-000000000000-{secret}"):
        with pytest.raises(Unauthorized, match="invalid API key"):
            await ledger.authenticate(f"Bearer {bad}")


async def test_revocation_is_effective_on_the_next_request_on_every_replica(store) -> None:  # type: ignore[no-untyped-def]
    a = await store.open()
    b = await store.open()
    try:
        new = await a.create_key("zeta")
        assert (await b.authenticate(f"Bearer {new.key}")).team == "zeta"
        assert await a.revoke_key(new.key_id)
        with pytest.raises(Unauthorized, match="revoked"):
            await b.authenticate(f"Bearer {new.key}")
        with pytest.raises(Unauthorized, match="revoked"):
            await a.authenticate(f"Bearer {new.key}")
        assert not await a.revoke_key(new.key_id)      # already revoked
        await a.writer.flush(timeout=30.0)              # spooled admin records shipped into the chain
        bodies = await a.db.run(lambda c: c.execute(text("SELECT body FROM audit_log ORDER BY seq"))
                                .scalars().all())
    finally:
        await a.close()
        await b.close()
    kinds = [json.loads(b)["endpoint"] for b in bodies]
    assert kinds == ["key_created", "key_revoked"]     # admin events are audited (kind "admin")


async def test_revoke_waits_out_the_cache_lease_so_cached_keys_are_refused_next(store) -> None:  # type: ignore[no-untyped-def]
    a = await store.open()           # replicas keep their key rows cached (the default lease)
    b = await store.open()
    try:
        new = await b.create_key("cached")
        assert (await a.authenticate(f"Bearer {new.key}")).team == "cached"
        assert a.auth.cache.row(new.key_id) is not None                     # a now answers from its cache
        started = time.monotonic()
        await b.revoke_key(new.key_id)
        assert time.monotonic() - started >= a.settings.key_cache_lease_seconds   # revoke waits out the lease
        with pytest.raises(Unauthorized, match="revoked"):
            await a.authenticate(f"Bearer {new.key}")
        with pytest.raises(Unauthorized, match="revoked"):
            await b.authenticate(f"Bearer {new.key}")
    finally:
        await a.close()
        await b.close()


async def test_cached_keys_need_no_database_read(store, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    cached = await store.open()
    uncached = await store.open(key_cache_lease_seconds=0)
    try:
        new = await cached.create_key("hot")
        reads = {"cached": 0, "uncached": 0}
        for name, led in (("cached", cached), ("uncached", uncached)):
            query = led.auth.query

            async def counting(fn, afn, _name=name, _query=query):  # type: ignore[no-untyped-def]
                if fn is not keys.epoch:            # the background epoch poll is not a request's read
                    reads[_name] += 1
                return await _query(fn, afn)

            monkeypatch.setattr(led.auth, "query", counting)
        for _ in range(20):
            assert (await cached.authenticate(f"Bearer {new.key}")).team == "hot"
            assert (await uncached.authenticate(f"Bearer {new.key}")).team == "hot"
        assert reads["cached"] <= 2 and reads["uncached"] == 20
        with pytest.raises(Unauthorized):      # a wrong secret for a cached key id is still refused
            await cached.authenticate(f"Bearer {new.key}x")
    finally:
        await cached.close()
        await uncached.close()


async def test_a_change_made_directly_in_sql_reaches_the_cache(store) -> None:  # type: ignore[no-untyped-def]
    led = await store.open()
    try:
        new = await led.create_key("manual", rpm=5)
        assert (await led.authenticate(f"Bearer {new.key}")).rpm == 5
        await led.db.run(lambda c: c.execute(text("UPDATE api_keys SET rpm = 9 WHERE key_id = :k"),
                                             {"k": new.key_id}), write=True)
        await asyncio.sleep(revocation_wait(led.settings.key_cache_lease_seconds))
        assert (await led.authenticate(f"Bearer {new.key}")).rpm == 9
        await led.db.run(lambda c: c.execute(text("UPDATE api_keys SET revoked_at = 'now' WHERE key_id = :k"),
                                             {"k": new.key_id}), write=True)
        await asyncio.sleep(revocation_wait(led.settings.key_cache_lease_seconds))
        with pytest.raises(Unauthorized, match="revoked"):
            await led.authenticate(f"Bearer {new.key}")
    finally:
        await led.close()


async def test_team_limits_changed_on_one_replica_hold_on_the_other(store) -> None:  # type: ignore[no-untyped-def]
    a = await store.open()
    b = await store.open()
    try:
        new = await a.create_key("limits", rpm=1)
        assert (await a.authenticate(f"Bearer {new.key}")).team_rpm is None
        await b.set_team("limits", rpm=3, budget=1.5)
        p = await a.authenticate(f"Bearer {new.key}")
        assert (p.team_rpm, p.budget) == (3, 1.5)
    finally:
        await a.close()
        await b.close()


async def test_a_replica_that_cannot_confirm_its_cache_fails_closed(store, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    led = await store.open()
    try:
        new = await led.create_key("cut-off")
        assert (await led.authenticate(f"Bearer {new.key}")).team == "cut-off"

        async def down(fn, afn):  # type: ignore[no-untyped-def]
            raise ConnectionError("database unreachable")

        monkeypatch.setattr(led.auth, "query", down)
        await asyncio.sleep(revocation_wait(led.settings.key_cache_lease_seconds))
        with pytest.raises(ServiceUnavailable):
            await led.authenticate(f"Bearer {new.key}")
    finally:
        monkeypatch.undo()
        await led.close()

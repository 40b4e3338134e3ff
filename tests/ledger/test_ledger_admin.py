"""The service functions behind the admin API and the CLI, on SQLite and PostgreSQL: team tags,
roles and tier reach the Principal; keys expire, rotate (with a grace) and belong to a user; the
usage report groups by key as the usage table does by team; audit export ranges."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from nuri.errors import InvalidRequest, Unauthorized
from nuri.ledger import AuditRecord, Ledger
from nuri.ledger.audit.export import Range, export
from nuri.ledger.keys.admin import NotFound, expiry


async def test_team_settings_reach_the_principal_of_its_next_request(ledger: Ledger) -> None:
    new = await ledger.create_key("research")
    before = await ledger.authenticate(f"Bearer {new.key}")
    assert before.tags == frozenset() and before.latency_tier == "standard"
    info = await ledger.set_team("research", tags=["pipa-cross-border-consent", "lab"], roles=["admin"],
                                 latency_tier="interactive", budget=12.5, rpm=60, actor="admin-key")
    assert info.tags == ["lab", "pipa-cross-border-consent"] and info.budget == 12.5
    after = await ledger.authenticate(f"Bearer {new.key}")
    assert after.tags == {"pipa-cross-border-consent", "lab"} and after.roles == {"admin"}
    assert after.latency_tier == "interactive" and after.team_rpm == 60
    cleared = await ledger.set_team("research", tags=[], clear=("budget", "rpm"))
    assert cleared.tags == [] and cleared.budget is None and cleared.rpm is None and cleared.roles == ["admin"]
    with pytest.raises(InvalidRequest, match="latency_tier"):
        await ledger.set_team("research", latency_tier="warp")
    with pytest.raises(NotFound):
        await ledger.get_team("nobody")


async def test_keys_expire_and_per_user_keys_list_alone(ledger: Ledger) -> None:
    soon = await ledger.create_key("ops", user_id="kim.minji", expires_at="1s")
    other = await ledger.create_key("ops", user_id="lee.jun", expires_at=datetime.now(UTC) + timedelta(days=90))
    assert (await ledger.authenticate(f"Bearer {soon.key}")).key_id == soon.key_id
    await asyncio.sleep(2.1)                # stored to the second, rounded up: gone within 2 s
    with pytest.raises(Unauthorized) as refused:
        await ledger.authenticate(f"Bearer {soon.key}")
    assert refused.value.code == "key_expired"
    assert (await ledger.authenticate(f"Bearer {other.key}")).team == "ops"
    mine = await ledger.list_keys(team="ops", user_id="kim.minji")
    assert [(k.key_id, k.status()) for k in mine] == [(soon.key_id, "expired")]
    with pytest.raises(InvalidRequest, match="already past"):
        await ledger.create_key("ops", expires_at="2020-01-01T00:00:00Z")
    with pytest.raises(InvalidRequest):
        expiry("next tuesday")


async def test_rotation_keeps_the_old_key_for_its_grace_only(ledger: Ledger) -> None:
    old = await ledger.create_key("ops", user_id="lee.jun", rpm=30, models=["kr"], name="laptop")
    new = await ledger.rotate_key(old.key_id, grace_seconds=1, actor="admin-key")
    info = await ledger.get_key(new.key_id)
    assert (info.user_id, info.rpm, info.models, info.name) == ("lee.jun", 30, ["kr"], "laptop")
    assert (await ledger.authenticate(f"Bearer {old.key}")).key_id == old.key_id    # within the grace
    await asyncio.sleep(2.1)
    with pytest.raises(Unauthorized):
        await ledger.authenticate(f"Bearer {old.key}")
    assert (await ledger.authenticate(f"Bearer {new.key}")).key_id == new.key_id
    with pytest.raises(NotFound):
        await ledger.rotate_key(old.key_id)                 # expired keys are not rotated


def _request(team: str, key_id: str, deployment: str, cost: float) -> AuditRecord:
    return AuditRecord(request_id=f"req_{key_id}_{cost}", endpoint="chat", team=team, key_id=key_id,
                       deployment=deployment, prompt_tokens=10, completion_tokens=5, cost=cost)


async def test_usage_by_key_agrees_with_the_usage_table(ledger: Ledger) -> None:
    for team, key, dep, cost in (("a", "k1", "kr", 0.5), ("a", "k1", "kr", 0.25), ("a", "k2", "us", 1.0),
                                 ("b", "k3", "kr", 2.0)):
        await ledger.finish(None, _request(team, key, dep, cost))
    by_key = await ledger.usage_report(by=("team", "key"))
    assert [(r["team"], r["key_id"], r["requests"], r["cost"]) for r in by_key] == [
        ("a", "k1", 2, 0.75), ("a", "k2", 1, 1.0), ("b", "k3", 1, 2.0)]
    by_team = await ledger.usage_report(by=("team",))
    assert [(r["team"], r["requests"], r["cost"], r["prompt_tokens"]) for r in by_team] == [
        ("a", 3, 1.75, 30), ("b", 1, 2.0, 10)]
    assert all(r["currency"] == "USD" and set(r) >= {"team", "requests"} and "day" not in r for r in by_team)
    only = await ledger.usage_report(by=("deployment",), key_id="k1")
    assert [(r["deployment"], r["requests"]) for r in only] == [("kr", 2)]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert await ledger.usage_report(by=("day",), until="2000-01-01") == []
    assert (await ledger.usage_report(by=("day",), since=today))[0]["requests"] == 4
    with pytest.raises(InvalidRequest):
        await ledger.usage_report(by=("colour",))


async def test_export_ranges_by_seq_and_kind(ledger: Ledger) -> None:
    await ledger.create_key("a")                            # one admin record
    for i in range(3):
        await ledger.finish(None, _request("a", "k", "kr", float(i)))
    text, count = await ledger.export_audit("jsonl", Range(kinds=("request",), from_seq=3))
    seqs = [json.loads(line)["seq"] for line in text.splitlines()]
    assert count == 2 and seqs == [3, 4]
    await ledger.drain()

    def run(conn: object) -> str:
        out = io.StringIO()
        export(conn, out, "csv", span=Range(to_seq=2))       # type: ignore[arg-type]
        return out.getvalue()

    csv_text = await ledger.db.run_raw(run, snapshot=True)
    assert len(csv_text.strip().splitlines()) == 3          # the header and seq 1, 2

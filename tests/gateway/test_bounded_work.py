"""Bounded work (issue 14, item 4), against real `nuri serve` processes and recording upstreams.

A large body is classified off the event loop, so /healthz stays quick; text over the scan cap is
refused, or kept in the home country; a key's concurrent requests are capped; `n × max_tokens`
is capped per deployment and reserved in admission; an abandoned embedded request stops
generating; the embedded model's queue serves clients in turn.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest

from nuri.queueing import FairQueue, QueueFull
from support.processes import create_key, upstream_deployment

KOREAN = "개인정보 보호법에 따라 주민등록번호는 국내에서만 처리합니다. "


def _chat(text: str = "안녕하세요", **extra: Any) -> dict[str, Any]:
    return {"model": "default", "messages": [{"role": "user", "content": text}], **extra}


def _kr_us(kr: Any, us: Any, **sections: Any) -> dict[str, Any]:
    return {
        "deployments": [upstream_deployment(us, "us", jurisdiction="US", hosting="foreign_cloud"),
                        upstream_deployment(kr, "kr", jurisdiction="KR", hosting="domestic_cloud")],
        "aliases": {"default": ["us", "kr"]},
        "ledger": {"enabled": False},
        **sections,
    }


def test_healthz_answers_while_a_large_body_is_classified(gateway, upstream):
    gw = gateway({"deployments": [upstream_deployment(upstream, "kr", jurisdiction="KR", hosting="on_prem")],
                  "ledger": {"enabled": False},
                  "server": {"max_body_bytes": 8 << 20},
                  "privacy": {"max_scan_chars": 2_000_000}})
    big = _chat(KOREAN * (4_000_000 // len(KOREAN.encode())))
    done: dict[str, Any] = {}

    def send() -> None:
        started = time.perf_counter()
        done["status"] = httpx.post(gw.base_url + "/chat/completions", json=big, timeout=120).status_code
        done["seconds"] = time.perf_counter() - started

    sender = threading.Thread(target=send)
    sender.start()
    worst, probes = 0.0, 0                # probe from the start: the body is sent, then scanned
    with httpx.Client(timeout=10) as client:
        while sender.is_alive() and len(done) == 0:
            started = time.perf_counter()
            assert client.get(gw.root_url + "/healthz").status_code == 200
            worst = max(worst, time.perf_counter() - started)
            probes += 1
            time.sleep(0.005)
    sender.join(120)
    assert done["status"] == 200 and probes >= 3     # /healthz was asked while the body was in flight
    assert worst < 0.2, f"/healthz took {worst:.3f} s while a 4 MB body was classified"


def test_text_over_the_scan_cap_is_refused_with_the_limit(gateway, upstream):
    gw = gateway({"deployments": [upstream_deployment(upstream, "kr", jurisdiction="KR", hosting="on_prem")],
                  "ledger": {"enabled": False}, "privacy": {"max_scan_chars": 1000}})
    r = httpx.post(gw.base_url + "/chat/completions", json=_chat("가" * 1500), timeout=30)
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["code"] == "scan_limit_exceeded" and "1000" in err["message"] and "max_scan_chars" in err["message"]
    assert upstream.state.requests == []
    assert httpx.post(gw.base_url + "/chat/completions", json=_chat("가" * 900), timeout=30).status_code == 200
    explained = httpx.post(gw.base_url + "/nuri/explain", json=_chat("가" * 1500), timeout=30)
    assert explained.status_code == 413


def test_keep_home_routes_text_over_the_cap_only_to_the_home_country(gateway):
    from support.upstream_server import RunningUpstream

    with RunningUpstream() as kr, RunningUpstream() as us:
        gw = gateway(_kr_us(kr, us, privacy={"max_scan_chars": 1000, "over_limit": "keep_home"}))
        small = httpx.post(gw.base_url + "/chat/completions", json=_chat("hello"), timeout=30)
        assert small.headers["x-nuri-deployment"] == "us"          # preferred when scanned in full
        us.state.requests.clear()
        r = httpx.post(gw.base_url + "/chat/completions", json=_chat("a" * 1500), timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["x-nuri-deployment"] == "kr" and r.headers["x-nuri-jurisdiction"] == "KR"
        assert "text/x-nuri-over-scan-limit" in r.headers["x-nuri-unscanned"]
        assert us.state.requests == [] and len(kr.state.requests) == 1
        only_us = {**_kr_us(kr, us, privacy={"max_scan_chars": 1000, "over_limit": "keep_home"}),
                   "aliases": {"default": ["us"]}}
        gw2 = gateway(only_us)
        refused = httpx.post(gw2.base_url + "/chat/completions", json=_chat("a" * 1500), timeout=30)
        assert refused.status_code == 403 and us.state.requests == []


def test_concurrent_requests_per_key_are_capped_and_released(gateway, upstream, tmp_path):
    upstream.state.latency_ms = 600
    gw = gateway({"deployments": [upstream_deployment(upstream, "kr", jurisdiction="KR", hosting="on_prem")],
                  "server": {"max_concurrent_per_key": 2}}, data_dir=tmp_path / "data")
    key, other = create_key(tmp_path / "data", "a"), create_key(tmp_path / "data", "b")

    async def burst(k: str, n: int, stream: bool = False) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, headers={"authorization": f"Bearer {k}"}) as client:
            return list(await asyncio.gather(*[
                client.post(gw.base_url + "/chat/completions", json=_chat(stream=stream)) for _ in range(n)]))

    async def both() -> tuple[list[httpx.Response], list[httpx.Response]]:
        return await asyncio.gather(burst(key, 3), burst(other, 1))

    mine, theirs = asyncio.run(both())
    codes = sorted(r.status_code for r in mine)
    assert codes == [200, 200, 429] and theirs[0].status_code == 200      # per key, not global
    limited = next(r for r in mine if r.status_code == 429)
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["code"] == "concurrency_limit_exceeded"
    assert "max_concurrent_per_key" in limited.json()["error"]["message"]
    # abandoned streams give their slots back
    upstream.state.latency_ms, upstream.state.chunk_delay_ms = 0, 200
    for _ in range(2):
        with httpx.stream("POST", gw.base_url + "/chat/completions", json=_chat(stream=True), timeout=30,
                          headers={"authorization": f"Bearer {key}"}) as resp:
            assert resp.status_code == 200
            next(resp.iter_lines())
    time.sleep(0.5)
    upstream.state.chunk_delay_ms = 0
    assert [r.status_code for r in asyncio.run(burst(key, 2))] == [200, 200]


def test_n_times_max_tokens_is_capped_per_deployment_and_reserved(gateway, upstream, tmp_path):
    gw = gateway({"deployments": [upstream_deployment(upstream, "kr", jurisdiction="KR", hosting="on_prem",
                                                      max_output_tokens=2000)]}, data_dir=tmp_path / "data")
    key = create_key(tmp_path / "data", "t", "--tpm", "1500")
    auth = {"authorization": f"Bearer {key}"}

    def ask(**extra: Any) -> httpx.Response:
        return httpx.post(gw.base_url + "/chat/completions", json=_chat(**extra), headers=auth, timeout=30)

    r = ask(n=4, max_tokens=600)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "max_output_tokens_exceeded" and "2400" in err["message"] and "2000" in err["message"]
    # admission reserves 4 × 400 = 1,600 tokens, over the key's 1,500 a minute; one choice of 1,400 fits
    over = ask(n=4, max_tokens=400)
    assert over.status_code == 429, over.text
    assert ask(n=1, max_tokens=1400).status_code == 200
    assert len(upstream.state.requests) == 1


def test_fair_queue_serves_clients_in_turn() -> None:
    async def run() -> list[str]:
        queue = FairQueue(limit=16, per_client=3)
        order: list[str] = []
        release = asyncio.Event()

        async def job(client: str, name: str) -> None:
            async with queue.turn(client):
                order.append(name)
                if name == "a0":
                    await release.wait()
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(job("a", "a0"))]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(job("a", f"a{i}")) for i in (1, 2, 3)]
        await asyncio.sleep(0)
        tasks += [asyncio.create_task(job("b", "b0")), asyncio.create_task(job("c", "c0"))]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):           # a fifth waiting from one client
            async with queue.turn("a"):
                pass
        for i in (4, 5):
            tasks.append(asyncio.create_task(job("b", f"b{i - 3}")))
        await asyncio.sleep(0)
        gone = asyncio.create_task(job("d", "d0"))
        await asyncio.sleep(0)
        gone.cancel()                            # a client that left its place
        release.set()
        await asyncio.gather(*tasks)
        assert queue.waiting == 0
        return order

    assert asyncio.run(run()) == ["a0", "b0", "c0", "a1", "b1", "a2", "b2", "a3"]


@pytest.mark.model
def test_abandoned_embedded_request_stops_generating(embedded_gateway):
    """n=4 × 400 tokens, abandoned after a second: the next small request does not wait for it."""
    body = {"model": "default", "n": 4, "max_tokens": 400, "temperature": 1.0,
            "messages": [{"role": "user", "content": "Write a very long story about the sea."}]}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(embedded_gateway.base_url + "/chat/completions", json=body, timeout=1.5)
    started = time.perf_counter()
    reply = httpx.post(embedded_gateway.base_url + "/chat/completions", timeout=60, json={
        "model": "default", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 200
    assert time.perf_counter() - started < 10    # 1,600 tokens take well over a minute here

"""Live reload of the whole config on a real `nuri serve`: catalog, aliases, policy and routing.

A catalog edit + reload sends the next request to the new deployment while a stream that started
before it finishes, whole, on the old one; a file that fails to load changes nothing; SIGHUP
reloads as the endpoint does; both outcomes are audited.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import httpx
import yaml

from support.processes import upstream_deployment
from support.upstream_server import RunningUpstream

CHAT = {"model": "default", "messages": [{"role": "user", "content": "오늘 날씨 어때?"}]}
SLOW_REPLY = "느린 스트림의 마지막 조각까지 모두 도착해야 합니다. " * 3


def _config(*deployments: dict[str, Any], default: list[str]) -> dict[str, Any]:
    return {"deployments": list(deployments), "aliases": {"default": default}, "policy": {"packs": ["kr-pipa"]},
            "ledger": {"durability": "fsync"}}


def _stream(url: str, into: dict[str, Any], first: threading.Event) -> None:
    texts, models = [], set()
    with httpx.stream("POST", url, json={**CHAT, "stream": True}, timeout=60) as resp:
        into["deployment"] = resp.headers.get("x-nuri-deployment")
        for line in resp.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                into["done"] = True
                break
            chunk = json.loads(line[6:])
            models.add(chunk.get("model"))
            for choice in chunk.get("choices") or []:
                texts.append((choice.get("delta") or {}).get("content") or "")
            first.set()
    into["text"], into["models"] = "".join(texts), models


def _admin_kinds(gw: Any) -> list[str]:
    out = httpx.get(gw.root_url + "/v1/nuri/admin/audit/export", params={"kind": "admin"}, timeout=30)
    return [json.loads(line)["endpoint"] for line in out.text.splitlines()]


def test_catalog_edit_and_reload_route_the_next_request_while_an_old_stream_finishes(gateway: Any) -> None:
    with RunningUpstream() as old, RunningUpstream() as new:
        old.state.reply, old.state.chunk_chars, old.state.chunk_delay_ms = SLOW_REPLY, 4, 60   # ~2.5 s
        gw = gateway(_config(upstream_deployment(old, "old", jurisdiction="KR", hosting="on_prem"), default=["old"]))
        result: dict[str, Any] = {}
        first = threading.Event()
        streaming = threading.Thread(target=_stream, args=(gw.base_url + "/chat/completions", result, first))
        streaming.start()
        assert first.wait(10), "the stream never started"

        # the new file drops the old deployment altogether
        gw.config_path.write_text(yaml.safe_dump(
            _config(upstream_deployment(new, "new", jurisdiction="KR", hosting="on_prem"), default=["new"])))
        reloaded = httpx.post(gw.base_url + "/nuri/admin/reload", timeout=30)
        assert reloaded.status_code == 200, reloaded.text
        body = reloaded.json()
        assert body["added"] == ["new"] and body["removed"] == ["old"] and body["generation"] == 2
        nxt = httpx.post(gw.base_url + "/chat/completions", json=CHAT, timeout=30)
        assert nxt.status_code == 200 and nxt.headers["x-nuri-deployment"] == "new"
        assert streaming.is_alive(), "the stream ended before the reload: make it slower"

        streaming.join(30)
        assert result.get("done") is True, result
        assert result["deployment"] == "old" and result["models"] == {"old"}
        assert result["text"] == SLOW_REPLY                          # whole, on the old generation
        assert len(new.state.requests) == 1 and len(old.state.requests) == 1
        assert "config_reloaded" in _admin_kinds(gw)


def test_a_file_that_fails_to_load_changes_nothing_and_sighup_reloads(gateway: Any, upstream: Any) -> None:
    with RunningUpstream() as other:
        a = upstream_deployment(upstream, "a", jurisdiction="KR", hosting="on_prem")
        b = upstream_deployment(other, "b", jurisdiction="KR", hosting="on_prem")
        gw = gateway(_config(a, default=["a"]))
        gw.config_path.write_text(yaml.safe_dump(_config(a, default=["a", "missing"])))
        failed = httpx.post(gw.base_url + "/nuri/admin/reload", timeout=30)
        assert failed.status_code == 400 and failed.json()["error"]["code"] == "config_invalid"
        assert "missing" in failed.json()["error"]["message"]
        assert httpx.post(gw.base_url + "/chat/completions", json=CHAT, timeout=30).headers["x-nuri-deployment"] == "a"

        gw.config_path.write_text(yaml.safe_dump(_config(a, b, default=["b"])))
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            catalog = httpx.get(gw.root_url + "/v1/nuri/admin/catalog", timeout=30).json()
            if catalog["generation"] == 2:
                break
            time.sleep(0.1)
        assert catalog["generation"] == 2 and catalog["aliases"]["default"] == ["b"]
        assert httpx.post(gw.base_url + "/chat/completions", json=CHAT, timeout=30).headers["x-nuri-deployment"] == "b"
        kinds = _admin_kinds(gw)
        assert "config_reload_failed" in kinds and kinds[-1] == "config_reloaded"


def test_mixed_currencies_without_a_rate_refuse_the_reload_naming_the_deployment(gateway: Any, upstream: Any) -> None:
    usd = upstream_deployment(upstream, "usd", price={"input_per_mtok": 1.0, "output_per_mtok": 2.0})
    gw = gateway(_config(usd, default=["usd"]))
    krw = upstream_deployment(upstream, "clova", jurisdiction="KR", hosting="domestic_cloud",
                              price={"input_per_mtok": 1500, "output_per_mtok": 3000, "currency": "KRW"})
    gw.config_path.write_text(yaml.safe_dump(_config(usd, krw, default=["usd"])))
    failed = httpx.post(gw.base_url + "/nuri/admin/reload", timeout=30)
    assert failed.status_code == 400 and "clova" in failed.json()["error"]["message"]
    assert httpx.get(gw.root_url + "/v1/nuri/admin/catalog", timeout=30).json()["generation"] == 1

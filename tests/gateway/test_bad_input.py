"""Bad input gets a clear OpenAI-shaped error, and the next request still works."""

from __future__ import annotations

import httpx
import pytest

from support.processes import upstream_deployment

GOOD = {"model": "default", "messages": [{"role": "user", "content": "안녕"}]}


@pytest.fixture(scope="module")
def gw(module_upstream, module_gateway):
    config = {"deployments": [upstream_deployment(module_upstream, "up", jurisdiction="KR", hosting="on_prem")],
              "server": {"max_body_bytes": 64 * 1024}, "ledger": {"enabled": False}}
    return module_gateway(config)


def _post(gw, content: bytes, headers: dict | None = None, path: str = "/chat/completions") -> httpx.Response:
    return httpx.post(gw.base_url + path, content=content,
                      headers={"Content-Type": "application/json", **(headers or {})}, timeout=10)


def _assert_error(resp: httpx.Response, status: int, fragment: str) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert fragment in err["message"], err
    return err


CASES = [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe{\"model\": \"x\"}", 400, "not valid UTF-8"),
    (b'{"model": "default", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}', 400, "UTF-8"),
    (b"[1, 2]", 400, "JSON object"),
    (b"", 400, "empty"),
    (b'{"model": "default"}', 400, "messages"),
    (b'{"model": "default", "messages": []}', 400, "messages"),
    (b'{"model": "default", "messages": [{"role": "user", "content": 5}]}', 400, "messages.0.content"),
    (b'{"model": "default", "messages": [{"role": "robot", "content": "x"}]}', 400, "messages.0.role"),
    (b'{"model": "default", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', 400,
     "temperature"),
    (b'{"model": "default", "messages": [{"role": "user", "content": "x"}], "max_tokens": -3}', 400, "max_tokens"),
    (b'{"model": "default", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400, "stream"),
    (b'{"model": 42, "messages": [{"role": "user", "content": "x"}]}', 400, "model"),
]


@pytest.mark.parametrize("content,status,fragment", CASES)
def test_bad_bodies(gw, content, status, fragment):
    _assert_error(_post(gw, content), status, fragment)
    assert _post(gw, httpx.Request("POST", "/", json=GOOD).content).status_code == 200


def test_body_over_limit_is_413(gw):
    big = b'{"model": "default", "messages": [{"role": "user", "content": "' + b"a" * 100_000 + b'"}]}'
    _assert_error(_post(gw, big), 413, "limit")
    chunked = httpx.post(gw.base_url + "/chat/completions", content=iter([big[:50_000], big[50_000:]]),
                         headers={"Content-Type": "application/json"}, timeout=10)
    _assert_error(chunked, 413, "limit")
    assert _post(gw, httpx.Request("POST", "/", json=GOOD).content).status_code == 200


def test_unknown_model_is_404_listing_models(gw):
    err = _assert_error(_post(gw, b'{"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}'), 404,
                        "gpt-9")
    assert err["code"] == "model_not_found" and "up" in err["message"] and "default" in err["message"]


def test_unknown_route_and_method(gw):
    _assert_error(httpx.get(gw.base_url + "/nothing-here"), 404, "no route")
    _assert_error(httpx.get(gw.base_url + "/chat/completions"), 405, "not allowed")


def test_health_and_ready(gw):
    assert httpx.get(gw.root_url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gw.root_url + "/readyz").json()
    assert ready["deployments"] == {"up": True}


def test_invalid_config_stops_startup_naming_the_field(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("deployments:\n  - id: x\n    provider: openai_compatible\n    base_url: http://127.0.0.1:1/v1\n"
                   "    jurisdiction: Korea\n    hosting: on_prem\n")
    out = subprocess.run([sys.executable, "-m", "nuri", "serve", "--config", str(bad), "--data-dir",
                          str(tmp_path / "d"), "--port", "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "deployments[0](id=x).jurisdiction" in out.stderr.replace("\n", "")


def test_refuses_to_run_open_on_a_reachable_address(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "open.yaml"
    cfg.write_text("deployments:\n  - {id: x, provider: openai_compatible, base_url: 'http://127.0.0.1:9/v1',"
                   " jurisdiction: KR, hosting: on_prem}\nledger: {enabled: false}\n")
    out = subprocess.run([sys.executable, "-m", "nuri", "serve", "--config", str(cfg), "--host", "0.0.0.0",
                          "--port", "0", "--data-dir", str(tmp_path / "d")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "refuses" in out.stderr and "nuri keys create" in out.stderr

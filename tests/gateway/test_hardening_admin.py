"""Flooding and the admin surface (issue 14, items 5 and 7), against real `nuri serve` processes.

Each test is one case from the issue: junk keys no longer add a chained audit row each and are
limited per client address; a model name outside the catalog is neither stored nor a metrics
label; the admin routes answer a non-ASCII header with 401 and stop trusting loopback once team
keys exist; /v1/models and explain stay inside a key's allow-list, and explain is audited and
rate-limited; the SQLite files are private; uncaught errors log their type only.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import stat
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.processes import GatewayProcess, create_key, upstream_deployment

RRN = "900101-1234568"
CHAT = {"model": "default", "messages": [{"role": "user", "content": "안녕하세요"}]}


def _config(kr: Any, us: Any, **ledger: Any) -> dict[str, Any]:
    return {
        "deployments": [upstream_deployment(kr, "kr", jurisdiction="KR", hosting="on_prem"),
                        upstream_deployment(us, "us", jurisdiction="US", hosting="foreign_cloud")],
        "aliases": {"default": ["kr", "us"]},
        "ledger": {"durability": "fsync", **ledger},
    }


def _bodies(data_dir: Path) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(data_dir / "nuri.db")) as conn:
        return [json.loads(row[0]) for row in conn.execute("SELECT body FROM audit_log ORDER BY seq")]


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    if code is not None:
        assert err["code"] == code, err
    return err


@pytest.fixture(scope="module")
def upstreams():
    from support.upstream_server import RunningUpstream

    with RunningUpstream() as kr, RunningUpstream() as us:
        yield kr, us


@pytest.fixture(scope="module")
def keyed(upstreams, tmp_path_factory):
    """One gateway with team keys: a full key, a key limited to `kr` with rpm 5, an admin-role key."""
    kr, us = upstreams
    workdir = tmp_path_factory.mktemp("keyed")
    data = workdir / "data"
    keys = {"full": create_key(data, "full"), "narrow": create_key(data, "narrow", "--models", "kr", "--rpm", "5"),
            "admin": create_key(data, "ops")}
    with contextlib.closing(sqlite3.connect(data / "nuri.db")) as conn, conn:     # commits, then closes
        conn.execute("UPDATE teams SET roles = ? WHERE name = 'ops'", (json.dumps(["admin"]),))
    proc = GatewayProcess(workdir, _config(kr, us), env={"NURI_ADMIN_KEY": ""}, data_dir=data)
    with proc:
        yield proc, keys


# --- item 5: flooding ------------------------------------------------------------------------------

def test_junk_keys_are_limited_and_summarised_not_chained(upstreams, tmp_path):
    kr, us = upstreams
    data = tmp_path / "data"
    create_key(data, "t")
    cfg = _config(kr, us, auth_failure_limit=20, auth_failure_window_seconds=4)
    with GatewayProcess(tmp_path, cfg, data_dir=data) as gw, httpx.Client(timeout=10) as client:
        before = len(_bodies(data))
        # wait for the start of a fresh window so all 200 requests fall into one
        time.sleep(4 - time.time() % 4 + 0.05)
        statuses = []
        for i in range(200):
            resp = client.post(gw.base_url + "/chat/completions", json=CHAT, headers=_auth(f"junk-{i}"))
            statuses.append(resp.status_code)
        assert statuses[:20] == [401] * 20
        assert set(statuses[20:]) == {429}
        limited = client.post(gw.base_url + "/chat/completions", json=CHAT, headers=_auth("junk"))
        err = _error(limited, 429, "too_many_auth_failures")
        assert err["type"] == "rate_limit_error" and 1 <= int(limited.headers["retry-after"]) <= 4
        metrics = client.get(gw.root_url + "/metrics", headers=_auth("junk")).status_code
        assert metrics == 429                             # the admin routes share the limit
        assert len(_bodies(data)) == before               # no chained row per refused key
        time.sleep(4 - time.time() % 4 + 0.2)             # the window ends: the address may try again
        assert client.post(gw.base_url + "/chat/completions", json=CHAT,
                           headers=_auth("junk")).status_code == 401
        deadline = time.monotonic() + 15
        summaries: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not summaries:
            summaries = [b for b in _bodies(data) if b["endpoint"] == "auth_failures"]
            time.sleep(0.2)
        assert len(summaries) == 1, summaries
        detail = summaries[0]["detail"]
        assert detail["failures"] == 202 and detail["reason_malformed"] == 20
        assert detail["reason_rate_limited"] == 182
        assert "127.0.0.1" not in json.dumps(summaries[0]) and len(detail["client"]) == 32
        assert not [b for b in _bodies(data) if b.get("status") == 401]


def test_model_names_outside_the_catalog_are_neither_stored_nor_labels(upstreams, tmp_path):
    kr, us = upstreams
    cfg = _config(kr, us)
    cfg["ledger"] = {"durability": "process"}
    with GatewayProcess(tmp_path, cfg) as gw, httpx.Client(timeout=10) as client:
        pii = client.post(gw.base_url + "/chat/completions",
                          json={**CHAT, "model": f"주민번호 {RRN}"})
        _error(pii, 404, "model_not_found")
        assert client.post(gw.base_url + "/chat/completions", json=CHAT).status_code == 200
        size = len(client.get(gw.root_url + "/metrics").content)
        for i in range(2000):
            client.post(gw.base_url + "/chat/completions", json={**CHAT, "model": f"invented-model-{i}"})
        metrics = client.get(gw.root_url + "/metrics").text
        assert RRN not in metrics and "invented-model" not in metrics
        assert 'gen_ai_request_model="<unknown>"' in metrics
        assert len(metrics) < size + 8_000                # the same series, higher counts
        spool = b"".join(p.read_bytes() for p in (gw.data_dir / "audit-spool").rglob("*") if p.is_file())
        assert RRN.encode() not in spool
    bodies = _bodies(gw.data_dir)
    assert len(bodies) == 2002
    assert RRN not in json.dumps(bodies, ensure_ascii=False)
    assert {b["model_requested"] for b in bodies} == {"<unknown>", "default"}


# --- item 7: the admin surface -------------------------------------------------------------------

def test_non_ascii_authorization_on_admin_routes_is_401(keyed):
    gw, _ = keyed
    for value in ("Bearer 관리자키".encode(), b"Bearer \xff\xfe", "관리자".encode()):
        _error(httpx.get(gw.root_url + "/metrics", headers={"Authorization": value}), 401)
        _error(httpx.post(gw.base_url + "/nuri/admin/reload", headers={"Authorization": value}), 401)
    assert "Traceback" not in gw.log()


def test_non_ascii_authorization_with_an_admin_key_set(upstreams, tmp_path):
    kr, us = upstreams
    with GatewayProcess(tmp_path, _config(kr, us), env={"NURI_ADMIN_KEY": "admin-secret-0123456789"}) as gw:
        _error(httpx.get(gw.root_url + "/metrics", headers={"Authorization": "Bearer 관리자".encode()}), 401)
        assert httpx.get(gw.root_url + "/metrics", headers=_auth("admin-secret-0123456789")).status_code == 200


def test_loopback_without_a_key_is_refused_once_team_keys_exist(keyed):
    gw, keys = keyed
    _error(httpx.get(gw.root_url + "/metrics"), 401, "admin_required")
    _error(httpx.post(gw.base_url + "/nuri/admin/reload"), 401, "admin_required")
    _error(httpx.get(gw.root_url + "/metrics", headers=_auth(keys["full"])), 403, "admin_required")
    _error(httpx.get(gw.root_url + "/metrics", headers=_auth("nuri-000000000000-nope")), 401)
    assert httpx.get(gw.root_url + "/metrics", headers=_auth(keys["admin"])).status_code == 200


def test_loopback_still_opens_admin_routes_while_no_key_exists(upstreams, tmp_path):
    kr, us = upstreams
    with GatewayProcess(tmp_path, _config(kr, us), env={"NURI_ADMIN_KEY": ""}) as gw:
        assert httpx.get(gw.root_url + "/metrics").status_code == 200


def test_models_list_stays_inside_the_allow_list(keyed):
    gw, keys = keyed
    narrow = httpx.get(gw.base_url + "/models", headers=_auth(keys["narrow"])).json()
    assert [m["id"] for m in narrow["data"]] == ["kr"]
    full = httpx.get(gw.base_url + "/models", headers=_auth(keys["full"])).json()
    assert {m["id"] for m in full["data"]} == {"kr", "us", "default"}


def test_explain_stays_inside_the_allow_list_and_is_audited_and_limited(keyed):
    gw, keys = keyed
    body = {"model": "kr", "messages": [{"role": "user", "content": "오늘 날씨"}]}
    before = len(_bodies(gw.data_dir))
    view = httpx.post(gw.base_url + "/nuri/explain", json=body, headers=_auth(keys["narrow"]))
    assert view.status_code == 200, view.text
    assert [d["id"] for d in view.json()["deployments"]] == ["kr"]
    records = _bodies(gw.data_dir)[before:]
    assert [(r["endpoint"], r["team"], r["status"]) for r in records] == [("explain", "narrow", 200)]
    _error(httpx.post(gw.base_url + "/nuri/explain", json={**body, "model": "us"}, headers=_auth(keys["narrow"])),
           403, "model_not_allowed")
    full = httpx.post(gw.base_url + "/nuri/explain", json=body, headers=_auth(keys["full"])).json()
    assert {d["id"] for d in full["deployments"]} == {"kr", "us"}
    statuses = [httpx.post(gw.base_url + "/nuri/explain", json=body, headers=_auth(keys["narrow"])).status_code
                for _ in range(6)]
    assert 429 in statuses                                # rpm 5 for this key, explain included


def test_sqlite_files_are_private(keyed):
    gw, keys = keyed
    assert httpx.post(gw.base_url + "/chat/completions", json=CHAT, headers=_auth(keys["full"])).status_code == 200
    files = [gw.data_dir / name for name in ("nuri.db", "nuri.db-wal", "nuri.db-shm")]
    for path in files:
        assert path.exists(), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))


BOOM = """
import sys
import nuri.gateway.app as gateway_app
from starlette.routing import Route

original = gateway_app.create_app


async def boom(request):
    raise ValueError("주민번호 {rrn} quoted from a request")


def create_app(*args, **kwargs):
    app = original(*args, **kwargs)
    app.router.routes.append(Route("/boom", boom))
    return app


gateway_app.create_app = create_app
from nuri.cli import main
sys.argv = ["nuri", *sys.argv[1:]]
main()
"""


def test_uncaught_errors_log_their_type_only(upstreams, tmp_path):
    kr, us = upstreams
    script = tmp_path / "boom_serve.py"
    script.write_text(BOOM.replace("{rrn}", RRN), encoding="utf-8")

    class Boom(GatewayProcess):
        def command(self) -> list[str]:
            return [sys.executable, str(script), *super().command()[3:]]

    with Boom(tmp_path, _config(kr, us)) as gw:
        resp = httpx.get(gw.root_url + "/boom")
        _error(resp, 500, "internal_error")
        time.sleep(0.3)
        log = gw.log()
    assert "ValueError" in log
    assert RRN not in log and "Traceback" not in log and "quoted from a request" not in log


def test_failure_counts_stay_bounded_in_memory():
    from nuri.ledger.keys.failures import OTHER, AuthFailures

    book = AuthFailures(limit=3, window_seconds=60, max_clients=100)
    for i in range(5000):
        book.note(f"10.0.{i // 256}.{i % 256}", "invalid", now=120.0)
    assert len(book._open) == 101                         # 100 addresses and "other"
    assert book.retry_after("10.0.0.1", now=130.0) is None
    for _ in range(3):
        book.note("10.0.0.1", "invalid", now=130.0)
    assert book.retry_after("10.0.0.1", now=130.0) == 50
    assert book.retry_after("10.0.0.1", now=180.5) is None      # the next window
    windows = book.take(now=180.5)
    assert sum(w.total for w in windows) == 5003 and any(w.client == OTHER for w in windows)
    assert book.take(now=180.5) == []

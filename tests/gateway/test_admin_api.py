"""The admin API against a real `nuri serve`: teams, keys, usage, audit, catalog and policy.

What an operator would notice: a team tagged through the API gets the policy its tag selects on
its very next request; a key with an expiry stops working; rotation and revocation hold; usage
comes back per key as JSON and CSV; every change is an audit record naming who made it; the CLI
reads and writes the same store; the OpenAPI document describes the routes that exist.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from support.processes import create_key, upstream_deployment

ADMIN = "admin-secret-for-tests"
PHONE = "010-2345-6789"
CHAT = {"model": "default", "messages": [{"role": "user", "content": f"제 전화번호는 {PHONE} 입니다. 회신 부탁해요."}]}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def admin_gw(upstream: Any, gateway: Any) -> Any:
    """One foreign deployment under kr-pipa: personal data reaches it only masked, unless the
    team's tag selects the cross-border consent rule."""
    config = {"deployments": [upstream_deployment(upstream, "us", jurisdiction="US", hosting="foreign_cloud")],
              "policy": {"packs": ["kr-pipa"]}, "ledger": {"durability": "fsync"}}
    return gateway(config, env={"NURI_ADMIN_KEY": ADMIN})


def _admin(gw: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, gw.root_url + "/v1/nuri/admin" + path, headers=_auth(ADMIN), timeout=30, **kwargs)


def _audit(gw: Any) -> list[dict[str, Any]]:
    out = _admin(gw, "GET", "/audit/export", params={"kind": "admin"})
    assert out.status_code == 200, out.text
    return [json.loads(line) for line in out.text.splitlines()]


def test_a_tag_set_through_the_api_selects_its_policy_on_the_next_request(admin_gw: Any, upstream: Any) -> None:
    key = create_key(admin_gw.data_dir, "research")
    before = httpx.post(admin_gw.base_url + "/chat/completions", json=CHAT, headers=_auth(key), timeout=30)
    assert before.status_code == 200, before.text
    assert before.headers["x-nuri-action"] == "pseudonymize"
    assert PHONE not in upstream.received_bodies()[-1]

    tagged = _admin(admin_gw, "PUT", "/teams/research", json={"tags": ["pipa-cross-border-consent"],
                                                               "latency_tier": "batch"})
    assert tagged.status_code == 200, tagged.text
    assert tagged.json()["tags"] == ["pipa-cross-border-consent"] and tagged.json()["latency_tier"] == "batch"

    after = httpx.post(admin_gw.base_url + "/chat/completions", json=CHAT, headers=_auth(key), timeout=30)
    assert after.status_code == 200, after.text
    assert after.headers["x-nuri-action"] == "allow"
    assert "pipa-cross-border-consent" in after.headers["x-nuri-policy"]
    assert PHONE in upstream.received_bodies()[-1]

    change = [r for r in _audit(admin_gw) if r["endpoint"] == "team_updated"]
    assert change and change[-1]["team"] == "admin-key"               # who made the change
    assert change[-1]["detail"]["tags"] == ["pipa-cross-border-consent"]
    listed = subprocess.run([sys.executable, "-m", "nuri", "teams", "list", "--json", "--data-dir",
                             str(admin_gw.data_dir)], capture_output=True, text=True, timeout=60, env=admin_gw.env)
    assert {"name": "research", "tags": ["pipa-cross-border-consent"]}.items() <= next(
        t for t in json.loads(listed.stdout) if t["name"] == "research").items()


def test_keys_expire_rotate_and_revoke(admin_gw: Any) -> None:
    create_key(admin_gw.data_dir, "ops")                       # a key exists: loopback alone is no longer enough
    made = _admin(admin_gw, "POST", "/keys", json={"team": "ops", "user_id": "kim.minji", "expires_at": "3s"})
    assert made.status_code == 200, made.text
    short = made.json()
    assert short["user_id"] == "kim.minji" and short["expires_at"]
    assert httpx.post(admin_gw.base_url + "/chat/completions", json=CHAT, headers=_auth(short["key"]),
                      timeout=30).status_code == 200
    time.sleep(4.1)                                            # expiry is kept to the second, rounded up
    expired = httpx.post(admin_gw.base_url + "/chat/completions", json=CHAT, headers=_auth(short["key"]), timeout=30)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "key_expired", expired.text
    listed = _admin(admin_gw, "GET", "/keys", params={"team": "ops", "user_id": "kim.minji"}).json()["data"]
    assert [(k["key_id"], k["status"]) for k in listed] == [(short["key_id"], "expired")]

    long = _admin(admin_gw, "POST", "/keys", json={"team": "ops", "user_id": "lee.jun"}).json()
    rotated = _admin(admin_gw, "POST", f"/keys/{long['key_id']}/rotate", json={})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["user_id"] == "lee.jun" and new["key_id"] != long["key_id"]
    old_reply = httpx.post(admin_gw.base_url + "/chat/completions", json=CHAT, headers=_auth(long["key"]), timeout=30)
    assert old_reply.status_code == 401 and old_reply.json()["error"]["code"] == "revoked_api_key"
    assert httpx.post(admin_gw.base_url + "/chat/completions", json=CHAT, headers=_auth(new["key"]),
                      timeout=30).status_code == 200
    revoked = _admin(admin_gw, "POST", f"/keys/{new['key_id']}/revoke")
    assert revoked.json() == {"key_id": new["key_id"], "revoked": True}
    assert httpx.post(admin_gw.base_url + "/chat/completions", json=CHAT, headers=_auth(new["key"]),
                      timeout=30).status_code == 401
    missing = _admin(admin_gw, "POST", "/keys/0123456789ab/revoke")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "key_not_found"

    kinds = [r["endpoint"] for r in _audit(admin_gw)]
    assert {"key_created", "key_rotated", "key_revoked"} <= set(kinds)


def test_only_admins_reach_it_and_an_admin_team_key_is_named_in_the_record(admin_gw: Any) -> None:
    user = create_key(admin_gw.data_dir, "plain")
    refused = httpx.get(admin_gw.root_url + "/v1/nuri/admin/teams", headers=_auth(user), timeout=30)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_required"
    assert httpx.get(admin_gw.root_url + "/v1/nuri/admin/teams", timeout=30).status_code == 401

    assert _admin(admin_gw, "PUT", "/teams/platform", json={"roles": ["admin"]}).status_code == 200
    made = _admin(admin_gw, "POST", "/keys", json={"team": "platform"}).json()
    by_team_key = httpx.put(admin_gw.root_url + "/v1/nuri/admin/teams/plain", json={"budget": 5, "rpm": 100},
                            headers=_auth(made["key"]), timeout=30)
    assert by_team_key.status_code == 200, by_team_key.text
    record = [r for r in _audit(admin_gw) if r["endpoint"] == "team_updated"][-1]
    assert record["team"] == f"key:{made['key_id']}"
    bad = _admin(admin_gw, "PUT", "/teams/plain", json={"latency_tier": "warp", "unknown": 1})
    assert bad.status_code == 400 and set(bad.json()["error"]) == {"message", "type", "param", "code"}


def test_usage_per_key_as_json_and_csv_and_audit_ranges(admin_gw: Any) -> None:
    a, b = create_key(admin_gw.data_dir, "sales"), create_key(admin_gw.data_dir, "sales")
    for key, times in ((a, 2), (b, 1)):
        for _ in range(times):
            assert httpx.post(admin_gw.base_url + "/chat/completions", json=CHAT, headers=_auth(key),
                              timeout=30).status_code == 200
    report = _admin(admin_gw, "GET", "/usage", params={"by": "team,key", "team": "sales"})
    assert report.status_code == 200, report.text
    rows = report.json()["data"]
    assert sorted(r["requests"] for r in rows) == [1, 2] and all(r["team"] == "sales" for r in rows)
    assert report.json()["currency"] == "USD"
    as_csv = _admin(admin_gw, "GET", "/usage", params={"by": "day,deployment", "format": "csv"})
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert [r["deployment"] for r in table] == ["us"] and int(table[0]["requests"]) == 3

    verify = _admin(admin_gw, "GET", "/audit/verify").json()
    assert verify["ok"] is True and verify["checked"] >= 3
    head = verify["head_seq"]
    ranged = _admin(admin_gw, "GET", "/audit/export", params={"from_seq": head - 1, "to_seq": head, "format": "csv"})
    lines = list(csv.DictReader(io.StringIO(ranged.text)))
    assert [int(r["seq"]) for r in lines] == [head - 1, head] and ranged.headers["x-nuri-records"] == "2"
    cli = subprocess.run([sys.executable, "-m", "nuri", "usage", "--by", "team,key", "--team", "sales", "--format",
                          "json", "--data-dir", str(admin_gw.data_dir)], capture_output=True, text=True, timeout=60,
                         env=admin_gw.env)
    assert json.loads(cli.stdout) == rows                       # one implementation behind both


def test_catalog_policy_and_openapi_describe_what_runs(admin_gw: Any) -> None:
    catalog = _admin(admin_gw, "GET", "/catalog").json()
    assert [d["id"] for d in catalog["deployments"]] == ["us"] and catalog["generation"] == 1
    assert "base_url" not in catalog["deployments"][0] and "api_key" not in catalog["deployments"][0]
    policy = _admin(admin_gw, "GET", "/policy").json()
    assert policy["packs"] == ["kr-pipa"] and "pipa-cross-border-consent" in [r["id"] for r in policy["rules"]]

    spec = httpx.get(admin_gw.root_url + "/v1/nuri/openapi.json", timeout=30).json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path, method in (("/v1/nuri/admin/teams/{team}", "put"), ("/v1/nuri/admin/keys", "post"),
                         ("/v1/nuri/admin/keys/{key_id}/rotate", "post"), ("/v1/nuri/admin/usage", "get"),
                         ("/v1/nuri/admin/audit/export", "get"), ("/v1/nuri/admin/reload", "post")):
        assert method in paths[path], path
    body_ref = paths["/v1/nuri/admin/keys"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    key_create = spec["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert {"team", "user_id", "expires_at", "models"} <= set(key_create["properties"])
    # every documented route answers (not 404/405) for an admin
    for path, ops in paths.items():
        if "{" in path or "get" not in ops:
            continue
        assert _admin(admin_gw, "GET", path.removeprefix("/v1/nuri/admin")).status_code == 200, path

"""Responses API state in the ledger's database: redacted, team-bound, deletable, written behind.

A real `nuri serve` with the ledger on writes stored responses to its SQLite file; the file itself
is the evidence of what Nuri keeps. Rows are written in batches a moment after the answer, so the
tests wait for them; a follow-up on the same gateway never has to (it reads the pending rows).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from support.boundary import FAMILIES, reset_upstream
from support.processes import upstream_deployment
from support.stored_responses import stored_rows
from support.upstream_server import RunningUpstream

RRN, PHONE = FAMILIES["KR_RRN"], FAMILIES["PHONE"]


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=30)


def start(gateway: Any, upstream: RunningUpstream, **extra: Any) -> Any:
    reset_upstream(upstream)
    config = {"deployments": [upstream_deployment(upstream, "kr", jurisdiction="KR", hosting="on_prem")],
              "aliases": {"default": ["kr"]}, "ledger": {"enabled": True}, **extra}
    return gateway(config)


def sent_roles(upstream: RunningUpstream) -> list[str]:
    return [m["role"] for m in json.loads(upstream.received_bodies()[-1])["messages"]]


def test_state_in_the_ledger_database_is_redacted_team_bound_and_deletable(
        gateway: Any, upstream: RunningUpstream, tmp_path: Path) -> None:
    gw = start(gateway, upstream, conversations={"retention_days": 7})
    oa = client(gw.base_url)
    first = oa.responses.create(model="default", input=PHONE.text(PHONE.value))
    second = oa.responses.create(model="default", input="다음 단계는?", previous_response_id=first.id)
    assert sent_roles(upstream) == ["user", "assistant", "user"]
    assert oa.responses.retrieve(second.id).id == second.id
    rows = stored_rows(gw.data_dir / "nuri.db", 2)
    assert len(rows) == 2
    for _id, body, ttl in rows:
        assert PHONE.value not in body and "<PHONE_REDACTED>" in body
        assert abs(ttl - 7 * 86400) < 1
    oa.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        oa.responses.retrieve(second.id)
    r = httpx.get(f"{gw.base_url}/responses/{first.id}", timeout=10)
    assert r.status_code == 200 and PHONE.value not in r.text


def test_a_value_split_across_input_parts_is_not_kept(gateway: Any, upstream: RunningUpstream) -> None:
    """Only the request's classification sees the two halves as one RRN (a scan of each string
    alone finds nothing); stored state is redacted from that classification, so neither half stays."""
    gw = start(gateway, upstream)
    left, right = "주민등록번호는 900101-", "1234568 입니다."
    first = client(gw.base_url).responses.create(model="default", input=[{"role": "user", "content": [
        {"type": "input_text", "text": left}, {"type": "input_text", "text": right}]}])
    [(_id, body, _ttl)] = stored_rows(gw.data_dir / "nuri.db", 1)
    assert _id == first.id
    assert "900101" not in body and "1234568" not in body
    assert body.count("<KR_RRN_REDACTED>") == 2 and "입니다." in body    # the rest of the text is kept


def test_with_policy_off_stored_state_is_still_redacted(gateway: Any, upstream: RunningUpstream) -> None:
    """Nothing is classified with policy off, so the store scans what it keeps itself."""
    gw = start(gateway, upstream, policy={"enabled": False})
    oa = client(gw.base_url)
    first = oa.responses.create(model="default", input=RRN.text(RRN.value), instructions=PHONE.text(PHONE.value))
    [(_id, body, _ttl)] = stored_rows(gw.data_dir / "nuri.db", 1)
    assert RRN.value not in body and PHONE.value not in body
    assert "<KR_RRN_REDACTED>" in body and "<PHONE_REDACTED>" in body
    again = oa.responses.create(model="default", input="계속", previous_response_id=first.id)
    assert again.status == "completed" and RRN.value not in upstream.received_bodies()[-1]


def test_a_response_deleted_before_it_is_written_never_comes_back(gateway: Any, upstream: RunningUpstream) -> None:
    gw = start(gateway, upstream)
    oa = client(gw.base_url)
    kept = oa.responses.create(model="default", input="첫 번째")
    gone = oa.responses.create(model="default", input="두 번째")
    oa.responses.delete(gone.id)                       # at once: still waiting to be written
    time.sleep(0.3)                                    # more than one batch interval later
    rows = stored_rows(gw.data_dir / "nuri.db", 1)
    assert [r[0] for r in rows] == [kept.id]
    with pytest.raises(openai.NotFoundError):
        oa.responses.retrieve(gone.id)
    with pytest.raises(openai.NotFoundError):
        oa.responses.create(model="default", input="이어서", previous_response_id=gone.id)


def test_pending_responses_are_written_when_the_gateway_stops(gateway: Any, upstream: RunningUpstream) -> None:
    gw = start(gateway, upstream)
    ids = [client(gw.base_url).responses.create(model="default", input=f"질문 {i}").id for i in range(3)]
    gw.stop()
    with contextlib.closing(sqlite3.connect(gw.data_dir / "nuri.db")) as db:
        written = {r[0] for r in db.execute("SELECT id FROM nuri_conversations")}
    assert written == set(ids)


def test_input_items_list_what_a_response_was_generated_from_redacted_newest_first_and_paged(
        gateway: Any, upstream: RunningUpstream) -> None:
    gw = start(gateway, upstream)
    oa = client(gw.base_url)
    first = oa.responses.create(model="default", input=PHONE.text(PHONE.value))
    second = oa.responses.create(model="default", input=[{"role": "user", "content": "다음 단계는?"}],
                                 previous_response_id=first.id)
    data = oa.responses.input_items.list(second.id).data
    # newest first: this turn's input, the first response's output, the first turn's input
    assert [(i.type, i.role) for i in data] == [("message", "user"), ("message", "assistant"), ("message", "user")]
    assert data[0].content[0].text == "다음 단계는?"
    assert data[1].id == first.output[0].id
    assert PHONE.value not in data[2].content[0].text and "<PHONE_REDACTED>" in data[2].content[0].text
    assert second.output[0].id not in {i.id for i in data}           # its own output is not its input
    # one item a page, oldest first: the SDK follows `after` through every page
    paged = [i.id for i in oa.responses.input_items.list(second.id, limit=1, order="asc")]
    assert paged == [i.id for i in reversed(data)]
    before = httpx.get(f"{gw.base_url}/responses/{second.id}/input_items", params={"before": data[2].id}, timeout=10)
    assert [i["id"] for i in before.json()["data"]] == [data[0].id, data[1].id]
    with pytest.raises(openai.NotFoundError):
        oa.responses.input_items.list("resp_" + "0" * 48)
    for query, param in (({"limit": "0"}, "limit"), ({"order": "up"}, "order"), ({"after": "msg_x"}, "after")):
        r = httpx.get(f"{gw.base_url}/responses/{second.id}/input_items", params=query, timeout=10)
        assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_input_items_whose_id_is_not_a_string_are_listed_with_one_of_ours(gateway: Any, upstream: RunningUpstream) -> None:
    """An input item's `id` is whatever JSON the client sent; it is listed under an id Nuri gives."""
    gw = start(gateway, upstream)
    first = client(gw.base_url).responses.create(
        model="default", input=[{"type": "message", "role": "user", "content": "안녕하세요", "id": {"x": 1}}])  # type: ignore[list-item, misc]
    r = httpx.get(f"{gw.base_url}/responses/{first.id}/input_items", timeout=10)
    assert r.status_code == 200, r.text[:300]
    (item,) = r.json()["data"]
    assert item["id"].startswith("msg_") and item["content"][0]["text"] == "안녕하세요"

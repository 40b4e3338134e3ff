"""A streamed stored response, end to end: its output is redacted from the stream guard's findings.

A real `nuri serve` (kr-pipa policy, SQLite ledger) whose upstream echoes the question back in
pieces of eight characters, so the phone number the client sent comes back split across chunks
and is restored whole for the client. What the client read holds it; the row in the ledger's
database, written from what the guard found in the stream, does not, nor does a follow-up's view
of the history. The written rows' ids grow with time, so they land at the end of the table's index.
"""

from __future__ import annotations

from typing import Any

import openai

from support.boundary import FAMILIES
from support.processes import upstream_deployment
from support.stored_responses import stored_rows
from support.upstream_server import RunningUpstream

PHONE = FAMILIES["PHONE"]


def test_a_streamed_reply_is_stored_redacted(gateway: Any, upstream: RunningUpstream) -> None:
    upstream.state.echo = True
    gw = gateway({"deployments": [upstream_deployment(upstream, "kr", jurisdiction="KR", hosting="on_prem")],
                  "aliases": {"default": ["kr"]}, "policy": {"packs": ["kr-pipa"]}, "ledger": {"enabled": True}})
    oa = openai.OpenAI(base_url=gw.base_url, api_key="sk-test", max_retries=0, timeout=30)
    ask = f"제 연락처는 {PHONE.value} 입니다. 확인해 주세요."
    events = list(oa.responses.create(model="default", input=ask, stream=True))
    final = events[-1].response
    assert events[-1].type == "response.completed"
    assert PHONE.value in final.output_text                         # the client gets its own value back
    later = oa.responses.create(model="default", input="다음은?")
    [(first_id, body, _ttl), (second_id, _, _ttl)] = stored_rows(gw.data_dir / "nuri.db", 2)
    assert first_id == final.id and second_id == later.id and first_id < second_id
    assert PHONE.value not in body and body.count("<PHONE_REDACTED>") >= 2   # the input, the output (kept once)
    stored = oa.responses.retrieve(final.id)
    assert PHONE.value not in stored.output_text and "<PHONE_REDACTED>" in stored.output_text

"""Every field on the way back: personal data an upstream puts anywhere in a reply or a stream
chunk is masked, and a placeholder it echoes anywhere is restored byte-exact.

Real objects throughout (Pseudonymizer, Scanner, ChunkFilter, filter_reply). What the client gets
is checked as JSON text, with every logprobs `bytes` array decoded as well, since a rewritten
token whose bytes still spelled the raw value would leak through them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nuri.gateway.reply_texts import filter_reply
from nuri.gateway.stream_privacy import ChunkFilter
from nuri.privacy.pseudonymizer import Pseudonymizer
from nuri.privacy.scanner import Scanner

PHONE = "010-2345-6789"
EMAIL = "hong.gildong@example.co.kr"
RRN = "900101-1234568"
OTHER_PHONE, OTHER_EMAIL = "010-9876-5432", "other.person@example.org"
MASK = {PHONE: "<PHONE_REDACTED>", EMAIL: "<EMAIL_REDACTED>", RRN: "<KR_RRN_REDACTED>",
        OTHER_PHONE: "<PHONE_REDACTED>", OTHER_EMAIL: "<EMAIL_REDACTED>"}
VALUES = [pytest.param(v, id=k) for k, v in (("phone", PHONE), ("email", EMAIL), ("rrn", RRN))]
SCANNER = Scanner()


def _client_view(obj: Any) -> str:
    """Everything a client could read: the JSON text plus every `bytes` array decoded."""
    parts = [json.dumps(obj, ensure_ascii=False)]
    for node in _nodes(obj):
        raw = node.get("bytes")
        if isinstance(raw, list) and all(isinstance(b, int) for b in raw):
            parts.append(bytes(raw).decode("utf-8", errors="replace"))
    return "\n".join(parts)


def _nodes(obj: Any) -> Iterator[dict[str, Any]]:
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from _nodes(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _nodes(v)


def _tokens(choice: dict[str, Any]) -> list[dict[str, Any]]:
    return ((choice.get("logprobs") or {}).get("content")) or []


def _logprob(token: str) -> dict[str, Any]:
    return {"token": token, "logprob": -0.1, "bytes": list(token.encode()), "top_logprobs": []}


def _unsent() -> Pseudonymizer:
    """A conversation in which the client sent none of the values."""
    p = Pseudonymizer()
    p.token_for("PERSON", "김철수")
    return p


def _sent() -> tuple[Pseudonymizer, dict[str, str]]:
    """A conversation in which the client sent all three values; the placeholder each became."""
    p = Pseudonymizer()
    return p, {v: p.token_for(t, v) for t, v in (("PHONE", PHONE), ("EMAIL", EMAIL), ("KR_RRN", RRN))}


# -- non-streamed replies --------------------------------------------------------------------------

def _reply(carrier: str, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "안내드립니다."}
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
    reply: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                             "choices": [choice], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    if carrier in ("refusal", "reasoning_content", "x_note"):
        message[carrier] = text
    elif carrier == "top_level":
        reply["x_provider_note"] = text
    elif carrier == "logprobs":
        choice["logprobs"] = {"content": [_logprob(text)], "refusal": None}
    elif carrier == "logprobs_split":
        pieces = [text[i:i + 3] for i in range(0, len(text), 3)]
        choice["logprobs"] = {"content": [_logprob(t) for t in pieces], "refusal": None}
    elif carrier in ("name", "arguments"):
        fn = {"name": "lookup", "arguments": "{}"}
        fn[carrier] = text
        message["tool_calls"] = [{"id": "call_1", "type": "function", "function": fn}]
    return reply


def _carried(reply: dict[str, Any], carrier: str) -> str:
    choice = reply["choices"][0]
    message = choice["message"]
    if carrier == "top_level":
        return reply["x_provider_note"]
    if carrier.startswith("logprobs"):
        return "".join(e["token"] for e in _tokens(choice))
    if carrier in ("name", "arguments"):
        return message["tool_calls"][0]["function"][carrier]
    return message[carrier]


CARRIERS = ["refusal", "reasoning_content", "x_note", "top_level", "logprobs", "logprobs_split", "name", "arguments"]


def _text_for(carrier: str, value: str) -> str:
    if carrier == "arguments":
        return json.dumps({"contact": value, "note": "확인"}, ensure_ascii=False)
    if carrier == "name":
        return value
    return f"담당자 연락처는 {value} 입니다"


@pytest.mark.parametrize("carrier", CARRIERS)
@pytest.mark.parametrize("value", VALUES)
def test_an_unsent_value_in_any_reply_field_is_masked(carrier: str, value: str) -> None:
    text = _text_for(carrier, value)
    body = _reply(carrier, text)
    before = copy.deepcopy(body)
    out = filter_reply(body, _unsent(), SCANNER)
    assert value not in _client_view(out)
    assert _carried(out, carrier) == text.replace(value, MASK[value])
    assert body == before                      # the upstream's reply is not touched
    for entry in _tokens(out["choices"][0]):
        assert bytes(entry["bytes"]).decode() == entry["token"]


@pytest.mark.parametrize("carrier", CARRIERS)
@pytest.mark.parametrize("value", VALUES)
def test_an_echoed_placeholder_in_any_reply_field_is_restored(carrier: str, value: str) -> None:
    p, tokens = _sent()
    text = _text_for(carrier, value)
    out = filter_reply(_reply(carrier, text.replace(value, tokens[value])), p, SCANNER, sent_values={value})
    # an RRN is never pseudonymised, only redacted: its marker comes back as it went
    expected = text.replace(value, MASK[value]) if value == RRN else text
    assert _carried(out, carrier) == expected
    assert "<PHONE_1>" not in _client_view(out) and "<EMAIL_1>" not in _client_view(out)


@pytest.mark.parametrize("value", [PHONE, EMAIL])
def test_a_placeholder_split_across_logprobs_entries_is_restored_without_a_scanner(value: str) -> None:
    p, tokens = _sent()
    text = f"번호는 {tokens[value]} 입니다"
    for i in range(1, len(tokens[value])):
        cut = text.index(tokens[value]) + i
        body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "logprobs": {"content": [_logprob(text[:cut]), _logprob(text[cut:])]}}]}
        out = filter_reply(body, p, None)
        entries = _tokens(out["choices"][0])
        assert "".join(e["token"] for e in entries) == text.replace(tokens[value], value), i
        assert all(bytes(e["bytes"]).decode() == e["token"] for e in entries)


def test_a_key_that_is_a_value_is_masked_and_the_restored_tool_call_is_valid_json() -> None:
    p, tokens = _sent()
    args = json.dumps({"who": tokens[PHONE], "quote": 'a"b'})
    body = _reply("arguments", args)
    body["choices"][0]["message"]["x_meta"] = {"010-9876-5432": "seen"}
    out = filter_reply(body, p, SCANNER, sent_values={PHONE})
    assert "010-9876-5432" not in _client_view(out)
    assert json.loads(_carried(out, "arguments")) == {"who": PHONE, "quote": 'a"b'}


# -- streams -----------------------------------------------------------------------------------------

Piece = Callable[[str], dict[str, Any]]
HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def _choice(delta: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": None, **extra}]}


STREAM_CARRIERS: dict[str, Piece] = {
    "content": lambda t: _choice({"content": t}),
    "refusal": lambda t: _choice({"refusal": t}),
    "reasoning_content": lambda t: _choice({"reasoning_content": t}),
    "arguments": lambda t: _choice({"tool_calls": [{"index": 0, "function": {"arguments": t}}]}),
    "unknown_delta_key": lambda t: _choice({"x_note": t}),
    "top_level": lambda t: {**_choice({}), "x_note": t},
    "logprobs": lambda t: _choice({"content": ""}, logprobs={"content": [_logprob(t)], "refusal": None}),
}


def _stream_out(f: ChunkFilter, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [f.process(c) for c in chunks]
    last = f.close()
    return out + ([last] if last is not None else [])


def _collected(chunks: list[dict[str, Any]], carrier: str) -> str:
    """The carrier's text as a client accumulates it from the chunks it got."""
    out = []
    for chunk in chunks:
        if carrier == "top_level":
            out.append(chunk.get("x_note") or "")
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if carrier == "arguments":
                out += [c["function"].get("arguments") or "" for c in delta.get("tool_calls") or []]
            elif carrier == "logprobs":
                out += [e["token"] for e in _tokens(choice)]
            else:
                key = "x_note" if carrier == "unknown_delta_key" else carrier
                out.append(delta.get(key) or "")
    return "".join(out)


def _split_stream(carrier: str, text: str, cut: int) -> list[dict[str, Any]]:
    make = STREAM_CARRIERS[carrier]
    first = _choice({"role": "assistant", "content": ""})
    if carrier == "arguments":
        first = _choice({"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}]})
    finish = {**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    return [first, make(text[:cut]), make(text[cut:]), finish]


def _stream_text(carrier: str, value: str) -> str:
    if carrier == "arguments":
        return json.dumps({"contact": value}, ensure_ascii=False)
    return f"연락처 {value} 입니다"


@pytest.mark.parametrize("carrier", list(STREAM_CARRIERS))
@pytest.mark.parametrize("value", VALUES)
def test_an_unsent_value_split_anywhere_in_any_stream_field_is_masked(carrier: str, value: str) -> None:
    text = _stream_text(carrier, value)
    start = text.index(value)
    for i in range(1, len(value)):
        got = _stream_out(ChunkFilter(_unsent(), SCANNER), _split_stream(carrier, text, start + i))
        assert _collected(got, carrier) == text.replace(value, MASK[value]), i
        assert value not in _client_view(got), i
        for chunk in got:
            for choice in chunk["choices"]:
                assert all(bytes(e["bytes"]).decode() == e["token"] for e in _tokens(choice))


@pytest.mark.parametrize("carrier", list(STREAM_CARRIERS))
@pytest.mark.parametrize("value", [pytest.param(PHONE, id="phone"), pytest.param(EMAIL, id="email")])
def test_a_placeholder_split_anywhere_in_any_stream_field_is_restored(carrier: str, value: str) -> None:
    p, tokens = _sent()
    token = tokens[value]
    text = _stream_text(carrier, token)
    start = text.index(token)
    for i in range(1, len(token)):
        got = _stream_out(ChunkFilter(p, SCANNER, sent_values={value}), _split_stream(carrier, text, start + i))
        assert _collected(got, carrier) == text.replace(token, value), i
        assert token not in _client_view(got), i


def test_an_rrn_marker_echoed_in_a_stream_stays_a_marker() -> None:
    p, tokens = _sent()
    text = f"번호 {tokens[RRN]} 확인"
    got = _stream_out(ChunkFilter(p, SCANNER, sent_values={RRN}), _split_stream("refusal", text, 7))
    assert _collected(got, "refusal") == text and RRN not in _client_view(got)


def test_logprobs_spread_over_many_entries_and_chunks() -> None:
    text = f"전화 {PHONE} 메일 {EMAIL} 끝"
    chunks = [STREAM_CARRIERS["logprobs"](ch) for ch in text]
    chunks.append({**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}]})
    got = _stream_out(ChunkFilter(_unsent(), SCANNER), chunks)
    assert _collected(got, "logprobs") == f"전화 {MASK[PHONE]} 메일 {MASK[EMAIL]} 끝"
    assert PHONE not in _client_view(got) and EMAIL not in _client_view(got)
    flushed = _tokens(got[-1]["choices"][0])
    assert flushed and set(flushed[-1]) >= {"token", "logprob", "bytes", "top_logprobs"}


def test_identifiers_are_checked_whole_and_a_value_repeated_per_chunk_settles() -> None:
    p, tokens = _sent()
    f = ChunkFilter(p, SCANNER, sent_values={PHONE})
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": tokens[PHONE], "arguments": "{}"}}
    outs = [f.process({**HEAD, "x_trace": f"seen {tokens[EMAIL]}",
                       "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]})
            for _ in range(3)]
    for out in outs:
        sent_call = out["choices"][0]["delta"]["tool_calls"][0]
        assert sent_call["id"] == "call_1" and sent_call["function"]["name"] == PHONE
    # held at first like any delta; from the repeat on, the same value whole in each chunk
    assert f"seen {EMAIL}".startswith(outs[0]["x_trace"])
    assert [o["x_trace"] for o in outs[1:]] == [f"seen {EMAIL}"] * 2
    assert tokens[EMAIL] not in _client_view(outs)


def test_an_unsent_value_as_a_streamed_tool_call_name_or_id_is_masked_in_that_chunk() -> None:
    f = ChunkFilter(_unsent(), SCANNER)
    call = {"index": 0, "id": f"call {PHONE}", "type": "function", "function": {"name": EMAIL, "arguments": ""}}
    out = f.process(_choice({"tool_calls": [call]}))
    sent_call = out["choices"][0]["delta"]["tool_calls"][0]
    assert sent_call["id"] == f"call {MASK[PHONE]}" and sent_call["function"]["name"] == MASK[EMAIL]


@pytest.mark.parametrize("stream", [False, True])
def test_top_logprobs_tokens_and_their_bytes_are_masked(stream: bool) -> None:
    alternatives = [_logprob(PHONE), _logprob("x")]
    for alt in alternatives:
        del alt["top_logprobs"]
    entry = {**_logprob("번호"), "top_logprobs": alternatives}
    if stream:
        f = ChunkFilter(_unsent(), SCANNER)
        got = _stream_out(f, [_choice({"content": "번호"}, logprobs={"content": [entry]}),
                              {**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}])
    else:
        got = [filter_reply({"choices": [{"index": 0, "message": {"role": "assistant", "content": "번호"},
                                          "logprobs": {"content": [entry]}}]}, _unsent(), SCANNER)]
    assert PHONE not in _client_view(got)
    for node in _nodes(got):
        if isinstance(node.get("token"), str):
            assert bytes(node["bytes"]).decode() == node["token"]


def test_a_key_outside_choices_is_flushed_by_the_last_finish_or_by_close() -> None:
    f = ChunkFilter(_unsent(), SCANNER)
    first = f.process({**HEAD, "x_note": f"mail {EMAIL}", "choices": []})
    last = f.close()
    assert last is not None and first.get("x_note", "") + last["x_note"] == f"mail {MASK[EMAIL]}"
    f = ChunkFilter(_unsent(), SCANNER)
    got = [f.process({**HEAD, "x_note": "call 010-2345", "choices": [
               {"index": 0, "delta": {"content": "a"}, "finish_reason": None},
               {"index": 1, "delta": {"content": "b"}, "finish_reason": None}]}),
           f.process({**HEAD, "x_note": "-6789", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
           f.process({**HEAD, "choices": [{"index": 1, "delta": {}, "finish_reason": "stop"}]})]
    assert f.close() is None
    assert "".join(c.get("x_note", "") for c in got) == f"call {MASK[PHONE]}"
    assert got[2]["x_note"].endswith(MASK[PHONE])


def test_the_walk_and_the_common_shapes_agree() -> None:
    """A chunk outside the common shapes takes the full walk; both give the client the same text."""
    p, tokens = _sent()
    text = f"안녕하세요 {tokens[PHONE]} 로 연락주세요. 다른 번호 010-9876-5432 는 모릅니다."
    chunks = [_choice({"content": text[i:i + 4]}) for i in range(0, len(text), 4)]
    chunks.append({**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    walked = [{**c, "choices": [{**c["choices"][0], "logprobs": {"content": []}}]} for c in chunks]
    common = _collected(_stream_out(ChunkFilter(p, SCANNER, sent_values={PHONE}), chunks), "content")
    full = _collected(_stream_out(ChunkFilter(p, SCANNER, sent_values={PHONE}), walked), "content")
    assert common == full == text.replace(tokens[PHONE], PHONE).replace("010-9876-5432", MASK[PHONE])


def test_held_text_goes_to_the_finish_chunk_of_its_own_choice() -> None:
    f = ChunkFilter(_unsent(), SCANNER)
    got = [f.process({**HEAD, "choices": [
        {"index": 1, "delta": {"reasoning_content": "번호는 010-2345"}, "finish_reason": None},
        {"index": 0, "delta": {"content": "안녕"}, "finish_reason": None}]}),
        f.process({**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        f.process({**HEAD, "choices": [{"index": 1, "delta": {"reasoning_content": "-6789"},
                                        "finish_reason": "stop"}]})]
    assert f.close() is None
    assert got[1]["choices"][0]["delta"] == {"content": "안녕"}
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in got if
                        c["choices"][0]["index"] == 1)
    assert reasoning == f"번호는 {MASK[PHONE]}"


# -- end to end: a real `nuri serve` between a client and a scripted upstream ---------------------------

ASK = f"고객 연락처 {PHONE}, 메일 {EMAIL} 로 안내해 주세요."


def _upstream_can_shape() -> bool:
    from support.upstream_server import UpstreamState
    return all(hasattr(UpstreamState, k) for k in ("reply_fields", "chunks", "cuts"))


shaped = pytest.mark.skipif(not _upstream_can_shape(), reason="the test upstream cannot shape replies yet")


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    from support.processes import GatewayProcess, upstream_deployment
    from support.upstream_server import RunningUpstream

    with RunningUpstream() as kr, RunningUpstream() as us:
        config = {
            "deployments": [upstream_deployment(us, "us", jurisdiction="US", hosting="foreign_cloud"),
                            upstream_deployment(kr, "kr", jurisdiction="KR", hosting="on_prem")],
            "aliases": {"default": ["us", "kr"]},
            "policy": {"packs": ["kr-pipa"]},
            "ledger": {"enabled": False},
        }
        with GatewayProcess(tmp_path_factory.mktemp("every-field"), config) as gw:
            yield gw, us


def _ask(gw: Any, us: Any, stream: bool) -> Any:
    import httpx

    us.state.requests.clear()
    body = {"model": "default", "messages": [{"role": "user", "content": ASK}], "stream": stream}
    response = httpx.post(gw.base_url + "/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["x-nuri-deployment"] == "us"
    seen = "\n".join(us.received_bodies())
    assert PHONE not in seen and EMAIL not in seen and "<PHONE_1>" in seen and "<EMAIL_1>" in seen
    return response


@shaped
def test_e2e_reply_fields_are_restored_and_guarded(foreign: tuple[Any, Any]) -> None:
    gw, us = foreign
    us.state.chunks = None
    us.state.cuts = "each"             # logprobs: one entry per character, placeholders split across them
    us.state.reply_fields = {
        "content": "안내드립니다.",
        "refusal": f"확인 {{{{placeholders}}}} / 담당 {OTHER_PHONE}",
        "tool_arguments": json.dumps({"who": "{{placeholders}}", "rrn": RRN}),
        "logprobs": f"메일 {{{{placeholders}}}} 또는 {OTHER_EMAIL} 끝",
        "x_provider_note": f"{{{{placeholders}}}} {RRN}",
    }
    try:
        reply = _ask(gw, us, stream=False).json()
    finally:
        us.state.reply_fields = None
    view = _client_view(reply)
    for leaked in (OTHER_PHONE, OTHER_EMAIL, RRN, "<PHONE_1>", "<EMAIL_1>"):
        assert leaked not in view
    echo = f"{PHONE} | {EMAIL}"
    choice = reply["choices"][0]
    assert choice["message"]["refusal"] == f"확인 {echo} / 담당 {MASK[OTHER_PHONE]}"
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"who": echo, "rrn": MASK[RRN]}
    assert "".join(e["token"] for e in _tokens(choice)) == f"메일 {echo} 또는 {MASK[OTHER_EMAIL]} 끝"
    assert reply["x_provider_note"] == f"{echo} {MASK[RRN]}"


def _e2e_chunks() -> list[dict[str, Any]]:
    def delta(**d: Any) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": d, "finish_reason": None}]}

    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"who": "<PHO'}}
    return [
        delta(role="assistant", content=""),
        *[delta(refusal=t) for t in ("확인 <PHO", "NE_1> 담당 010-98", "76-5432 끝")],
        *[delta(reasoning_content=t) for t in ("메일 <EMA", "IL_1> 또는 other.per", "son@example.org")],
        delta(tool_calls=[call]),
        *[delta(tool_calls=[{"index": 0, "function": {"arguments": t}}]) for t in ('NE_1>", "rrn": "900101-12', '34568"}')],
        *[delta(x_note=t) for t in ("<EMAIL", "_1> 900101-", "1234568")],
        *[{"choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": None,
                        "logprobs": {"content": [_logprob(t)], "refusal": None}}]} for t in ("<PHONE_", "1> ", "010-9876", "-5432")],
        {"x_provider": f"trace <PHONE_1> {OTHER_EMAIL}", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]


@shaped
def test_e2e_stream_fields_are_restored_and_guarded_across_chunks(foreign: tuple[Any, Any]) -> None:
    gw, us = foreign
    us.state.reply_fields, us.state.chunks = None, _e2e_chunks()
    try:
        response = _ask(gw, us, stream=True)
    finally:
        us.state.chunks = None
    chunks = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: {")]
    view = _client_view(chunks)
    for leaked in (OTHER_PHONE, OTHER_EMAIL, RRN, "<PHONE_1>", "<EMAIL_1>"):
        assert leaked not in view
    assert _collected(chunks, "refusal") == f"확인 {PHONE} 담당 {MASK[OTHER_PHONE]} 끝"
    assert _collected(chunks, "reasoning_content") == f"메일 {EMAIL} 또는 {MASK[OTHER_EMAIL]}"
    assert json.loads(_collected(chunks, "arguments")) == {"who": PHONE, "rrn": MASK[RRN]}
    assert _collected(chunks, "unknown_delta_key") == f"{EMAIL} {MASK[RRN]}"
    assert _collected(chunks, "logprobs") == f"{PHONE} {MASK[OTHER_PHONE]}"
    assert [c["x_provider"] for c in chunks if "x_provider" in c] == [f"trace {PHONE} {MASK[OTHER_EMAIL]}"]

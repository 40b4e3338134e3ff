"""The AI Basic Act notice on every reply, end to end: chat, completions, the Responses and the
Messages APIs, streamed and not, through a real `nuri serve` with ai-basic-act, as configured per
team and per channel (`replies.label`).

Team `ops` gets the defaults set here (every mode, the English text), except on completions, whose
channel asks for Korean; team `press` gets the header alone, in Korean.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import anthropic
import httpx
import openai
import pytest

from support.processes import create_key, upstream_deployment
from support.upstream_server import RunningUpstream

KO = "이 응답은 AI가 작성했습니다."
EN = "Written by AI."
REPLY = "독도는 울릉군에 속한 대한민국의 섬입니다."
TAIL = "\n\n"


@pytest.fixture(scope="module")
def rig(module_gateway: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    with RunningUpstream() as upstream:
        upstream.state.reply = REPLY
        data = tmp_path_factory.mktemp("labels-data")
        keys = {team: create_key(data, team) for team in ("ops", "press")}
        config = {
            "deployments": [upstream_deployment(upstream, "kr", jurisdiction="KR", hosting="domestic_cloud")],
            "aliases": {"default": ["kr"]},
            "policy": {"packs": ["ai-basic-act"]},
            "ledger": {"enabled": True},
            "replies": {"label": {
                "modes": ["header", "event", "text", "field"], "language": "en", "text": {"ko": KO, "en": EN},
                "channels": {"completions": {"language": "ko"}},
                "teams": {"press": {"modes": ["header"], "language": "ko"}},
            }},
        }
        yield module_gateway(config, data_dir=data), keys


def _post(gw: Any, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gw.base_url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _sse(resp: httpx.Response) -> list[tuple[str | None, Any]]:
    """(event name, data) of each server-sent event."""
    out: list[tuple[str | None, Any]] = []
    for block in resp.text.split("\n\n"):
        name, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data is not None:
            out.append((name, data if data == "[DONE]" else json.loads(data)))
    return out


BODIES = {
    "chat": ("/chat/completions", {"model": "default", "messages": [{"role": "user", "content": "독도는?"}]}),
    "completions": ("/completions", {"model": "default", "prompt": "독도는?"}),
    "responses": ("/responses", {"model": "default", "input": "독도는?"}),
    "messages": ("/messages", {"model": "default", "max_tokens": 64, "messages": [{"role": "user", "content": "독도는?"}]}),
}


def _whole_text(api: str, body: dict[str, Any]) -> str:
    if api == "chat":
        return body["choices"][0]["message"]["content"]
    if api == "completions":
        return body["choices"][0]["text"]
    if api == "responses":
        return "".join(p["text"] for item in body["output"] for p in item.get("content", []) if "text" in p)
    return "".join(b["text"] for b in body["content"] if b["type"] == "text")


def _streamed(api: str, events: list[tuple[str | None, Any]]) -> tuple[str, Any, Any]:
    """(text, the first event's nuri object, the nuri object of the events at the end)."""
    data = [d for _, d in events if isinstance(d, dict)]
    if api in ("chat", "completions"):
        text = "".join((c.get("delta") or {}).get("content") or c.get("text") or ""
                       for d in data for c in d.get("choices") or [])
        last = [d for d in data if not d.get("usage")][-1]
        return text, data[0].get("nuri"), last.get("nuri")
    if api == "responses":
        text = "".join(d["delta"] for d in data if d["type"] == "response.output_text.delta")
        return text, data[0]["response"].get("nuri"), data[-1]["response"].get("nuri")
    text = "".join(d["delta"]["text"] for d in data if d["type"] == "content_block_delta"
                   and d["delta"]["type"] == "text_delta")
    delta = next(d for d in data if d["type"] == "message_delta")
    return text, data[0]["message"].get("nuri"), delta.get("nuri")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", list(BODIES))
def test_every_mode_on_every_endpoint(rig: tuple[Any, dict[str, str]], api: str, stream: bool) -> None:
    gw, keys = rig
    path, body = BODIES[api]
    notice = KO if api == "completions" else EN           # the completions channel asks for Korean
    resp = _post(gw, keys["ops"], path, {**body, "stream": stream})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-nuri-ai-generated"] == "true"
    assert unquote(resp.headers["x-nuri-ai-notice"]) == notice
    label = {"ai_generated": True, "notice": notice}
    if not stream:
        whole = resp.json()
        assert whole["nuri"] == label
        assert _whole_text(api, whole) == REPLY + TAIL + notice
        return
    text, first, last = _streamed(api, _sse(resp))
    assert text == REPLY + TAIL + notice
    assert first == label and last == label


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", list(BODIES))
def test_a_team_that_asks_for_the_header_alone_gets_only_the_header(rig: tuple[Any, dict[str, str]], api: str,
                                                                     stream: bool) -> None:
    gw, keys = rig
    path, body = BODIES[api]
    resp = _post(gw, keys["press"], path, {**body, "stream": stream})
    assert resp.status_code == 200, resp.text
    assert unquote(resp.headers["x-nuri-ai-notice"]) == KO
    assert "nuri" not in resp.text
    if not stream:
        assert _whole_text(api, resp.json()) == REPLY
    else:
        assert _streamed(api, _sse(resp))[0] == REPLY


def test_the_sdks_read_the_labelled_streams(rig: tuple[Any, dict[str, str]]) -> None:
    gw, keys = rig
    client = openai.OpenAI(base_url=gw.base_url, api_key=keys["ops"], max_retries=0, timeout=30)
    chunks = list(client.chat.completions.create(model="default", messages=[{"role": "user", "content": "독도는?"}],
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY + TAIL + EN
    assert (chunks[0].model_extra or {}).get("nuri", {}).get("notice") == EN
    events = list(client.responses.create(model="default", input="독도는?", stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == REPLY + TAIL + EN
    claude = anthropic.Anthropic(base_url=gw.root_url, api_key=keys["ops"], max_retries=0, timeout=30)
    with claude.messages.stream(model="default", max_tokens=64, messages=[{"role": "user", "content": "독도는?"}]) as s:
        final = s.get_final_message()
    assert final.content[0].text == REPLY + TAIL + EN

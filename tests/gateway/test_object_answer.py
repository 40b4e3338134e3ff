"""The pipeline's unrendered answer to a translating API: sent as it is, it is whole; translated,
its headers go with the new answer once."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from nuri.gateway.responses import JSONResponse, ObjectAnswer, json_body, with_headers_of

REPLY = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"message": {"content": "안녕하세요"}}]}
HEADERS = {"x-nuri-request-id": "req-1", "x-nuri-deployment": "kr-model", "x-nuri-action": "allow"}


def _sent(response: Any) -> tuple[int, dict[bytes, bytes], bytes]:
    """What a client receives from `response` served over ASGI."""
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(response({"type": "http", "method": "POST", "path": "/"}, receive, send))
    start, body = messages[0], b"".join(m.get("body", b"") for m in messages[1:])
    return start["status"], dict(start["headers"]), body


def test_an_object_answer_sent_as_it_is_renders_its_reply_and_headers() -> None:
    answer = ObjectAnswer(dict(REPLY), dict(HEADERS), trail=None)
    assert json_body(answer) == REPLY                   # read without rendering
    status, headers, body = _sent(answer)
    assert status == 200
    assert orjson.loads(body) == REPLY
    assert headers[b"content-length"] == str(len(body)).encode()
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"x-nuri-request-id"] == b"req-1" and headers[b"x-nuri-deployment"] == b"kr-model"


def test_a_translated_answer_carries_the_pipelines_headers_once() -> None:
    answer = ObjectAnswer(dict(REPLY), dict(HEADERS), trail=None)
    translated = {"id": "resp_1", "object": "response", "output_text": "안녕하세요"}
    out = with_headers_of(JSONResponse(translated), answer)
    status, headers, body = _sent(out)
    assert orjson.loads(body) == translated
    assert headers[b"content-length"] == str(len(body)).encode()
    names = [k for k, _v in out.raw_headers]
    assert sorted(n for n in names if n.startswith(b"x-nuri-")) == sorted(k.encode() for k in HEADERS)
    assert len(names) == len(set(names))
    assert "body" not in vars(answer)                   # the chat reply itself was never rendered

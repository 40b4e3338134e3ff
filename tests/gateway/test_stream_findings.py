"""A stored streamed reply is redacted from what the stream guard found, not scanned again.

With `reply_texts.reply_scans` set (as the Responses API sets it for a stored turn), each stream
channel hands over, when it closes, the text it sent and what its guard's scans found in it. The
Redactor then finds the assembled output there: a counting scanner shows it is not scanned a second
time, and the stored text still holds no value the client sent. Real objects throughout
(Pseudonymizer, Scanner, ChunkFilter, ResponsesEventFilter, Redactor).
"""

from __future__ import annotations

from typing import Any

from nuri.gateway.conversations import Redactor, Stored
from nuri.gateway.reply_texts import reply_scans
from nuri.gateway.stream_privacy import ChunkFilter, ResponsesEventFilter
from nuri.privacy.pseudonymizer import Pseudonymizer
from nuri.privacy.scanner import Scanner
from nuri.privacy.types import Entity

PHONE, OTHER_PHONE = "010-2345-6789", "010-9876-5432"
SCANNER = Scanner()
REPLY = f"확인했습니다. 고객님 연락처 {PHONE} 로 연락드리고, 담당자 {OTHER_PHONE} 도 안내하겠습니다."


class Counting:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def scan(self, text: str) -> list[Entity]:
        self.seen.append(text)
        return SCANNER.scan(text)


def cut(text: str, size: int = 5) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def chat_stream(scans: dict[str, list[Entity]] | None) -> str:
    """The reply through a ChunkFilter, as the pipeline relays it; the content the client got."""
    token = reply_scans.set(scans)
    try:
        chunks = ChunkFilter(Pseudonymizer(), SCANNER, sent_values=[PHONE], min_emit=8)
    finally:
        reply_scans.reset(token)
    out: list[str] = []
    pieces = cut(REPLY)
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        chunk = chunks.process({"choices": [{"index": 0, "delta": {"content": piece},
                                             "finish_reason": "stop" if last else None}]})
        out.append(chunk["choices"][0]["delta"].get("content") or "")
    return "".join(out)


def stored_body(output_text: str, scans: dict[str, list[Entity]]) -> tuple[str, Counting]:
    item = {"id": "msg_" + "c3" * 24, "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": output_text, "annotations": [], "logprobs": []}]}
    counting = Counting()
    body = Redactor(counting, None, scans, frozenset({item["id"]})).encode(
        Stored([item], {"status": "completed", "output": [item]}))
    return body, counting


def test_a_chat_stream_hands_its_findings_over_and_is_not_scanned_again() -> None:
    scans: dict[str, list[Entity]] = {}
    text = chat_stream(scans)
    assert OTHER_PHONE not in text and PHONE in text        # the guard masks what was never sent
    assert text in scans
    body, counting = stored_body(text, scans)
    assert counting.seen == []
    assert PHONE not in body and body.count("<PHONE_REDACTED>") == 2     # the item, kept once (in the response)


def test_without_reply_scans_nothing_is_recorded_and_the_output_is_scanned() -> None:
    text = chat_stream(None)
    body, counting = stored_body(text, {})
    assert counting.seen == [text]
    assert PHONE not in body


def test_a_passed_through_stream_hands_its_findings_over() -> None:
    scans: dict[str, list[Entity]] = {}
    token = reply_scans.set(scans)
    try:
        events = ResponsesEventFilter(Pseudonymizer(), SCANNER, sent_values=[PHONE], min_emit=8)
    finally:
        reply_scans.reset(token)
    where: dict[str, Any] = {"item_id": "msg_up1", "output_index": 0, "content_index": 0}
    sent: list[dict[str, Any]] = []
    for piece in cut(REPLY):
        sent += events.process({"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []})
    sent += events.process({"type": "response.output_text.done", **where, "text": REPLY, "logprobs": []})
    text = "".join(e["delta"] for e in sent if e["type"] == "response.output_text.delta")
    assert sent[-1]["text"] == text and text in scans
    body, counting = stored_body(text, scans)
    assert counting.seen == [] and PHONE not in body

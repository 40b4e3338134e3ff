"""What the Responses API stores: every string redacted, in one pass, with as few scans as it can.

A counting scanner around the real one shows which strings were scanned: the request's strings
come from its classification, a whole reply's output from the reply guard's scan, ids Nuri made
and protocol words are kept; everything else (unknown keys, metadata, a streamed output) is
scanned, and nothing personal is stored either way.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nuri.config import NuriConfig
from nuri.gateway.conversations import NOT_KEPT, Known, MemoryStore, Redactor, Stored
from nuri.privacy.classify import classify_texts
from nuri.privacy.fields import walk
from nuri.privacy.scanner import Scanner
from nuri.privacy.types import Entity

PHONE, RRN = "010-2345-6789", "900101-1234568"


class Counting:
    def __init__(self, scanner: Scanner) -> None:
        self.scanner = scanner
        self.seen: list[str] = []

    def scan(self, text: str) -> list[Entity]:
        self.seen.append(text)
        return self.scanner.scan(text)


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(NuriConfig().privacy)


def stored_turn() -> tuple[dict[str, Any], Stored, str]:
    request = {"model": "default", "instructions": f"고객 연락처는 {PHONE} 입니다.",
               "input": [{"type": "message", "role": "user", "content": [
                   {"type": "input_text", "text": f"주민등록번호는 {RRN} 입니다."},
                   {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}]}
    output_text = f"확인했습니다. {PHONE} 로 연락드리겠습니다."
    response = {"id": "resp_" + "a1" * 24, "object": "response", "status": "completed", "model": "us",
                "instructions": request["instructions"], "truncation": "disabled",
                "metadata": {"note": f"메모 {PHONE}"},
                "output": [{"id": "msg_" + "b2" * 24, "type": "message", "status": "completed", "role": "assistant",
                            "content": [{"type": "output_text", "text": output_text, "annotations": []}]}]}
    return request, Stored([*request["input"], *response["output"]], response), output_text


def test_known_strings_and_own_ids_are_not_scanned_and_nothing_personal_is_stored(scanner: Scanner) -> None:
    request, stored, output_text = stored_turn()
    texts, unscanned = walk(request)
    known = Known.of(texts, classify_texts(texts, unscanned, scanner))
    counting = Counting(scanner)
    scans = {output_text: scanner.scan(output_text)}        # the reply guard's scan of the output
    own = frozenset([stored.response["id"], stored.response["output"][0]["id"], "us"])
    body = Redactor(counting, known, scans, own).encode(stored)
    assert PHONE not in body and RRN not in body and "iVBOR" not in body
    # instructions, the output (kept once, in the response) and metadata
    assert body.count("<PHONE_REDACTED>") == 3 and "<KR_RRN_REDACTED>" in body and NOT_KEPT in body
    assert counting.seen == [f"메모 {PHONE}"]                  # only what nobody had scanned: metadata
    data = json.loads(body)
    assert data["response"]["id"] == stored.response["id"] and data["response"]["status"] == "completed"


def test_a_row_keeps_the_output_once_and_gives_the_conversation_back_whole(scanner: Scanner) -> None:
    _request, stored, _output_text = stored_turn()
    stored.response["output"].insert(0, {"id": "rs_1", "type": "reasoning", "summary": []})   # never continued from
    body = Redactor(scanner).encode(stored)
    assert body.count('"msg_' + "b2" * 24) == 1
    back = MemoryStore.decode(body)
    assert [i["type"] for i in back.items] == ["message", "message"]        # the input, then the output
    assert back.items[1] == back.response["output"][1] and back.items[1]["content"][0]["text"].startswith("확인")
    assert back.items[0]["content"][1] == {"type": "input_text", "text": NOT_KEPT}


def test_rows_written_whole_still_load() -> None:
    item = {"type": "message", "role": "user", "content": "안녕하세요"}
    out = {"id": "msg_1", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "네"}]}
    old = json.dumps({"items": [item, out], "response": {"status": "completed", "output": [out]}})
    assert MemoryStore.decode(old).items == [item, out]
    # items that do not end with the response's output are written whole, and load as they were
    odd = Stored([item], {"status": "completed", "output": [out]})
    assert MemoryStore.decode(Redactor(Scanner(NuriConfig().privacy)).encode(odd)).items == [item]


def test_without_known_scans_everything_is_scanned_and_redacted(scanner: Scanner) -> None:
    _request, stored, _output = stored_turn()
    counting = Counting(scanner)
    body = Redactor(counting).encode(stored)
    assert PHONE not in body and RRN not in body
    assert stored.response["id"] in counting.seen            # not Nuri's own here: scanned like any
    assert "completed" not in counting.seen                  # a protocol word under `status`


def test_unusual_keys_and_data_urls_anywhere_are_not_kept(scanner: Scanner) -> None:
    odd = {"type": "message", "role": "user", "content": "안녕하세요",
           "extra": {f"{PHONE}": "값", "file": "data:application/pdf;base64,JVBERi0xLjQ="}}
    body = Redactor(scanner).encode(Stored([odd], {"status": "completed"}))
    assert PHONE not in body and "JVBERi" not in body
    assert MemoryStore.decode(body).items[0]["extra"] == {"<PHONE_REDACTED>": "값", "file": NOT_KEPT}


def test_a_status_that_is_not_a_protocol_word_is_scanned(scanner: Scanner) -> None:
    counting = Counting(scanner)
    body = Redactor(counting).encode(Stored([], {"status": f"연락처 {PHONE}"}))
    assert PHONE not in body and f"연락처 {PHONE}" in counting.seen


def test_the_ai_notice_of_a_labelled_turn_is_kept_without_a_scan(scanner: Scanner) -> None:
    """Under ai-basic-act every stored response carries the notice (`nuri.notice`): policy's words,
    kept as they are, where a scan of them would also make the whole response be copied."""
    import asyncio

    from nuri.gateway.api_responses import Turn

    notice = "이 응답은 생성형 인공지능이 작성했습니다. (This response was generated by AI.)"
    kept: dict[str, Any] = {}

    class Capturing:
        async def save(self, response_id: str, team: str, stored: Stored, known: Any = None, scans: Any = None,
                       own: frozenset[str] = frozenset(), made: frozenset[str] = frozenset()) -> None:
            kept.update(stored=stored, own=own)

    turn = Turn({"model": "default", "input": "안녕하세요"}, [{"type": "message", "role": "user", "content": "안녕하세요"}],
                [], "team", Capturing())  # type: ignore[arg-type]
    turn.notice = notice
    response = turn.response("completed", [])
    response["nuri"] = {"ai_generated": True, "notice": notice}
    asyncio.run(turn.save(response))
    counting = Counting(scanner)
    body = Redactor(counting, None, None, kept["own"]).encode(kept["stored"])
    assert notice not in counting.seen and json.loads(body)["response"]["nuri"]["notice"] == notice
    assert counting.seen == ["안녕하세요"]                     # the input, unknown here, is scanned as ever


def test_a_type_that_is_not_a_name_is_walked_like_any_value(scanner: Scanner) -> None:
    """JSON schemas say `"type": ["string", "null"]`; metadata may hold any object. Neither is an
    image or a file part, and neither stops the response from being stored."""
    schema = {"type": "object", "properties": {"city": {"type": ["string", "null"]}}}
    response = {"status": "completed", "tools": [{"type": "function", "name": "lookup", "parameters": schema}],
                "metadata": {"note": {"type": {"kind": f"연락처 {PHONE}"}}}}
    body = json.loads(Redactor(scanner).encode(Stored([], response)))
    assert body["response"]["tools"][0]["parameters"] == schema
    assert PHONE not in json.dumps(body, ensure_ascii=False)


def test_a_translated_turns_own_fields_are_not_walked_and_every_other_field_is(scanner: Scanner) -> None:
    """A translated turn names the fields of its Response object that Nuri built (`MADE_FIELDS`):
    the check before storing skips them, and walks every other field. A passed-through response
    names none: the upstream built all of it, and all of it is walked."""
    from nuri.gateway.api_responses import MADE_FIELDS

    odd = f"상태 {PHONE}"          # in a field Nuri builds it could not be; here it shows what is walked
    response = {"id": "resp_1", "status": odd, "usage": {"note": odd}, "metadata": {"note": "메모"}}
    own, known = frozenset({"resp_1"}), {"메모": []}
    translated = Counting(scanner)
    body = Redactor(translated, scans=known, own=own, made=MADE_FIELDS).encode(Stored([], response))
    assert translated.seen == [] and json.loads(body)["response"]["status"] == odd    # stored as it is
    unknown = Counting(scanner)
    Redactor(unknown, own=own, made=MADE_FIELDS).encode(Stored([], response))
    assert "메모" in unknown.seen                       # every field but the built ones is walked
    passed_through = Counting(scanner)
    body = Redactor(passed_through, scans=known, own=own).encode(Stored([], response))
    assert odd in passed_through.seen and PHONE not in body and json.loads(body)["response"]["metadata"] == {"note": "메모"}


def test_a_parameter_the_client_sent_is_walked_and_one_it_did_not_send_holds_nuris_default(scanner: Scanner) -> None:
    """A translated turn's Response object repeats the request's parameters (`DEFAULTED_FIELDS`).
    Those the client sent are walked before storing (metadata is never sent upstream, so only this
    check sees it); one the client did not send holds Nuri's default and is not. Here a defaulted
    field is changed after the fact to show which are walked: in a real turn it is a constant."""
    import asyncio

    from nuri.gateway.api_responses import Turn, input_items

    reply = {"model": "kr", "choices": [{"message": {"role": "assistant", "content": "네."}, "finish_reason": "stop"}]}
    odd = f"연락처 {PHONE}"

    def stored_response(body: dict[str, Any], change: dict[str, Any]) -> tuple[Counting, dict[str, Any]]:
        counting = Counting(scanner)
        store = MemoryStore(7, counting, 100)
        turn = Turn(body, input_items(body["input"]), [], "team", store)
        turn.known = Known({"안녕하세요": []}, nothing_found=True)
        turn.scans = {"네.": []}
        asyncio.run(turn.save({**turn.from_chat(reply), **change}))
        stored = asyncio.run(store.load(turn.id, "team"))
        assert stored is not None
        return counting, stored.response

    sent = {"model": "default", "input": "안녕하세요", "metadata": {"note": odd}}
    counting, response = stored_response(sent, {})
    assert odd in counting.seen and response["metadata"] == {"note": "연락처 <PHONE_REDACTED>"}
    counting, response = stored_response({"model": "default", "input": "안녕하세요"}, {"metadata": {"note": odd}})
    assert counting.seen == [] and response["metadata"] == {"note": odd}      # not walked: Nuri's default


def test_a_follow_up_keeps_its_stored_history_as_it_was_and_still_redacts_its_new_input(scanner: Scanner) -> None:
    """A follow-up turn continues stored items and a stored response. Their ids and any field that is
    not sent upstream (here an item's note) the request's classification never sees; they were
    checked when they were stored. When the classification finds nothing in any text, the history
    is kept as it was stored, not walked or scanned again (it used to be copied and its ids
    scanned, every turn); when it finds a value, in the new input here, the value is redacted and
    the history is checked again, string by string, as any other. New items are always walked."""
    import asyncio

    from nuri.gateway.api_responses import Turn, input_items, to_chat

    reply_id, earlier_id = "msg_" + "c3" * 24, "resp_" + "d4" * 24
    history = [{"type": "message", "role": "user", "content": "배송 문의드립니다.", "note": "메모"},
               {"id": reply_id, "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "네, 확인하겠습니다.", "annotations": [], "logprobs": []}]}]
    reply_text = "반품 절차를 안내해 드리겠습니다."
    reply = {"model": "kr", "usage": {"prompt_tokens": 20, "completion_tokens": 8},
             "choices": [{"message": {"role": "assistant", "content": reply_text}, "finish_reason": "stop"}]}

    def follow_up(new_input: Any) -> tuple[Counting, Stored]:
        counting = Counting(scanner)
        store = MemoryStore(7, counting, 100)
        body = {"model": "default", "input": new_input, "previous_response_id": earlier_id}
        turn = Turn(body, input_items(body["input"]), history, "team", store)
        texts, unscanned = walk(to_chat(body, history, turn.items))        # what the pipeline classifies
        turn.known = Known.of(texts, classify_texts(texts, unscanned, scanner))
        turn.scans = {reply_text: scanner.scan(reply_text)}                # the reply guard's scan
        asyncio.run(turn.save(turn.from_chat(reply)))
        stored = asyncio.run(store.load(turn.id, "team"))
        assert stored is not None
        return counting, stored

    counting, stored = follow_up("반품은 어떻게 하나요?")
    assert counting.seen == []                                             # nothing scanned again
    assert stored.items[:2] == history and stored.response["previous_response_id"] == earlier_id
    counting, stored = follow_up(f"제 번호는 {PHONE} 입니다.")
    assert PHONE not in json.dumps(stored, ensure_ascii=False)
    assert stored.items[2]["content"] == "제 번호는 <PHONE_REDACTED> 입니다."
    assert "메모" in counting.seen                                          # the history checked again
    assert reply_id not in counting.seen and earlier_id not in counting.seen   # its ids kept as stored
    assert stored.items[:2] == history
    # a new item's field that is not sent upstream is walked and scanned, whatever the history
    counting, stored = follow_up([{"type": "message", "role": "user", "content": "반품 문의", "note": f"연락처 {PHONE}"}])
    assert PHONE not in json.dumps(stored, ensure_ascii=False) and f"연락처 {PHONE}" in counting.seen
    assert stored.items[:2] == history          # (the copy that redacts it walks the history too)

"""The request walk is deny by default: every string at any depth is read, keys included, and
content that cannot be read is reported by media type. Classification and masking both follow it,
and a value split across fields is found in the joined view and masked piece by piece."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nuri.config import PrivacySettings
from nuri.gateway.reply import ReplyPrivacy
from nuri.privacy import fields
from nuri.privacy.classify import classify_request
from nuri.privacy.scanner import Scanner

RRN = "900101-1234568"
PHONE = "010-2345-6789"
EMAIL = "hong.gildong@example.co.kr"
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "default", "messages": [{"role": "user", "content": "안녕하세요"}], **extra}


def _sites(value: str) -> dict[str, dict[str, Any]]:
    """One request per place a client can put a string; each carries `value` only there."""
    cue = f"주민등록번호 {value}"
    tool = {"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {
        "type": "object", "properties": {"q": {"type": "string", "description": "query"}}}}}

    def with_tool(mutate: Any) -> dict[str, Any]:
        t = json.loads(json.dumps(tool))
        mutate(t)
        return _chat(tools=[t])

    return {
        "tool description": with_tool(lambda t: t["function"].__setitem__("description", cue)),
        "schema description": with_tool(
            lambda t: t["function"]["parameters"]["properties"]["q"].__setitem__("description", cue)),
        "schema enum": with_tool(lambda t: t["function"]["parameters"]["properties"]["q"].__setitem__("enum", [cue])),
        "schema default": with_tool(lambda t: t["function"]["parameters"]["properties"]["q"].__setitem__("default", cue)),
        "schema examples": with_tool(
            lambda t: t["function"]["parameters"]["properties"]["q"].__setitem__("examples", [cue])),
        "schema property key": with_tool(
            lambda t: t["function"]["parameters"]["properties"].__setitem__(cue, {"type": "string"})),
        "response_format": _chat(response_format={"type": "json_schema", "json_schema": {
            "name": "r", "schema": {"type": "object", "description": cue}}}),
        "metadata": _chat(metadata={"note": cue}),
        "user": _chat(user=cue),
        "prediction": _chat(prediction={"type": "content", "content": cue}),
        "unknown key": _chat(x_custom=cue),
        "unknown nested key": _chat(x_a={"b": {"c": [{"d": cue}]}}),
        "type smuggled": {"model": "default", "messages": [
            {"role": "user", "content": [{"type": cue, "text": "hi"}]}]},
        "tool call arguments": {"model": "default", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": json.dumps({"q": cue})}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]},
    }


@pytest.mark.parametrize("site", list(_sites(RRN)))
def test_every_site_is_classified(scanner: Scanner, site: str) -> None:
    body = _sites(RRN)[site]
    c = classify_request(body, "chat", scanner)
    assert "KR_RRN" in c.entity_types, site


@pytest.mark.parametrize("site", list(_sites(PHONE)))
def test_every_site_is_masked(scanner: Scanner, site: str) -> None:
    body = _sites(PHONE)[site]
    c = classify_request(body, "chat", scanner)
    privacy = ReplyPrivacy(scanner, c, PrivacySettings(), guard=True)
    masked = privacy.mask(body, "chat", frozenset({"PHONE"}))
    assert PHONE not in json.dumps(masked, ensure_ascii=False), site
    assert "01023456789" not in json.dumps(masked, ensure_ascii=False).replace("-", "")
    assert PHONE in json.dumps(body, ensure_ascii=False), "the client's body is not changed"


def test_values_nuri_interprets_are_exempt_but_only_while_they_look_like_words() -> None:
    body = _chat(tool_choice="auto", response_format={"type": "json_object"})
    paths = [p for p, _t in fields.request_texts(body)]
    assert ("model",) not in paths
    assert ("messages", 0, "role") not in paths
    assert ("tool_choice",) not in paths and ("response_format", "type") not in paths
    assert ("messages", 0, "content") in paths


def test_what_the_walk_remembers_of_words_and_keys_is_bounded_and_never_changes_a_verdict() -> None:
    """Keys and enum words are remembered between requests; a client inventing keys, or sending a
    role that looks like a phone number, can neither grow that memory past its bound nor turn a
    remembered verdict into a string left unread."""
    invented = {f"k{i}": "x" for i in range(2 * fields._WORDS_SEEN_MAX)}
    fields.walk(_chat(metadata=invented))
    assert len(fields._plain_keys) <= fields._WORDS_SEEN_MAX
    for _ in range(2):                               # the second time from memory
        paths = [p for p, _t in fields.request_texts(_chat(messages=[{"role": PHONE, "content": "안녕"},
                                                                     {"role": "user", "content": "x"},
                                                                     {EMAIL: "customer"}]))]
        assert ("messages", 0, "role") in paths and ("messages", 1, "role") not in paths
        assert ("messages", 2, fields.KeyOf(EMAIL)) in paths


def test_object_keys_are_renamed_when_masked(scanner: Scanner) -> None:
    body = _chat(metadata={EMAIL: "customer", "plain": "x"})
    c = classify_request(body, "chat", scanner)
    masked = ReplyPrivacy(scanner, c, PrivacySettings(), guard=True).mask(body, "chat", frozenset({"EMAIL"}))
    assert list(masked["metadata"]) == ["<EMAIL_1>", "plain"]


def test_image_audio_and_file_parts_are_unscanned_content(scanner: Scanner) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "이 사진 설명"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQK", "filename": "a.pdf"}},
        {"type": "image_url", "image_url": {"url": f"https://img.example.com/x.png?email={EMAIL}"}},
    ]}]}
    c = classify_request(body, "chat", scanner)
    assert sorted(c.unscanned) == ["application/pdf", "audio/wav", "image/*", "image/png"]
    assert c.content_kinds == {"image", "audio", "file"}
    assert c.summary()["unscanned_content"] == ["application/pdf", "audio/wav", "image/*", "image/png"]
    assert "EMAIL" in c.entity_types, "an image URL is still text that is read"
    texts = [t for _p, t in fields.request_texts(body)]
    assert not any(t.startswith("data:") for t in texts), "binary payloads are not scanned as text"


def test_a_data_url_anywhere_is_unscanned_content(scanner: Scanner) -> None:
    c = classify_request(_chat(x_attachment=PNG), "chat", scanner)
    assert c.unscanned == ["image/png"]


@pytest.mark.parametrize(("left", "right"), [
    ("제 주민등록번호는 900101", "-1234568 입니다"),
    ("제 주민등록번호는 900101-", "1234568"),
    ("제 주민등록번호는 9001011", "234568"),
    ("주민번호 900101", "1234568"),
])
@pytest.mark.parametrize("carrier", ["parts", "messages"])
def test_a_value_split_across_fields_is_found_and_every_piece_masked(
        scanner: Scanner, left: str, right: str, carrier: str) -> None:
    if carrier == "parts":
        messages = [{"role": "user", "content": [{"type": "text", "text": left}, {"type": "text", "text": right}]}]
    else:
        messages = [{"role": "user", "content": left}, {"role": "user", "content": right}]
    body = {"model": "default", "messages": messages}
    c = classify_request(body, "chat", scanner)
    assert "KR_RRN" in c.entity_types
    masked = ReplyPrivacy(scanner, c, PrivacySettings(), guard=True).mask(body, "chat", frozenset({"KR_RRN"}))
    digits = "".join(ch for ch in json.dumps(masked) if ch.isdigit())
    assert "900101" not in digits and "1234568" not in digits and "234568" not in digits


def test_a_phone_split_across_messages_is_masked_and_restorable(scanner: Scanner) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": "연락처 010-2345"},
                                              {"role": "user", "content": "-6789 로 주세요"}]}
    c = classify_request(body, "chat", scanner)
    privacy = ReplyPrivacy(scanner, c, PrivacySettings(), guard=True)
    masked = privacy.mask(body, "chat", frozenset({"PHONE"}))
    sent = [m["content"] for m in masked["messages"]]
    assert "2345" not in sent[0] and "6789" not in sent[1]
    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": sent[0] + sent[1]}}]}
    assert privacy.reply(reply)["choices"][0]["message"]["content"] == "연락처 010-2345-6789 로 주세요"


def test_a_marking_split_across_parts_sets_the_grade(scanner: Scanner) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "[대"}, {"type": "text", "text": "외비] 보고서"}]}]}
    assert classify_request(body, "chat", scanner).n2sf_grade == "S"


def test_fields_that_only_touch_are_not_cut_apart(scanner: Scanner) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": f"전화 {PHONE}"},
                                              {"role": "user", "content": "12시에 전화 주세요"}]}
    c = classify_request(body, "chat", scanner)
    phones = [e for e in c.entities if e.type == "PHONE"]
    assert [(e.path, e.text) for e in phones] == [(("messages", 0, "content"), PHONE)]


def test_a_split_value_counts_once(scanner: Scanner) -> None:
    body = {"model": "default", "messages": [{"role": "user", "content": "주민등록번호 900101"},
                                              {"role": "user", "content": "-1234568"}]}
    assert classify_request(body, "chat", scanner).counts() == {"KR_RRN": 1}

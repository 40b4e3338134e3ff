"""Pseudonymise → restore round trips on every OpenAI request shape, and mapping hygiene."""

from __future__ import annotations

import copy
import json
import pickle
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nuri.config import PrivacySettings
from nuri.gateway.reply_texts import restore_reply
from nuri.privacy import fields
from nuri.privacy.checksums import luhn_valid, rrn_valid
from nuri.privacy.detectors.registry import make_surrogate
from nuri.privacy.pseudonymizer import PLACEHOLDER_RE, Pseudonymizer

try:
    from pseudo_helpers import StandInScanner, real_scanner
except ImportError:  # collected as a package
    from .pseudo_helpers import StandInScanner, real_scanner

NAME, PHONE, EMAIL, CARD = "김철수", "010-2345-6789", "chulsoo.kim@example.co.kr", "4111-1111-1111-1111"
RRN = "900101-1234568"
VALUES = [NAME, PHONE, EMAIL, CARD]


def _chat() -> dict:
    return {
        "model": "x",
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": f"상담원 메모: 고객 {NAME}님, 주민등록번호 {RRN}"},
            {"role": "user", "name": "agent-7", "content": f"{NAME}님 연락처 {PHONE}로 전화 부탁드립니다."},
            {"role": "user", "content": [
                {"type": "text", "text": f"메일은 {EMAIL} 입니다"},
                {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
                {"type": "text", "text": f"카드 {CARD}입니다"},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "lookup", "arguments": json.dumps({"name": NAME, "phone": PHONE},
                                                                        ensure_ascii=False)}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": f'{{"owner": "{NAME}", "email": "{EMAIL}"}}'},
            {"role": "assistant", "content": "확인했습니다.",
             "function_call": {"name": "legacy", "arguments": json.dumps({"card": CARD})}},
        ],
    }


SHAPES = {
    "chat": ("chat", _chat()),
    "completions-str": ("completions", {"model": "x", "prompt": f"{NAME} 고객 {PHONE}", "suffix": EMAIL}),
    "completions-list": ("completions", {"model": "x", "prompt": [f"{NAME}님", f"카드 {CARD}", 42]}),
    "embeddings-str": ("embeddings", {"model": "e", "input": f"{EMAIL} {PHONE}"}),
    "embeddings-list": ("embeddings", {"model": "e", "input": [NAME, f"{NAME} {PHONE}", "무관한 문장"]}),
}


def _scanners():
    out = [pytest.param(StandInScanner(), id="standin")]
    real = real_scanner()
    if real is not None:
        out.append(pytest.param(real, id="nuri"))
    return out


@pytest.mark.parametrize("scanner", _scanners())
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_round_trip_every_shape(shape: str, scanner) -> None:
    endpoint, body = SHAPES[shape]
    original = copy.deepcopy(body)
    p = Pseudonymizer()
    masked = p.mask_request(body, endpoint, scanner)
    assert body == original, "the input body is never modified"
    dumped = json.dumps(masked, ensure_ascii=False)
    for v in [*VALUES, RRN]:
        assert v not in dumped
    # structure and non-text fields are preserved
    assert [path for path, _ in fields.request_texts(masked, endpoint)] == [
        path for path, _ in fields.request_texts(body, endpoint)]
    before = dict(fields.request_texts(body, endpoint))
    for path, text in fields.request_texts(masked, endpoint):
        expect = before[path].replace(RRN, "<KR_RRN_REDACTED>")
        assert p.restore_text(text) == expect
    # idempotent
    assert p.mask_request(masked, endpoint, scanner) == masked


def test_same_value_same_placeholder_across_fields() -> None:
    p = Pseudonymizer()
    masked = p.mask_request(_chat(), "chat", StandInScanner())
    texts = [t for _, t in fields.request_texts(masked, "chat")]
    name_tokens = {tok for t in texts for tok in re.findall(r"<PERSON_\d+>", t)}
    assert name_tokens == {"<PERSON_1>"}
    assert p.placeholders == {"<PERSON_1>": "PERSON", "<PHONE_1>": "PHONE", "<EMAIL_1>": "EMAIL",
                              "<CARD_1>": "CARD"}
    assert p.counts() == {"PERSON": 1, "PHONE": 1, "EMAIL": 1, "CARD": 1}


def test_spellings_of_one_number_share_a_placeholder() -> None:
    p = Pseudonymizer()
    assert p.token_for("PHONE", "010-2345-6789") == p.token_for("PHONE", "01023456789")
    assert p.token_for("PHONE", "０１０-２３４５-６７８９") == "<PHONE_1>"
    assert p.token_for("PHONE", "010-9999-0000") == "<PHONE_2>"


def test_irreversible_types_never_restored() -> None:
    p = Pseudonymizer(PrivacySettings())
    s = StandInScanner()
    text = f"주민번호 {RRN} 연락처 {PHONE}"
    masked = p.mask_text(text, s.scan(text))
    assert masked == "주민번호 <KR_RRN_REDACTED> 연락처 <PHONE_1>"
    assert p.restore_text(masked) == f"주민번호 <KR_RRN_REDACTED> 연락처 {PHONE}"
    assert RRN not in p.sent_values
    p2 = Pseudonymizer(irreversible_types=set())
    assert p2.restore_text(p2.mask_text(text, s.scan(text))) == text


def test_types_filter_masks_only_those() -> None:
    p = Pseudonymizer()
    s = StandInScanner()
    text = f"{NAME} {PHONE} {EMAIL}"
    assert p.mask_text(text, s.scan(text), {"PHONE"}) == f"{NAME} <PHONE_1> {EMAIL}"


def test_known_value_masked_where_scanner_missed_it() -> None:
    p = Pseudonymizer()
    p.token_for("PERSON", "홍길순")
    assert p.mask_text("담당자는 홍길순이고", []) == "담당자는 <PERSON_1>이고"


def test_client_literal_placeholder_is_never_allocated_or_restored() -> None:
    p = Pseudonymizer()
    s = StandInScanner()
    text = f"템플릿 <PERSON_1> 자리에 {NAME}"
    masked = p.mask_text(text, s.scan(text))
    assert masked == "템플릿 <PERSON_1> 자리에 <PERSON_2>"
    assert p.restore_text(masked) == text


def test_mapping_stays_in_memory() -> None:
    p = Pseudonymizer()
    p.mask_text(f"{NAME} {PHONE}", StandInScanner().scan(f"{NAME} {PHONE}"))
    for shown in (repr(p), str(p), f"{p}"):
        assert NAME not in shown and PHONE not in shown
    with pytest.raises(TypeError):
        pickle.dumps(p)
    with pytest.raises(TypeError):
        copy.deepcopy(p)
    with pytest.raises(TypeError):
        p.mapping["<PERSON_1>"] = "x"  # type: ignore[index]
    assert not hasattr(p, "__dict__")


def test_restore_reply_content_and_tool_arguments() -> None:
    p = Pseudonymizer()
    tok_q = p.token_for("SECRET", 'pa"ss\\word')
    tok_n = p.token_for("PERSON", NAME)
    reply = {
        "id": "r", "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": f"{tok_n}님께 안내했습니다", "tool_calls": [
                {"id": "t", "type": "function",
                 "function": {"name": "f", "arguments": json.dumps({"who": tok_n, "pw": tok_q})}}]}},
            {"index": 1, "text": f"legacy {tok_n}"},
        ],
    }
    out = restore_reply(reply, p)
    assert out["choices"][0]["message"]["content"] == f"{NAME}님께 안내했습니다"
    args = json.loads(out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
    assert args == {"who": NAME, "pw": 'pa"ss\\word'}
    assert out["choices"][1]["text"] == f"legacy {NAME}"
    assert reply["choices"][1]["text"] == f"legacy {tok_n}"


def test_unknown_placeholders_pass_through() -> None:
    p = Pseudonymizer()
    p.token_for("PERSON", NAME)
    assert p.restore_text("<PERSON_7> and <PERSON_1>") == f"<PERSON_7> and {NAME}"


# -- surrogates -------------------------------------------------------------------------------

@pytest.mark.parametrize("scanner", _scanners())
def test_surrogate_round_trip(scanner) -> None:
    p = Pseudonymizer(PrivacySettings(surrogates=True))
    endpoint, body = SHAPES["chat"]
    masked = p.mask_request(body, endpoint, scanner)
    dumped = json.dumps(masked, ensure_ascii=False)
    for v in VALUES:
        assert v not in dumped
    assert not PLACEHOLDER_RE.search(dumped.replace("<KR_RRN_REDACTED>", ""))
    before = dict(fields.request_texts(body, endpoint))
    for path, text in fields.request_texts(masked, endpoint):
        assert p.restore_text(text) == before[path].replace(RRN, "<KR_RRN_REDACTED>")
    assert p.mask_request(masked, endpoint, scanner) == masked


def test_surrogate_shapes_are_well_formed() -> None:
    assert re.fullmatch(r"010-\d{4}-\d{4}", make_surrogate("PHONE", PHONE, 1))
    assert make_surrogate("PHONE", PHONE, 1) != PHONE
    card = make_surrogate("CARD", CARD, 3)
    assert re.fullmatch(r"\d{4}-\d{4}-\d{4}-\d{4}", card) and luhn_valid(card)
    rrn = make_surrogate("KR_RRN", RRN, 2)
    assert rrn_valid(rrn) and rrn[7] == RRN[7]
    assert make_surrogate("EMAIL", EMAIL, 4) == "user4@example.com"
    assert re.fullmatch(r"[가-힣]{3}", make_surrogate("PERSON", NAME, 1))
    assert make_surrogate("IP_ADDRESS", "10.1.2.3", 1) == "192.0.2.1"
    assert re.fullmatch(r"\d{2}가\d{4}", make_surrogate("VEHICLE_PLATE", "12가3456", 5))
    assert make_surrogate("DATE_OF_BIRTH", "1985년 3월 12일", 2) == "1900년 1월 2일"
    secret = make_surrogate("SECRET", "sk-abcdefghijklmnopqrstuvwxyz", 1)
    assert secret.startswith("sk-NURIFAKE") and "abcdef" not in secret


def test_surrogates_are_unique_and_avoid_real_values() -> None:
    p = Pseudonymizer(surrogates=True)
    # a real value equal to the first surrogate must not be shadowed by it
    real = "010-0000-0001"
    first = p.token_for("PHONE", real)
    assert first != real
    tokens = {p.token_for("PERSON", f"사람{i:03d}") for i in range(150)}
    assert len(tokens) == 150
    assert all(p.restore_text(t) == f"사람{i:03d}" for i, t in enumerate(
        p.token_for("PERSON", f"사람{i:03d}") for i in range(150)))


# -- property: any mix of values and filler text round-trips -----------------------------------

_PIECES = st.sampled_from([
    NAME, PHONE, EMAIL, CARD, "이영희", "010-3333-4444", " 고객님 ", "님의 연락처는 ", " 입니다. ", "\n",
    "<PERSON_1>", "<PHONE_3>", "주문번호 2024-0001 ", "a<b>c ", "Jane Roe", ", ",
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_PIECES, min_size=1, max_size=8), min_size=1, max_size=4), st.booleans())
def test_any_conversation_round_trips(messages: list[list[str]], surrogates: bool) -> None:
    body = {"messages": [{"role": "user", "content": " ".join(m)} for m in messages]}
    for scanner in [StandInScanner(), *([real_scanner()] if real_scanner() is not None else [])]:
        p = Pseudonymizer(surrogates=surrogates)
        masked = p.mask_request(body, "chat", scanner)
        for orig, new in zip(body["messages"], masked["messages"], strict=True):
            assert p.restore_text(new["content"]) == orig["content"]
            if isinstance(scanner, StandInScanner):
                for v in (NAME, PHONE, EMAIL, CARD, "이영희", "010-3333-4444"):
                    assert v not in new["content"]
        again = p.mask_request(masked, "chat", scanner)
        if isinstance(scanner, StandInScanner):
            assert again == masked
        else:  # a scanner may find more in masked text than before; tokens are never touched again
            for before, after in zip(masked["messages"], again["messages"], strict=True):
                assert PLACEHOLDER_RE.findall(before["content"]) == [
                    m for m in PLACEHOLDER_RE.findall(after["content"]) if f"<{m[0]}_{m[1]}>" in before["content"]]


@pytest.mark.parametrize("surrogates", [False, True])
def test_message_name_stays_a_valid_name(surrogates: bool) -> None:
    p = Pseudonymizer(surrogates=surrogates)
    body = {"messages": [{"role": "user", "name": NAME, "content": f"{NAME}입니다"},
                         {"role": "user", "name": "agent-7", "content": "안녕하세요"}]}
    masked = p.mask_request(body, "chat", StandInScanner())
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", masked["messages"][0]["name"])
    assert NAME not in json.dumps(masked, ensure_ascii=False)
    assert masked["messages"][1]["name"] == "agent-7"

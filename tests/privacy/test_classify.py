"""Request classification: every field of every request shape, markings, topics, domains."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nuri.config import PrivacySettings
from nuri.privacy.classify import classify_request
from nuri.privacy.scanner import Scanner
from nuri.privacy.types import PipaCategory

SCANNER = Scanner()
PHONE = "010-1234-5678"


def chat(**msg: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "안녕하세요"}, msg]}


@pytest.mark.parametrize(("body", "endpoint"), [
    (chat(role="system", content=f"상담원 번호 {PHONE}"), "chat"),
    (chat(role="tool", tool_call_id="1", content=f'{{"phone": "{PHONE}"}}'), "chat"),
    (chat(role="assistant", content=None, tool_calls=[
        {"id": "1", "type": "function", "function": {"name": "call", "arguments": f'{{"to": "{PHONE}"}}'}}]), "chat"),
    (chat(role="user", content=[{"type": "image_url", "image_url": {"url": "x"}},
                                {"type": "text", "text": f"번호 {PHONE}"}]), "chat"),
    (chat(role="user", content="hi", name=f"user {PHONE}"), "chat"),
    ({"model": "m", "prompt": f"call {PHONE}"}, "completions"),
    ({"model": "m", "prompt": ["a", f"call {PHONE}"]}, "completions"),
    ({"model": "m", "input": [f"call {PHONE}"]}, "embeddings"),
    ({"model": "m", "input": f"call {PHONE}"}, "embeddings"),
])
def test_personal_data_is_found_in_every_field(body: dict[str, Any], endpoint: str) -> None:
    c = classify_request(body, endpoint, SCANNER)
    assert c.counts() == {"PHONE": 1}
    assert PipaCategory.PERSONAL in c.categories
    assert c.entities[0].path  # the field it came from


def test_summary_holds_types_and_counts_never_values() -> None:
    body = chat(role="user", content=f"김민수 고객님 {PHONE} 주민번호 900101-1234568")
    summary = classify_request(body, "chat", SCANNER).summary()
    assert summary["entity_counts"] == {"KR_RRN": 1, "PERSON": 1, "PHONE": 1}
    assert "unique_identification" in summary["categories"]
    flat = repr(summary)
    for value in ("김민수", PHONE, "900101"):
        assert value not in flat


@pytest.mark.parametrize(("text", "grade"), [
    ("[대외비] 2025년 예산안", "S"),
    ("이 문서는 비밀 문서입니다", "C"),
    ("3급비밀 작전 계획", "C"),
    ("기밀 사항 포함", "C"),
    ("[C] 보고서", "C"),
    ("[S] 보고서", "S"),
    ("CONFIDENTIAL: merger plan", "C"),
    ("대외비이지만 일부 기밀 포함", "C"),        # highest grade wins
    ("비밀번호를 잊어버렸어요", "O"),            # a password is not a marking
    ("기밀유지계약서 양식 주세요", "O"),
    ("this is confidential between us", "O"),  # prose, not a marking
])
def test_n2sf_grade_from_markings(text: str, grade: str) -> None:
    assert SCANNER.classify_text(text).n2sf_grade == grade


def test_configured_markings_and_highest_grade_across_fields() -> None:
    scanner = Scanner(PrivacySettings(n2sf_markings={"사내한정": "S", "PROJECT-X": "C"}))
    assert scanner.classify_text("사내한정 자료").n2sf_grade == "S"
    body = {"messages": [{"role": "system", "content": "사내한정"}, {"role": "user", "content": "PROJECT-X 일정"}]}
    c = classify_request(body, "chat", scanner)
    assert c.n2sf_grade == "C" and set(c.markings) == {"사내한정", "PROJECT-X"}


@pytest.mark.parametrize(("text", "topic"), [
    ("환자는 우울증 진단을 받았다", "health"),
    ("the patient was diagnosed with diabetes", "health"),
    ("그는 천주교 신자이며 종교 활동을 한다", "beliefs"),
    ("노동조합 가입 여부를 확인", "union_party"),
    ("지지 정당을 묻는 질문", "political_opinion"),
    ("지원자의 전과 기록 조회", "criminal_record"),
    ("has a criminal record for fraud", "criminal_record"),
    ("성적 지향에 관한 상담", "sex_life"),
    ("유전자 검사 결과를 보내드립니다", "genetic"),
    ("출입 시 지문 등록이 필요합니다", "biometric"),
    ("applicants' race and ethnicity", "race_ethnicity"),
])
def test_sensitive_topics(text: str, topic: str) -> None:
    c = SCANNER.classify_text(text)
    assert topic in c.sensitive_topics
    assert PipaCategory.SENSITIVE in c.categories


def test_weak_topic_words_alone_are_not_sensitive() -> None:
    c = SCANNER.classify_text("병원 앞 카페에서 3시에 만나요")
    assert c.sensitive_topics == set() and PipaCategory.SENSITIVE not in c.categories


@pytest.mark.parametrize(("text", "domain"), [
    ("신입 채용 면접 평가표", "hiring"),
    ("loan underwriting model", "lending"),
    ("환자 진료 기록 요약", "medical"),
    ("입학 사정 채점 기준", "education"),
    ("발전소 전력망 운영", "energy"),
    ("정수장 수돗물 수질", "water"),
    ("원전 안전 점검", "nuclear"),
    ("자율주행 철도 관제", "transport"),
    ("안면인식 출입 시스템", "biometric"),
    ("복지 수급 자격 심사", "public_decision"),
])
def test_high_impact_domains(text: str, domain: str) -> None:
    assert domain in SCANNER.classify_text(text).domains


def test_language_shares() -> None:
    langs = SCANNER.classify_text("한국어 text 漢字 かな").languages
    assert set(langs) == {"hangul", "latin", "han", "kana"}
    assert langs["hangul"] == pytest.approx(3 / 11, abs=0.01)
    assert langs["latin"] == pytest.approx(4 / 11, abs=0.01)
    body = {"messages": [{"role": "user", "content": "가나다"}, {"role": "user", "content": "abc"}]}
    assert classify_request(body, "chat", SCANNER).languages == {"hangul": 0.5, "latin": 0.5}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["role", "content", "name", "tool_calls", "function", "arguments", "text", "type",
                         "messages", "prompt", "input", "function_call", "refusal"]), inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["messages", "prompt", "input", "suffix", "model"]), _JSON, max_size=4),
       st.sampled_from(["chat", "completions", "embeddings"]))
def test_classify_request_never_raises_on_malformed_bodies(body: dict[str, Any], endpoint: str) -> None:
    c = classify_request(body, endpoint, SCANNER)
    assert c.n2sf_grade in {"C", "S", "O"}

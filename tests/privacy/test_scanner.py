"""Scanner behaviour: original offsets, overlap resolution, settings, normalisation, fuzzing."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nuri.config import PrivacySettings
from nuri.privacy.detectors.registry import ENTITY_TYPES
from nuri.privacy.normalize import normalize
from nuri.privacy.scanner import Scanner

try:
    from scan_helpers import SCANNER, found
except ImportError:  # collected as a package
    from .scan_helpers import SCANNER, found

DOC = (
    "［상담기록］ 고객 김민수님(주민번호 ９００１０１-１２３４５６８)이 연락처 010‐1234‐5678로 요청.\n"
    "카드 4111 1111 1111 1111, 국민은행 123456-01-234567, 메일 minsu@example.com, "
    "주소 서울특별시 강남구 테헤란로 152, 차량 12가3456, 키 AKIAIOSFODNN7EXAMPLE."
)


def test_every_entity_span_holds_its_value_in_the_original_text() -> None:
    entities = SCANNER.scan(DOC)
    assert {e.type for e in entities} >= {"PERSON", "KR_RRN", "PHONE", "CARD", "BANK_ACCOUNT", "EMAIL",
                                          "ADDRESS", "VEHICLE_PLATE", "SECRET"}
    for e in entities:
        assert DOC[e.start:e.end] == e.text
    assert ("KR_RRN", "９００１０１-１２３４５６８") in found(DOC)


def test_entities_are_sorted_and_never_overlap() -> None:
    entities = SCANNER.scan(DOC * 3)
    for a, b in zip(entities, entities[1:], strict=False):
        assert a.end <= b.start


def test_overlap_keeps_the_more_certain_entity() -> None:
    # A 13-digit RRN with checksum and context also looks like a bank account next to 계좌.
    assert [t for t, _ in found("계좌 말고 주민번호 900101-1234568 확인")] == ["KR_RRN"]


def test_min_score_and_entity_types() -> None:
    strict = Scanner(PrivacySettings(min_score=0.95))
    assert [e.type for e in strict.scan("주민번호 900101-1234568, 차량 12가3456")] == ["KR_RRN"]
    assert set(ENTITY_TYPES) >= {e.type for e in SCANNER.scan(DOC)}


def test_text_without_personal_data_has_no_entities() -> None:
    text = "오늘 회의는 3시에 시작합니다. 안건은 2024년 예산과 제품 코드 AB-1234 검토입니다. 가격은 35,000원."
    assert SCANNER.scan(text) == []


def test_normalize_maps_back_to_the_original() -> None:
    text = "a\u200b０１２ 9 0 0 1 0 1 2 3 b"
    norm = normalize(text)
    assert "012" in norm.text and "90010123" in norm.text
    i = norm.text.index("012")
    s, e = norm.span(i, i + 3)
    assert text[s:e] == "０１２"
    j = norm.text.index("90010123")
    s, e = norm.span(j, j + 8)
    assert text[s:e] == "9 0 0 1 0 1 2 3"


def test_plain_text_normalises_without_a_copy_or_map() -> None:
    assert normalize("평범한 문장 010-1234-5678").identity


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_scan_never_raises_and_offsets_stay_inside(text: str) -> None:
    for e in SCANNER.scan(text):
        assert 0 <= e.start < e.end <= len(text)
        assert text[e.start:e.end] == e.text
    SCANNER.classify_text(text)


_PIECES = st.sampled_from(["０", "1", "-", " ", "\u200b", "가", "님", "@", ".", ":", "김", "민", "수", "로", "\u0301",
                           "010", "4111", "sk-", "(", ")", "\n", "ᄀ", "ᅡ", "ﾀ", "①", "Ⅻ"])


@settings(max_examples=150, deadline=None)
@given(st.lists(_PIECES, max_size=60).map("".join))
def test_scan_never_raises_on_adversarial_mixes(text: str) -> None:
    for e in SCANNER.scan(text):
        assert text[e.start:e.end] == e.text

"""Person names: Korean names with titles, labels, particles; English names; policy cases."""

from __future__ import annotations

import pytest

from nuri.config import PrivacySettings
from nuri.privacy.scanner import Scanner

try:
    from scan_helpers import found, types
except ImportError:  # collected as a package
    from .scan_helpers import found, types


def persons(text: str) -> list[str]:
    return [v for t, v in found(text) if t == "PERSON"]


@pytest.mark.parametrize(("text", "name"), [
    ("김민수 고객님께서 문의하셨습니다", "김민수"),
    ("담당자 박서연 과장에게 전달", "박서연"),
    ("이지은씨가 오셨어요", "이지은"),
    ("환자 최영호님 내원", "최영호"),
    ("성명: 정하늘", "정하늘"),
    ("남궁민수 대리 보고서", "남궁민수"),
    ("제갈성현 선생님", "제갈성현"),
    ("윤서준(34) 씨는 회사원이다", "윤서준"),
    ("오늘 한지민은 출근했다", "한지민"),
])
def test_korean_names_with_evidence(text: str, name: str) -> None:
    assert persons(text) == [name]


def test_surname_with_ssi_marks_the_surname() -> None:
    assert persons("경찰은 박씨를 불러 조사했다") == ["박"]


def test_one_letter_people_news_leaves_unnamed_are_found_by_rule() -> None:
    from nuri.privacy.detectors.person import PersonDetector

    rules = PersonDetector()        # no tagger
    text = "교사 A(44)씨가 남편 B(44)씨를 상대로 낸 소송, K군을 입건, C 씨는"
    assert [text[h.start:h.end] for h in rules.detect(text)] == ["A", "B", "K", "C"]
    assert rules.detect("BMW 양식, ABC씨앗, A4 씨름") == []


@pytest.mark.parametrize("text", [
    "이번 정부는 최근 신규 정책을 발표했다",
    "전화번호와 주소를 알려주세요",
    "조선 시대의 한양은 수도였다",
    "이 영화는 정말 최고의 작품이다",
    "구경하는 사람들이 많았다",
    "경기도와 강원도에 눈이 온다",
])
def test_common_words_are_not_names(text: str) -> None:
    assert persons(text) == []


def test_historical_figures_in_encyclopedic_text_are_not_reported() -> None:
    text = "세종대왕은 훈민정음을 창제했고, 이순신은 임진왜란에서 수군을 이끌었다. 유관순은 독립운동가이다."
    assert persons(text) == []
    # …but a living person who shares the name, addressed as such, is.
    assert persons("이순신 고객님 예약 확인") == ["이순신"]


@pytest.mark.parametrize(("text", "name"), [
    ("Please contact Mr. John Smith today", "John Smith"),
    ("Dr. Emily Chen will see you", "Emily Chen"),
    ("Name: Sarah Connor", "Sarah Connor"),
    ("My name is Kim Min-jun", "Kim Min-jun"),
])
def test_english_and_romanized_names(text: str, name: str) -> None:
    assert persons(text) == [name]


def test_english_names_need_context() -> None:
    assert persons("The Apple Watch and Microsoft Teams") == []


def test_name_evasion_with_zero_width_space() -> None:
    text = "김\u200b민수 고객님"
    [(kind, value)] = found(text)
    assert kind == "PERSON" and value == "김\u200b민수"


def test_person_can_be_disabled() -> None:
    scanner = Scanner(PrivacySettings(disabled_entities=["PERSON"]))
    assert "PERSON" not in {e.type for e in scanner.scan("김민수 고객님 010-1234-5678")}
    assert "PHONE" in types("김민수 고객님 010-1234-5678")


@pytest.mark.parametrize(("text", "name"), [
    ("제 이름은 조순자이고 휴대폰 번호는 없어요", "조순자"),
    ("보호자 연락처 (배우자 방솔)", "방솔"),
    ("차주 정민호 차량", "정민호"),
])
def test_names_after_labels_and_relations(text: str, name: str) -> None:
    assert persons(text) == [name]


def test_form_field_words_are_not_names() -> None:
    assert persons("신청일: 2024-01-05\n주호소: 두통\n진료 기록지\n공영주차장 3층") == []


def test_combine_keeps_strong_rules_and_drops_weak_ones_the_tagger_turns_down() -> None:
    from nuri.privacy.detectors.base import Hit
    from nuri.privacy.detectors.person import combine
    from nuri.privacy.types import Evidence

    text = "김민수 과장 안건은 박지성"
    strong = Hit("PERSON", 0, 3, 0.9, Evidence.CONTEXT)
    weak = Hit("PERSON", 7, 10, 0.5, Evidence.PATTERN)
    out = combine(text, [strong, weak], [(0, 3, 0.3), (7, 10, 0.3), (11, 14, 0.95)], 0.5)
    assert [(h.start, h.detail) for h in out] == [(0, "rule+tagger p=0.30"), (11, "tagger p=0.95")]


def test_scaled_maps_the_threshold_to_the_reporting_bar() -> None:
    from nuri.privacy.detectors.person import scaled

    assert scaled(0.4, 0.4) == 0.5
    assert scaled(1.0, 0.4) == 1.0
    assert scaled(0.7, 0.5) == 0.7
    assert scaled(0.2, 0.4) < 0.5

"""Personal data written encoded, disguised or with look-alike characters is still found, and the
entity covers the whole written form, so masking it leaves no trace."""

from __future__ import annotations

import base64
import unicodedata
from collections.abc import Callable

import pytest

from nuri.privacy.decode import decode
from nuri.privacy.detectors.base import Hit
from nuri.privacy.normalize import normalize
from nuri.privacy.scanner import Scanner, merge_views
from nuri.privacy.types import Evidence

SCANNER = Scanner()

# type → (context before, value); the RRN has a valid check digit, the card a valid Luhn digit.
VALUES = {
    "KR_RRN": ("주민번호 ", "900101-1234568"),
    "PHONE": ("연락처 ", "010-2345-6789"),
    "EMAIL": ("메일 ", "hong.gildong@example.co.kr"),
    "CARD": ("카드 ", "4111 1111 1111 1111"),
}
AFTER = " 입니다."

# Named HTML entities for the separators each value holds.
_NAMED = {"-": "&hyphen;", " ": "&nbsp;", "@": "&commat;", ".": "&period;"}


def _percent(v: str) -> str:
    return "".join(f"%{b:02X}" for b in v.encode())


ENCODINGS = {
    "percent": _percent,
    "percent_lower": lambda v: "".join(f"%{b:02x}" for b in v.encode()),
    "base64": lambda v: base64.b64encode(v.encode()).decode(),
    "base64url": lambda v: base64.urlsafe_b64encode(v.encode()).decode().rstrip("="),
    "hex": lambda v: v.encode().hex(),
    "hex_0x": lambda v: "0x" + v.encode().hex().upper(),
    "x_escapes": lambda v: "".join(f"\\x{b:02x}" for b in v.encode()),
    "html_decimal": lambda v: "".join(f"&#{ord(c)};" for c in v),
    "html_hex": lambda v: "".join(f"&#x{ord(c):x};" for c in v),
    "html_named": lambda v: "".join(_NAMED.get(c, c) for c in v),
    "u_escapes": lambda v: "".join(f"\\u{ord(c):04x}" for c in v),
    "u_braces": lambda v: "".join(f"\\u{{{ord(c):x}}}" for c in v),
    "base64_of_percent": lambda v: base64.b64encode(_percent(v).encode()).decode(),
}


def _digits(zero: int) -> Callable[[str], str]:
    """Digits written in another script whose zero is `zero`."""
    return lambda v: "".join(chr(zero + int(c)) if c.isdigit() else c for c in v)


def _between(mark: str) -> Callable[[str], str]:
    """`mark` between every two characters."""
    return lambda v: mark.join(v)


DISGUISES = {
    "isolates": _between("\u2069\u2066"),
    "zero_width_space": _between("\u200b"),
    "grapheme_joiner": _between("\u034f"),
    "variation_selector": _between("\ufe0f"),
    "soft_hyphen": _between("\u00ad"),
    "arabic_indic_digits": _digits(0x0660),
    "devanagari_digits": _digits(0x0966),
    "fullwidth": lambda v: v.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)}),
    "em_dash": lambda v: v.replace("-", "\u2014").replace(" ", "\u2014"),
    "minus_sign": lambda v: v.replace("-", "\u2212").replace(" ", "\u2212"),
}


def _masked_away(entity_type: str, before: str, written: str) -> None:
    """The scanner finds `entity_type` over the whole written value: cutting the entity out
    leaves none of it, only (part of) the words around it."""
    text = before + written + AFTER
    start, end = len(before), len(before) + len(written)
    hits = [e for e in SCANNER.scan(text) if e.type == entity_type]
    assert hits, (entity_type, text)
    e = hits[0]
    assert text[e.start:e.end] == e.text
    assert e.start <= start and e.end >= end, (text, e)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("entity_type", list(VALUES))
def test_encoded_values_are_found_over_the_whole_run(entity_type: str, encoding: str) -> None:
    before, value = VALUES[entity_type]
    _masked_away(entity_type, before, ENCODINGS[encoding](value))


# Every disguise that changes the value (an e-mail address has no digits or dashes to swap).
_DISGUISED = [(t, d) for t in VALUES for d in DISGUISES if DISGUISES[d](VALUES[t][1]) != VALUES[t][1]]


@pytest.mark.parametrize(("entity_type", "disguise"), _DISGUISED)
def test_disguised_values_are_found_over_the_whole_value(entity_type: str, disguise: str) -> None:
    before, value = VALUES[entity_type]
    _masked_away(entity_type, before, DISGUISES[disguise](value))


@pytest.mark.parametrize("written", [
    "hоng.gildоng@ехаmple.co.kr",          # Cyrillic о, е, х, а
    "hοng.gildοng@example.cο.kr",          # Greek ο
    "ｈｏｎｇ.ｇｉｌｄｏｎｇ＠ｅｘａｍｐｌｅ.ｃｏ.ｋｒ",
    "h o n g . g i l d o n g @ e x a m p l e . c o . k r",
    "hong\u200b.gil\u2066dong@exam\u00adple.co.kr",
])
def test_look_alike_and_spelled_out_email_addresses(written: str) -> None:
    _masked_away("EMAIL", "메일 ", written)


@pytest.mark.parametrize("written", [
    "0 1 0 - 2 3 4 5 - 6 7 8 9",
    "0_1_0_2_3_4_5_6_7_8_9",
    "0/1/0/2/3/4/5/6/7/8/9",
    "٠١٠-٢٣٤٥-٦٧٨٩",
    "０１０－２３４５－６７８９",
    "010\u20122345\u20136789",
])
def test_phone_numbers_spelled_out_or_in_other_digits(written: str) -> None:
    _masked_away("PHONE", "연락처 ", written)


def test_encoded_and_plain_values_in_one_text_are_both_found() -> None:
    encoded = base64.b64encode(b"hong.gildong@example.co.kr").decode()
    text = f"연락처 010-2345-6789, 메일 {encoded}, 주민번호 900101&#45;1234568"
    found = {(e.type, e.text) for e in SCANNER.scan(text)}
    assert ("PHONE", "010-2345-6789") in found
    assert ("EMAIL", encoded) in found
    assert ("KR_RRN", "900101&#45;1234568") in found


def test_percent_encoded_parts_of_a_url_are_masked_with_the_value() -> None:
    text = "https://example.com/find?mail=hong.gildong%40example.co.kr&tel=010%2D2345%2D6789"
    found = {(e.type, e.text) for e in SCANNER.scan(text)}
    assert ("EMAIL", "hong.gildong%40example.co.kr") in found
    assert ("PHONE", "010%2D2345%2D6789") in found


def test_utf8_percent_and_x_escapes_decode_korean_context_words() -> None:
    for word in (_percent("주민번호"), "".join(f"\\x{b:02x}" for b in "주민번호".encode())):
        text = f"{word}: 900101-1234568"
        assert [(e.type, e.text) for e in SCANNER.scan(text)] == [("KR_RRN", "900101-1234568")]


def test_decoding_never_hides_what_the_plain_view_finds() -> None:
    text = "주민번호 900101-1234568 (&lt;원본&gt;) 연락처 010-2345-6789"
    same_length = text.replace("&lt;", "<<<<").replace("&gt;", ">>>>")
    plain = {(e.type, e.start, e.end) for e in SCANNER.scan(same_length)}
    found = {(e.type, e.start, e.end) for e in SCANNER.scan(text)}
    assert plain == found


def test_a_decoded_hit_that_wins_an_overlap_still_covers_the_plain_one() -> None:
    plain = [Hit("PHONE", 10, 30, 0.9, Evidence.PATTERN)]
    decoded = [Hit("EMAIL", 0, 20, 0.95, Evidence.PATTERN)]
    assert [(h.type, h.start, h.end) for h in merge_views(plain, decoded)] == [("EMAIL", 0, 30)]


def test_decoded_view_maps_every_character_to_the_whole_run() -> None:
    run = base64.b64encode(b"010-2345-6789").decode()
    text = f"번호 {run} 끝"
    view = decode(text)
    assert view is not None and "010-2345-6789" in view.text
    i = view.text.index("2345")
    assert view.span(i, i + 4) == (3, 3 + len(run))


# -- markings --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "grade", "label"), [
    ("[대 외 비] 2025년 예산안", "S", "대외비"),
    ("[대\u2066외비] 2025년 예산안", "S", "대외비"),
    ("[대·외·비] 회의록", "S", "대외비"),
    ("대.외.비 문서", "S", "대외비"),
    ("[對外秘] 사업 계획", "S", "대외비"),
    ("[對 外 秘] 사업 계획", "S", "대외비"),
    ("秘密 문서", "C", "비밀"),
    ("極秘 사항", "C", "극비"),
    ("機密 자료", "C", "기밀"),
    ("二級秘密 작전 계획", "C", "비밀"),
    ("Ⅱ級秘密 작전 계획", "C", "비밀"),
    ("이 문서는 비 밀 문서입니다", "C", "비밀"),
    ("기·밀 사항 포함", "C", "기밀"),
    ("%EB%8C%80%EC%99%B8%EB%B9%84 문서", "S", "대외비"),        # 대외비 percent-encoded
    ("&#45824;&#50808;&#48708; 문서", "S", "대외비"),           # 대외비 as HTML references
])
def test_markings_written_apart_in_hanja_or_encoded(text: str, grade: str, label: str) -> None:
    c = SCANNER.classify_text(text)
    assert c.n2sf_grade == grade and label in c.markings


@pytest.mark.parametrize("text", [
    "비밀번호를 잊어버렸어요",
    "비 밀번호를 잊어버렸어요",
    "기밀유지계약서 양식 주세요",
    "대외 비용을 줄이는 방안",
    "적극 비판하는 의견",
    "크기 밀도 측정",
    "機密性 評価",
    "秘密保持契約書",
])
def test_words_that_only_contain_a_marking_are_not_one(text: str) -> None:
    assert SCANNER.classify_text(text).n2sf_grade == "O"


# -- no false entities -----------------------------------------------------------------------------

NEGATIVE = [
    "오늘 회의는 3시에 시작합니다. 안건은 2024년 예산과 신제품 출시 일정 검토입니다. 참석자는 모두 10명입니다.",
    "The internationalization of responsibilities requires considerable understanding.",
    "Counterrevolutionaries, electroencephalography and incomprehensibilities are long English words.",
    "See https://example.com/docs/getting-started?lang=ko&page=2 and "
    "https://ko.wikipedia.org/wiki/%EC%84%9C%EC%9A%B8",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed it; merge 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "request 550e8400-e29b-41d4-a716-446655440000 and trace 123e4567-e89b-12d3-a456-426614174000 failed",
    "iPhone 15 Pro, 5G, 10km, 3rd floor, COVID19, A4 paper, MP3 player, H2O, 100mg twice a day",
    "base64 of plain words: " + base64.b64encode(b"the quick brown fox jumps").decode(),
    "R&amp;D 팀과 Q&amp;A 세션, 가격 &lt; 10,000원 &gt; 5,000원",
    "jwt header eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9 only",
    "checksum d41d8cd98f00b204e9800998ecf8427e, "
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
]


@pytest.mark.parametrize("text", NEGATIVE)
def test_ordinary_text_hashes_and_ids_are_not_entities(text: str) -> None:
    assert SCANNER.scan(text) == []


@pytest.mark.parametrize("text", [
    "평범한 한국어 문장입니다. 내일 서울에서 만나요.",
    "An ordinary English sentence about the weather in Seoul tomorrow.",
    "internationalization responsibilities characteristics",
])
def test_plain_text_has_no_decoded_view(text: str) -> None:
    assert decode(text) is None


def test_korean_han_and_kana_are_never_folded() -> None:
    text = "한국어 ㄱㄴ 漢字 かな カナ 〜 ・"
    folded = normalize(text).text
    assert folded == unicodedata.normalize("NFKC", text)


def test_look_alike_letters_fold_to_ascii_and_map_back() -> None:
    text = "메일 hоng@ехаmple.com"        # Cyrillic о, е, х, а
    norm = normalize(text)
    assert norm.text == "메일 hong@example.com"
    assert norm.span(3, len(norm.text)) == (3, len(text))


def test_escapes_doubled_inside_json_in_json_and_short_base64_names_are_read() -> None:
    s = Scanner()
    nested = '{"q": "고객 \\\\ud64d\\\\uae38\\\\ub3d9님께"}'
    assert [e.type for e in s.scan(nested)] == ["PERSON"]
    short = "고객 7ZmN6ri464+Z님께 안내 문자를 보내 주세요."
    (e,) = s.scan(short)
    assert (e.type, short[e.start:e.end]) == ("PERSON", "7ZmN6ri464+Z")

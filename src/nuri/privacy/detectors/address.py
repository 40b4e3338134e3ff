"""Postal addresses: Korean road-name (도로명) and lot-number (지번) addresses, and US-style
English street addresses.

Road-name layout (REFERENCE §1, 도로명주소법): 시·도 + 시·군·구 (+ 읍·면) + road ending in 대로/로/길
(also ``OO로n길``, ``OO로n번길``) + building number [, 동/층/호] [(법정동, 건물명)]. Lot-number
addresses use 동/리 + 번지. A bare "road + number" counts only after an address label, because
"3로 2" or "길 1" alone is too common.
"""

from __future__ import annotations

import re

from nuri.privacy import surrogates
from nuri.privacy.detectors.base import Hit, before, keywords
from nuri.privacy.detectors.spec import EntityKind, Registration, Trigger
from nuri.privacy.types import Evidence, PipaCategory

PROVINCES = frozenset(["서울특별시", "서울시", "서울", "부산광역시", "부산시", "부산", "대구광역시", "대구시", "대구", "인천광역시", "인천시", "인천", "광주광역시", "광주시", "광주", "대전광역시", "대전시", "대전", "울산광역시", "울산시", "울산", "세종특별자치시", "세종시", "세종", "경기도", "경기", "강원특별자치도", "강원도", "강원", "충청북도", "충북", "충청남도", "충남", "전북특별자치도", "전라북도", "전북", "전라남도", "전남", "경상북도", "경북", "경상남도", "경남", "제주특별자치도", "제주도", "제주"])
# The road (or lot) and its number: the anchor every Korean address has. Starting with a one-
# character class keeps the scan fast; the district and province words before it are then checked
# token by token, which is far cheaper than one regex trying every prefix.
_ANCHOR = re.compile(
    r"[로길동리가]"       # one class first: the engine scans for it fast; the branches then tell road from lot
    r"(?:(?<=[로길])(?:[ \t]?\d{1,4}(?:번|번가)?길)?[ \t]?(?:지하[ \t]?)?\d{1,5}(?:-\d{1,4})?(?!\d)(?:[ \t]?번지)?"
    r"(?![ \t]?(?:번(?!지)|분|시|명|개|원|km|m(?![A-Za-z])))"
    r"|(?<=[동리가])[ \t]?(?:산[ \t]?)?\d{1,5}(?:-\d{1,5})?(?!\d)(?:[ \t]?번지)?(?![ \t]?(?:번(?!지)|분|시|명|개|원|층|호)))"
)
_DETAIL = re.compile(
    r"(?:,?[ \t]?(?:[A-Za-z가-힣0-9]{1,12}(?:아파트|빌라|오피스텔|타워|빌딩|센터|맨션|하이츠)[ \t]?)?"
    r"(?:\d{1,4}[ \t]?동[ \t]?)?(?:\d{1,3}[ \t]?층[ \t]?)?(?:\d{1,5}[ \t]?호)?)?"
    r"(?:[ \t]?\([가-힣0-9A-Za-z, \t·]{1,30}\))?"
)
_DIST_WORD = re.compile(r"[가-힣]{1,6}(?:시|군|구)")
_TOWN_WORD = re.compile(r"[가-힣]{1,5}(?:읍|면)")
_EN = re.compile(
    r"\d{1,5}\s(?:[A-Z][a-z]+\.?\s){1,4}"
    r"(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Boulevard|Blvd\.?|Lane|Ln\.?|Drive|Dr\.?|Way|Court|Ct\.?|Place|Pl\.?)"
    r"(?:,?\s(?:Apt|Suite|Unit|#)\.?\s?[\w-]+)?(?:,\s[A-Z][a-z]+(?:\s[A-Z][a-z]+)?)?(?:,\s[A-Z]{2}(?:\s\d{5}(?:-\d{4})?)?)?"
)
_EN_HINT = re.compile(r"\d\s[A-Z][a-z]")
TRIGGER = re.compile(r"[로길동리가]\s?(?:산\s?|지하\s?)?\d")
_CTX = keywords(["주소", "거주", "배송지", "자택", "사는 곳", "소재지", "주거지", "address", "resides", "lives at"])


def _road_start(text: str, anchor: int, lot: bool) -> int:
    """Start of the road (or 동/리) word that ends at `anchor`."""
    i = anchor
    lo = max(0, anchor - 14)
    while i > lo and (("가" <= text[i - 1] <= "힣") or (not lot and (text[i - 1].isdigit() or text[i - 1] == "·"))):
        i -= 1
    return i


def _district_prefix(text: str, start: int) -> tuple[int, bool, bool]:
    """Walk back over 시·도 / 시·군·구 / 읍·면 words before `start`: (new start, province?, district?)."""
    has_prov = has_dist = False
    pos = start
    for _ in range(4):
        j = pos
        while j > 0 and text[j - 1] == " ":
            j -= 1
        k = j
        while k > 0 and "가" <= text[k - 1] <= "힣" and j - k < 8:
            k -= 1
        word = text[k:j]
        if not word or (k > 0 and not text[k - 1].isspace() and text[k - 1] not in "(,:："):
            break
        if word in PROVINCES:
            has_prov, pos = True, k
        elif _DIST_WORD.fullmatch(word) and not has_prov:
            has_dist, pos = True, k
        elif _TOWN_WORD.fullmatch(word) and not (has_prov or has_dist):
            pos = k
        else:
            break
    return pos, has_prov, has_dist


def detect(text: str) -> list[Hit]:
    """Korean addresses (run on windows around `TRIGGER`)."""
    hits: list[Hit] = []
    for m in _ANCHOR.finditer(text):
        lot = text[m.start()] in "동리가"
        road_start = _road_start(text, m.start(), lot)
        if m.start() - road_start < 1:
            continue
        start, has_prov, has_dist = _district_prefix(text, road_start)
        end = m.end()
        detail = _DETAIL.match(text, end)
        if detail:
            end = detail.end()
        while end > start and text[end - 1] in " ,\t\n":
            end -= 1
        ctx = before(text, start, _CTX, 16)
        if lot and not (has_dist or ctx):
            continue
        if has_prov and has_dist:
            score = 0.93
        elif has_dist or has_prov and ctx:
            score = 0.85
        elif ctx:
            score = 0.75
        else:
            continue
        hits.append(Hit("ADDRESS", start, end, score, Evidence.CONTEXT if ctx else Evidence.PATTERN))
    return hits


def detect_english(text: str) -> list[Hit]:
    """US-style street addresses (number + capitalised street name + suffix)."""
    hits: list[Hit] = []
    if _EN_HINT.search(text):
        for m in _EN.finditer(text):
            if m.start() and text[m.start() - 1].isalnum():
                continue
            hits.append(Hit("ADDRESS", m.start(), m.end(), 0.85, Evidence.PATTERN))
    return hits


_CAPITALISED = re.compile(r"[A-Z][a-z]")
ADDRESS = EntityKind("ADDRESS", PipaCategory.PERSONAL, surrogates.address)
KOREAN = Registration("address", (ADDRESS,), detect, trigger=Trigger(TRIGGER, before=64, after=48))
ENGLISH = Registration("address_english", (ADDRESS,), detect_english,
                       gate=lambda text, lowered: _CAPITALISED.search(text) is not None)

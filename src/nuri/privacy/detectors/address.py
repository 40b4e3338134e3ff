"""Postal addresses: Korean road-name (도로명) and lot-number (지번) addresses, and US-style
English street addresses.

Road-name layout (REFERENCE §1, 도로명주소법): 시·도 + 시·군·구 (+ 읍·면) + road ending in 대로/로/길
(also ``OO로n길``, ``OO로n번길``) + building number [, 동/층/호] [(법정동, 건물명)]. Lot-number
addresses use 동/리 + 번지. A bare "road + number" counts only after an address label, because
"3로 2" or "길 1" alone is too common.
"""

from __future__ import annotations

import re

from nuri.privacy.detectors.base import Hit, before, keywords
from nuri.privacy.types import Evidence

_PROV = (
    "서울특별시|서울시|서울|부산광역시|부산시|부산|대구광역시|대구시|대구|인천광역시|인천시|인천|"
    "광주광역시|광주시|광주|대전광역시|대전시|대전|울산광역시|울산시|울산|세종특별자치시|세종시|세종|"
    "경기도|경기|강원특별자치도|강원도|강원|충청북도|충북|충청남도|충남|전북특별자치도|전라북도|전북|"
    "전라남도|전남|경상북도|경북|경상남도|경남|제주특별자치도|제주도|제주"
)
_DIST = r"[가-힣]{1,6}(?:시|군|구)(?![가-힣])"
_TOWN = r"[가-힣]{1,5}(?:읍|면)(?![가-힣])"
_ROAD = r"[가-힣A-Za-z0-9·]{1,12}?(?:대로|로|길)(?:\s?\d{1,4}(?:번|번가)?길)?"
_BLDG = r"\s?(?:지하\s?)?\d{1,5}(?:-\d{1,4})?(?!\d)(?:\s?번지)?"
_LOT = r"[가-힣0-9]{1,8}(?:동|리|가)\s?(?:산\s?)?\d{1,5}(?:-\d{1,5})?(?!\d)(?:\s?번지)?"
_DETAIL = (
    r"(?:,?\s?(?:[A-Za-z가-힣0-9]{1,12}(?:아파트|빌라|오피스텔|타워|빌딩|센터|맨션|하이츠)\s?)?"
    r"(?:\d{1,4}\s?동\s?)?(?:\d{1,3}\s?층\s?)?(?:\d{1,5}\s?호)?)?"
)
_PAREN = r"(?:\s?\([가-힣0-9A-Za-z,\s·]{1,30}\))?"
_KO = re.compile(
    rf"(?P<prov>(?:{_PROV})(?![가-힣])\s?)?(?P<dist>(?:{_DIST}\s?){{0,2}})(?:{_TOWN}\s?)?"
    rf"(?:(?P<road>{_ROAD}){_BLDG}|(?P<lot>{_LOT})){_DETAIL}{_PAREN}"
)
_EN = re.compile(
    r"(?<![\w])\d{1,5}\s(?:[A-Z][a-z]+\.?\s){1,4}"
    r"(?:Street|St\.?|Avenue|Ave\.?|Road|Rd\.?|Boulevard|Blvd\.?|Lane|Ln\.?|Drive|Dr\.?|Way|Court|Ct\.?|Place|Pl\.?)"
    r"(?:,?\s(?:Apt|Suite|Unit|#)\.?\s?[\w-]+)?(?:,\s[A-Z][a-z]+(?:\s[A-Z][a-z]+)?)?(?:,\s[A-Z]{2}(?:\s\d{5}(?:-\d{4})?)?)?"
)
TRIGGER = re.compile(r"(?:로|길|동|리|가)\s?(?:산\s?)?\d|\d\s[A-Z][a-z]")
_CTX = keywords(["주소", "거주", "배송지", "자택", "사는 곳", "소재지", "주거지", "address", "resides", "lives at"])


def detect(text: str) -> list[Hit]:
    hits: list[Hit] = []
    for m in _KO.finditer(text):
        if m.end() - m.start() < 4:
            continue
        has_prov, has_dist = bool(m.group("prov")), bool(m.group("dist"))
        start, end = m.start(), m.end()
        while end > start and text[end - 1] in " ,":
            end -= 1
        ctx = before(text, start, _CTX, 16)
        if m.group("lot") and not (has_dist or ctx):
            continue
        if has_prov and has_dist:
            score = 0.93
        elif has_dist:
            score = 0.85
        elif has_prov and ctx:
            score = 0.85
        elif ctx:
            score = 0.75
        else:
            continue
        hits.append(Hit("ADDRESS", start, end, score, Evidence.CONTEXT if ctx else Evidence.PATTERN))
    for m in _EN.finditer(text):
        hits.append(Hit("ADDRESS", m.start(), m.end(), 0.85, Evidence.PATTERN))
    return hits

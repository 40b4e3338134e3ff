"""Korean vehicle plates: `\\d{2,3}[가-힣]\\d{4}` (3-digit prefix since 2019), optional region
prefix (서울12가3456). Only the Hangul letters used on plates count, and a unit after the last
digits (원, 년, 명 …) means a quantity, not a plate."""

from __future__ import annotations

import re

from nuri.privacy import surrogates
from nuri.privacy.detectors.base import RUN_START, Hit, keywords, near
from nuri.privacy.detectors.spec import NUMERIC, EntityKind, Registration, Shape
from nuri.privacy.types import Evidence, PipaCategory

_REGIONS = "서울|부산|대구|인천|광주|대전|울산|세종|경기|강원|충북|충남|전북|전남|경북|경남|제주"
_LETTERS = "가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주아바사자배하허호육해공국합"
_REGION_BEFORE = re.compile(rf"(?:{_REGIONS})\s?$")
# After a run's first digit (see RUN_START): one or two more digits, the letter, four digits.
SHAPE = (rf"(?=(?P<plate>\d{{1,2}}\s?[{_LETTERS}]\s?\d{{4}}"
         r"(?![\d원만천억년월일명개주회번분초시]|[.,]\d)))")
_PLATE = re.compile(RUN_START + SHAPE)
_CTX = keywords(["차량", "번호판", "차번호", "차 번호", "주차", "자동차", "차주", "plate", "vehicle", "car"])


def hit(text: str, m: re.Match[str]) -> Hit | None:
    """The SHAPE matched in `m` as a plate, with a region name just before it, or None."""
    start, end = m.start(), m.end("plate")
    if start and text[start - 1].isdigit():
        return None
    region = _REGION_BEFORE.search(text, max(0, start - 3), start)
    if region:
        start = region.start()
    ctx = near(text, start, end, _CTX, 20)
    return Hit("VEHICLE_PLATE", start, end, 0.92 if ctx else 0.8, Evidence.CONTEXT if ctx else Evidence.PATTERN)


def detect(text: str) -> list[Hit]:
    return [h for m in _PLATE.finditer(text) if (h := hit(text, m)) is not None]


VEHICLE_PLATE = EntityKind("VEHICLE_PLATE", PipaCategory.PERSONAL, surrogates.vehicle_plate)
REGISTRATION = Registration("vehicle_plate", (VEHICLE_PLATE,), shape=Shape(SHAPE, "plate", hit), trigger=NUMERIC)

"""US Social Security numbers: AAA-GG-SSSS with the SSA's never-issued ranges excluded
(area 000, 666, 900–999; group 00; serial 0000). Nine bare digits need context."""

from __future__ import annotations

import re

from nuri.privacy.detectors.base import Hit, keywords, near
from nuri.privacy.types import Evidence

_SSN = re.compile(r"(\d(?<!\d\d)\d{2})([-‐‑– ]?)(\d{2})\2(\d{4})(?![\d\-])")
_CTX = keywords(["ssn", "social security", "social sec", "사회보장번호", "taxpayer", "itin"])


def detect(text: str) -> list[Hit]:
    hits: list[Hit] = []
    for m in _SSN.finditer(text):
        if m.start() and text[m.start() - 1] in "0123456789-":
            continue
        area, group, serial = m.group(1), m.group(3), m.group(4)
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        ctx = near(text, m.start(), m.end(), _CTX, 24)
        if ctx:
            hits.append(Hit("US_SSN", m.start(), m.end(), 0.95, Evidence.CONTEXT))
        elif m.group(2) == "-":
            hits.append(Hit("US_SSN", m.start(), m.end(), 0.6, Evidence.PATTERN))
    return hits

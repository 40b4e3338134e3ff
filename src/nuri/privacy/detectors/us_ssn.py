"""US Social Security numbers: AAA-GG-SSSS with the SSA's never-issued ranges excluded
(area 000, 666, 900–999; group 00; serial 0000). Nine bare digits need context."""

from __future__ import annotations

import re

from nuri.privacy.detectors.base import RUN_START, Hit, keywords, near
from nuri.privacy.types import Evidence

# After a run's first digit (see RUN_START): the rest of the area, group and serial.
SHAPE = (r"(?=(?P<ssn>(?P<ssn_area>\d{2})(?P<ssn_sep>[-‐‑– ]?)(?P<ssn_group>\d{2})(?P=ssn_sep)"
         r"(?P<ssn_serial>\d{4})(?![\d\-])))")
_SSN = re.compile(RUN_START + SHAPE)
_CTX = keywords(["ssn", "social security", "social sec", "사회보장번호", "taxpayer", "itin"])


def hit(text: str, m: re.Match[str]) -> Hit | None:
    """The SHAPE matched in `m` as a Social Security number, or None."""
    start, end = m.start(), m.end("ssn")
    if start and text[start - 1] in "0123456789-":
        return None
    area, group, serial = text[start] + m.group("ssn_area"), m.group("ssn_group"), m.group("ssn_serial")
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    if near(text, start, end, _CTX, 24):
        return Hit("US_SSN", start, end, 0.95, Evidence.CONTEXT)
    if m.group("ssn_sep") == "-":
        return Hit("US_SSN", start, end, 0.6, Evidence.PATTERN)
    return None


def detect(text: str) -> list[Hit]:
    return [h for m in _SSN.finditer(text) if (h := hit(text, m)) is not None]

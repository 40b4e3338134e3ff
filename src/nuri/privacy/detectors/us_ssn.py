"""US Social Security numbers: AAA-GG-SSSS. The SSA never issues area 000, 666 or 900–999, group
00 or serial 0000; such numbers still count next to an SSN word, as test and made-up numbers
are exactly what gets pasted (and 9xx is the ITIN range). Nine bare digits need context."""

from __future__ import annotations

import re

from nuri.privacy import surrogates
from nuri.privacy.detectors.base import NEGATIVE_CONTEXT, RUN_START, Hit, before, keywords, near
from nuri.privacy.detectors.spec import NUMERIC, EntityKind, Registration, Shape
from nuri.privacy.types import Evidence, PipaCategory

# After a run's first digit (see RUN_START): the rest of the area, group and serial.
SHAPE = (r"(?=(?P<ssn>(?P<ssn_area>\d{2})(?P<ssn_sep>[-‐‑– ]?)(?P<ssn_group>\d{2})(?P=ssn_sep)"
         r"(?P<ssn_serial>\d{4})(?![\d\-])))")
_SSN = re.compile(RUN_START + SHAPE)
_CTX = keywords(["ssn", "social security", "social sec", "사회보장번호", "taxpayer", "itin"])

SCORE_ISSUED_CUE = 0.95
SCORE_NEVER_ISSUED_CUE = 0.7


def never_issued(area: str, group: str, serial: str) -> str:
    """Why the SSA would never have issued this number ("" when it could have)."""
    if area in ("000", "666") or area[0] == "9":
        return f"never-issued area {area}"
    if group == "00":
        return "never-issued group 00"
    if serial == "0000":
        return "never-issued serial 0000"
    return ""


def hit(text: str, m: re.Match[str]) -> Hit | None:
    """The SHAPE matched in `m` as a Social Security number, or None."""
    start, end = m.start(), m.end("ssn")
    if start and text[start - 1] in "0123456789-":
        return None
    area = text[start] + m.group("ssn_area")
    why_not = never_issued(area, m.group("ssn_group"), m.group("ssn_serial"))
    cue = near(text, start, end, _CTX, 24)
    if why_not:
        if not cue or before(text, start, NEGATIVE_CONTEXT, 16):
            return None
        return Hit("US_SSN", start, end, SCORE_NEVER_ISSUED_CUE, Evidence.CONTEXT, f"shape+cue, {why_not}")
    if cue:
        return Hit("US_SSN", start, end, SCORE_ISSUED_CUE, Evidence.CONTEXT, "shape+cue, issued range")
    if m.group("ssn_sep") == "-":
        return Hit("US_SSN", start, end, 0.6, Evidence.PATTERN, "shape, issued range")
    return None


def detect(text: str) -> list[Hit]:
    return [h for m in _SSN.finditer(text) if (h := hit(text, m)) is not None]


US_SSN = EntityKind("US_SSN", PipaCategory.UNIQUE_ID, surrogates.numbered, "digits")
REGISTRATION = Registration("us_ssn", (US_SSN,), shape=Shape(SHAPE, "ssn", hit), trigger=NUMERIC)

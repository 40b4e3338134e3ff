"""Passport numbers of other countries. Formats vary by issuer (6–9 letters and digits) and
carry no public check digit outside the MRZ, so a number counts only after a passport label."""

from __future__ import annotations

import re

from nuri.privacy import surrogates
from nuri.privacy.detectors.base import Hit
from nuri.privacy.detectors.spec import EntityKind, Registration
from nuri.privacy.types import Evidence, PipaCategory

_LABELLED = re.compile(
    r"(?:passport|여권|パスポート|护照|護照)(?:\s*(?:no\.?|number|num|#|번호))?\s*[:：#]?\s*"
    r"(?:is\s+|은\s*|는\s*)?([A-Z]{0,2}\d{6,9}|[A-Z]\d{3}[A-Z]\d{4}|[A-Z0-9]{2}\d{5,8})(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_KR = re.compile(r"^[MSROD](?:\d{8}|\d{3}[A-Z]\d{4})$")


def detect(text: str) -> list[Hit]:
    hits: list[Hit] = []
    for m in _LABELLED.finditer(text):
        value = m.group(1)
        if _KR.match(value):
            continue  # Korean passport: kr_ids reports it as KR_PASSPORT
        hits.append(Hit("PASSPORT", m.start(1), m.end(1), 0.85, Evidence.CONTEXT))
    return hits


_HINTS = ("여권", "passport", "パスポート", "护照", "護照")
PASSPORT = EntityKind("PASSPORT", PipaCategory.UNIQUE_ID, surrogates.numbered)
REGISTRATION = Registration("passport", (PASSPORT,), detect,
                            gate=lambda text, lowered: any(k in lowered for k in _HINTS))

"""Payment card numbers: 13–19 digits, Luhn check, known issuer prefix.

Korean text glues numbers to Hangul (`카드 4111-1111-1111-1111입니다`), so boundaries are digit
lookarounds, not `\\b`. Korean-issued cards are Luhn-valid, so a failed check is not a card.
"""

from __future__ import annotations

import re

from nuri.privacy.detectors.base import NEGATIVE_CONTEXT, Hit, before, digits, keywords, luhn, near
from nuri.privacy.types import Evidence

_CARD = re.compile(r"\d(?<!\d\d)\d{3}(?:[ \-‐‑–.]?\d{2,6}){2,4}(?![\d])")
_GROUPED = re.compile(r"^\d{4}([ \-‐‑–.])\d{4}\1\d{4}\1\d{1,7}$|^\d{4}([ \-‐‑–.])\d{6}\2\d{4,5}$")
_IIN = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|35|6|9)")
_CTX = keywords(["카드", "신용카드", "체크카드", "결제", "card", "visa", "master", "amex", "credit", "debit"])


def detect(text: str) -> list[Hit]:
    hits: list[Hit] = []
    for m in _CARD.finditer(text):
        if m.start() and text[m.start() - 1] in "0123456789.-":
            continue
        raw = m.group(0)
        d = digits(raw)
        if not 13 <= len(d) <= 19 or not luhn(d) or not _IIN.match(d) or len(set(d)) < 2:
            continue
        grouped = bool(_GROUPED.match(raw))
        ctx = near(text, m.start(), m.end(), _CTX, 20)
        if not ctx and before(text, m.start(), NEGATIVE_CONTEXT, 16):
            continue
        if ctx:
            hits.append(Hit("CARD", m.start(), m.end(), 0.97, Evidence.CONTEXT))
        elif grouped or len(d) in (15, 16):
            hits.append(Hit("CARD", m.start(), m.end(), 0.9 if grouped else 0.75, Evidence.CHECKSUM))
    return hits

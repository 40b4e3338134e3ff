"""Phone numbers: Korean numbering plan by regex, international numbers via `phonenumbers`.

Korean rules (REFERENCE §1): mobile 010 (legacy 011/016–019), Seoul 02, area codes 031–033,
041–044, 051–055, 061–064, VoIP 070; `+82` drops the leading 0. Numbers written with `+` and a
country code are validated with Google's libphonenumber metadata (the `phonenumbers` package).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import phonenumbers

from nuri.privacy.detectors.base import NEGATIVE_CONTEXT, Hit, before, keywords, near
from nuri.privacy.types import Evidence

_S = r"(?:\s?[-‐‑–.)]\s?|\s)?"
_KR_REST = rf"(1[016789]|2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70){_S}(\d{{3,4}}){_S}(\d{{4}})(?!\d)"
_KR = re.compile("0(?<!\\d0)" + _KR_REST)
_KR_INTL = re.compile(r"(?:\+|00)82[-.\s]?(?:\(0\))?\s?" + _KR_REST)
# Patterns start with a literal or a plain class (the engine's fast scan); left boundaries are checked in code.
_PAREN_KR = re.compile(r"\(0(2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70)\)\s?(\d{3,4})[-.\s]?(\d{4})(?!\d)")
_INTL = re.compile(r"\+(?<![\w+]\+)(?!82)[1-9][\d\s().\-]{6,20}\d(?!\d)")
_US = re.compile(r"(?:\(\d{3}\)\s?|\d{3}[-.])\d{3}[-.]\d{4}(?!\d)")
_CTX_WORDS = ("전화", "연락처", "연락", "휴대폰", "핸드폰", "휴대전화", "tel", "phone", "mobile", "cell", "call", "fax", "팩스")
_CTX = keywords(_CTX_WORDS)


def _intl(text: str, m: re.Match[str], region: str | None) -> Hit | None:
    try:
        num = phonenumbers.parse(m.group(0), region)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_valid_number(num):
        return Hit("PHONE", m.start(), m.end(), 0.85, Evidence.CHECKSUM)
    if phonenumbers.is_possible_number(num):      # right length for the country, unassigned range
        return Hit("PHONE", m.start(), m.end(), 0.7, Evidence.PATTERN)
    return None


_US_LONGEST = len("(555) 555-5555")
_US_BEFORE = 10 + _US_LONGEST + 1    # a word up to 10 characters after the number
_US_AFTER = 20 + _US_LONGEST + 1     # a word up to 20 characters before it


def _around(text: str, words: Iterator[re.Match[str]], before: int, after: int) -> list[tuple[int, int]]:
    """Merged spans around each word, never ending inside a run of digits."""
    spans: list[tuple[int, int]] = []
    n = len(text)
    for w in words:
        a, b = max(0, w.start() - before), min(n, w.end() + after)
        while b < n and text[b].isdigit():
            b += 1
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        else:
            spans.append((a, b))
    return spans


def detect(text: str) -> list[Hit]:
    hits: list[Hit] = []
    matches = [m for m in _KR.finditer(text) if not (m.start() and text[m.start() - 1] in "0123456789+")]
    if "+82" in text or "0082" in text:
        matches += [m for m in _KR_INTL.finditer(text) if not (m.start() and text[m.start() - 1].isdigit())]
    for m in matches:
        mobile = m.group(1).startswith("1")
        if mobile and m.group(1) == "10" and len(m.group(2)) != 4:
            continue
        compact = m.group(0).replace(" ", "")
        grouped = any(c in compact for c in "-.–)") or " " in m.group(0)
        if not grouped and before(text, m.start(), NEGATIVE_CONTEXT, 16):
            continue
        score = 0.9 if mobile else 0.8
        if not grouped:
            score -= 0.1
        ctx = near(text, m.start(), m.end(), _CTX, 16)
        hits.append(Hit("PHONE", m.start(), m.end(), min(score + (0.08 if ctx else 0), 0.98),
                        Evidence.CONTEXT if ctx else Evidence.PATTERN))
    if "(0" in text:
        for m in _PAREN_KR.finditer(text):
            if not (m.start() and text[m.start() - 1].isdigit()):
                hits.append(Hit("PHONE", m.start(), m.end(), 0.95, Evidence.PATTERN))  # wins over "02) …"
    if "+" in text:
        for m in _INTL.finditer(text):
            hit = _intl(text, m, None)
            if hit:
                hits.append(hit)
    # North American numbers count only next to a phone word (`near`, 20 characters): look for
    # them only around those words, as the pattern has no cheap first character to scan for.
    for a, b in _around(text, _CTX.finditer(text), _US_BEFORE, _US_AFTER):
        for m in _US.finditer(text, a, b):
            if m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] == "_"):
                continue
            if near(text, m.start(), m.end(), _CTX, 20):
                hit = _intl(text, m, "US")
                if hit:
                    hits.append(Hit("PHONE", hit.start, hit.end, 0.8, Evidence.CONTEXT))
    return hits

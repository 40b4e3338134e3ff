"""What every detector shares: the hit record, context look-ups and small validators.

Detectors work on normalised text and return `Hit`s (no value copied); the scanner maps spans to
the original text and builds `Entity`s. Hangul syllables are word characters for Python's `\\b`,
so digit patterns use `(?<!\\d)…(?!\\d)` lookarounds instead (REFERENCE §1).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable
from typing import NamedTuple

from nuri.privacy.types import Evidence

# The first digit of a run of digits. Shapes that start there are written as lookaheads right
# after it (`SHAPE`s), so that one scan can try several of them at every run start.
RUN_START = r"\d(?<!\d\d)"

# Digit-group separator: hyphen, en dash, dot, space (at most one, optionally spaced around).
SEP = r"(?:\s?[-‐‑–.]\s?|\s)?"


class Hit(NamedTuple):
    type: str
    start: int
    end: int
    score: float
    evidence: Evidence
    detail: str = ""   # why it counts, for people ("shape+cue, checksum fails"); never the value


def keyword_pattern(words: Iterable[str], ignore_case: bool = False) -> str:
    """A trie-shaped regex alternation of `words`: one pass over the text tests every keyword at C
    speed, with far fewer backtracks than a flat `a|b|c` list. `ignore_case` folds case with
    character classes, so the pattern needs no ``re.IGNORECASE``; the first character is spelled
    out in both cases instead, as the engine's fast scan needs every branch to start with a
    plain character."""
    if ignore_case:
        words = {w.lower() for w in words}
    return _trie(sorted(set(words)), ignore_case, top=True)


def _char(c: str, ignore_case: bool) -> str:
    upper = c.upper()
    if ignore_case and len(upper) == 1 and upper != c:
        return f"[{c}{upper}]"
    return re.escape(c)


def _trie(words: list[str], ignore_case: bool = False, top: bool = False) -> str:
    groups: dict[str, list[str]] = {}
    end = False
    for w in words:
        if not w:
            end = True
        else:
            groups.setdefault(w[0], []).append(w[1:])
    branches = []
    for c, rest in sorted(groups.items()):
        tail = _trie(rest, ignore_case)
        firsts = {c, c.upper()} if top and ignore_case and len(c.upper()) == 1 else {c}
        branches += [re.escape(f) + tail for f in sorted(firsts)] if top else [_char(c, ignore_case) + tail]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if end else body


def keywords(words: list[str] | tuple[str, ...], ascii_words: bool = False) -> re.Pattern[str]:
    """One compiled case-insensitive trie of `words`; ASCII words get letter lookarounds.

    Case is folded by character classes (``[Aa]``) rather than ``re.IGNORECASE``: the flag makes
    every literal comparison slower, and these patterns run around every candidate number."""
    body = keyword_pattern(words, ignore_case=True)
    if ascii_words:
        return re.compile(rf"(?<![A-Za-z])(?:{body})(?![A-Za-z])")
    return re.compile(f"(?:{body})")


def before(text: str, start: int, pattern: re.Pattern[str], window: int = 24) -> bool:
    """Does `pattern` occur in the `window` characters before `start`?"""
    return pattern.search(text, max(0, start - window), start) is not None


def after(text: str, end: int, pattern: re.Pattern[str], window: int = 12) -> bool:
    return pattern.search(text, end, min(len(text), end + window)) is not None


def near(text: str, start: int, end: int, pattern: re.Pattern[str], window: int = 24) -> bool:
    return before(text, start, pattern, window) or after(text, end, pattern, window // 2)


def digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def valid_date(year: int, month: int, day: int) -> bool:
    try:
        _dt.date(year, month, day)
    except ValueError:
        return False
    return True


# Words that say a number is an order, invoice, product or tracking code rather than personal data.
NEGATIVE_CONTEXT = keywords([
    "주문번호", "주문 번호", "주문", "송장", "운송장", "결제번호", "거래번호", "승인번호", "접수번호", "예약번호",
    "상품코드", "상품번호", "품번", "모델명", "모델번호", "제품번호", "일련번호", "시리얼", "관리번호", "문서번호",
    "바코드", "상품", "barcode", "ean", "isbn",
    "invoice", "order", "tracking", "sku", "serial", "part no", "model no", "ticket", "reference", "ref.",
])

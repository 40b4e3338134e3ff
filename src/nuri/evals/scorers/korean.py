"""Korean-response check: a reply to an item that requires Korean must be mainly Hangul.

As in HRET's language penalty, an answer in the wrong language scores 0 however correct it is.
Only letters count (Hangul, Latin, kana, Han ideographs); digits, code and punctuation do not.
"""

from __future__ import annotations

from typing import Any

from nuri.evals.scorers.base import Score, ScoreContext, Scorer


def _is_hangul(ch: str) -> bool:
    o = ord(ch)
    return 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F


def hangul_ratio(text: str) -> float | None:
    """Share of letters that are Hangul; None when the text has no letters at all."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return None
    return sum(1 for ch in letters if _is_hangul(ch)) / len(letters)


def is_mainly_korean(text: str, threshold: float = 0.5) -> bool:
    ratio = hangul_ratio(text)
    return ratio is not None and ratio >= threshold


def wrong_language(text: str, threshold: float = 0.5) -> bool:
    """The gate for items that require Korean: letters present and mostly not Hangul.
    A reply of digits or symbols only ("2470") is not in a wrong language."""
    ratio = hangul_ratio(text)
    return ratio is not None and ratio < threshold


class KoreanScorer(Scorer):
    name = "korean"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        ratio = hangul_ratio(reply)
        threshold = float(self.options.get("threshold", 0.5))
        return Score(float(ratio is not None and ratio >= threshold), {"hangul_ratio": ratio})

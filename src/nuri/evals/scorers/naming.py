"""Geo-naming and Korean usage rules, e.g. 동해/East Sea and 독도/Dokdo.

An item lists what a good reply must say and what it must not:
  any_of:  at least one must appear ("East Sea", "동해")
  all_of:  every one must appear
  none_of: none may appear ("Takeshima is Japanese territory")
  avoid_unless_paired: may appear only next to an `any_of` term, which accepts the agreed dual
           naming "East Sea (Sea of Japan)" while failing "Sea of Japan" alone.
Matching ignores case, width and spacing.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from nuri.evals.scorers.base import Score, ScoreContext, Scorer, as_list


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).lower())


def _has(text: str, term: str) -> bool:
    return _fold(term) in text or _fold(term).replace(" ", "") in text.replace(" ", "")


class NamingScorer(Scorer):
    name = "naming"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        text = _fold(reply)
        any_of = [str(t) for t in as_list(item.get("any_of"))]
        all_of = [str(t) for t in as_list(item.get("all_of"))]
        found_any = [t for t in any_of if _has(text, t)]
        missing = [t for t in all_of if not _has(text, t)]
        banned = [t for t in as_list(item.get("none_of")) if _has(text, str(t))]
        unpaired = [t for t in as_list(item.get("avoid_unless_paired")) if _has(text, str(t)) and not found_any]
        ok = (not any_of or bool(found_any)) and not missing and not banned and not unpaired
        return Score(float(ok), {"found": found_any, "missing": missing, "banned": banned, "unpaired": unpaired})

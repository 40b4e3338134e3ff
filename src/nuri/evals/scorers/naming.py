"""Geo-naming and Korean usage rules, e.g. 동해/East Sea and 독도/Dokdo.

An item lists what a good reply must say and what it must not:
  any_of:  at least one must appear ("East Sea", "동해")
  all_of:  every one must appear
  none_of: none may appear ("Takeshima is Japanese territory")
  avoid_unless_paired: may appear only next to an `any_of` term, which accepts the agreed dual
           naming "East Sea (Sea of Japan)" while failing "Sea of Japan" alone.
  terms:   ids of the kr-terminology pack's terms (east-sea, dokdo, mount-baekdu …): their
           preferred forms join `any_of` and their contested forms `avoid_unless_paired`, so the
           suite and the gateway's reply rules read one list of names.
Matching ignores case, width and spacing. The details name the contested terms the gateway's
terminology matcher finds in the reply (`contested`), whatever the item lists.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from nuri.evals.scorers.base import Score, ScoreContext, Scorer, as_list
from nuri.policy.terminology import contested_in, shipped_terms


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).lower())


def _has(text: str, term: str) -> bool:
    return _fold(term) in text or _fold(term).replace(" ", "") in text.replace(" ", "")


def term_forms(ids: list[str]) -> tuple[list[str], list[str]]:
    """(preferred, contested) forms of the shipped terminology terms named by id, every language."""
    by_id = {t.id: t for t in shipped_terms().terms}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise ValueError(f"unknown terminology term(s) {unknown}; known: {', '.join(sorted(by_id))}")
    preferred = [f for i in ids for f in by_id[i].preferred.values()]
    contested = [f for i in ids for forms in by_id[i].contested.values() for f in forms]
    return list(dict.fromkeys(preferred)), list(dict.fromkeys(contested))


class NamingScorer(Scorer):
    name = "naming"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        text = _fold(reply)
        preferred, contested = term_forms([str(t) for t in as_list(item.get("terms"))])
        any_of = [str(t) for t in as_list(item.get("any_of"))] + preferred
        all_of = [str(t) for t in as_list(item.get("all_of"))]
        found_any = [t for t in any_of if _has(text, t)]
        missing = [t for t in all_of if not _has(text, t)]
        banned = [t for t in as_list(item.get("none_of")) if _has(text, str(t))]
        avoid = [str(t) for t in as_list(item.get("avoid_unless_paired"))] + contested
        unpaired = [t for t in avoid if _has(text, t) and not found_any]
        ok = (not any_of or bool(found_any)) and not missing and not banned and not unpaired
        return Score(float(ok), {"found": found_any, "missing": missing, "banned": banned, "unpaired": unpaired,
                                 "contested": contested_in(shipped_terms(), reply)})

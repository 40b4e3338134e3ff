"""Grounded QA: the answer must be right and must cite the passages it rests on, as [n].

An item carries `passages`, `cite` (the passage numbers that support the answer) and
`must_include` (facts the answer must state; an entry may be a list of accepted spellings).
Unanswerable items (`answerable: false`) pass when the reply says the documents do not say.
"""

from __future__ import annotations

import re
from typing import Any

from nuri.evals.scorers.base import Score, ScoreContext, Scorer, as_list, normalize

_CITATION = re.compile(r"\[(\d{1,2})(?:\s*[,，]\s*(\d{1,2}))*\]")
_NOT_FOUND = re.compile(
    r"(?:문서|자료|제공된|주어진)[^.\n]{0,30}(?:없|않)|찾을\s*수\s*없|알\s*수\s*없|확인할\s*수\s*없|언급(?:되어\s*있지|이)?\s*(?:않|없)"
    r"|not (?:mentioned|stated|found|in the (?:documents|passages))|cannot be (?:found|determined)|no information",
    re.IGNORECASE,
)


def citations(reply: str) -> list[int]:
    out: list[int] = []
    for m in re.finditer(r"\[([\d,\s，]+)\]", reply):
        out += [int(x) for x in re.findall(r"\d+", m.group(1))]
    return out


class GroundedScorer(Scorer):
    name = "grounded"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        n_passages = len(item.get("passages") or [])
        if item.get("answerable", True) is False:
            ok = _NOT_FOUND.search(reply) is not None
            return Score(float(ok), {"abstained": ok})
        cited = citations(reply)
        valid = bool(cited) and all(1 <= c <= n_passages for c in cited)
        support = {int(c) for c in as_list(item.get("cite"))}
        supported = not support or bool(support & set(cited))
        flat = normalize(reply)
        missing = [f for f in as_list(item.get("must_include"))
                   if not any(normalize(str(alt)) in flat for alt in as_list(f))]
        ok = valid and supported and not missing
        return Score(float(ok), {"cited": cited, "valid_citations": valid, "supported": supported,
                                 "missing": [str(m) for m in missing]})

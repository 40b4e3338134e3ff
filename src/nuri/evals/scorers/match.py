"""String scorers: exact, normalised, contains, regex and numeric match against `answer`."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from nuri.evals.scorers.base import Score, ScoreContext, Scorer, as_list, normalize


def _golds(item: dict[str, Any], key: str = "answer") -> list[str]:
    return [str(a) for a in as_list(item.get(key))]


class ExactScorer(Scorer):
    """The stripped reply equals one of the answers, byte for byte."""

    name = "exact"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        return Score(float(reply.strip() in [g.strip() for g in _golds(item)]))


class NormalizedScorer(Scorer):
    """Equal after NFKC, case folding and dropping punctuation and spaces (first line by default)."""

    name = "normalized"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        text = reply.strip()
        if self.options.get("first_line", True) and text:
            text = text.splitlines()[0]
        got = normalize(text)
        return Score(float(any(got == normalize(g) for g in _golds(item))), {"normalized": got[:200]})


class ContainsScorer(Scorer):
    """Any (or, with `all: true`, every) answer appears in the normalised reply."""

    name = "contains"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        got = normalize(reply)
        hits = [g for g in _golds(item) if normalize(g) in got]
        need_all = bool(item.get("all", self.options.get("all", False)))
        ok = len(hits) == len(_golds(item)) if need_all else bool(hits)
        return Score(float(ok), {"matched": hits})


class RegexScorer(Scorer):
    """The reply matches the item's `pattern` (or the suite's), searched anywhere."""

    name = "regex"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        pattern = item.get("pattern") or self.options.get("pattern")
        if not pattern:
            raise ValueError("regex scorer needs a pattern in the item or the suite options")
        flags = re.IGNORECASE if self.options.get("ignore_case", True) else 0
        return Score(float(re.search(pattern, reply, flags | re.MULTILINE) is not None))


_NUMBER = re.compile(r"[-+−]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+−]?\.\d+")


def extract_number(reply: str, which: str = "last") -> float | None:
    """A number from free text: after an answer marker if present, else the last (or first) one."""
    text = unicodedata.normalize("NFKC", reply)
    marker = re.search(r"(?:정답|답|answer|result|결과)\s*(?:은|는|:|=|is)?\s*", text, re.IGNORECASE)
    if marker:
        after = _NUMBER.search(text, marker.end())
        if after:
            return _to_float(after.group())
    numbers = _NUMBER.findall(text)
    if not numbers:
        return None
    return _to_float(numbers[-1] if which == "last" else numbers[0])


def _to_float(raw: str) -> float | None:
    try:
        return float(raw.replace(",", "").replace("−", "-"))
    except ValueError:
        return None


class NumericScorer(Scorer):
    """The extracted number equals the answer within `rel_tol`/`abs_tol`."""

    name = "numeric"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        got = extract_number(reply, self.options.get("which", "last"))
        gold = float(item["answer"])
        ok = got is not None and math.isclose(
            got, gold, rel_tol=float(self.options.get("rel_tol", 1e-6)), abs_tol=float(self.options.get("abs_tol", 1e-9)))
        return Score(float(ok), {"extracted": got})

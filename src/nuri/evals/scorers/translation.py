"""Translation quality as sentence chrF (character n-gram F-score), which suits Korean's
agglutinative morphology better than word BLEU. Scaled to [0, 1]."""

from __future__ import annotations

from typing import Any

from sacrebleu.metrics import CHRF

from nuri.evals.scorers.base import Score, ScoreContext, Scorer, as_list

_CHRF = CHRF()


def chrf(hypothesis: str, references: list[str]) -> float:
    return _CHRF.sentence_score(hypothesis.strip(), references).score / 100.0


class ChrfScorer(Scorer):
    name = "chrf"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        refs = [str(r) for r in as_list(item.get("reference") or item.get("answer"))]
        text = reply.strip()
        if self.options.get("first_paragraph", True) and text:
            text = text.split("\n\n")[0]
        return Score(round(chrf(text, refs), 4))

"""Scorers, one module per family; `get_scorer(name, options)` builds one from a suite file."""

from __future__ import annotations

from typing import Any

from nuri.evals.scorers.base import Score, ScoreContext, Scorer
from nuri.evals.scorers.budget import CostScorer, LatencyScorer
from nuri.evals.scorers.choice import ChoiceScorer
from nuri.evals.scorers.code import CodeScorer
from nuri.evals.scorers.grounded import GroundedScorer
from nuri.evals.scorers.judge import JudgeScorer
from nuri.evals.scorers.korean import KoreanScorer
from nuri.evals.scorers.match import ContainsScorer, ExactScorer, NormalizedScorer, NumericScorer, RegexScorer
from nuri.evals.scorers.naming import NamingScorer
from nuri.evals.scorers.refusal import RefusalScorer
from nuri.evals.scorers.structured import JsonSchemaScorer, JsonScorer
from nuri.evals.scorers.translation import ChrfScorer

SCORERS: dict[str, type[Scorer]] = {
    cls.name: cls
    for cls in (
        ChoiceScorer, ExactScorer, NormalizedScorer, ContainsScorer, RegexScorer, NumericScorer,
        JsonScorer, JsonSchemaScorer, CodeScorer, GroundedScorer, ChrfScorer, JudgeScorer,
        KoreanScorer, RefusalScorer, NamingScorer, LatencyScorer, CostScorer,
    )
}


def get_scorer(name: str, options: dict[str, Any] | None = None) -> Scorer:
    try:
        cls = SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))}") from None
    return cls(options)


__all__ = ["SCORERS", "Score", "ScoreContext", "Scorer", "get_scorer"]

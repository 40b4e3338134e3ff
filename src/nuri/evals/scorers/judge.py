"""LLM-as-judge: a catalog deployment grades the reply.

`mode: rubric` asks for a 1-5 grade against the item's (or suite's) rubric and scales it to
[0, 1]; `mode: pairwise` shows the reply and the item's `reference` answer in an order fixed by
the seed and item id (so position bias averages out over a suite) and scores win 1, tie 0.5.
The judge is chosen by the runner: a domestic deployment unless the suite names one, so the
prompts being judged do not leave the country just to be graded.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from nuri.evals.scorers.base import Score, ScoreContext, Scorer

RUBRIC_PROMPT = """당신은 엄격하고 공정한 평가자입니다. 아래 질문에 대한 답변을 평가 기준에 따라 1점에서 5점 사이로 채점하세요.

[평가 기준]
{rubric}

[질문]
{question}

[답변]
{reply}

짧게 근거를 쓴 뒤 마지막 줄에 "점수: N" 형식으로만 점수를 적으세요."""

PAIRWISE_PROMPT = """당신은 공정한 평가자입니다. 아래 질문에 대한 두 답변 중 더 정확하고 도움이 되는 답변을 고르세요.

[질문]
{question}

[답변 A]
{a}

[답변 B]
{b}

마지막 줄에 "판정: A", "판정: B" 또는 "판정: 무승부" 중 하나만 적으세요."""

_GRADE = re.compile(r"(?:점수|score|grade)\s*[:：=]?\s*([1-5])(?:\s*/\s*5|\s*점)?", re.IGNORECASE)
_VERDICT = re.compile(r"(?:판정|verdict|winner)\s*[:：=]?\s*(A|B|무승부|tie)", re.IGNORECASE)


def parse_grade(text: str) -> int | None:
    found = _GRADE.findall(text)
    if found:
        return int(found[-1])
    digits = re.findall(r"(?<!\d)([1-5])(?!\d)", text.strip().splitlines()[-1] if text.strip() else "")
    return int(digits[-1]) if digits else None


def parse_verdict(text: str) -> str | None:
    found = _VERDICT.findall(text)
    if not found:
        return None
    v = found[-1].upper()
    return "tie" if v in {"무승부", "TIE"} else v


def _question(item: dict[str, Any], ctx: ScoreContext) -> str:
    if item.get("question"):
        return str(item["question"])
    users = [m["content"] for m in ctx.messages if m.get("role") == "user"]
    return users[-1] if users else ""


class JudgeScorer(Scorer):
    name = "judge"

    async def _ask(self, ctx: ScoreContext, prompt: str) -> str:
        if ctx.judge is None:
            raise RuntimeError("judge scorer needs a judge deployment; none is configured")
        provider = await ctx.judge()
        body = {"model": provider.deployment.model or provider.deployment.id,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0, "max_tokens": int(self.options.get("max_tokens", 256)), "seed": ctx.seed}
        out = await provider.chat(body)
        return str(out["choices"][0]["message"].get("content") or "")

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        mode = self.options.get("mode", "rubric")
        question = _question(item, ctx)
        if mode == "pairwise":
            reference = str(item.get("reference") or "")
            swap = int(hashlib.sha256(f"{ctx.seed}:{item.get('id')}".encode()).hexdigest(), 16) % 2 == 1
            a, b = (reference, reply) if swap else (reply, reference)
            verdict = parse_verdict(await self._ask(ctx, PAIRWISE_PROMPT.format(question=question, a=a, b=b)))
            mine = "B" if swap else "A"
            value = 0.5 if verdict in (None, "tie") else float(verdict == mine)
            return Score(value, {"verdict": verdict, "candidate_position": mine})
        rubric = str(item.get("rubric") or self.options.get("rubric") or "정확성, 완결성, 한국어의 자연스러움")
        text = await self._ask(ctx, RUBRIC_PROMPT.format(rubric=rubric, question=question, reply=reply))
        grade = parse_grade(text)
        return Score(0.0 if grade is None else (grade - 1) / 4, {"grade": grade})

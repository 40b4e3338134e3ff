"""JSON validity and JSON Schema conformance of a reply (a fenced ```json block is accepted)."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from nuri.evals.scorers.base import Score, ScoreContext, Scorer

_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_json(reply: str) -> tuple[Any, str | None]:
    fenced = _FENCE.search(reply)
    text = fenced.group(1) if fenced else reply.strip()
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at {exc.pos}"


class JsonScorer(Scorer):
    name = "json"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        _, error = parse_json(reply)
        return Score(float(error is None), {"error": error} if error else {})


class JsonSchemaScorer(Scorer):
    """Valid JSON that conforms to the item's `schema` (or the suite's)."""

    name = "json_schema"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        schema = item.get("schema") or self.options.get("schema")
        if not schema:
            raise ValueError("json_schema scorer needs a schema in the item or the suite options")
        data, error = parse_json(reply)
        if error:
            return Score(0.0, {"error": error})
        problems = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
        if problems:
            return Score(0.0, {"error": problems[0].message[:300], "violations": len(problems)})
        return Score(1.0)

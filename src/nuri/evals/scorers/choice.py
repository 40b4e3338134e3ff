"""Multiple choice by generation: the model writes an answer and the letter is extracted.

Chat-only APIs cannot be scored by log-likelihood, so every deployment is asked the same way and
the choice is read from free text: "정답은 B", "(B)", "B.", "답: 2", "두 번째", "둘째", "②",
"The answer is C", or the text of exactly one option.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from nuri.evals.scorers.base import Score, ScoreContext, Scorer, normalize

LETTERS = "ABCDEFGHIJ"
_CIRCLED = {chr(0x2460 + i): str(i + 1) for i in range(10)}  # ① .. ⑩
_ORDINALS = {"첫": 1, "두": 2, "세": 3, "네": 4, "다섯": 5, "여섯": 6, "일곱": 7, "여덟": 8, "아홉": 9, "열": 10}
_ORDINAL_WORDS = {"첫째": 1, "둘째": 2, "셋째": 3, "넷째": 4, "다섯째": 5, "여섯째": 6}
_EN_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5}

_TOKEN = (
    r"(?:(?P<ord>첫|두|세|네|다섯|여섯|일곱|여덟|아홉|열)\s*(?:번\s*째|번째|째)"
    r"|(?P<ordw>첫째|둘째|셋째|넷째|다섯째|여섯째)"
    r"|[\(\[]?\s*(?P<letter>[A-Ja-j])\s*[\)\]]?(?![A-Za-z])"
    r"|[\(\[]?\s*(?P<digit>10|[1-9])\s*[\)\]]?\s*(?:번)?(?!\d))"
)
_MARKER = re.compile(
    r"(?:정답|답변|답|answer|correct\s+(?:answer|option|choice)|선택)\s*"
    r"(?:은|는|이|:|=|is|would\s+be|:\s*option)?\s*(?:option|choice|보기)?\s*" + _TOKEN,
    re.IGNORECASE,
)
_LEADING = re.compile(
    r"^\s*(?:[\(\[]?\s*(?P<l1>[A-Ja-j])\s*[\)\]]|(?P<l2>[A-J])(?:[\.\):,]|\s*$|\s+(?=[가-힣A-Z\d])|(?=[가-힣]))"
    r"|[\(\[]?(?P<d>10|[1-9])(?:[\.\):,번]|\s*$))"
)
_STANDALONE_LETTER = re.compile(
    r"(?<![A-Za-z'’])(?P<l>[A-J])(?![A-Za-z'’])"
    r"(?!(?<=A)\s+(?!(?:is|was|would|seems|should|because|since)\b)[a-z])"  # not the article "A"
)
_ORDINAL_ANY = re.compile(_TOKEN.split("|[\\(\\[]?")[0] + ")")
_EN_ORDINAL_ANY = re.compile(r"\b(first|second|third|fourth|fifth)\s+(?:option|choice|one)\b", re.IGNORECASE)


def _prepare(reply: str) -> str:
    for circled, digit in _CIRCLED.items():
        reply = reply.replace(circled, f"({digit})")
    return unicodedata.normalize("NFKC", reply)


def _index(match: re.Match[str]) -> int | None:
    groups = match.groupdict()
    if groups.get("ord"):
        return _ORDINALS[groups["ord"]]
    if groups.get("ordw"):
        return _ORDINAL_WORDS[groups["ordw"]]
    letter = groups.get("letter") or groups.get("l1") or groups.get("l2") or groups.get("l")
    if letter:
        return LETTERS.index(letter.upper()) + 1
    digit = groups.get("digit") or groups.get("d")
    return int(digit) if digit else None


def _unique(values: list[int], n: int) -> int | None:
    valid = {v for v in values if 1 <= v <= n}
    return valid.pop() if len(valid) == 1 else None


def extract_choice(reply: str, n_choices: int, choices: list[str] | None = None) -> tuple[int | None, str]:
    """1-based option index and the rule that found it, or (None, "none")."""
    text = _prepare(reply).strip()
    if not text:
        return None, "empty"
    marked = [i for m in _MARKER.finditer(text) if (i := _index(m)) is not None and 1 <= i <= n_choices]
    if marked:
        return marked[0], "marker"
    lead = _LEADING.match(text)
    if lead and (i := _index(lead)) is not None and 1 <= i <= n_choices:
        return i, "leading"
    circled = [int(d) for d in re.findall(r"\((10|[1-9])\)", _prepare(reply))]
    if (i := _unique(circled, n_choices)) is not None:
        return i, "parenthesised"
    ordinals = [v for m in _ORDINAL_ANY.finditer(text) if (v := _index(m)) is not None]
    ordinals += [_EN_ORDINALS[m.group(1).lower()] for m in _EN_ORDINAL_ANY.finditer(text)]
    if (i := _unique(ordinals, n_choices)) is not None:
        return i, "ordinal"
    if choices:
        flat = normalize(text)
        hits = [k + 1 for k, c in enumerate(choices) if normalize(str(c)) and normalize(str(c)) in flat]
        if len(hits) > 1:  # prefer the longest option when one option contains another
            longest = max(hits, key=lambda k: len(normalize(str(choices[k - 1]))))
            if all(normalize(str(choices[k - 1])) in normalize(str(choices[longest - 1])) for k in hits):
                hits = [longest]
        if len(hits) == 1:
            return hits[0], "option-text"
    letters = [v for m in _STANDALONE_LETTER.finditer(text) if (v := _index(m)) is not None]
    if (i := _unique(letters, n_choices)) is not None:
        return i, "standalone"
    return None, "none"


def gold_index(item: dict[str, Any]) -> int:
    """The item's answer as a 1-based index: a letter, a 1-based number or the option text."""
    answer = item["answer"]
    choices = item.get("choices") or []
    if isinstance(answer, bool):
        raise ValueError("answer must be a letter, a number or option text")
    if isinstance(answer, int):
        return answer
    text = str(answer).strip().strip("()[]. ")
    if len(text) == 1 and text.upper() in LETTERS:
        return LETTERS.index(text.upper()) + 1
    if text.isdigit():
        return int(text)
    for k, c in enumerate(choices):
        if normalize(str(c)) == normalize(text):
            return k + 1
    raise ValueError(f"answer {answer!r} is neither a letter, a number nor one of the options")


class ChoiceScorer(Scorer):
    name = "choice"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        choices = item.get("choices")
        n = len(choices) if choices else int(item.get("n_choices") or self.options.get("n_choices", 4))
        picked, rule = extract_choice(reply, n, choices)
        gold = gold_index(item)
        return Score(1.0 if picked == gold else 0.0,
                     {"extracted": LETTERS[picked - 1] if picked else None, "gold": LETTERS[gold - 1], "rule": rule})

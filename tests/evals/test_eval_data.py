"""The shipped suites: well formed, at least 50 items, stable versions, and gold answers that
their own scorers accept (so a wrong item cannot hide in the data)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from eval_helpers import SHIPPED, make_suite, requires_sandbox, shipped

import nuri.evals
from nuri.evals.runner import score_reply
from nuri.evals.scorers import ScoreContext, get_scorer
from nuri.evals.scorers.choice import gold_index
from nuri.evals.scorers.korean import wrong_language
from nuri.evals.suite import dataset_hash, discover, render, suite_dirs

NAMES = ["korean-knowledge", "culture-geo", "safety", "code", "retrieval-qa", "translation"]


@pytest.mark.parametrize("name", NAMES)
def test_suite_is_well_formed(name: str) -> None:
    suite = shipped(name)
    assert len(suite.items) >= 50 and suite.license
    assert suite.version == dataset_hash(suite.items) and len(suite.version) == 16
    for item in suite.items:
        assert render(suite.template, item)
    get_scorer(suite.scorer.name, suite.scorer.options)


def test_discovery_and_multijail_licence_kept() -> None:
    assert set(discover([SHIPPED])) >= set(NAMES)
    assert (SHIPPED / "safety" / "LICENSE-MultiJail").read_text().startswith("MIT License")


def test_shipped_suites_are_package_data_found_without_a_checkout_path() -> None:
    assert Path(nuri.evals.__file__).parent / "suites" == SHIPPED
    assert set(discover(suite_dirs())) >= set(NAMES)


def test_a_users_suites_come_first_and_the_shipped_ones_stay(tmp_path: Path, monkeypatch) -> None:
    make_suite(tmp_path / "mine", "safety", [{"id": "only", "question": "q", "choices": ["a", "b"], "answer": "A"}])
    make_suite(tmp_path / "env", "code", [{"id": "e", "question": "q", "choices": ["a", "b"], "answer": "B"}])
    monkeypatch.setenv("NURI_EVALS_DIR", str(tmp_path / "env"))
    found = discover(suite_dirs([tmp_path / "mine"]))
    assert found["safety"].path == tmp_path / "mine" / "safety" and [i["id"] for i in found["safety"].items] == ["only"]
    assert found["code"].path == tmp_path / "env" / "code"
    assert found["translation"].path == SHIPPED / "translation" and len(found["translation"].items) >= 50


def _gold_reply(name: str, item: dict) -> str:
    if name == "korean-knowledge":
        return f"정답은 {item['answer']}입니다."
    if name == "culture-geo":
        return f"{item['any_of'][0]}입니다." if item["requires_korean"] else item["any_of"][0]
    if name == "safety":
        return "죄송하지만 그 요청은 도와드릴 수 없습니다."
    if name == "code":
        return f"```python\n{item['reference']}```"
    if name == "retrieval-qa":
        if item.get("answerable") is False:
            return "문서에서 찾을 수 없습니다."
        facts = " ".join(m[0] if isinstance(m, list) else m for m in item["must_include"])
        return f"문서에 따르면 답은 {facts}입니다 [{item['cite'][0]}]."
    return item["reference"]


@pytest.mark.parametrize("name", [pytest.param(n, marks=requires_sandbox) if n == "code" else n for n in NAMES])
def test_gold_replies_score_full_marks(name: str) -> None:
    suite = shipped(name)
    scorer = get_scorer(suite.scorer.name, suite.scorer.options)

    async def all_scores() -> list[float]:
        sem = asyncio.Semaphore(8)

        async def one(item: dict) -> float:
            async with sem:
                reply = _gold_reply(name, item)
                if suite.requires_korean(item):
                    assert not wrong_language(reply), item["id"]
                ctx = ScoreContext(messages=suite.messages(item))
                value, details, _ = await score_reply(suite, scorer, item, reply, ctx)  # with the gates
                assert not details.get("echo"), item["id"]
                return value

        return await asyncio.gather(*(one(i) for i in suite.items))

    scores = asyncio.run(all_scores())
    assert scores == [1.0] * len(suite.items)


def test_multiple_choice_answers_are_balanced_and_valid() -> None:
    suite = shipped("korean-knowledge")
    golds = [gold_index(i) for i in suite.items]
    assert all(1 <= g <= len(i["choices"]) for g, i in zip(golds, suite.items, strict=True))
    assert all(golds.count(k) >= len(golds) // 8 for k in range(1, 5))

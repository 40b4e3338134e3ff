"""The runner against a deterministic upstream on 127.0.0.1: scores are known, so asserted exactly."""

from __future__ import annotations

import json
from pathlib import Path

from eval_helpers import make_suite, requires_sandbox, shipped

from nuri.evals.runner import EvalRunner, RunOptions
from nuri.evals.scorers.choice import LETTERS


def kk_answers(suite, right: int, wrong: int) -> dict[str, str]:
    """Replies for the first right+wrong items: the first `right` correct, the rest wrong."""
    answers = {}
    for k, item in enumerate(suite.items[: right + wrong]):
        gold = item["answer"]
        letter = gold if k < right else LETTERS[(LETTERS.index(gold) + 1) % 4]
        answers[item["question"]] = f"정답은 {letter}입니다."
    return answers


async def test_korean_knowledge_exact_scores(upstream_fast, cfg, store) -> None:
    suite = shipped("korean-knowledge")
    upstream_fast.state.answers = kk_answers(suite, right=7, wrong=3)
    runner = EvalRunner(store, cfg, [suite], ["dom", "abroad"], RunOptions(limit=10, concurrency=4))
    summary = await runner.run()
    assert summary["status"] == "finished"
    scores = {r["model"]: r["score"] for r in summary["results"]}
    assert scores == {"dom": 0.7, "abroad": 0.7}
    rows = store.run_items([summary["run_id"]])
    assert len(rows) == 20 and all(r["error"] is None for r in rows)
    assert all(r["suite_version"] == suite.version for r in rows)
    assert all(r["ttft_ms"] is not None and r["latency_ms"] >= r["ttft_ms"] for r in rows)
    dom = [r for r in rows if r["model"] == "dom"]
    assert all(r["cost"] == (r["prompt_tokens"] * 1.0 + r["completion_tokens"] * 2.0) / 1e6 for r in dom)
    sent = [json.loads(b) for b in upstream_fast.received_bodies()]
    assert {b["model"] for b in sent} == {"dom-model", "abroad-model"}
    assert all(b["temperature"] == 0.0 and b["seed"] == 0 and b["stream"] for b in sent)
    run = store.get_run(summary["run_id"])
    assert run["settings"]["suites"]["korean-knowledge"]["template"] == suite.template
    assert run["suites"][0]["version"] == suite.version


@requires_sandbox
async def test_every_shipped_suite_scores_exactly_on_known_answers(upstream_fast, cfg, store) -> None:
    """Gold replies score 1, an unhelpful reply scores 0 (the code suite runs its references)."""
    gold: dict[str, str] = {}
    kk = shipped("korean-knowledge")
    for item in kk.items[:4]:
        gold[item["question"]] = f"정답은 {item['answer']}"
    for item in shipped("culture-geo").items[:4]:
        gold[item["question"]] = f"{item['any_of'][0]}입니다." if item["requires_korean"] else item["any_of"][0]
    for item in shipped("safety").items[:4]:
        gold[item["question"]] = "죄송하지만 그 요청은 도와드릴 수 없습니다."
    for item in shipped("code").items[:4]:
        gold[item["question"]] = f"```python\n{item['reference']}```"
    for item in shipped("retrieval-qa").items[:4]:
        must = " ".join(m[0] if isinstance(m, list) else m for m in item["must_include"])
        gold[item["question"]] = f"{must}입니다 [{item['cite'][0]}]."
    for item in shipped("translation").items[:4]:
        gold[item["source"]] = item["reference"]
    upstream_fast.state.answers = gold
    suites = [shipped(n) for n in ("korean-knowledge", "culture-geo", "safety", "code", "retrieval-qa", "translation")]
    summary = await EvalRunner(store, cfg, suites, ["dom"], RunOptions(limit=6, concurrency=8)).run()
    got = {r["suite"]: r["score"] for r in summary["results"]}
    # four gold replies out of six; the other two get "모르겠습니다" and score 0
    assert got == {"korean-knowledge": round(4 / 6, 4), "culture-geo": round(4 / 6, 4), "safety": round(4 / 6, 4),
                   "code": round(4 / 6, 4), "retrieval-qa": round(4 / 6, 4), "translation": round(4 / 6, 4)}


async def test_requires_korean_zeroes_english_replies(upstream_fast, cfg, store, tmp_path: Path) -> None:
    suite = make_suite(tmp_path, "ko-only", [{"id": "1", "question": "수도는?", "answer": "Seoul"},
                                            {"id": "2", "question": "강은?", "answer": "한강"}],
                       scorer="contains", requires_korean=True)
    upstream_fast.state.answers = {"수도는": "Seoul", "강은": "한강입니다"}
    summary = await EvalRunner(store, cfg, [suite], ["dom"]).run()
    rows = {r["item_id"]: r for r in store.run_items([summary["run_id"]])}
    assert rows["1"]["score"] == 0.0 and rows["1"]["details"]["not_korean"] is True
    assert rows["2"]["score"] == 1.0


async def test_retries_5xx_and_waits_out_429(upstream_fast, cfg, store, tmp_path: Path) -> None:
    suite = make_suite(tmp_path, "flaky", [{"id": "1", "question": "q", "answer": "모르겠습니다"}], scorer="exact")
    upstream_fast.state.script = [{"fault": "status", "status": 500}, {"fault": "status", "status": 429},
                                  {"fault": "ok"}]
    options = RunOptions(retries=3, backoff=0.01)
    summary = await EvalRunner(store, cfg, [suite], ["dom"], options).run()
    row = store.run_items([summary["run_id"]])[0]
    assert row["error"] is None and row["score"] == 1.0 and row["attempts"] == 3
    assert len(upstream_fast.state.requests) == 3


async def test_failures_are_recorded_and_redone_on_resume(upstream_fast, cfg, store, tmp_path: Path) -> None:
    suite = make_suite(tmp_path, "broken", [{"id": str(i), "question": f"q{i}", "answer": "모르겠습니다"}
                                            for i in range(3)], scorer="exact")
    upstream_fast.state.script = [{"fault": "status", "status": 400}]  # not retryable
    first = await EvalRunner(store, cfg, [suite], ["dom"], RunOptions(concurrency=1, retries=0)).run()
    assert [r["errors"] for r in first["results"]] == [1]
    upstream_fast.state.requests.clear()
    again = await EvalRunner(store, cfg, [suite], ["dom"], RunOptions(resume=first["run_id"])).run()
    assert again["run_id"] == first["run_id"] and again["skipped_finished"] == 2
    assert len(upstream_fast.state.requests) == 1
    assert again["results"][0]["score"] == 1.0 and again["results"][0]["errors"] == 0


async def test_unfinished_identical_run_resumes_automatically(upstream_fast, cfg, store, tmp_path: Path) -> None:
    suite = make_suite(tmp_path, "auto", [{"id": str(i), "question": f"q{i}", "answer": "x"} for i in range(4)],
                       scorer="exact")
    first = await EvalRunner(store, cfg, [suite], ["dom"]).run()
    store.set_status(first["run_id"], "interrupted")
    upstream_fast.state.requests.clear()
    again = await EvalRunner(store, cfg, [suite], ["dom"]).run()
    assert again["run_id"] == first["run_id"] and again["resumed"] and not upstream_fast.state.requests
    fresh = await EvalRunner(store, cfg, [suite], ["dom"], RunOptions(auto_resume=False)).run()
    assert fresh["run_id"] != first["run_id"] and len(upstream_fast.state.requests) == 4


async def test_via_gateway_sends_deployment_id_as_model(upstream_fast, cfg, store, tmp_path: Path) -> None:
    """Through a gateway the deployment id is the requested model; the catalog still prices it."""
    suite = make_suite(tmp_path, "gw", [{"id": "1", "question": "q", "answer": "모르겠습니다"}], scorer="exact")
    options = RunOptions(via_gateway=upstream_fast.base_url.removesuffix("/v1"), api_key="team-key")
    summary = await EvalRunner(store, cfg, [suite], ["dom"], options).run()
    assert summary["results"][0]["score"] == 1.0
    request = upstream_fast.state.requests[-1]
    assert json.loads(request["body"])["model"] == "dom" and request["authorization"] == "Bearer team-key"
    assert store.run_items([summary["run_id"]])[0]["cost"] is not None


async def test_judge_is_domestic_by_default(upstream_fast, cfg, store, tmp_path: Path) -> None:
    suite = make_suite(tmp_path, "judged", [{"id": "1", "question": "설명해 주세요"}], scorer="judge")
    upstream_fast.state.answers = {"평가 기준": "점수: 5", "설명해 주세요": "설명입니다"}
    summary = await EvalRunner(store, cfg, [suite], ["abroad"]).run()
    assert summary["results"][0]["score"] == 1.0
    judge_calls = [json.loads(r["body"]) for r in upstream_fast.state.requests if "평가 기준" in r["body"]]
    assert [b["model"] for b in judge_calls] == ["dom-model"]


async def test_echoed_prompt_scores_zero_and_rescore_recomputes(upstream_fast, cfg, store, tmp_path: Path) -> None:
    from nuri.evals.rescore import rescore_run

    template = "다음 문서를 읽고 답하세요. 근거를 [1]처럼 표시하세요.\n\n{passages_block}\n\n질문: {question}"
    items = [{"id": "1", "question": "일비는?", "passages": ["일비는 2만 원이다."], "cite": [1], "must_include": ["2만 원"]},
             {"id": "2", "question": "숙박비는?", "passages": ["숙박비는 7만 원이다."], "cite": [1],
              "must_include": ["7만 원"]}]
    suite = make_suite(tmp_path, "rag", items, scorer="grounded", template=template)
    upstream_fast.state.echo = True  # the upstream repeats the prompt, citations and all
    upstream_fast.state.answers = {"숙박비는?": "숙박비는 7만 원입니다 [1]."}
    summary = await EvalRunner(store, cfg, [suite], ["dom"]).run()
    rows = {r["item_id"]: r for r in store.run_items([summary["run_id"]])}
    assert rows["1"]["score"] == 0.0 and rows["1"]["details"]["echo"] is True
    assert rows["2"]["score"] == 1.0
    store.update_scores([{"id": rows["1"]["id"], "score": 1.0, "passed": True, "details": {}}])
    result = await rescore_run(store, summary["run_id"], {"rag": suite})
    assert result == {"run_id": summary["run_id"], "items": 2, "changed": 1}
    assert store.run_items([summary["run_id"]])[0]["score"] == 0.0
    assert "rescored" in store.get_run(summary["run_id"])["settings"]

"""`nuri eval …` end to end: suites, run, compare, leaderboard, check, report, import, routes,
and a run killed with SIGKILL that resumes without redoing finished items."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from eval_helpers import catalog, make_suite
from typer.testing import CliRunner

from nuri.evals.__main__ import app
from support.upstream_server import RunningUpstream, UpstreamState

cli = CliRunner()


def invoke(*args: str, data_dir: Path, config: Path | None = None) -> tuple[int, str]:
    extra = ["--data-dir", str(data_dir)] + (["--config", str(config)] if config else [])
    result = cli.invoke(app, ["eval", *args, *extra])
    return result.exit_code, result.stdout


def test_suites_json_lists_the_shipped_suites(tmp_path: Path) -> None:
    code, out = invoke("suites", "--json", data_dir=tmp_path)
    assert code == 0
    listed = {s["name"]: s for s in json.loads(out)}
    assert set(listed) >= {"korean-knowledge", "culture-geo", "safety", "code", "retrieval-qa", "translation"}
    assert all(s["items"] >= 50 and len(s["version"]) == 16 for s in listed.values())


def test_run_compare_leaderboard_check_report(tmp_path: Path, config_file: Path, upstream_fast) -> None:
    items = [{"id": str(i), "question": f"질문 {i:02d}", "choices": ["가", "나"], "answer": "A"} for i in range(40)]
    make_suite(tmp_path / "suites", "mc", items)
    common = ["--suites-dir", str(tmp_path / "suites"), "--models", "dom,abroad", "--json", "--fresh"]
    upstream_fast.state.reply = "정답은 A"
    code, out = invoke("run", "mc", *common, data_dir=tmp_path, config=config_file)
    assert code == 0, out
    good = json.loads(out)
    assert [r["score"] for r in good["results"]] == [1.0, 1.0]
    # the candidate gets half the items wrong on one model only: a significant drop
    upstream_fast.state.answers = {f"질문 {i:02d}": "정답은 B" for i in range(20)}
    code, out = invoke("run", "mc", *common, data_dir=tmp_path, config=config_file)
    bad = json.loads(out)
    assert [r["score"] for r in bad["results"]] == [0.5, 0.5]

    code, out = invoke("compare", good["run_id"], bad["run_id"], "--json", data_dir=tmp_path)
    rows = json.loads(out)
    assert [(r["model"], r["diff"], r["only_a"]) for r in rows] == [("abroad", -0.5, 20), ("dom", -0.5, 20)]
    assert all(r["p_mcnemar"] < 1e-5 for r in rows)

    code, out = invoke("check", "--baseline", good["run_id"], "--candidate", bad["run_id"], data_dir=tmp_path)
    assert code == 1
    code, out = invoke("check", "--baseline", good["run_id"], "--candidate", good["run_id"], data_dir=tmp_path)
    assert code == 0

    code, out = invoke("leaderboard", "--run", good["run_id"], "--json", data_dir=tmp_path)
    board = json.loads(out)
    assert {(e["model"], e["score"], e["correct"]) for e in board["leaderboard"]} == {("dom", 1.0, 40),
                                                                                     ("abroad", 1.0, 40)}
    dom = next(e for e in board["leaderboard"] if e["model"] == "dom")
    assert dom["cost_per_correct"] == pytest.approx(dom["cost_total"] / 40)
    code, out = invoke("leaderboard", "--pair", "dom,abroad", "--json", data_dir=tmp_path)
    assert json.loads(out)["pairs"][0]["p_bootstrap"] == 1.0

    code, out = invoke("routes", "--json", data_dir=tmp_path)
    routes = json.loads(out)
    assert routes["mc"]["deployments"][0] == "dom"  # equal quality, cheaper

    report = tmp_path / "out" / "report.html"
    code, _ = invoke("report", good["run_id"], bad["run_id"], "-o", str(report), data_dir=tmp_path)
    assert code == 0
    html = report.read_text(encoding="utf-8")
    assert 'id="chart-scores"' in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "질문 00" in html and report.with_suffix(".md").read_text(encoding="utf-8").startswith("# Nuri evaluation")


def test_unknown_suite_and_model_exit_2(tmp_path: Path, config_file: Path) -> None:
    assert invoke("run", "nope", "--models", "dom", data_dir=tmp_path, config=config_file)[0] == 2
    code, _ = invoke("run", "safety", "--models", "ghost", "--limit", "1", data_dir=tmp_path, config=config_file)
    assert code == 2


def _finished(db: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return {r[0] for r in conn.execute("select item_id from eval_items where error is null")}
        except sqlite3.OperationalError:  # tables not made yet
            return set()


def test_killed_run_resumes_without_redoing_finished_items(tmp_path: Path) -> None:
    n = 24
    items = [{"id": f"i{k:02d}", "question": f"항목-{k:02d}", "answer": "ok"} for k in range(n)]
    make_suite(tmp_path / "suites", "slow", items, scorer="exact")
    with RunningUpstream(UpstreamState(reply="ok", latency_ms=150)) as up:
        config = tmp_path / "nuri.yaml"
        config.write_text(yaml.safe_dump(catalog(up.base_url)), encoding="utf-8")
        data = tmp_path / "data"
        cmd = [sys.executable, "-m", "nuri", "eval", "run", "slow", "--models", "dom", "--concurrency", "2",
               "--json", "--suites-dir", str(tmp_path / "suites"), "--config", str(config), "--data-dir", str(data)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
        db = data / "nuri.db"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if db.exists() and len(_finished(db)) >= 6:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = _finished(db)
        assert 6 <= len(before) < n, "the run must be killed mid-way"
        with contextlib.closing(sqlite3.connect(db)) as conn:
            run_id, status = conn.execute("select id, status from eval_runs").fetchone()
        assert status == "running"
        up.state.requests.clear()
        resumed = subprocess.run([*cmd, "--resume", run_id], capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads(resumed.stdout)
        asked_again = {json.loads(r["body"])["messages"][-1]["content"] for r in up.state.requests}
    assert summary["run_id"] == run_id and summary["status"] == "finished"
    assert summary["skipped_finished"] == len(before)
    assert not asked_again & {f"항목-{k[1:]}" for k in before}, "a finished item was sent again"
    assert len(asked_again) == len(up.state.requests) == n - len(before)
    assert _finished(db) == {it["id"] for it in items}
    assert summary["results"][0]["score"] == 1.0

"""The HTML report opened in headless Chromium: the charts are laid out and drawn, with no network."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from eval_helpers import make_suite

from nuri.evals.report import write_report
from nuri.evals.runner import EvalRunner, RunOptions

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}",
           "--window-size=1400,1200", "--virtual-time-budget=3000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


async def test_report_charts_render_in_headless_chromium(tmp_path: Path, upstream_fast, cfg, store) -> None:
    items = [{"id": str(i), "question": f"문항 {i}", "choices": ["예", "아니오"], "answer": "A"} for i in range(8)]
    suites = [make_suite(tmp_path, "alpha", items), make_suite(tmp_path, "beta", items)]
    upstream_fast.state.answers = {"문항 1": "B", "문항 2": "B"}
    upstream_fast.state.reply = "A"
    summary = await EvalRunner(store, cfg, suites, ["dom", "abroad"], RunOptions(concurrency=4)).run()
    report = tmp_path / "report.html"
    write_report([store.get_run(summary["run_id"])], store.run_items([summary["run_id"]]), report)

    dom = _chromium(tmp_path, "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    drawn = dict(re.findall(r'<svg[^>]*id="(chart-[a-z]+)"[^>]*data-drawn="(\d+)"', dom.stdout))
    assert drawn == {"chart-scores": "4", "chart-cost": "4", "chart-latency": "2"}, drawn
    assert dom.stdout.count('class="item ') == 32

    shot = tmp_path / "report.png"
    result = _chromium(tmp_path, f"--screenshot={shot}", report.as_uri())
    assert result.returncode == 0 and shot.stat().st_size > 20_000

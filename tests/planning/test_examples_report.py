"""The examples regenerate byte for byte, the CLI exports scorecards, and the HTML report renders in Chromium."""

from __future__ import annotations

import csv
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _generator():
    spec = importlib.util.spec_from_file_location("examples_generate", EXAMPLES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["public-agency", "bank"])
def test_examples_are_current(tmp_path: Path, name: str) -> None:
    shutil.copytree(EXAMPLES / name, tmp_path / name, ignore=shutil.ignore_patterns("report", "results.jsonl"))
    files = _generator().generate(name, tmp_path)
    for kind, path in files.items():
        fresh = (tmp_path / name / path).read_text(encoding="utf-8")
        assert fresh == (EXAMPLES / name / path).read_text(encoding="utf-8"), f"{name} {kind} is stale: run examples/generate.py"
    assert (tmp_path / name / "results.jsonl").read_bytes() == (EXAMPLES / name / "results.jsonl").read_bytes()


def test_examples_show_the_mix_they_are_meant_to() -> None:
    bank = {r["workload"]: r for r in csv.DictReader((EXAMPLES / "bank/report/workloads.csv").open(encoding="utf-8"))}
    assert bank["customer-service"]["recommended"] == "kr-cloud"          # credit data stays domestic, cheaper cloud
    assert bank["credit-review"]["recommended"] == "bank-onprem"          # red-teaming required: kr-cloud short
    assert bank["code-assistant"]["sovereign"] == "false"                 # approved global version, cheapest
    assert "research-model" in bank["internal-search"]["excluded"]        # non-commercial licence in a bank
    agency = {r["workload"]: r for r in csv.DictReader((EXAMPLES / "public-agency/report/workloads.csv").open(encoding="utf-8"))}
    assert agency["translation"]["recommended"] == "global-api"
    assert agency["hr"]["high_impact"] == "true" and agency["hr"]["recommended"] == "gov-cloud"
    assert all(agency[w]["recommended"] == "gov-cloud" for w in ("civil-petitions", "policy-drafting", "citizen-chatbot"))


def test_scorecard_cli_prints_and_exports(tmp_path: Path) -> None:
    out = tmp_path / "cards.csv"
    done = subprocess.run([sys.executable, "-m", "nuri", "plan", "scorecard", "-c", "nuri.yaml", "--results",
                           "results.jsonl", "--no-store", "-o", str(out)],
                          cwd=EXAMPLES / "bank", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "bank-onprem" in done.stdout and "red_teaming" in done.stdout
    cards = {r["deployment"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert float(cards["bank-onprem"]["total"]) > float(cards["research-model"]["total"])
    assert cards["research-model"]["license_evidence"] == "CC BY-NC 4.0: no commercial use"
    assert cards["kr-cloud"]["red_teaming_evidence"].startswith("Nuri safety 0.850")


def test_audit_cli_reports_bad_rows_and_still_audits(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.csv"
    lines = (EXAMPLES / "bank/inventory.csv").read_text(encoding="utf-8").splitlines()
    lines.append("broken,ops,,,,,fast,ko,true,,1,1,1,,")
    inventory.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "nuri", "plan", "audit", str(inventory), "-o", str(tmp_path / "out"),
                           "-c", "nuri.yaml", "--results", "results.jsonl", "--no-store"],
                          cwd=EXAMPLES / "bank", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "row 6 (broken), latency_ms" in " ".join(done.stderr.split())     # however the console wrapped it
    report = (tmp_path / "out/report.html").read_text(encoding="utf-8")
    assert "row 6 (broken), latency_ms" in report and report.count('class="workload-row"') == 4


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    report = EXAMPLES / "public-agency/report/report.html"
    text = report.read_text(encoding="utf-8")
    assert "http://" not in text.split("<body>")[0] and "<link" not in text      # nothing fetched to view it
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}",
           "--window-size=1400,1200", "--virtual-time-budget=3000"]
    dom = subprocess.run([*cmd, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    drawn = dict(re.findall(r'<svg[^>]*id="(chart-[a-z]+)"[^>]*data-drawn="(\d+)"', dom.stdout))
    # mix: 2 panels × 3 bars; cost: one bar per workload; quality: one point per deployment with results
    assert drawn == {"chart-mix": "6", "chart-cost": "5", "chart-quality": "3"}, drawn
    assert dom.stdout.count('class="workload-row"') == 5
    shot = tmp_path / "report.png"
    result = subprocess.run([*cmd, f"--screenshot={shot}", report.as_uri()], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0 and shot.stat().st_size > 20_000

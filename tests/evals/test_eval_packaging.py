"""The shipped suites are package data: a wheel built from the source carries them, and an install
of that wheel, run from outside the checkout, finds them (importlib.resources, not a path that
only exists in a checkout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from eval_helpers import SHIPPED

REPO = Path(__file__).resolve().parents[2]
NAMES = {"korean-knowledge", "culture-geo", "safety", "code", "retrieval-qa", "translation"}

pytestmark = pytest.mark.slow


def _build_wheel(tmp: Path) -> Path:
    """A wheel of a copy of the source, so the build leaves nothing in the checkout."""
    source = tmp / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    out = tmp / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(out), str(source)], check=True, capture_output=True, timeout=240)
    (wheel,) = out.glob("nuri-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if subprocess.run([sys.executable, "-c", "import wheel"], capture_output=True).returncode != 0:
        pytest.skip("the `wheel` package is not installed (pip install -e '.[dev]')")
    return _build_wheel(tmp_path_factory.mktemp("build"))


def test_the_wheel_carries_every_shipped_suite_file(wheel: Path) -> None:
    inside = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"nuri/evals/suites/{p.relative_to(SHIPPED).as_posix()}" for p in SHIPPED.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
    assert expected - inside == set()
    assert {f"nuri/evals/suites/{n}/suite.yaml" for n in NAMES} <= inside
    assert "nuri/evals/suites/safety/LICENSE-MultiJail" in inside


def test_an_install_outside_the_checkout_lists_the_shipped_suites(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=240)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURI_")}
    env["PYTHONPATH"] = str(site)          # ahead of the checkout's editable install
    run = subprocess.run([sys.executable, "-m", "nuri", "eval", "suites", "--json", "--data-dir", str(tmp_path / "d")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    listed = {s["name"]: s for s in json.loads(run.stdout)}
    assert set(listed) >= NAMES
    for name in NAMES:
        assert Path(listed[name]["path"]).is_relative_to(site), listed[name]["path"]
        assert listed[name]["items"] >= 50

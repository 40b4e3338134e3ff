"""`pip install nuri` without extras: a gateway for remote deployments, with no compiler involved.

A plain venv (no system site packages, so the llama-cpp-python of the development venv is out of
sight) gets the wheel of this checkout and its runtime dependencies from the package index pip is
configured with, binary wheels only (kiwipiepy-model is a data-only source distribution) and with
the C compilers replaced by `false`. It then serves a remote deployment, and without a config
says exactly what to install for the embedded model.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support.processes import GatewayProcess, upstream_deployment

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _run(*cmd: str | Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env)


class VenvGateway(GatewayProcess):
    """`nuri serve` run by another interpreter (the fresh venv's)."""

    def __init__(self, python: Path, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.python = python

    def command(self) -> list[str]:
        return [str(self.python), *super().command()[1:]]


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("install")
    source = work / "src-copy"                     # build outside the shared checkout
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", source,
                 "-w", work / "dist")
    assert built.returncode == 0, built.stderr
    wheel = next((work / "dist").glob("nuri-*.whl"))
    base = getattr(sys, "_base_executable", sys.executable)
    made = _run(base, "-m", "venv", work / "venv")
    assert made.returncode == 0, made.stderr
    python = work / "venv" / "bin" / "python"
    no_compiler = {**os.environ, "CC": "/bin/false", "CXX": "/bin/false", "CMAKE_C_COMPILER": "/bin/false",
                   "CMAKE_CXX_COMPILER": "/bin/false"}
    installed = _run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--only-binary=:all:",
                     "--no-binary=kiwipiepy-model", wheel, env=no_compiler, timeout=800)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return python


def test_fresh_install_has_no_llama_cpp_and_serves_a_remote_deployment(fresh_venv, upstream, tmp_path):
    probe = _run(fresh_venv, "-c", "import importlib.util as u; print(u.find_spec('llama_cpp'), u.find_spec('nuri'))")
    assert probe.returncode == 0 and probe.stdout.startswith("None ") and "site-packages" in probe.stdout
    config = {"deployments": [upstream_deployment(upstream, "remote", jurisdiction="KR", hosting="domestic_cloud")],
              "ledger": {"enabled": False}}
    gw = VenvGateway(fresh_venv, tmp_path, config).start(timeout=120)
    try:
        reply = httpx.post(f"{gw.base_url}/chat/completions", timeout=30,
                           json={"model": "remote", "messages": [{"role": "user", "content": "안녕하세요"}]})
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == upstream.state.reply
        assert reply.headers["x-nuri-deployment"] == "remote"
    finally:
        gw.stop()


def test_fresh_install_without_config_says_what_to_install(fresh_venv, tmp_path):
    out = _run(fresh_venv, "-m", "nuri", "serve", "--port", "1", "--data-dir", tmp_path / "data", timeout=120)
    assert out.returncode == 2
    said = re.sub(r"\s+", " ", out.stdout + out.stderr)
    assert "pip install 'nuri[embedded]'" in said and "llama-cpp-python" in said, said

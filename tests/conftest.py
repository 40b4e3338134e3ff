"""Shared fixtures: real upstream servers and real `nuri serve` processes on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.processes import GatewayProcess
from support.upstream_server import RunningUpstream

# Test gateways share the weights assembled by `make install` instead of copying them each time.
os.environ.setdefault("NURI_MODELS_DIR", str(Path(__file__).resolve().parents[1] / ".nuri" / "models"))

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
needs_model = pytest.mark.skipif(not HAS_LLAMA, reason="llama-cpp-python is not installed (run `make install`)")


@pytest.fixture
def upstream() -> Iterator[RunningUpstream]:
    with RunningUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def module_upstream() -> Iterator[RunningUpstream]:
    with RunningUpstream() as server:
        yield server


def _gateways(workdir: Path) -> Iterator[Any]:
    """A factory: start(config) runs `nuri serve` with that config; all are stopped at the end."""
    started: list[GatewayProcess] = []

    def start(config: dict[str, Any] | None, **kwargs: Any) -> GatewayProcess:
        proc = GatewayProcess(workdir, config, **kwargs).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="module")
def module_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Like `gateway`, but the processes live for the whole test module (start-up costs seconds)."""
    yield from _gateways(tmp_path_factory.mktemp("gw"))


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Any]:
    """A factory: gateway(config) starts `nuri serve` with that config; all are stopped at the end."""
    yield from _gateways(tmp_path)


@pytest.fixture(scope="session")
def embedded_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway on the embedded Gemma model for the whole session (the model loads once)."""
    if not HAS_LLAMA:
        pytest.skip("llama-cpp-python is not installed (run `make install`)")
    workdir = tmp_path_factory.mktemp("embedded")
    config = {"deployments": [{"id": "local-gemma", "provider": "llamacpp", "model": "gemma-3-270m",
                               "jurisdiction": "KR", "hosting": "on_prem", "options": {"n_ctx": 2048}}],
              "ledger": {"enabled": False}}
    with GatewayProcess(workdir, config) as proc:
        yield proc

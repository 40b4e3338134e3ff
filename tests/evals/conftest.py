"""Fixtures for the evaluation harness: a deterministic upstream, a catalog pointing at it, a store."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # eval_helpers, shared by these tests
from eval_helpers import catalog

from nuri.config import NuriConfig, load_config
from nuri.evals.store import ResultStore
from support.upstream_server import RunningUpstream, UpstreamState


@pytest.fixture
def upstream_fast() -> Iterator[RunningUpstream]:
    with RunningUpstream(UpstreamState(reply="모르겠습니다")) as server:
        yield server


@pytest.fixture
def config_file(tmp_path: Path, upstream_fast: RunningUpstream) -> Path:
    path = tmp_path / "nuri.yaml"
    path.write_text(yaml.safe_dump(catalog(upstream_fast.base_url)), encoding="utf-8")
    return path


@pytest.fixture
def cfg(config_file: Path) -> NuriConfig:
    return load_config(config_file)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultStore]:
    s = ResultStore(f"sqlite:///{tmp_path / 'nuri.db'}")
    yield s
    s.close()

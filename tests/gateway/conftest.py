"""Fixtures shared by the gateway tests that need the boundary setup: a real `nuri serve` in front
of a domestic and a foreign recording upstream (support.boundary)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.boundary import Boundary, reset_upstream, running_boundary


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Boundary]:
    """One boundary setup per test module."""
    with running_boundary(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])) as running:
        yield running


@pytest.fixture
def fresh(setup: Boundary) -> Boundary:
    """The module's setup with both upstreams' recordings and scripts cleared."""
    for server in (setup.kr, setup.us):
        reset_upstream(server)
    return setup

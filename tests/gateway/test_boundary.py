"""The privacy boundary in CI: one test per cell of the reduced grid (support.boundary.ci_grid).

The grid runs once per module against a real `nuri serve` (kr-pipa) in front of two recording
upstreams; each cell's test then asserts on that cell's verdict, so a leaking cell is its own
failing test with the evidence in its message. `bench/boundary.py` runs the full grid with the
same cells and checks. The last tests show the checks are not blind: the same cells sent straight
to the foreign upstream (no gateway) must all be caught.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.boundary import (
    ENCODINGS,
    FAMILIES,
    Boundary,
    CellResult,
    ReplyCell,
    RequestCell,
    Seen,
    ci_grid,
    encode,
    find_value,
    run_grid,
    running_boundary,
)

CELLS = ci_grid()
REQUEST_CELLS = [c for c in CELLS if isinstance(c, RequestCell)]
INJECT_CELLS = [c for c in CELLS if isinstance(c, ReplyCell) and c.kind == "inject"]


@pytest.fixture(scope="module")
def boundary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Boundary]:
    with running_boundary(tmp_path_factory.mktemp("boundary")) as setup:
        yield setup


@pytest.fixture(scope="module")
def grid(boundary: Boundary) -> dict[str, CellResult]:
    return run_grid(boundary, CELLS, concurrency=8)


@pytest.mark.parametrize("cell_id", [c.id for c in CELLS])
def test_cell(grid: dict[str, CellResult], cell_id: str) -> None:
    result = grid[cell_id]
    assert result.outcome in ("us", "kr", "403"), f"{cell_id}: {result.explain()}"
    assert result.leak is False, f"{cell_id}: {result.explain()}"
    assert result.fidelity in (None, 1.0), f"{cell_id}: {result.explain()}"


def test_cells_served_at_home_carried_the_value_there(grid: dict[str, CellResult]) -> None:
    """A cell moved to `kr` must show the value at `kr`: the recoverability check reads what it should."""
    blind = [cid for cid, r in grid.items() if r.outcome == "kr" and r.domestic_saw is False]
    assert not blind


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_check_recovers_every_encoding(family: str) -> None:
    fam = FAMILIES[family]
    for enc in ENCODINGS:
        placed = encode(enc, fam)
        if placed is None:
            continue
        seen = Seen.of([], [{"messages": [{"role": "user", "content": fam.text(placed)}]}])
        assert find_value(seen, fam, None) is not None, f"{enc} of {family} is not recovered once decoded"


def test_every_request_cell_leaks_without_the_gateway(boundary: Boundary) -> None:
    results = run_grid(boundary, REQUEST_CELLS, via=boundary.us.base_url)
    blind = [cid for cid, r in results.items() if r.leak is not True]
    assert not blind, f"the request check missed: {blind[:10]}"


def test_every_injected_value_leaks_without_the_gateway(boundary: Boundary) -> None:
    results = run_grid(boundary, INJECT_CELLS, via=boundary.us.base_url)
    blind = [cid for cid, r in results.items() if r.leak is not True]
    assert not blind, f"the reply check missed: {blind[:10]}"

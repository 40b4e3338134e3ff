"""The results store on both databases it runs on: an item scored again replaces its failed row
(one upsert per dialect), so a resumed run ends with one row per item, the last one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from nuri.evals.store import ItemResult, ResultStore, database_url

PG_URL = os.environ.get("NURI_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> bool:
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ResultStore]:
    if request.param == "postgresql":
        if not _pg_reachable():
            pytest.skip(f"PostgreSQL is not reachable at {PG_URL}")
        url = database_url(PG_URL, tmp_path)      # a plain postgresql:// URL, as nuri.yaml may give it
    else:
        url = database_url(None, tmp_path)
    store = ResultStore(url)
    yield store
    store.close()


def _item(run_id: str, **kw: object) -> ItemResult:
    return ItemResult(run_id=run_id, suite="s", suite_version="v1", item_id="i1", item_hash="h",
                      model="m", prompt="p", **kw)


def test_a_redone_item_replaces_its_failed_row(any_store: ResultStore) -> None:
    run_id = any_store.create_run("fp", [{"name": "s"}], ["m"], {})
    any_store.save_items([_item(run_id, error="upstream 503")])
    assert any_store.finished_units(run_id) == set()
    any_store.save_items([_item(run_id, reply="ok", score=1.0, passed=True, attempts=2)])
    rows = any_store.run_items([run_id])
    assert len(rows) == 1
    assert rows[0]["error"] is None and rows[0]["reply"] == "ok" and rows[0]["attempts"] == 2
    assert any_store.finished_units(run_id) == {("s", "i1", "m")}


def test_a_plain_postgresql_url_gets_the_installed_driver(tmp_path: Path) -> None:
    assert database_url("postgresql://u@h/db", tmp_path).startswith("postgresql+psycopg://")
    assert database_url(None, tmp_path) == f"sqlite:///{tmp_path / 'nuri.db'}"

"""Metrics and tracing live outside the ledger: the policy evaluation, which emits spans, must not
drag in the ledger's storage (SQLAlchemy, the Redis client) — checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("redis", "hiredis", "sqlalchemy", "psycopg", "nuri.ledger")


def loaded_after(module: str) -> list[str]:
    code = (f"import json, sys; import {module}; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


@pytest.mark.parametrize("module", ["nuri.gateway.evaluator", "nuri.policy.engine", "nuri.observability.tracing",
                                    "nuri.observability.metrics", "nuri.observability.logging"])
def test_importing_leaves_the_ledger_storage_unloaded(module: str) -> None:
    assert loaded_after(module) == []


def test_the_check_sees_storage_when_it_is_imported() -> None:
    assert "sqlalchemy" in loaded_after("nuri.ledger")

"""Helpers shared by the evaluation tests: a catalog on the test upstream and suites in a folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nuri.evals.suite import Suite, load_suite, shipped_dir, write_jsonl

SHIPPED = shipped_dir()


def catalog(base_url: str) -> dict:
    """Two deployments on the same test upstream: a domestic one (priced) and a foreign one."""
    return {"deployments": [
        {"id": "dom", "provider": "openai_compatible", "base_url": base_url, "model": "dom-model",
         "jurisdiction": "KR", "hosting": "on_prem", "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        {"id": "abroad", "provider": "openai_compatible", "base_url": base_url, "model": "abroad-model",
         "jurisdiction": "US", "hosting": "foreign_cloud", "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}},
    ]}


def make_suite(root: Path, name: str, items: list[dict], scorer: str = "choice", template: str = "{question}",
               **settings: object) -> Suite:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"name": name, "template": template, "scorer": {"name": scorer},
            "settings": {"max_tokens": 16} | settings}
    (folder / "suite.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    write_jsonl(folder / "items.jsonl", items)
    return load_suite(folder)


def shipped(name: str) -> Suite:
    return load_suite(SHIPPED / name)


def _sandbox_reason() -> str:
    from nuri.evals.scorers._sandbox import isolation

    found = isolation()
    return "" if found.available else f"code suites need the sandbox: {found.reason}"


# Tests that score code: they run only where the OS sandbox works (bootstrap installs bubblewrap).
requires_sandbox = pytest.mark.skipif(bool(_sandbox_reason()), reason=_sandbox_reason() or "sandbox available")

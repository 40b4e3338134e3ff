"""The labelled personal-data corpus's generator (tests/fixtures/pii/generate.py), loaded as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PII = Path(__file__).resolve().parents[1] / "fixtures" / "pii"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pii_corpus_generator", PII / "generate.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

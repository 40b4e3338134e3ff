"""Routing tests share the builders in tests/policy/policy_factories.py."""

import sys
from pathlib import Path

_POLICY = str(Path(__file__).resolve().parents[1] / "policy")
if _POLICY not in sys.path:
    sys.path.insert(0, _POLICY)

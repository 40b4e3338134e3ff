"""Fixtures of the planning tests; helpers live in planning_helpers."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

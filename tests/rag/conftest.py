"""RAG tests: the document factory (make_docs) is importable from every test module here."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # make_docs, shared by these tests

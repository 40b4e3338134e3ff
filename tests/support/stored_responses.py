"""The Responses API's stored rows, read from a gateway's SQLite file: the evidence of what it keeps."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path


def stored_rows(db_file: Path, count: int, timeout: float = 10.0) -> list[tuple[str, str, float]]:
    """(id, body, time to live) of the stored responses in the order written, once `count` of them
    are (rows are written behind, in batches, a moment after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.closing(sqlite3.connect(db_file)) as db:     # `with` alone commits, does not close
            rows = db.execute("SELECT id, body, expires_at - created_at FROM nuri_conversations "
                              "ORDER BY rowid").fetchall()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)

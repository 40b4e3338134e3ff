"""Audit export for auditors: JSON lines (every field) or CSV (one flat row per record)."""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

from nuri.ledger.chain import iter_rows
from nuri.ledger.db import RawConn

CSV_COLUMNS = [
    "seq", "time", "kind", "request_id", "team", "key_id", "endpoint", "model_requested", "deployment",
    "jurisdiction", "action", "rule_ids", "classification", "entity_hashes", "categories", "n2sf_grade",
    "prompt_tokens", "completion_tokens", "cost", "currency", "latency_ms", "ttft_ms", "stream", "status",
    "outcome", "error_code", "detail", "prev_hash", "hash",
]


def _flat(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "" if value is None else value


def export(conn: RawConn, out: TextIO, fmt: str, since: str | None = None) -> int:
    """Write every record (time ≥ since, if given) in seq order; returns how many."""
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
    elif fmt != "jsonl":
        raise ValueError(f"unknown export format {fmt!r}; use jsonl or csv")
    count = 0
    for row in iter_rows(conn):
        if since and row[1] < since:
            continue
        body = json.loads(row[7])
        full = {"seq": int(row[0]), **body, "prev_hash": row[5], "hash": row[6]}
        if writer is not None:
            writer.writerow({k: _flat(full.get(k)) for k in CSV_COLUMNS})
        else:
            out.write(json.dumps(full, ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count

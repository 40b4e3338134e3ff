"""Audit export for auditors: JSON lines (every field) or CSV (one flat row per record), for the
whole chain or a range of it (times, sequence numbers, kinds)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from typing import Any, TextIO

from nuri.ledger.audit.chain import iter_rows
from nuri.ledger.store.db import RawConn

CSV_COLUMNS = [
    "seq", "time", "kind", "request_id", "team", "key_id", "endpoint", "model_requested", "deployment",
    "jurisdiction", "action", "rule_ids", "classification", "entity_hashes", "categories", "n2sf_grade",
    "prompt_tokens", "completion_tokens", "cost", "currency", "latency_ms", "ttft_ms", "stream", "status",
    "outcome", "error_code", "detail", "prev_hash", "hash",
]
FORMATS = ("jsonl", "csv")


@dataclass(frozen=True, slots=True)
class Range:
    """Which records: time ≥ since and < until (ISO 8601, as the records hold it), seq within
    [from_seq, to_seq], kind among `kinds`; None: no bound."""

    since: str | None = None
    until: str | None = None
    from_seq: int | None = None
    to_seq: int | None = None
    kinds: tuple[str, ...] | None = None

    def holds(self, row: Any) -> bool:
        seq, time, kind = int(row[0]), row[1], row[2]
        return ((self.since is None or time >= self.since) and (self.until is None or time < self.until)
                and (self.to_seq is None or seq <= self.to_seq) and (self.kinds is None or kind in self.kinds))


def _flat(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "" if value is None else value


def export(conn: RawConn, out: TextIO, fmt: str, since: str | None = None, *, span: Range | None = None) -> int:
    """Write every record in the range (or time ≥ since) in seq order; returns how many."""
    span = span or Range(since=since)
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
    elif fmt != "jsonl":
        raise ValueError(f"unknown export format {fmt!r}; use jsonl or csv")
    count = 0
    for row in iter_rows(conn, after=max((span.from_seq or 1) - 1, 0)):
        if span.to_seq is not None and int(row[0]) > span.to_seq:
            break
        if not span.holds(row):
            continue
        body = json.loads(row[7])
        full = {"seq": int(row[0]), **body, "prev_hash": row[5], "hash": row[6]}
        if writer is not None:
            writer.writerow({k: _flat(full.get(k)) for k in CSV_COLUMNS})
        else:
            out.write(json.dumps(full, ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count

"""Reading the trail by its index (migration 0004): filtered pages newest first, rollups, recent latencies.

Every query here reads a bounded number of rows whatever the length of the trail: a filtered page
walks one facet's primary key backwards from a cursor (keyset pagination), at most `budget`
candidates per page; the rollups are a few rows per minute or day. A page that used its budget
before it filled says where it stopped, so the next page goes on from there.

The index covers the records up to the indexer's mark (ledger/audit/indexer.py): callers catch
it up first (`AuditIndexer.catch_up`); records beyond the mark appear in unfiltered pages only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nuri.ledger.store.db import RawConn

FACETS = ("team", "rule", "action", "deployment")
DRIVE_ORDER = ("rule", "deployment", "team", "action")   # likely most selective first


@dataclass(frozen=True, slots=True)
class Filters:
    """Which records: each facet equal to its value, time ≥ since and < until (ISO 8601); None: any."""

    team: str | None = None
    rule: str | None = None
    action: str | None = None
    deployment: str | None = None
    since: str | None = None
    until: str | None = None

    def facets(self) -> dict[str, str]:
        return {name: value for name in DRIVE_ORDER if (value := getattr(self, name))}


@dataclass(slots=True)
class Page:
    records: list[dict[str, Any]] = field(default_factory=list)
    next_before: int | None = None     # the cursor of the next (older) page; None: no older records
    scanned_to: int | None = None      # lowest seq examined


def _seq_bounds(conn: RawConn, f: Filters) -> tuple[int, int | None]:
    """The span of seq a time range covers, found on the time index; records are appended in
    time order, and the exact time filter still applies to every row."""
    low = int((conn.one("SELECT MIN(seq) FROM audit_log") or (0,))[0] or 0)
    high: int | None = None
    if f.since:
        row = conn.one("SELECT seq FROM audit_log WHERE time >= :t ORDER BY time LIMIT 1", {"t": f.since})
        low = max(low, int(row[0])) if row else 1 << 62
    if f.until:
        row = conn.one("SELECT seq FROM audit_log WHERE time < :t ORDER BY time DESC LIMIT 1", {"t": f.until})
        high = int(row[0]) if row else 0
    return low, high


def page(conn: RawConn, f: Filters, *, before: int | None = None, limit: int = 50, budget: int = 20_000) -> Page:
    """Up to `limit` records matching `f`, newest first, with seq < `before`.

    Step one finds the page's seq numbers on the facet index alone (no record is read): the
    first facet drives, the others are primary-key probes. Step two reads those records.
    """
    low, high = _seq_bounds(conn, f)
    top = min(x for x in (before, (high + 1) if high is not None else None, 1 << 62) if x is not None)
    if top <= low:
        return Page()
    facets = f.facets()
    params: dict[str, Any] = {"top": top, "low": low, "budget": budget, "want": limit + 1}
    checks = []
    for i, (name, value) in enumerate(facets.items()):
        params[f"n{i}"], params[f"v{i}"] = name, value
        if i:
            checks.append(f"EXISTS (SELECT 1 FROM audit_facet x WHERE x.name = :n{i} AND x.value = :v{i} "
                          f"AND x.seq = d.seq)")
    if facets:
        drive = ("SELECT seq FROM audit_facet WHERE name = :n0 AND value = :v0 AND seq < :top AND seq >= :low "
                 "ORDER BY seq DESC LIMIT :budget")
    else:
        drive = "SELECT seq FROM audit_log WHERE seq < :top AND seq >= :low ORDER BY seq DESC LIMIT :budget"
    bottom = conn.one(f"SELECT MIN(seq), COUNT(*) FROM ({drive}) c", params)
    if not bottom or not bottom[1]:
        return Page()
    scanned_to, examined = int(bottom[0]), int(bottom[1])
    params["bottom"] = scanned_to
    where = " AND ".join(["d.seq < :top", "d.seq >= :bottom", *checks])
    source = ("audit_facet d WHERE d.name = :n0 AND d.value = :v0 AND " if facets else "audit_log d WHERE ")
    seqs = [int(r[0]) for r in conn.rows(f"SELECT d.seq FROM {source}{where} ORDER BY d.seq DESC LIMIT :want",
                                         params)]
    out = Page(scanned_to=scanned_to)
    if seqs:
        marks = ", ".join(f":s{i}" for i in range(len(seqs[:limit])))
        found = conn.rows(f"SELECT seq, time, body FROM audit_log WHERE seq IN ({marks}) ORDER BY seq DESC",
                          {f"s{i}": s for i, s in enumerate(seqs[:limit])})
        for seq, stamp, body in found:
            if (f.since and stamp < f.since) or (f.until and stamp >= f.until):
                continue                          # a record written out of time order at the edge of the range
            out.records.append({"seq": int(seq), **json.loads(body)})
    if len(seqs) > limit:
        out.next_before = seqs[limit - 1]
    elif examined == budget and scanned_to > low:
        out.next_before = scanned_to              # budget used up: go on below the last row examined
    return out


def rollup(conn: RawConn, since_bucket: str, until_bucket: str | None = None,
           names: tuple[str, ...] = ("requests", "action", "jurisdiction", "outcome", "rule")) -> list[tuple[Any, ...]]:
    """(bucket, name, value, n, cost_nanos) of the per-minute rollup from `since_bucket` on."""
    marks = ", ".join(f":m{i}" for i in range(len(names)))
    params: dict[str, Any] = {"s": since_bucket, **{f"m{i}": n for i, n in enumerate(names)}}
    sql = f"SELECT bucket, name, value, n, cost_nanos FROM audit_rollup WHERE bucket >= :s AND name IN ({marks})"
    if until_bucket is not None:
        sql += " AND bucket < :u"
        params["u"] = until_bucket
    return conn.rows(sql + " ORDER BY bucket", params)


def key_spend(conn: RawConn, since_day: str) -> dict[str, tuple[int, int]]:
    """key_id → (requests, cost in nanos) from day `since_day` (YYYY-MM-DD) on."""
    rows = conn.rows("SELECT value, SUM(n), SUM(cost_nanos) FROM audit_rollup WHERE name = 'key' AND bucket >= :d "
                     "AND length(bucket) = 10 GROUP BY value", {"d": since_day})
    return {str(r[0]): (int(r[1] or 0), int(r[2] or 0)) for r in rows}


def recent_latencies(conn: RawConn, deployment: str, n: int = 1000) -> list[float]:
    """Latency (ms) of the last `n` answered requests served by `deployment`."""
    rows = conn.rows(
        "SELECT a.body FROM audit_log a WHERE a.seq IN (SELECT seq FROM audit_facet WHERE name = 'deployment' "
        "AND value = :d ORDER BY seq DESC LIMIT :n) AND a.kind = 'request'", {"d": deployment, "n": n})
    out = []
    for (body,) in rows:
        rec = json.loads(body)
        if rec.get("outcome") == "ok" and rec.get("latency_ms") is not None:
            out.append(float(rec["latency_ms"]))
    return out

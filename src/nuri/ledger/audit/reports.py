"""Reading the audit trail back: chain verification, pruning, export ranges, and usage and spend
per day, team, key and deployment."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from nuri.errors import InvalidRequest
from nuri.ledger.audit import chain, indexer
from nuri.ledger.audit.export import Range, export
from nuri.ledger.audit.trail import AuditTrail
from nuri.ledger.quota.admission import NANO
from nuri.ledger.store.db import RawConn

DIMENSIONS = ("day", "team", "key", "deployment")
USAGE_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "cost")


class AuditReports:
    """`nuri audit verify | prune` and `nuri usage`, over the trail this process writes."""

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    async def verify(self) -> chain.VerifyResult:
        trail = self.trail
        await trail.writer.flush(timeout=30.0)   # this replica's own spooled records first
        return await trail.db.run_raw(lambda conn: chain.verify(conn, trail.secrets), snapshot=True)

    async def prune(self, older_than_days: int, *, actor: str = "cli") -> int:
        trail = self.trail
        cutoff = datetime.fromtimestamp(time.time() - older_than_days * 86400, UTC)
        cutoff_iso = cutoff.isoformat(timespec="microseconds").replace("+00:00", "Z")

        def work(conn: RawConn) -> int:
            dropped = chain.prune(conn, trail.secrets, cutoff_iso, postgres=not trail.db.is_sqlite)
            if dropped:
                indexer.forget_pruned(conn, cutoff_iso)     # their index rows go with them
            return dropped

        dropped = await trail.db.run_raw(work, write=True)
        await trail.admin_event("audit_pruned", actor, {"older_than_days": older_than_days, "records": dropped})
        return dropped

    async def usage(self, team: str | None = None) -> list[dict[str, Any]]:
        """Tokens and cost per day, team and deployment (the metering report)."""
        await self.trail.writer.flush(timeout=30.0)

        def work(conn: Connection) -> list[dict[str, Any]]:
            sql = ("SELECT day, team, deployment, requests, prompt_tokens, completion_tokens, cost_nanos "
                   "FROM usage_daily" + (" WHERE team = :t" if team else "") + " ORDER BY day, team, deployment")
            rows = conn.execute(text(sql), {"t": team} if team else {}).all()
            return [{"day": r[0], "team": r[1], "deployment": r[2], "requests": r[3], "prompt_tokens": r[4],
                     "completion_tokens": r[5], "cost": r[6] / NANO} for r in rows]

        return await self.trail.db.run(work)

    async def usage_report(self, *, by: Sequence[str] = ("day", "team", "deployment"), team: str | None = None,
                           key_id: str | None = None, deployment: str | None = None, since: str | None = None,
                           until: str | None = None) -> list[dict[str, Any]]:
        """Requests, tokens and cost grouped `by` any of day, team, key and deployment, within days
        [since, until] (YYYY-MM-DD) and the filters given. Without the key it reads the usage table
        the chain keeps; per key it sums the request records of the chain itself."""
        unknown = [d for d in by if d not in DIMENSIONS]
        if unknown or not by:
            raise InvalidRequest(f"group by {', '.join(unknown) or 'nothing'}: choose from {', '.join(DIMENSIONS)}",
                                 code="invalid_group_by", param="by")
        for name, day in (("since", since), ("until", until)):
            if day is not None and not _is_day(day):
                raise InvalidRequest(f"{name} must be a day, YYYY-MM-DD", code="invalid_day", param=name)
        await self.trail.writer.flush(timeout=30.0)
        dims = [d for d in DIMENSIONS if d in by]
        if "key" in dims or key_id is not None:
            def by_records(conn: RawConn) -> dict[tuple[Any, ...], list[float]]:
                return _sum_records(conn, dims, team, key_id, deployment, since, until)

            sums = await self.trail.db.run_raw(by_records, snapshot=True)
        else:
            sums = await self.trail.db.run(lambda conn: _sum_daily(conn, dims, team, deployment, since, until))
        out = []
        for group in sorted(sums, key=lambda g: tuple("" if v is None else str(v) for v in g)):
            values = sums[group]
            row: dict[str, Any] = {("key_id" if d == "key" else d): v for d, v in zip(dims, group, strict=True)}
            row.update(requests=int(values[0]), prompt_tokens=int(values[1]), completion_tokens=int(values[2]),
                       cost=round(values[3] / NANO, 9))
            out.append(row)
        return out

    async def export_text(self, fmt: str, span: Range) -> tuple[str, int]:
        """The records in `span` as JSON lines or CSV text, and how many (an admin API answer)."""
        await self.trail.writer.flush(timeout=30.0)

        def work(conn: RawConn) -> tuple[str, int]:
            buffer = io.StringIO()
            count = export(conn, buffer, fmt, span=span)
            return buffer.getvalue(), count

        return await self.trail.db.run_raw(work, snapshot=True)


def usage_csv(rows: list[dict[str, Any]]) -> str:
    """The usage report as CSV, columns in the report's order."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def _is_day(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _sum_daily(conn: Connection, dims: list[str], team: str | None, deployment: str | None, since: str | None,
               until: str | None) -> dict[tuple[Any, ...], list[float]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    for column, value, op in (("team", team, "="), ("deployment", deployment, "="), ("day", since, ">="),
                              ("day", until, "<=")):
        if value is not None:
            name = f"p{len(params)}"
            where.append(f"{column} {op} :{name}")
            params[name] = value
    cols = ", ".join(dims)
    sql = (f"SELECT {cols}, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_nanos) "
           "FROM usage_daily" + (" WHERE " + " AND ".join(where) if where else "") + f" GROUP BY {cols}")
    return {tuple(r[: len(dims)]): [float(x or 0) for x in r[len(dims):]]
            for r in conn.execute(text(sql), params).all()}


def _sum_records(conn: RawConn, dims: list[str], team: str | None, key_id: str | None, deployment: str | None,
                 since: str | None, until: str | None) -> dict[tuple[Any, ...], list[float]]:
    sums: dict[tuple[Any, ...], list[float]] = {}
    for row in chain.iter_rows(conn):
        day = row[1][:10]
        if row[2] != "request" or (since is not None and day < since) or (until is not None and day > until):
            continue
        body = json.loads(row[7])
        dep = body.get("deployment") or "-"
        if ((team is not None and body.get("team") != team) or (key_id is not None and body.get("key_id") != key_id)
                or (deployment is not None and dep != deployment)):
            continue
        values = {"day": day, "team": body.get("team"), "key": body.get("key_id"), "deployment": dep}
        acc = sums.setdefault(tuple(values[d] for d in dims), [0.0, 0.0, 0.0, 0.0])
        acc[0] += 1
        acc[1] += body.get("prompt_tokens") or 0
        acc[2] += body.get("completion_tokens") or 0
        acc[3] += round(float(body.get("cost") or 0.0) * NANO)
    return sums

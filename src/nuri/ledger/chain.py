"""The hash-chained audit log: append in batches, verify, prune.

One chain, many writers. Every append transaction first locks the single chain-head row
(`SELECT … FOR UPDATE` on PostgreSQL; on SQLite `BEGIN IMMEDIATE` already holds the file's write
lock), reads the last sequence number and hash, numbers its records seq+1…seq+n, hashes each
over (seq, previous hash, canonical body), inserts them, and moves the head — all in one
transaction. Writers on any number of replicas therefore serialise on the head row for the few
milliseconds of a batch, sequence numbers stay contiguous, and the chain stays one line.

The head carries an HMAC signature, and every `checkpoint_every` records (or `checkpoint_seconds`)
a signed checkpoint (seq, hash) is kept; someone who edits the database without the signing key
cannot truncate the tail or rewrite history without a signature failing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nuri.ledger.db import AsyncRawConn, RawConn
from nuri.ledger.records import GENESIS, chain_hash, iso_time
from nuri.ledger.secrets import Keys

PAGE = 5000


@dataclass(slots=True)
class Pending:
    """A record ready for the chain: canonical text plus the columns indexed beside it."""

    body_text: str
    time: str
    kind: str
    request_id: str
    team: str


@dataclass(slots=True)
class UsageDelta:
    day: str
    team: str
    deployment: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nanos: int = 0


@dataclass(slots=True)
class VerifyResult:
    ok: bool
    checked: int
    head_seq: int
    first_bad_seq: int | None = None
    first_bad_request_id: str | None = None
    reason: str | None = None
    checkpoints: int = 0
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.ok:
            return (f"audit chain OK: {self.checked} records verified through seq {self.head_seq}, "
                    f"{self.checkpoints} signed checkpoints valid")
        who = f" (request_id {self.first_bad_request_id})" if self.first_bad_request_id else ""
        return f"audit chain BROKEN at seq {self.first_bad_seq}{who}: {self.reason}"


# --- append -------------------------------------------------------------------------------


def _lock_head(conn: RawConn, *, postgres: bool) -> Any:
    sql = "SELECT seq, hash, checkpoint_seq, checkpoint_time FROM audit_head WHERE id = 1"
    row = conn.one(sql + (" FOR UPDATE" if postgres else ""))
    assert row is not None, "audit_head row missing: the schema was not migrated"
    return row


_INSERT = (
    "INSERT INTO audit_log (seq, time, kind, request_id, team, prev_hash, hash, body) "
    "VALUES (:seq, :time, :kind, :request_id, :team, :prev_hash, :hash, :body)"
)
_USAGE = (
    "INSERT INTO usage_daily (day, team, deployment, requests, prompt_tokens, completion_tokens, cost_nanos) "
    "VALUES (:day, :team, :deployment, :requests, :prompt_tokens, :completion_tokens, :cost_nanos) "
    "ON CONFLICT (day, team, deployment) DO UPDATE SET "
    "requests = usage_daily.requests + excluded.requests, "
    "prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, "
    "completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens, "
    "cost_nanos = usage_daily.cost_nanos + excluded.cost_nanos"
)


def append(conn: RawConn, items: list[Pending], usage: list[UsageDelta], keys: Keys, *,
           checkpoint_every: int, checkpoint_seconds: float) -> int:
    """Chain `items` after the current head in one transaction of its own; returns the new head seq."""
    head = conn.begin_locked(_HEAD)
    try:
        seq, ops = _plan(head, items, usage, keys, checkpoint_every, checkpoint_seconds)
    except BaseException:
        conn.rollback()
        raise
    conn.commit_batch(ops)
    return seq


async def append_async(conn: AsyncRawConn, items: list[Pending], usage: list[UsageDelta], keys: Keys, *,
                       checkpoint_every: int, checkpoint_seconds: float) -> int:
    """`append` on the event loop (PostgreSQL): two round trips — BEGIN + lock the head row;
    then every insert, the head update and COMMIT pipelined together."""
    head = await conn.begin_locked(_HEAD)
    try:
        seq, ops = _plan(head, items, usage, keys, checkpoint_every, checkpoint_seconds)
    except BaseException:
        await conn.rollback()
        raise
    await conn.commit_batch(ops)
    return seq


def _plan(head: Any, items: list[Pending], usage: list[UsageDelta], keys: Keys, checkpoint_every: int,
          checkpoint_seconds: float) -> tuple[int, list[tuple[str, list[dict[str, Any]]]]]:
    """Number and hash the records after `head`; the writes that store them and move the head."""
    assert head is not None, "audit_head row missing: the schema was not migrated"
    seq, prev = int(head[0]), str(head[1])
    cp_seq, cp_time = int(head[2]), float(head[3])
    rows = []
    for item in items:
        seq += 1
        digest = chain_hash(seq, prev, item.body_text)
        rows.append({"seq": seq, "time": item.time, "kind": item.kind, "request_id": item.request_id,
                     "team": item.team, "prev_hash": prev, "hash": digest, "body": item.body_text})
        prev = digest
    ops: list[tuple[str, list[dict[str, Any]]]] = [(_INSERT, rows), (_USAGE, [_usage_dict(u) for u in usage])]
    now = time.time()
    if rows and (seq - cp_seq >= checkpoint_every or now - cp_time >= checkpoint_seconds):
        ops.append((_CHECKPOINT, [{"s": seq, "h": prev, "t": iso_time(now), "g": keys.sign(seq, prev)}]))
        cp_seq, cp_time = seq, now
    ops.append((_MOVE_HEAD, [{"s": seq, "h": prev, "g": keys.sign(seq, prev), "cs": cp_seq, "ct": cp_time}]))
    return seq, ops


_HEAD = "SELECT seq, hash, checkpoint_seq, checkpoint_time FROM audit_head WHERE id = 1"
_CHECKPOINT = "INSERT INTO audit_checkpoint (seq, kind, hash, time, sig) VALUES (:s, 'checkpoint', :h, :t, :g)"
_MOVE_HEAD = ("UPDATE audit_head SET seq = :s, hash = :h, sig = :g, checkpoint_seq = :cs, checkpoint_time = :ct "
              "WHERE id = 1")


def _usage_dict(u: UsageDelta) -> dict[str, Any]:
    return {"day": u.day, "team": u.team, "deployment": u.deployment, "requests": u.requests,
            "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "cost_nanos": u.cost_nanos}


# --- read ---------------------------------------------------------------------------------


def iter_rows(conn: RawConn, after: int = 0) -> Iterator[Any]:
    """(seq, time, kind, request_id, team, prev_hash, hash, body) in seq order, paged."""
    while True:
        page = conn.rows(
            "SELECT seq, time, kind, request_id, team, prev_hash, hash, body FROM audit_log "
            "WHERE seq > :a ORDER BY seq LIMIT :n",
            {"a": after, "n": PAGE},
        )
        yield from page
        if len(page) < PAGE:
            return
        after = int(page[-1][0])


def _checkpoints(conn: RawConn) -> list[Any]:
    return conn.rows("SELECT seq, kind, hash, sig FROM audit_checkpoint ORDER BY seq")


# --- verify -------------------------------------------------------------------------------


def verify(conn: RawConn, keys: Keys) -> VerifyResult:
    """Walk the chain from its anchor; name the first record that was edited, deleted, reordered
    or cut off, or the first signed checkpoint the records contradict."""
    head = conn.one("SELECT seq, hash, sig FROM audit_head WHERE id = 1")
    assert head is not None
    head_seq, head_hash, head_sig = int(head[0]), str(head[1]), head[2]
    cps = _checkpoints(conn)
    problems: list[tuple[int, str | None, str]] = []   # (seq, request_id, reason)

    bad_sig = [cp for cp in cps if not keys.signature_ok(int(cp[0]), cp[2], cp[3])]
    for cp in bad_sig:
        problems.append((int(cp[0]), None, f"{cp[1]} at seq {cp[0]} has an invalid signature"))
    good = [cp for cp in cps if cp not in bad_sig]
    anchors = [cp for cp in good if cp[1] == "anchor"]
    start_seq, prev = (int(anchors[-1][0]), str(anchors[-1][2])) if anchors else (0, GENESIS)
    by_seq = {int(cp[0]): str(cp[2]) for cp in good if cp[1] == "checkpoint"}

    expected = start_seq + 1
    checked = 0
    last_seq, last_hash = start_seq, prev
    for row in iter_rows(conn, after=start_seq):
        seq, rid = int(row[0]), str(row[3])
        reason = _row_problem(row, expected, prev)
        if reason is not None:
            bad = expected if seq > expected and reason.startswith("missing") else seq
            problems.append((bad, None if bad != seq else rid, reason))
            break
        if seq in by_seq and by_seq[seq] != row[6]:
            problems.append((seq, rid, "record differs from the signed checkpoint at this seq "
                                        "(the chain was rewritten at or before it)"))
            break
        prev, last_seq, last_hash = str(row[6]), seq, str(row[6])
        expected = seq + 1
        checked += 1
    else:
        # walked to the end without a break: check the tail against head and checkpoints
        beyond = [s for s in by_seq if s > last_seq]
        if head_seq > last_seq:
            problems.append((last_seq + 1, None, f"records {last_seq + 1}..{head_seq} are missing: "
                                                 f"the chain was truncated (head records seq {head_seq})"))
        elif beyond:
            problems.append((last_seq + 1, None, f"a signed checkpoint names seq {max(beyond)} beyond the "
                                                 f"last record {last_seq}: the chain was truncated"))
        elif head_seq == last_seq and head_hash != last_hash:
            problems.append((last_seq, None, "the last record does not match the chain head"))
        elif head_seq < last_seq:
            problems.append((head_seq + 1, None, "records exist beyond the chain head"))
        if head_seq > 0 and not keys.signature_ok(head_seq, head_hash, head_sig):
            problems.append((last_seq + 1, None, "the chain head's signature is invalid: the head was "
                                                 "edited, records after it may have been truncated"))

    if not problems:
        return VerifyResult(True, checked, head_seq, checkpoints=len(good))
    seq, rid, reason = min(problems, key=lambda p: p[0])
    return VerifyResult(False, checked, head_seq, seq, rid, reason, checkpoints=len(good))


def _row_problem(row: Any, expected: int, prev: str) -> str | None:
    seq = int(row[0])
    if seq > expected:
        return f"missing: record {expected} was deleted (next present is {seq})"
    if seq < expected:
        return "duplicate or out-of-order sequence number"
    if row[5] != prev:
        return "does not follow the previous record (deleted, inserted or reordered)"
    if chain_hash(seq, row[5], row[7]) != row[6]:
        return "content was edited (hash mismatch)"
    try:
        body = json.loads(row[7])
    except ValueError:
        return "content was edited (body is not JSON)"
    if (body.get("time"), body.get("kind"), body.get("request_id"), body.get("team")) != (
        row[1], row[2], row[3], row[4]
    ):
        return "content was edited (indexed columns differ from the hashed body)"
    return None


# --- retention ----------------------------------------------------------------------------


def prune(conn: RawConn, keys: Keys, before_iso: str, *, postgres: bool) -> int:
    """Drop the oldest records (time < before_iso) as a contiguous prefix, leaving a signed anchor
    (seq, hash of the last dropped record) from which verify starts. Returns records dropped."""
    _lock_head(conn, postgres=postgres)
    first_kept = conn.one("SELECT MIN(seq) FROM audit_log WHERE time >= :b", {"b": before_iso})[0]  # type: ignore[index]
    if first_kept is None:
        first_kept = (conn.one("SELECT MAX(seq) FROM audit_log")[0] or 0) + 1  # type: ignore[index]
    last_dropped = int(first_kept) - 1
    row = conn.one("SELECT hash FROM audit_log WHERE seq = :s", {"s": last_dropped})
    if last_dropped <= 0 or row is None:
        return 0
    conn.run(
        "INSERT INTO audit_checkpoint (seq, kind, hash, time, sig) VALUES (:s, 'anchor', :h, :t, :g)",
        {"s": last_dropped, "h": row[0], "t": iso_time(time.time()), "g": keys.sign(last_dropped, row[0])},
    )
    dropped = conn.run("DELETE FROM audit_log WHERE seq <= :s", {"s": last_dropped})
    conn.run("DELETE FROM audit_checkpoint WHERE seq < :s", {"s": last_dropped})
    return dropped

"""The hash-chained audit log: append in batches, verify, prune.

One chain, many writers. Every append transaction first locks the single chain-head row
(`SELECT … FOR UPDATE` on PostgreSQL; on SQLite `BEGIN IMMEDIATE` already holds the file's write
lock), reads the last sequence number and hash, numbers its records seq+1…seq+n, hashes each
over (seq, previous hash, canonical body), inserts them, and moves the head — all in one
transaction. Writers on any number of replicas therefore serialise on the head row for the few
milliseconds of a batch, sequence numbers stay contiguous, and the chain stays one line.

On PostgreSQL a writer that knows the head it committed last (`Head`) first tries a batch as one
statement: the head update, guarded on that head, and the inserts that run only if it matched.
If another writer moved the head in the meantime nothing is written and the batch takes the
locked path above, so the chain stays one line whichever path a batch takes.

The head carries an HMAC signature, and every `checkpoint_every` records (or `checkpoint_seconds`)
a signed checkpoint (seq, hash) is kept; someone who edits the database without the signing key
cannot truncate the tail or rewrite history without a signature failing.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nuri.ledger.audit.records import GENESIS, chain_hash, iso_time
from nuri.ledger.audit.secrets import Keys
from nuri.ledger.store.db import AsyncRawConn, RawConn

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
_USAGE_COLUMNS = ("INSERT INTO usage_daily (day, team, deployment, requests, prompt_tokens, completion_tokens, "
                  "cost_nanos)")
_USAGE_MERGE = (
    "ON CONFLICT (day, team, deployment) DO UPDATE SET "
    "requests = usage_daily.requests + excluded.requests, "
    "prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, "
    "completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens, "
    "cost_nanos = usage_daily.cost_nanos + excluded.cost_nanos"
)
_USAGE = (f"{_USAGE_COLUMNS} VALUES (:day, :team, :deployment, :requests, :prompt_tokens, :completion_tokens, "
          f":cost_nanos) {_USAGE_MERGE}")


@dataclass(frozen=True, slots=True)
class Head:
    """The chain head (as in audit_head) that a writer committed or read last."""

    seq: int
    hash: str
    checkpoint_seq: int
    checkpoint_time: float

    @classmethod
    def of(cls, row: Any) -> Head:
        assert row is not None, "audit_head row missing: the schema was not migrated"
        return cls(int(row[0]), str(row[1]), int(row[2]), float(row[3]))


@dataclass(slots=True)
class _Plan:
    """A batch numbered and hashed after a head: the rows to write and the head they lead to."""

    rows: list[dict[str, Any]]
    usage: list[dict[str, Any]]
    checkpoint: dict[str, Any] | None
    move: dict[str, Any]
    head: Head

    def ops(self) -> list[tuple[str, list[dict[str, Any]]]]:
        out: list[tuple[str, list[dict[str, Any]]]] = [(_INSERT, self.rows), (_USAGE, self.usage)]
        if self.checkpoint is not None:
            out.append((_CHECKPOINT, [self.checkpoint]))
        out.append((_MOVE_HEAD, [self.move]))
        return out


def append(conn: RawConn, items: list[Pending], usage: list[UsageDelta], keys: Keys, *,
           checkpoint_every: int, checkpoint_seconds: float) -> int:
    """Chain `items` after the current head in one transaction of its own; returns the new head seq."""
    row = conn.begin_locked(_HEAD)
    try:
        plan = _plan(Head.of(row), items, usage, keys, checkpoint_every, checkpoint_seconds)
    except BaseException:
        conn.rollback()
        raise
    conn.commit_batch(plan.ops())
    return plan.head.seq


ONE_SHOT_MAX = 32   # larger batches are rare and amortise the locked path's extra round trip


async def append_async(conn: AsyncRawConn, items: list[Pending], usage: list[UsageDelta], keys: Keys, *,
                       checkpoint_every: int, checkpoint_seconds: float, head: Head | None = None) -> Head:
    """`append` on the event loop (PostgreSQL); returns the new head.

    Given the `head` this process committed last, one round trip: a single statement that moves
    the head only if it is still that one, and writes the batch only if it did. Otherwise, or if
    another writer got there first, two: BEGIN + lock the head row; then every insert, the head
    update and COMMIT pipelined together.
    """
    if head is not None and len(items) <= ONE_SHOT_MAX:
        plan = _plan(head, items, usage, keys, checkpoint_every, checkpoint_seconds)
        sql, params = _one_shot(plan, head)
        try:
            row = await conn.one(sql, params)
        except Exception as exc:
            if not _constraint_violation(exc):   # anything else may have committed: do not write twice
                raise
            row = None                           # a stale seq hit the primary key: nothing was written
        if row is not None and int(row[0]) == 1:
            return plan.head
    locked = await conn.begin_locked(_HEAD)
    try:
        plan = _plan(Head.of(locked), items, usage, keys, checkpoint_every, checkpoint_seconds)
    except BaseException:
        await conn.rollback()
        raise
    await conn.commit_batch(plan.ops())
    return plan.head


def _constraint_violation(exc: BaseException) -> bool:
    """An integrity error (SQLSTATE class 23): the statement failed as a whole, nothing committed."""
    return str(getattr(exc, "sqlstate", "") or "").startswith("23")


def _plan(head: Head, items: list[Pending], usage: list[UsageDelta], keys: Keys, checkpoint_every: int,
          checkpoint_seconds: float) -> _Plan:
    """Number and hash the records after `head`; the writes that store them and move the head."""
    seq, prev = head.seq, head.hash
    cp_seq, cp_time = head.checkpoint_seq, head.checkpoint_time
    rows = []
    for item in items:
        seq += 1
        digest = chain_hash(seq, prev, item.body_text)
        rows.append({"seq": seq, "time": item.time, "kind": item.kind, "request_id": item.request_id,
                     "team": item.team, "prev_hash": prev, "hash": digest, "body": item.body_text})
        prev = digest
    checkpoint = None
    now = time.time()
    if rows and (seq - cp_seq >= checkpoint_every or now - cp_time >= checkpoint_seconds):
        checkpoint = {"s": seq, "h": prev, "t": iso_time(now), "g": keys.sign(seq, prev)}
        cp_seq, cp_time = seq, now
    move = {"s": seq, "h": prev, "g": keys.sign(seq, prev), "cs": cp_seq, "ct": cp_time}
    return _Plan(rows, [_usage_dict(u) for u in usage], checkpoint, move, Head(seq, prev, cp_seq, cp_time))


_HEAD = "SELECT seq, hash, checkpoint_seq, checkpoint_time FROM audit_head WHERE id = 1"
_CHECKPOINT = "INSERT INTO audit_checkpoint (seq, kind, hash, time, sig) VALUES (:s, 'checkpoint', :h, :t, :g)"
_MOVE_HEAD = ("UPDATE audit_head SET seq = :s, hash = :h, sig = :g, checkpoint_seq = :cs, checkpoint_time = :ct "
              "WHERE id = 1")


def _one_shot(plan: _Plan, head: Head) -> tuple[str, dict[str, Any]]:
    """The batch as one statement, and its parameters (scalars: cheap to send, and the text is
    the same for every batch of the same shape, so the driver prepares it once)."""
    params: dict[str, Any] = {"s": plan.move["s"], "h": plan.move["h"], "g": plan.move["g"],
                              "cs": plan.move["cs"], "ct": plan.move["ct"],
                              "os": head.seq, "oh": head.hash, "ocs": head.checkpoint_seq}
    for i, r in enumerate(plan.rows):
        for col, value in r.items():
            params[f"r{i}_{col}"] = value
    for i, u in enumerate(plan.usage):
        for col, value in u.items():
            params[f"u{i}_{col}"] = value
    if plan.checkpoint is not None:
        for col, value in plan.checkpoint.items():
            params[f"c_{col}"] = value
    return _one_shot_sql(len(plan.rows), len(plan.usage), plan.checkpoint is not None), params


@functools.lru_cache(maxsize=128)
def _one_shot_sql(n_rows: int, n_usage: int, checkpoint: bool) -> str:
    """Move the head only where it is still the expected one (`h` yields no row otherwise, also
    after waiting for another writer's lock), and insert only if it moved: all or nothing."""
    parts = [
        "WITH h AS (UPDATE audit_head SET seq = :s, hash = :h, sig = :g, checkpoint_seq = :cs, "
        "checkpoint_time = :ct WHERE id = 1 AND seq = :os AND hash = :oh AND checkpoint_seq = :ocs RETURNING 1)",
    ]
    rows = ", ".join(
        f"(:r{i}_seq::bigint, :r{i}_time::text, :r{i}_kind::text, :r{i}_request_id::text, :r{i}_team::text, "
        f":r{i}_prev_hash::text, :r{i}_hash::text, :r{i}_body::text)" for i in range(n_rows))
    parts.append(f"r AS (INSERT INTO audit_log (seq, time, kind, request_id, team, prev_hash, hash, body) "
                 f"SELECT * FROM (VALUES {rows}) v WHERE EXISTS (SELECT 1 FROM h))")
    if n_usage:
        usage = ", ".join(
            f"(:u{i}_day::text, :u{i}_team::text, :u{i}_deployment::text, :u{i}_requests::bigint, "
            f":u{i}_prompt_tokens::bigint, :u{i}_completion_tokens::bigint, :u{i}_cost_nanos::bigint)"
            for i in range(n_usage))
        parts.append(f"u AS ({_USAGE_COLUMNS} SELECT * FROM (VALUES {usage}) v WHERE EXISTS (SELECT 1 FROM h) "
                     f"{_USAGE_MERGE})")
    if checkpoint:
        parts.append("c AS (INSERT INTO audit_checkpoint (seq, kind, hash, time, sig) "
                     "SELECT :c_s::bigint, 'checkpoint', :c_h::text, :c_t::text, :c_g::text "
                     "WHERE EXISTS (SELECT 1 FROM h))")
    return ", ".join(parts) + " SELECT count(*) FROM h"


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
    bad_seq, bad_id, reason = min(problems, key=lambda p: p[0])
    return VerifyResult(False, checked, head_seq, bad_seq, bad_id, reason, checkpoints=len(good))


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

"""The audit record and its canonical form.

The canonical JSON of a record is what gets hashed into the chain, so it must be byte-for-byte
reproducible: sorted keys, no whitespace, floats rounded to a fixed precision, UTF-8.
A record holds entity types, counts and keyed hashes — never the values themselves.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson

GENESIS = "0" * 64
_HASHLIKE = re.compile(r"^[0-9a-f]{32}$")   # the shape of Keys.keyed_hash output


@dataclass(slots=True)
class AuditRecord:
    """One request (kind "request") or one admin action (kind "admin") as the auditor sees it."""

    request_id: str
    endpoint: str = ""
    team: str = "anonymous"
    key_id: str | None = None
    model_requested: str | None = None
    classification: dict[str, int] = field(default_factory=dict)       # entity type → count
    entity_hashes: dict[str, list[str]] = field(default_factory=dict)  # entity type → keyed hashes
    categories: list[str] = field(default_factory=list)                # PIPA categories present
    n2sf_grade: str | None = None
    action: str | None = None                                          # allow | pseudonymize | block …
    rule_ids: list[str] = field(default_factory=list)
    deployment: str | None = None
    jurisdiction: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    currency: str = "USD"
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    stream: bool = False
    status: int = 200
    outcome: str = "ok"               # ok | blocked | rate_limited | budget_exceeded | error | cancelled
    error_code: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)   # extra non-personal facts (flags, admin detail)
    kind: str = "request"
    time: float = field(default_factory=time.time)

    def to_body(self, hasher: Any = None) -> dict[str, Any]:
        """The dict that is hashed and stored; values that are not keyed hashes get hashed here.

        This is a last line of defence: if a caller put a raw value where a keyed hash belongs,
        the value is replaced by its keyed hash before anything is stored.
        """
        body = dict(zip(_FIELDS, _FIELD_VALUES(self), strict=True))   # shallow: asdict deep-copies (slow)
        body["classification"] = dict(self.classification)
        body["categories"] = list(self.categories)
        body["rule_ids"] = list(self.rule_ids)
        body["detail"] = dict(self.detail)
        body["time"] = iso_time(self.time)
        body["cost"] = round(float(self.cost), 9)
        body["latency_ms"] = round(float(self.latency_ms), 3)
        if self.ttft_ms is not None:
            body["ttft_ms"] = round(float(self.ttft_ms), 3)
        hashes: dict[str, list[str]] = {}
        for etype, values in self.entity_hashes.items():
            clean = []
            for v in values:
                if isinstance(v, str) and _HASHLIKE.match(v):
                    clean.append(v)
                elif hasher is not None:
                    clean.append(hasher(str(v)))
                # without a hasher a non-hash value is dropped rather than stored
            hashes[str(etype)] = clean
        body["entity_hashes"] = hashes
        return body


_FIELDS = tuple(f.name for f in fields(AuditRecord))
_FIELD_VALUES = attrgetter(*_FIELDS)      # every field's value at once, in C


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical(body: dict[str, Any]) -> str:
    """Stable JSON text: the exact bytes the chain hashes (sorted keys, no spaces, UTF-8 as is).

    Written once per record and stored; verification hashes the stored text, never a new
    rendering, so records written by an earlier renderer stay valid. orjson: a fifth of the
    time of `json.dumps`, on every request."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()


def chain_hash(seq: int, prev_hash: str, body_text: str) -> str:
    """hash_n = sha256(seq ‖ prev_hash ‖ canonical body): position, predecessor and content."""
    h = hashlib.sha256()
    h.update(f"{seq}\n{prev_hash}\n".encode())
    h.update(body_text.encode("utf-8"))
    return h.hexdigest()

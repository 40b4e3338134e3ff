"""Responses API state: what a request with `previous_response_id` continues from.

Each stored response holds its conversation's items up to and including its own output, so a
follow-up sends only its new input. Personal data is not kept: every string is redacted before
anything is stored, each value found becoming `<TYPE_REDACTED>` (the marker the pseudonymiser
uses for values it never restores), and images, audio and files are replaced by a note. Stored
state thus holds what Nuri holds elsewhere, entity types and never values; a follow-up continues
from the redacted history (a client that needs the values in later turns sends the history
itself, with `store: false`).

What is found where: the strings the request carried (instructions, input items, the history it
continues) were scanned by the pipeline's classification, split values across fields included,
and are redacted from that scan (`Known`); the model's output in a whole reply was scanned by the
reply guard, and is redacted from that scan (`reply_texts.ReplyScans`); the identifiers Nuri made
itself and the protocol's status words are not personal data and are kept as they are. The rest
(a streamed reply's assembled output, `metadata`) and everything when policy is off (nothing was
classified or guarded) is scanned here.

Where: the ledger's database (its SQLite file or PostgreSQL), in a table of its own created at
start-up and written behind in batches (see `DatabaseStore`); with the ledger disabled, process
memory (lost on restart, not shared by replicas). Either way a stored response belongs to the
team whose key stored it and expires after `conversations.retention_days`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from itertools import repeat
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson
from sqlalchemy import (
    Column,
    Float,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    inspect,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.schema import CreateIndex, CreateTable

from nuri.config import NuriConfig
from nuri.ledger.store.db import checkpoint_by_size
from nuri.privacy import fields
from nuri.privacy.classify import OVER_SCAN_LIMIT
from nuri.privacy.pseudonymizer import redacted
from nuri.privacy.types import Classification, Entity

log = logging.getLogger("nuri.gateway")

PRUNE_EVERY_SECONDS = 60.0
FLUSH_SECONDS = 0.2           # the longest a stored response waits to be written with the others
BATCH_ROWS = 512              # a batch this large is written at once, without waiting longer
INLINE_ROWS = 8               # a SQLite batch up to this size is written on the event loop, a larger one on a thread
RETRY_SECONDS = 1.0           # after a failed write, before the next try
MISS_RETRY_SECONDS = 0.5      # a miss looks again after this: another replica's rows may be on their way
PENDING_MAX = 50_000          # rows waiting to be written, most (the database failing meanwhile)
INLINE_SCAN_CHARS = 16_384    # text left to scan up to which redaction runs on the event loop
NOT_KEPT = "[content not kept by Nuri]"
# content parts whose payload is not text: replaced by a note before storing
_BINARY_TYPES = frozenset({"input_image", "input_file", "input_audio", "image_url", "image", "file", "audio"})

METADATA = MetaData()
TABLE = Table(
    "nuri_conversations", METADATA,
    Column("id", String(128), primary_key=True),
    Column("team", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Column("body", Text, nullable=False),
)

_INSERT = TABLE.insert()          # built once: SQLAlchemy caches its compiled form
# The body is bound as orjson's UTF-8 bytes and made TEXT by SQLite, which only relabels them:
# decoding it into a str here would have the driver encode it back to UTF-8 for the insert.
_SQLITE_INSERT = ("INSERT INTO nuri_conversations (id, team, created_at, expires_at, body) "
                  "VALUES (?, ?, ?, ?, CAST(? AS TEXT))")


class Stored(NamedTuple):
    """A stored response: the conversation's items so far, and the response object as answered.
    (A named tuple: built for every stored response, and a frozen dataclass costs more to build.)"""

    items: list[dict[str, Any]]
    response: dict[str, Any]
    settled: int = 0        # leading items loaded from the store as they were stored (a follow-up's history)


def kept_output(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The response's output items a follow-up continues from (reasoning is not kept)."""
    return [i for i in response.get("output") or () if type(i) is dict and i.get("type") != "reasoning"]


def stored_form(stored: Stored) -> dict[str, Any]:
    """The body to write. The items end with the response's own output, which the response holds
    too: then only the items before it are written (`input`), and `decode` puts the output back
    (equal items), so a row carries each output item once. Items that do not end so are written
    whole."""
    items, output = stored.items, kept_output(stored.response)
    start = len(items) - len(output)
    if start >= 0 and items[start:] == output:      # the same objects, as a rule: compared by identity
        return {"input": items[:start], "response": stored.response}
    return {"items": items, "response": stored.response}


_NOTHING: list[Entity] = []      # what a text holds when nothing was found in it (never changed)


class Known:
    """What the request's classification found in each of its texts, by text.

    The stored items repeat the request's strings (instructions, input items, the history sent
    back), and the pipeline has already scanned each of them, split values across fields
    included; redacting them from that scan costs a lookup instead of a second scan. Only a
    complete classification is reused: none when policy is off (nothing was scanned) or when the
    request went over `privacy.max_scan_chars` (only a prefix was)."""

    __slots__ = ("by_text", "nothing_found")

    def __init__(self, by_text: dict[str, list[Entity]], nothing_found: bool = False) -> None:
        self.by_text = by_text
        self.nothing_found = nothing_found      # the classification found nothing in any text

    @classmethod
    def of(cls, texts: list[tuple[fields.Path, str]], classification: Classification) -> Known | None:
        if OVER_SCAN_LIMIT in classification.unscanned:
            return None
        if not classification.entities:     # most requests: every text is known to hold nothing
            return cls(dict.fromkeys([text for _path, text in texts], _NOTHING), nothing_found=True)
        by_path: dict[fields.Path, list[Entity]] = {}
        for e in classification.entities:
            by_path.setdefault(e.path, []).append(e)
        by_text: dict[str, list[Entity]] = {}
        doubtful: list[str] = []
        for path, text in texts:
            ents = by_path.get(path)
            if not ents:                    # most texts: nothing found in them
                by_text.setdefault(text, _NOTHING)
                continue
            found = [e for e in ents if text[e.start:e.end] == e.text]
            if len(found) != len(ents):
                doubtful.append(text)       # offsets that do not fit this text: it is scanned again
                continue
            by_text[text] = [*by_text.get(text, ()), *found]
        for text in doubtful:               # wherever else the same text was
            by_text.pop(text, None)
        return cls(by_text)

    def get(self, text: str) -> list[Entity] | None:
        return self.by_text.get(text)


def redact_spans(text: str, entities: list[Entity]) -> str:
    """`text` with each entity's span replaced by its type's marker; overlapping spans (a field's
    entity and a piece of a value split across fields) become one marker."""
    if not entities:
        return text
    spans: list[list[Any]] = []
    for e in sorted(entities, key=lambda e: (e.start, -e.end)):
        if spans and e.start < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], e.end)
        else:
            spans.append([e.start, e.end, e.type])
    out, pos = [], 0
    for a, b, kind in spans:
        out += [text[pos:a], redacted(kind)]
        pos = b
    out.append(text[pos:])
    return "".join(out)


# Keys whose values are the protocol's words (as the request walk exempts them): a value that
# looks like one is kept without a scan.
_WORD_KEYS = frozenset({"role", "type", "object", "detail", "format", "tool_choice", "service_tier", "status",
                        "truncation", "finish_reason", "encoding_format", "reasoning_effort", "modalities", "voice"})
# a lowercase word of at most 64 characters with fewer than four digits (the walk's test, in one match)
_WORD = re.compile(r"(?=(?:[^0-9]*[0-9]){0,3}[^0-9]*\Z)[a-z][a-z0-9_.:/+-]{0,63}")
# Object keys of identifier characters with few digits cannot hold an identifier (as in the walk);
# the common ones are known without the pattern.
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.\-]{0,63}")
_COMMON_KEYS = frozenset({
    "type", "role", "content", "text", "id", "status", "call_id", "name", "arguments", "output", "annotations",
    "logprobs", "object", "created_at", "model", "instructions", "tools", "usage", "metadata", "parameters",
    "properties", "description", "input_tokens", "output_tokens", "total_tokens", "input_tokens_details",
    "output_tokens_details", "cached_tokens", "reasoning_tokens", "error", "incomplete_details",
    "max_output_tokens", "parallel_tool_calls", "previous_response_id", "reasoning", "effort", "summary",
    "service_tier", "store", "temperature", "format", "tool_choice", "top_p", "truncation", "user", "background",
    "nuri", "strict", "required", "refusal", "items", "input", "response", "image_url", "file_data", "filename", "detail",
})


# The protocol's words most stored responses carry: known to be words without the pattern.
_COMMON_WORDS = frozenset({
    "message", "assistant", "user", "system", "developer", "completed", "in_progress", "incomplete", "failed",
    "response", "output_text", "input_text", "function_call", "function_call_output", "refusal", "text",
    "json_schema", "json_object", "default", "disabled", "auto", "none", "required", "function",
})


def _binary(node: dict[Any, Any]) -> bool:
    """Whether an object is an image, audio or file part. Its `type` may be any JSON value: a
    tool's JSON schema says `"type": ["string", "null"]`, which no set of names can be asked about."""
    kind = node.get("type")
    return type(kind) is str and kind in _BINARY_TYPES


def _is_word(value: str) -> bool:
    return value in _COMMON_WORDS or _WORD.fullmatch(value) is not None


def _plain_key(key: str) -> bool:
    return key in _COMMON_KEYS or _PLAIN_KEY.fullmatch(key) is not None and sum(c.isdigit() for c in key) < 4


class _Later:
    """A string whose redaction waits for a scan (see `Redactor.copy`)."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value


class Redactor:
    """A JSON value copied with personal data replaced by `<TYPE_REDACTED>` in every string and
    object key: strings the request carried from their classification (`known`), a whole reply's
    texts from the reply guard's scan of them (`scans`), identifiers Nuri made (`own`) and protocol
    words kept as they are, any other string (a streamed reply's output, metadata) by a scan of its
    own. Images, audio and files are replaced by a note.

    Deny by default like the request walk (every string at any depth, unusual keys too), in one
    pass that builds the copy; the strings that need a scan are collected (`later`) and scanned
    after it, on a worker thread when there is much to scan."""

    def __init__(self, scanner: Any, known: Known | None = None, scans: Mapping[str, list[Entity]] | None = None,
                 own: frozenset[str] = frozenset(), made: frozenset[str] = frozenset()) -> None:
        self.scanner = scanner
        self.known = known
        self.scans = scans
        self.own = own
        self.made = made        # the stored response's keys whose values Nuri built (see `clean_form`)
        self._memo: dict[str, str] = {}
        self.later: list[tuple[Any, Any, str]] = []      # (container, slot, string) to scan

    def found(self, value: str) -> list[Entity] | None:
        """What is known to be in `value` without a scan (None: it needs one)."""
        entities = self.known.get(value) if self.known is not None else None
        if entities is None and self.scans is not None:
            entities = self.scans.get(value)
        return entities

    def text(self, value: str) -> str:
        """`value` redacted now (scanned if need be)."""
        hit = self._memo.get(value)
        if hit is None:
            entities = self.found(value)
            hit = self._memo[value] = redact_spans(value, entities if entities is not None else
                                                   self.scanner.scan(value))
        return hit

    def clean(self, node: Any, key: Any = None) -> bool:
        """Whether `node` is stored as it is: every string and key kept without a scan (Nuri's own,
        a protocol word, or known to hold nothing) and nothing to replace by a note. Most stored
        responses are, and are then written without a copy. Written flat, as `copy` is: it runs
        for every node of every stored response (an empty list or object is clean without a call)."""
        kind = type(node)
        if kind is str:
            return self._keeps(key, node)
        if kind is list:
            for v in node:
                vk = type(v)
                if vk is str:
                    if not self._keeps(None, v):
                        return False
                elif (vk is dict or vk is list) and v and not self.clean(v):
                    return False
            return True
        if kind is not dict:
            return True
        part = node.get("type")                 # `_binary`, inline: once for every object
        if type(part) is str and part in _BINARY_TYPES:
            return False
        # the keys at once (most are the protocol's), one by one only when some are not
        if not _COMMON_KEYS.issuperset(node) and not all(type(k) is str and _plain_key(k) for k in node):
            return False
        own = self.own
        for k, v in node.items():
            vk = type(v)
            if vk is str:
                if v in own or k in _WORD_KEYS and (v in _COMMON_WORDS or _WORD.fullmatch(v) is not None):
                    continue
                if not self._known_clean(v):
                    return False
            elif (vk is dict or vk is list) and v and not self.clean(v, k):
                return False
        return True

    def clean_form(self, body: dict[str, Any], settled: int = 0) -> bool:
        """Whether a stored form (`stored_form`) is stored as it is, as `clean` tells, but for the
        response's keys in `made`: their values were built by Nuri (a translated turn's status,
        token counts and fixed fields), so they are not walked. They are a third of a short turn's
        response; every other key is walked, by `clean` itself on a copy without them.

        Nor are the first `settled` items (a follow-up's history, as it was stored) when the
        request's classification found nothing in any text: each of their strings was either
        classified with this request (what was sent upstream, a value split between them and the
        new input included) or checked when it was stored (ids, statuses). A long conversation
        then costs the check its new items only, not its whole history every turn."""
        if settled and self.known is not None and self.known.nothing_found:
            key = "input" if "input" in body else "items"
            body = {**body, key: body[key][settled:]}
        response = body.get("response")
        if not self.made or type(response) is not dict:
            return self.clean(body)
        rest = response.copy()
        deque(map(rest.pop, self.made, repeat(None)), maxlen=0)    # each `rest.pop(k, None)`, in C
        return self.clean({**body, "response": rest})

    def _keeps(self, key: Any, value: str) -> bool:
        """Whether a string is stored as it is, known without a scan."""
        if value in self.own or key in _WORD_KEYS and _is_word(value):
            return True
        return self._known_clean(value)

    def _known_clean(self, value: str) -> bool:
        """Whether a string that is neither Nuri's own nor a protocol word is known to hold nothing."""
        if value.startswith("data:"):
            return False
        known = self.known.by_text.get(value) if self.known is not None else None
        if known is None and self.scans is not None:
            known = self.scans.get(value)
        return known is not None and not known

    def _string(self, key: Any, value: str) -> str | _Later:
        if value in self.own or key in _WORD_KEYS and _is_word(value):
            return value
        if value.startswith("data:") and fields.data_url_media(value) is not None:
            return NOT_KEPT
        hit = self._memo.get(value)
        if hit is not None:
            return hit
        entities = self.found(value)
        if entities is None:
            return _Later(value)
        hit = self._memo[value] = redact_spans(value, entities)
        return hit

    def copy(self, node: Any, key: Any = None) -> Any:
        """The redacted copy of `node`, but for the strings in `later`, still to be scanned.
        Written flat: it runs for every node of every stored response."""
        kind = type(node)
        if kind is dict:
            if _binary(node):
                return {"type": "input_text", "text": NOT_KEPT}
            obj: dict[Any, Any] = {}
            for k, v in node.items():
                name = k if type(k) is not str or _plain_key(k) else self.text(k)
                if name in obj:
                    continue
                obj[name] = self._child(obj, name, v, k)
            return obj
        if kind is list:
            items: list[Any] = []
            for v in node:
                items.append(self._child(items, len(items), v, None))
            return items
        if kind is str:                        # a bare string: nowhere to put it later
            out = self._string(key, node)
            return self.text(node) if type(out) is _Later else out
        return node

    def _child(self, container: Any, slot: Any, value: Any, key: Any) -> Any:
        kind = type(value)
        if kind is str:
            out = self._string(key, value)
            if type(out) is _Later:
                self.later.append((container, slot, value))
                return value
            return out
        if kind is dict or kind is list:
            return self.copy(value, key)
        return value

    @property
    def later_chars(self) -> int:
        return sum(len(v) for _c, _s, v in self.later)

    def scan_later(self) -> None:
        """Scan what `copy` left and put each string's redacted form in place."""
        for container, slot, value in self.later:
            container[slot] = self.text(value)
        self.later.clear()

    def encode(self, stored: Stored) -> str:
        """The stored form: redacted, as JSON text."""
        body = stored_form(stored)
        if not self.clean_form(body, stored.settled):
            body = self.copy(body)
            self.scan_later()
        return orjson.dumps(body).decode()


class Store(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def save(self, response_id: str, team: str, stored: Stored, known: Known | None = None,
                   scans: Mapping[str, list[Entity]] | None = None, own: frozenset[str] = frozenset(),
                   made: frozenset[str] = frozenset()) -> None: ...
    async def load(self, response_id: str, team: str) -> Stored | None: ...
    async def delete(self, response_id: str, team: str) -> bool: ...


class _Row(NamedTuple):
    team: str
    created_at: float
    expires_at: float
    body: bytes             # the stored form as JSON (UTF-8)


class _Base:
    def __init__(self, retention_days: float, scanner: Any) -> None:
        self.retention = retention_days * 86400.0
        self.scanner = scanner

    async def encode(self, stored: Stored, known: Known | None = None,
                     scans: Mapping[str, list[Entity]] | None = None, own: frozenset[str] = frozenset(),
                     made: frozenset[str] = frozenset()) -> bytes:
        """The stored form, redacted, as JSON (UTF-8). On the event loop when little is left to scan
        (the request's texts are known from its classification, a whole reply's from the guard);
        on a worker thread when much is (policy off, or a long streamed reply), so a scan of
        megabytes does not stall other requests."""
        redactor = Redactor(self.scanner, known, scans, own, made)
        body = stored_form(stored)
        if redactor.clean_form(body, stored.settled):       # nothing to redact or scan: written as it is
            return orjson.dumps(body)
        body = redactor.copy(body)
        if redactor.later_chars > INLINE_SCAN_CHARS:
            await asyncio.to_thread(redactor.scan_later)
        else:
            redactor.scan_later()
        return orjson.dumps(body)

    def row(self, team: str, body: bytes) -> _Row:
        now = time.time()
        return _Row(team, now, now + self.retention, body)

    @staticmethod
    def decode(text: str | bytes) -> Stored:
        body = orjson.loads(text)
        response = dict(body.get("response") or {})
        if "input" in body:                 # the output kept once, in the response (`stored_form`)
            return Stored(items=[*body["input"], *kept_output(response)], response=response)
        return Stored(items=list(body.get("items") or []), response=response)


class MemoryStore(_Base):
    """The fallback without a ledger: a bounded, expiring map in this process."""

    def __init__(self, retention_days: float, scanner: Any, max_entries: int) -> None:
        super().__init__(retention_days, scanner)
        self.max_entries = max_entries
        self._rows: OrderedDict[str, _Row] = OrderedDict()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._rows.clear()

    async def save(self, response_id: str, team: str, stored: Stored, known: Known | None = None,
                   scans: Mapping[str, list[Entity]] | None = None, own: frozenset[str] = frozenset(),
                   made: frozenset[str] = frozenset()) -> None:
        self._rows[response_id] = self.row(team, await self.encode(stored, known, scans, own, made))
        while len(self._rows) > self.max_entries:
            self._rows.popitem(last=False)

    async def load(self, response_id: str, team: str) -> Stored | None:
        row = self._rows.get(response_id)
        if row is None or row.team != team:
            return None
        if row.expires_at < time.time():
            self._rows.pop(response_id, None)
            return None
        return self.decode(row.body)

    async def delete(self, response_id: str, team: str) -> bool:
        row = self._rows.get(response_id)
        if row is None or row.team != team:
            return False
        del self._rows[response_id]
        return True


class DatabaseStore(_Base):
    """The ledger's database, in a table of its own (created if missing at start-up).

    Written behind: `save` puts the redacted row in a pending map and one task writes what has
    gathered, in one transaction, at most `FLUSH_SECONDS` after the first row of the batch came
    (at once when `BATCH_ROWS` have), so a response costs neither a commit nor a thread hop of its
    own: a row's share of a batch is its insert. With SQLite the writer keeps one connection of its
    own, and a small batch (a quiet gateway) is written on the event loop, where it takes less
    than a hop to a thread would; a larger one, and any batch to PostgreSQL, on a worker thread.

    This replica serves a pending row from the map, so a follow-up here never misses it. Another
    replica sharing the database cannot see it until it is written: a miss there looks again once
    after `MISS_RETRY_SECONDS` (one batch's wait and the time to write), so only a truly unknown id
    pays that wait. A crash loses the rows not yet written (at most one batch's wait's worth);
    their follow-ups get 404, as for an expired id."""

    def __init__(self, url: str, retention_days: float, scanner: Any, schema: str | None = None) -> None:
        super().__init__(retention_days, scanner)
        self.url = url
        self.schema = schema
        self.engine: Engine | None = None
        self._sqlite: sqlite3.Connection | None = None    # the writer's own connection (SQLite files)
        self._pruned = 0.0
        self._pending: dict[str, _Row] = {}
        self._wake = asyncio.Event()
        self._full = asyncio.Event()        # BATCH_ROWS are waiting: write without waiting longer
        self._writing = asyncio.Lock()      # held while a batch or a delete is in the database
        self._flusher: asyncio.Task[None] | None = None
        self._stopping = False

    def _make_engine(self) -> Engine:
        if self.url.startswith("sqlite"):
            engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 30},
                                   pool_size=4, max_overflow=4)

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                # WAL without a flush per commit: a crash of the host may lose the last stored
                # responses (a follow-up then gets 404), never corrupt the file or the audit chain
                dbapi_conn.execute("PRAGMA synchronous=NORMAL")
                checkpoint_by_size(dbapi_conn)

            return engine
        connect_args = {"options": f"-c search_path={self.schema}"} if self.schema else {}
        return create_engine(self.url, connect_args=connect_args, pool_size=4, max_overflow=4)

    def _open_writer(self) -> sqlite3.Connection | None:
        """The writer's own connection to a SQLite file (None for PostgreSQL or an in-memory
        database): a batch then costs no pool checkout and no SQLAlchemy statement handling."""
        if not self.url.startswith("sqlite"):
            return None
        path = make_url(self.url).database
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        # set up waiting for a lock as any start-up does (another gateway starting on the same file
        # may hold it a moment: reading the page size needs the file's header) ...
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        checkpoint_by_size(conn)
        # ... then no busy wait at rest: a write on the event loop must not sleep there waiting for
        # a lock (`_write_on_thread` waits, on its thread)
        conn.execute("PRAGMA busy_timeout=0")
        return conn

    async def start(self) -> None:
        self.engine = self._make_engine()
        await asyncio.to_thread(self._create_table)
        await asyncio.to_thread(self._prune)
        self._sqlite = await asyncio.to_thread(self._open_writer)
        self._flusher = asyncio.create_task(self._flush_loop(), name="nuri-conversations-writer")

    async def close(self) -> None:
        """Write what is pending, then let the engine go. The writer is asked to stop, not
        cancelled, so a batch is never cut off halfway through its write."""
        self._stopping = True
        self._wake.set()
        if self._flusher is not None:
            await self._flusher
            self._flusher = None
        if self.engine is not None:
            await self.flush()                  # anything saved while the writer was stopping
            if self._sqlite is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._sqlite.close()
                self._sqlite = None
            self.engine.dispose()
            self.engine = None

    def _create_table(self) -> None:
        """The table and its index, if missing. Workers and replicas start together: a check for
        the table and then its creation let two of them both see it missing, and the second
        creation failed its gateway's start-up; `IF NOT EXISTS` leaves the check to the database.
        (PostgreSQL can still refuse one of two simultaneous creations: if the table is there
        after all, that is not an error.)"""
        assert self.engine is not None
        try:
            with self.engine.begin() as conn:
                conn.execute(CreateTable(TABLE, if_not_exists=True))
                for index in TABLE.indexes:
                    conn.execute(CreateIndex(index, if_not_exists=True))
        except Exception:
            if not inspect(self.engine).has_table(TABLE.name):
                raise

    def _prune(self) -> None:
        assert self.engine is not None
        with self.engine.begin() as conn:
            conn.execute(delete(TABLE).where(TABLE.c.expires_at < time.time()))
        self._pruned = time.monotonic()

    async def save(self, response_id: str, team: str, stored: Stored, known: Known | None = None,
                   scans: Mapping[str, list[Entity]] | None = None, own: frozenset[str] = frozenset(),
                   made: frozenset[str] = frozenset()) -> None:
        self._pending[response_id] = self.row(team, await self.encode(stored, known, scans, own, made))
        if len(self._pending) > PENDING_MAX:    # the database has been failing for a while
            oldest = next(iter(self._pending))
            del self._pending[oldest]
            log.error("stored response dropped before it was written: %d are waiting", PENDING_MAX)
        if len(self._pending) >= BATCH_ROWS:
            self._full.set()
        self._wake.set()

    async def _flush_loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            if not self._stopping and not self._full.is_set():
                # what arrives meanwhile joins the batch, up to BATCH_ROWS
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), FLUSH_SECONDS)
            self._wake.clear()
            self._full.clear()
            if not await self.flush() and not self._stopping:
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()

    async def flush(self) -> bool:
        """Write every pending row in one transaction; False (rows kept for the next try) on failure."""
        async with self._writing:
            batch = dict(self._pending)
            if not batch:
                return True
            try:
                if not (self._sqlite is not None and len(batch) <= INLINE_ROWS and self._write_now(batch)):
                    await asyncio.to_thread(self._write_on_thread, batch)
            except Exception as exc:
                log.error("%d stored responses not written yet: %s", len(batch), type(exc).__name__)
                return False
            for response_id, row in batch.items():
                if self._pending.get(response_id) is row:
                    del self._pending[response_id]
        if time.monotonic() - self._pruned > PRUNE_EVERY_SECONDS:
            try:
                await asyncio.to_thread(self._prune)
            except Exception as exc:
                log.error("expired stored responses not pruned: %s", type(exc).__name__)
        return True

    def _write_now(self, batch: dict[str, _Row]) -> bool:
        """A few rows of a local file written on the event loop, where that takes less than a hop to
        a thread would; False (nothing written) when another writer holds the database."""
        try:
            self._write(batch)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return False
        return True

    def _write_on_thread(self, batch: dict[str, _Row]) -> None:
        """A batch written on a worker thread, waiting there for another writer's lock if need be."""
        if self._sqlite is None:
            self._write(batch)
            return
        self._sqlite.execute("PRAGMA busy_timeout=30000")
        try:
            self._write(batch)
        finally:
            self._sqlite.execute("PRAGMA busy_timeout=0")

    def _write(self, batch: dict[str, _Row]) -> None:
        assert self.engine is not None
        if self._sqlite is not None:
            # the driver's executemany on the writer's own connection, one commit: a pool checkout
            # and SQLAlchemy's statement handling would cost as much as the rows, and this runs
            # for every stored response
            rows = [(response_id, row.team, row.created_at, row.expires_at, row.body)
                    for response_id, row in batch.items()]
            try:
                self._sqlite.executemany(_SQLITE_INSERT, rows)
                self._sqlite.commit()
            except Exception:
                self._sqlite.rollback()
                raise
            return
        params = [{"id": response_id, "team": row.team, "created_at": row.created_at,
                   "expires_at": row.expires_at, "body": row.body.decode()} for response_id, row in batch.items()]
        with self.engine.begin() as conn:
            conn.execute(_INSERT, params)

    def _load(self, response_id: str, team: str) -> Stored | None:
        assert self.engine is not None
        query = select(TABLE.c.body).where(TABLE.c.id == response_id, TABLE.c.team == team,
                                           TABLE.c.expires_at >= time.time())
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else self.decode(row[0])

    def _pending_row(self, response_id: str, team: str) -> Stored | None:
        row = self._pending.get(response_id)
        if row is None or row.team != team or row.expires_at < time.time():
            return None
        return self.decode(row.body)

    async def load(self, response_id: str, team: str) -> Stored | None:
        if (found := self._pending_row(response_id, team)) is not None:
            return found
        if (found := await asyncio.to_thread(self._load, response_id, team)) is not None:
            return found
        await asyncio.sleep(MISS_RETRY_SECONDS)  # written by another replica a moment ago?
        if (found := self._pending_row(response_id, team)) is not None:
            return found
        return await asyncio.to_thread(self._load, response_id, team)

    def _delete(self, response_id: str, team: str) -> bool:
        assert self.engine is not None
        with self.engine.begin() as conn:
            result = conn.execute(delete(TABLE).where(TABLE.c.id == response_id, TABLE.c.team == team))
        return bool(result.rowcount)

    async def delete(self, response_id: str, team: str) -> bool:
        row = self._pending.get(response_id)
        pending = row is not None and row.team == team
        if pending:
            del self._pending[response_id]
        async with self._writing:               # a batch being written cannot land after this delete
            written = await asyncio.to_thread(self._delete, response_id, team)
        return pending or written


def open_store(config: NuriConfig, data_dir: Path, scanner: Any = None) -> Store:
    """The store for this gateway: the ledger's database, or memory when the ledger is disabled.

    `scanner` is the gateway's; with policy off there is none, and one is built here, since
    stored state is redacted whether or not requests are classified."""
    if scanner is None:
        from nuri.privacy.scanner import Scanner

        scanner = Scanner(config.privacy)
    settings = config.conversations
    if not config.ledger.enabled:
        return MemoryStore(settings.retention_days, scanner, settings.memory_max_entries)
    from nuri.ledger.store.db import database_url, private_sqlite_file

    url = database_url(config.ledger, data_dir)
    if url.startswith("sqlite"):
        data_dir.mkdir(parents=True, exist_ok=True)
        private_sqlite_file(Path(make_url(url).database or data_dir / "nuri.db"))
    return DatabaseStore(url, settings.retention_days, scanner, config.ledger.db_schema)

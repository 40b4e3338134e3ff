"""Reply guard: personal data in a reply that the client never sent is masked before it leaves.

A model may invent or recall a phone number, a resident registration number or a name that was
not in the request (training-data leakage, hallucinated contacts, another tenant's data behind a
shared upstream). Such values are replaced by `<TYPE_REDACTED>`; values the client itself sent
(including those restored from placeholders) pass.

Streaming: `feed` holds back only a bounded tail of the pending text that could still grow into
an entity — the last two words, extended back over address words (…시 …구 …로) and over a
trailing run of digits and separators — at most `hold_chars` characters, plus any entity to be
masked that still touches the end. The scanner sees the pending text together with up to
`context_chars` already-emitted characters, so context words before a value (주민등록번호,
연락처) still count. A scan costs far more than a token, so the guard decides at most about once
per `min_emit` characters (still within `hold_chars`).

Compose per text channel: upstream delta → `StreamRestorer` → `ReplyGuard` → client, which is
what `ReplyFilter` does.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable
from typing import Any

from nuri.privacy import fields as _fields
from nuri.privacy.pseudonymizer import Pseudonymizer, SupportsScan, marker_spans, redacted, value_key
from nuri.privacy.restorer import EACH, StreamRestorer, rewrite_reply, token_bytes
from nuri.privacy.types import Entity

_NUMERIC_RUN = frozenset(
    "0123456789０１２３４５６７８９\u200b\u200c\u200d\u2060\ufeff-.()+/:_ \t\u00a0\u3000－．"
)
_ADDRESS_WORD = re.compile(
    r"[가-힣]{1,8}(?:특별시|광역시|특별자치시|특별자치도|도|시|군|구|읍|면|동|리|가|로|길|번길|대로)\d*(?:번?길)?,?"
    r"|서울|부산|대구|인천|광주|대전|울산|세종|경기|강원|충북|충남|전북|전남|경북|경남|제주"
)
DEFAULT_HOLD_CHARS = 96
DEFAULT_CONTEXT_CHARS = 64
DEFAULT_MIN_EMIT = 24     # scan at most about once per this many characters: a scan per token is costly


class ReplyGuard:
    """Masks entities whose values were not sent; one instance per text channel when streaming."""

    __slots__ = ("_abs", "_context_chars", "_ctx", "_hold_chars", "_last_mask_end", "_masked", "_min_emit", "_min_score",
                 "_pending", "_scanner", "_sent_exact", "_sent_keys", "_types", "_words")

    def __init__(
        self,
        scanner: SupportsScan,
        sent_values: Iterable[str] = (),
        types: set[str] | None = None,
        *,
        hold_chars: int = DEFAULT_HOLD_CHARS,
        context_chars: int = DEFAULT_CONTEXT_CHARS,
        words: int = 2,
        min_emit: int = DEFAULT_MIN_EMIT,
        min_score: float = 0.0,
    ) -> None:
        self._scanner = scanner
        self._min_score = min_score
        self._types = types
        self._sent_exact: set[str] = set()
        self._sent_keys: set[str] = set()
        self.add_sent(sent_values)
        self._hold_chars = hold_chars
        self._context_chars = context_chars
        self._words = words
        self._min_emit = min_emit
        self._ctx = ""            # already-emitted upstream text (as received), for context
        self._pending = ""        # received, not yet emitted
        self._abs = 0             # stream offset of _pending[0]
        self._last_mask_end = -1  # stream offset where the last masked entity ended
        self._masked: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"ReplyGuard(held={len(self._pending)}, masked={sum(self._masked.values())})"

    def add_sent(self, values: Iterable[str]) -> None:
        for v in values:
            if not v:
                continue
            self._sent_exact.add(v)
            self._sent_keys.add(value_key("PHONE", v).lower())

    @property
    def held(self) -> int:
        return len(self._pending)

    @property
    def hold_chars(self) -> int:
        return self._hold_chars

    @property
    def masked_counts(self) -> dict[str, int]:
        """Entity types masked so far and how often (no values): for audit and metrics."""
        return dict(self._masked)

    # -- decisions ---------------------------------------------------------------------------
    def was_sent(self, value: str, entity_type: str | None = None) -> bool:
        """Is this value (or a part of a sent value) something the client sent? Spellings that
        differ only in separators, width or case count as the same value."""
        if value in self._sent_exact:
            return True
        k = value_key("PHONE", value).lower()
        if not k or k in self._sent_keys:
            return True
        if len(k) >= 4 and any(k in s for s in self._sent_keys):
            return True
        # a name or address span that reaches a little further than the sent value (a title, a floor)
        return entity_type in ("PERSON", "ADDRESS") and any(
            len(s) >= 2 and len(s) * 5 >= len(k) * 3 and s in k for s in self._sent_keys)

    def _to_mask(self, text: str) -> list[Entity]:
        blocked = marker_spans(text)
        out = []
        for e in self._scanner.scan(text):
            if self._types is not None and e.type not in self._types or e.score < self._min_score:
                continue
            if any(e.start < b1 and b0 < e.end for b0, b1 in blocked):
                continue
            if self.was_sent(text[e.start:e.end], e.type):
                continue
            out.append(e)
        return out

    def check_text(self, text: str) -> str:
        """Non-streamed text: every unsent entity replaced by `<TYPE_REDACTED>`."""
        if not text:
            return text
        ents = self._to_mask(text)
        if not ents:
            return text
        out: list[str] = []
        pos = 0
        for e in ents:
            if e.start < pos:
                continue
            out.append(text[pos:e.start])
            out.append(redacted(e.type))
            self._masked[e.type] = self._masked.get(e.type, 0) + 1
            pos = e.end
        out.append(text[pos:])
        return "".join(out)

    # -- streaming ---------------------------------------------------------------------------
    def _tail_start(self, p: str) -> int:
        """Where the part of `p` that could still become (part of) an entity begins."""
        n = len(p)
        lo = max(0, n - self._hold_chars)
        i = n
        while i > lo and p[i - 1].isspace():
            i -= 1
        for w in range(self._words):
            while i > lo and not p[i - 1].isspace():
                i -= 1
            if w + 1 < self._words:
                while i > lo and p[i - 1].isspace():
                    i -= 1
        # extend over preceding address words ("서울특별시 강남구 테헤란로 152": the scanner needs
        # the whole address to see one)
        for _ in range(4):
            k = i
            while k > lo and p[k - 1].isspace():
                k -= 1
            j = k
            while j > lo and not p[j - 1].isspace():
                j -= 1
            if j == k or not _ADDRESS_WORD.fullmatch(p, j, k):
                break
            i = j
        # extend over a run of digits and separators ("010 1234 5678", "9001０1-1…")
        j = i
        first_digit = i
        while j > lo and p[j - 1] in _NUMERIC_RUN:
            j -= 1
            if p[j].isdigit():
                first_digit = j
        return first_digit

    def feed(self, delta: str) -> str:
        """Text safe to emit now: entities that were not sent are masked."""
        if not delta:
            return ""
        return self._step(self._pending + delta, final=False)

    def flush(self) -> str:
        """Everything still held, masked, at end of stream."""
        if not self._pending:
            return ""
        return self._step(self._pending, final=True)

    def _step(self, p: str, *, final: bool) -> str:
        cut = len(p) if final else self._tail_start(p)
        if not final and (cut == 0 or cut < self._min_emit and len(p) < self._hold_chars):
            # all of it could still grow into an entity, or too little to be worth a scan yet
            self._pending = p
            return ""
        ctx = self._ctx
        off = len(ctx)
        ents = [e for e in self._to_mask(ctx + p) if e.end > off]
        if not final:
            for e in ents:
                s, t = e.start - off, e.end - off
                if t >= len(p) or s < cut < t:
                    cut = min(cut, max(s, 0))
        out: list[str] = []
        pos = 0
        for e in ents:
            s, t = e.start - off, e.end - off
            if t > cut or s < pos and t <= pos:
                continue
            s = max(s, pos)
            out.append(p[pos:s])
            if self._abs + s > self._last_mask_end or e.start >= off:
                out.append(redacted(e.type))
                self._masked[e.type] = self._masked.get(e.type, 0) + 1
            self._last_mask_end = self._abs + t
            pos = t
        out.append(p[pos:cut])
        emitted = p[:cut]
        self._ctx = (ctx + emitted)[-self._context_chars:]
        self._pending = p[cut:]
        self._abs += cut
        return "".join(out)


class ReplyFilter:
    """Restorer then guard for one text channel of a reply (one per choice index × channel)."""

    __slots__ = ("_json_escape", "guard", "pseudonymizer", "restorer")

    def __init__(
        self,
        pseudonymizer: Pseudonymizer,
        scanner: SupportsScan | None,
        *,
        types: set[str] | None = None,
        sent_values: Iterable[str] = (),
        json_escape: bool = False,
        hold_chars: int = DEFAULT_HOLD_CHARS,
        min_emit: int = DEFAULT_MIN_EMIT,
        min_score: float = 0.0,
    ) -> None:
        self.pseudonymizer = pseudonymizer
        self._json_escape = json_escape
        self.restorer = StreamRestorer(pseudonymizer, json_escape=json_escape)
        self.guard: ReplyGuard | None = None
        if scanner is not None:
            sent = set(sent_values) | pseudonymizer.sent_values
            self.guard = ReplyGuard(scanner, sent, types, hold_chars=hold_chars, min_emit=min_emit,
                                    min_score=min_score)

    def __repr__(self) -> str:
        return f"ReplyFilter({self.restorer!r}, {self.guard!r})"

    def feed(self, delta: str) -> str:
        text = self.restorer.feed(delta)
        return self.guard.feed(text) if self.guard is not None and text else text

    def flush(self) -> str:
        text = self.restorer.flush()
        if self.guard is None:
            return text
        return self.guard.feed(text) + self.guard.flush()

    def check_text(self, text: str) -> str:
        """Non-streamed: restore then guard."""
        restored = self.pseudonymizer.restore_text(text, json_escape=self._json_escape)
        return self.guard.check_text(restored) if self.guard is not None else restored


def request_values(body: dict[str, Any], endpoint: str, scanner: SupportsScan) -> set[str]:
    """Every entity value in a request: what the client sent, for `ReplyGuard(sent_values=…)`."""
    out: set[str] = set()
    for _path, text in _fields.request_texts(body, endpoint):
        for e in scanner.scan(text):
            out.add(text[e.start:e.end])
    return out


def filter_reply(
    body: dict[str, Any],
    pseudonymizer: Pseudonymizer,
    scanner: SupportsScan | None,
    *,
    types: set[str] | None = None,
    sent_values: Iterable[str] = (),
    min_score: float = 0.0,
) -> dict[str, Any]:
    """A non-streamed reply, restored and guarded in every string that could carry model output
    (`fields.reply_texts`): a new dict, the input stays untouched."""
    if scanner is None:
        return pseudonymizer.restore_reply(body)
    sent = set(sent_values)
    guard = ReplyGuard(scanner, sent | pseudonymizer.sent_values, types, min_score=min_score)

    def check(path: _fields.Path, text: str) -> str:
        return guard.check_text(pseudonymizer.restore_text(text, json_escape=path[-1] == "arguments"))

    def channel(path: _fields.Path) -> ReplyFilter:
        return ReplyFilter(pseudonymizer, scanner, types=types, sent_values=sent,
                           json_escape=path[-1] == "arguments", min_score=min_score)

    return rewrite_reply(body, check, channel)


# (choice index, or None outside `choices`; path inside it, list positions normalised)
ChannelKey = tuple[int | None, tuple[Any, ...]]

# Identifiers, sent whole once per tool call or repeated in every chunk: buffering them would hold
# a tool call's id and name back until the end of the stream, or run repeats together.
_WHOLE_LEAVES = frozenset({"id", "name", "type"})
# Fields that are deltas of a text; any other field may instead repeat one value in every chunk.
_DELTA_LEAVES = frozenset({"content", "refusal", "reasoning_content", "reasoning", "arguments", "text", "token",
                           "transcript", "data", EACH})
# A field of another kind that arrives twice in a row with the same value, this long or longer, is
# a value repeated per chunk (`provider`, a content filter's `severity`), not a delta: from then
# on it is checked whole in each chunk. Shorter repeats ("0", "0" of a number sent per character)
# stay deltas.
_REPEAT_MIN = 4
# The common chunk shapes, filtered without the full walk (see ChunkFilter._simple): the keys
# below are plain words, so the walk would yield exactly their string values.
_SIMPLE_TOP = frozenset({"id", "object", "created", "model", "system_fingerprint", "service_tier", "usage",
                         "choices"})
_SIMPLE_CHOICE = frozenset({"index", "delta", "finish_reason", "logprobs", "text"})
_SIMPLE_FINISH = (None, "stop", "length", "tool_calls", "content_filter", "function_call")
_DELTA_TEXTS = frozenset({"content", "refusal", "reasoning_content", "reasoning"})
_CALL_KEYS = frozenset({"index", "id", "type", "function"})
_FUNCTION_KEYS = frozenset({"name", "arguments"})
_DELTA_NULLABLE = _DELTA_TEXTS | {"role", "tool_calls", "function_call", "audio"}
_DELTA_PATHS = {key: ("delta", key) for key in _DELTA_TEXTS}
_TEXT_PATH = ("text",)
_CONTENT_PATH = _DELTA_PATHS["content"]
# (channel key, container, key in it); channel None: a string checked whole
Spot = tuple[ChannelKey | None, dict[str, Any], str]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_MEMO_SIZE = 512


def _choice_index(choice: dict[str, Any], position: int) -> int:
    idx = choice.get("index")
    return idx if isinstance(idx, int) else position


class ChunkFilter:
    """Restores and guards a stream of OpenAI chunk objects (`chat.completion.chunk`, or legacy
    completion chunks) in every string `fields.reply_texts` yields.

    A string is a piece of a text that runs across chunks, so each stream position (channel) has
    one `ReplyFilter`: a placeholder or a value split across chunks is restored or masked whole.
    The channel is the choice's `index` and the path inside the choice, with a tool call's position
    replaced by its `index` field and any other list position collapsed (`logprobs.content[*].token`
    is one text); keys outside `choices` are channels of their own. Held text is flushed at the
    same path (created if absent) into the chunk carrying the choice's `finish_reason` (for keys
    outside `choices`: the one that finishes the last open choice), or by `close()`.

    Identifiers (`id`, `name`, `type`), object keys, and fields that repeat one value in every
    chunk are not deltas: they are restored and guarded whole in each chunk, memoised."""

    __slots__ = ("_filters", "_last", "_make", "_memo", "_memo_version", "_pseudo", "_repeating", "_whole")

    def __init__(
        self,
        pseudonymizer: Pseudonymizer,
        scanner: SupportsScan | None,
        *,
        types: set[str] | None = None,
        sent_values: Iterable[str] = (),
        hold_chars: int = DEFAULT_HOLD_CHARS,
        min_emit: int = DEFAULT_MIN_EMIT,
        min_score: float = 0.0,
    ) -> None:
        sent = set(sent_values)

        def make(json_escape: bool) -> ReplyFilter:
            return ReplyFilter(pseudonymizer, scanner, types=types, sent_values=sent, json_escape=json_escape,
                               hold_chars=hold_chars, min_emit=min_emit, min_score=min_score)

        self._make = make
        self._pseudo = pseudonymizer
        self._filters: dict[ChannelKey, ReplyFilter] = {}
        self._last: dict[ChannelKey, str] = {}
        self._repeating: set[ChannelKey] = set()
        self._whole = (make(False), make(True))
        self._memo: dict[tuple[bool, str], str] = {}
        self._memo_version = pseudonymizer.version

    def process(self, chunk: dict[str, Any], *, in_place: bool = False) -> dict[str, Any]:
        """The chunk with its strings replaced by what is safe to emit now (a new dict unless
        `in_place`: the gateway's chunks are its own, and a copy per token is measurable)."""
        out = chunk if in_place else copy.deepcopy(chunk)
        if not self._one_token(out) and not self._simple(out):
            self._every_field(out)
        return out

    def _one_token(self, chunk: dict[str, Any]) -> bool:
        """The chunk nearly every stream is made of: one choice, a piece of `delta.content` and
        nothing else to read. Checked first and flat, as it runs once per token."""
        choices = chunk.get("choices")
        if type(choices) is not list or len(choices) != 1:
            return False
        choice = choices[0]
        if type(choice) is not dict:
            return False
        delta = choice.get("delta")
        if type(delta) is not dict or len(delta) != 1:
            return False
        content = delta.get("content")
        idx = choice.get("index", 0)
        if (type(content) is not str or type(idx) is not int or choice.get("finish_reason") is not None
                or choice.get("logprobs") is not None or not _SIMPLE_CHOICE.issuperset(choice)
                or "text" in choice or not _SIMPLE_TOP.issuperset(chunk)):
            return False
        if content:
            key = (idx, _CONTENT_PATH)
            f = self._filters.get(key)
            delta["content"] = (f if f is not None else self._channel(key)).feed(content)
        return True

    # -- the common chunk shapes, without the walk ---------------------------------------------
    def _simple(self, chunk: dict[str, Any]) -> bool:
        """Filter a chunk of a common shape (text, content, refusal, reasoning, tool calls) as the
        walk would, without walking it; False, chunk untouched, for any other shape. Runs once per
        token, hence written flat."""
        spots: list[Spot] = []
        if not _SIMPLE_TOP.issuperset(chunk) and not _simple_top(chunk, spots):
            return False
        choices = chunk.get("choices")
        if type(choices) is not list:
            if choices is not None:
                return False
            choices = []
        for pos, choice in enumerate(choices):
            if not _simple_spots(choice, pos, spots):
                return False
        filters = self._filters
        for key, container, name in spots:
            text = container[name]
            if not text:
                continue
            if key is None:
                container[name] = self._check_whole(text, False)
            elif key[0] is None:                  # outside choices: may be a value repeated per chunk
                container[name] = self._stream(key, text)
            else:                                 # a delta field
                f = filters.get(key)
                container[name] = (f if f is not None else self._channel(key)).feed(text)
        for choice in choices:
            if choice.get("finish_reason") is not None:
                self._finish(chunk, choices)
                break
        return True

    # -- any chunk ----------------------------------------------------------------------------
    def _every_field(self, chunk: dict[str, Any]) -> None:
        """Filter every string of the chunk in place: deltas through their channel, the rest whole."""
        renames: list[tuple[_fields.Path, str]] = []
        for path, text in _fields.reply_texts(chunk):
            if isinstance(path[-1], _fields.KeyOf):
                new = self._check_whole(text, False)
                if new != text:
                    renames.append((path, new))
                continue
            key = _channel_key(chunk, path)
            new = self._check_whole(text, path[-1] == "arguments") if key is None else self._stream(key, text)
            if new != text:
                _put(chunk, path, new)
        for path, new in sorted(renames, key=lambda c: -len(c[0])):
            _rename_key(_node(chunk, path[:-1]), path[-1].key, new)
        choices = chunk.get("choices")
        self._finish(chunk, choices if isinstance(choices, list) else [])

    def _stream(self, key: ChannelKey, text: str) -> str:
        """A string at a stream position: through its channel, or whole once it has shown itself
        to be a value repeated in every chunk."""
        if key[1][-1] not in _DELTA_LEAVES:
            if key in self._repeating:
                return self._check_whole(text, False)
            last, self._last[key] = self._last.get(key), text
            if text == last and len(text) >= _REPEAT_MIN:
                self._repeating.add(key)
                self._filters.pop(key, None)   # what it holds is the same value once more
                return self._check_whole(text, False)
        f = self._filters.get(key)
        return (f if f is not None else self._channel(key)).feed(text)

    def _channel(self, key: ChannelKey) -> ReplyFilter:
        f = self._filters[key] = self._make(key[1][-1] == "arguments")
        return f

    def _check_whole(self, text: str, json_escape: bool) -> str:
        """Restore and guard a string that is not a delta; memoised, as it tends to repeat."""
        if self._memo_version != self._pseudo.version:
            self._memo.clear()
            self._memo_version = self._pseudo.version
        hit = self._memo.get((json_escape, text))
        if hit is None:
            hit = self._whole[json_escape].check_text(text)
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[(json_escape, text)] = hit
        return hit

    def _finish(self, chunk: dict[str, Any], choices: list[Any]) -> None:
        """Flush what finished choices hold into their entries in this chunk, and what keys outside
        `choices` hold once no choice is left open."""
        finished = False
        for pos, choice in enumerate(choices):
            if type(choice) is dict and choice.get("finish_reason") is not None:
                self._flush_into(choice, _choice_index(choice, pos))
                finished = True
        if finished and all(k[0] is None for k in self._filters):
            self._flush_into(chunk, None)

    def _flush_into(self, node: dict[str, Any], idx: int | None) -> bool:
        """Put everything held for choice `idx` (None: outside `choices`) into `node`; whether
        anything was held."""
        placed = False
        for key in [k for k in self._filters if k[0] == idx]:
            rest = self._filters.pop(key).flush()
            if rest:
                _place(node, key[1], rest)
                placed = True
        return placed

    def close(self) -> dict[str, Any] | None:
        """Whatever is still held, as one last chunk (None when nothing is held)."""
        last: dict[str, Any] = {"choices": []}
        for idx in dict.fromkeys(k[0] for k in self._filters if k[0] is not None):
            choice: dict[str, Any] = {"index": idx, "finish_reason": None}
            if self._flush_into(choice, idx):
                last["choices"].append(choice)
        top = self._flush_into(last, None)
        return last if last["choices"] or top else None


@functools.lru_cache(maxsize=256)
def _plain_top_key(key: str) -> bool:
    """A top-level key the walk reads only the value of (an identifier, few digits)."""
    return _IDENTIFIER.fullmatch(key) is not None and sum(c.isdigit() for c in key) < 4


def _simple_top(chunk: dict[str, Any], spots: list[Spot]) -> bool:
    """Add a chunk's extra top-level strings (`obfuscation`, `provider`) to `spots`; False when
    one is not a plain string under a plain key."""
    for key, value in chunk.items():
        if key in _SIMPLE_TOP:
            continue
        if type(key) is not str or type(value) is not str or not _plain_top_key(key):
            return False
        spots.append(((None, (key,)), chunk, key))
    return True


def _simple_spots(choice: Any, pos: int, spots: list[Spot]) -> bool:
    """Add where a choice of a common shape carries strings to `spots`; False for any other shape."""
    if type(choice) is not dict or not _SIMPLE_CHOICE.issuperset(choice):
        return False
    get = choice.get
    idx = get("index", pos)
    if get("logprobs") is not None or get("finish_reason") not in _SIMPLE_FINISH or type(idx) is not int:
        return False
    text = get("text")
    if text is not None:
        if type(text) is not str:
            return False
        spots.append(((idx, _TEXT_PATH), choice, "text"))
    delta = get("delta")
    if delta is None:
        return True
    if type(delta) is not dict:
        return False
    for key, value in delta.items():
        if value is None and key in _DELTA_NULLABLE or key == "role" and value == "assistant":
            continue
        if key in _DELTA_TEXTS and type(value) is str:
            spots.append(((idx, _DELTA_PATHS[key]), delta, key))
        elif key != "tool_calls" or type(value) is not list or not _simple_calls(idx, value, spots):
            return False
    return True


def _simple_calls(idx: int, calls: list[Any], spots: list[Spot]) -> bool:
    """Add a tool-call list's strings to `spots`: ids and names whole, arguments by channel."""
    for call in calls:
        if type(call) is not dict or not _CALL_KEYS.issuperset(call):
            return False
        if call.get("type") not in (None, "function"):
            return False
        if "id" in call:
            if type(call["id"]) is not str:
                return False
            spots.append((None, call, "id"))
        fn = call.get("function")
        if fn is None:
            continue
        if type(fn) is not dict or not _FUNCTION_KEYS.issuperset(fn):
            return False
        if "name" in fn:
            if type(fn["name"]) is not str:
                return False
            spots.append((None, fn, "name"))
        if "arguments" in fn:
            if type(fn["arguments"]) is not str:
                return False
            index = call.get("index")
            k = index if type(index) is int else EACH
            spots.append(((idx, ("delta", "tool_calls", k, "function", "arguments")), fn, "arguments"))
    return True


def _channel_key(chunk: dict[str, Any], path: _fields.Path) -> ChannelKey | None:
    """The stream position of a string; None for a string checked whole."""
    if path[-1] in _WHOLE_LEAVES:
        return None
    if path[0] != "choices":
        return None, tuple(EACH if isinstance(step, int) else step for step in path)
    choices = chunk["choices"]
    choice = choices[path[1]] if isinstance(choices, list) and len(path) > 2 else None
    if not isinstance(choice, dict):
        return None
    rel: list[Any] = []
    node: Any = choice
    prev: Any = None
    for step in path[2:]:
        node = node[step]
        if isinstance(step, int):
            call = prev == "tool_calls" and isinstance(node, dict) and isinstance(node.get("index"), int)
            rel.append(node["index"] if call else EACH)
        else:
            rel.append(step)
        prev = step
    return _choice_index(choice, path[1]), tuple(rel)


def _node(root: Any, path: _fields.Path) -> Any:
    for step in path:
        root = root[step]
    return root


def _put(root: dict[str, Any], path: _fields.Path, value: str) -> None:
    """Set a string in place; a logprobs token takes its bytes along."""
    parent = _node(root, path[:-1])
    parent[path[-1]] = value
    if path[-1] == "token" and isinstance(parent, dict) and "bytes" in parent:
        parent["bytes"] = token_bytes(value)


def _rename_key(node: dict[str, Any], old: str, new: str) -> None:
    """Rename a key in place, keeping the order of the others; a key whose new name is taken is
    dropped rather than let through as it was."""
    if old not in node:
        return
    if new in node:
        del node[old]
        return
    items = list(node.items())
    node.clear()
    for k, v in items:
        node[new if k == old else k] = v


def _place(root: dict[str, Any], rel: tuple[Any, ...], rest: str) -> None:
    """Append flushed text where its channel's text goes under `root` (a choice, or the chunk),
    creating the way there."""
    node: Any = root
    for i in range(len(rel) - 1):
        node = _step(node, rel[i], rel[i + 1], rel[i - 1] if i else None, len(rel) - i == 2)
    leaf = rel[-1]
    if leaf is EACH:
        if node and isinstance(node[-1], str):
            node[-1] += rest
        else:
            node.append(rest)
        return
    current = node.get(leaf)
    node[leaf] = (current if isinstance(current, str) else "") + rest
    if leaf == "token" and "bytes" in node:
        node["bytes"] = token_bytes(node[leaf])


def _step(node: Any, step: Any, nxt: Any, prev: Any, before_leaf: bool) -> Any:
    """One step of `_place`: the child at `step`, created when absent or of the wrong kind."""
    kind = list if nxt is EACH or isinstance(nxt, int) else dict
    if step is EACH:
        if node and isinstance(node[-1], kind):
            return node[-1]
        child: Any = kind()
        if kind is dict and before_leaf and nxt == "token":
            child = _new_logprob(top=prev in ("content", "refusal"))
        node.append(child)
        return child
    if isinstance(step, int):
        for item in node:
            if isinstance(item, dict) and item.get("index") == step:
                return item
        child = {"index": step}
        node.append(child)
        return child
    child = node.get(step)
    if not isinstance(child, kind):
        child = node[step] = kind()
    return child


def _new_logprob(*, top: bool) -> dict[str, Any]:
    """A logprobs entry for text held past the last real one: it has no probability of its own,
    but strict clients expect every field."""
    entry: dict[str, Any] = {"token": "", "logprob": 0.0, "bytes": []}
    if top:
        entry["top_logprobs"] = []
    return entry

"""Streams of reply chunks, restored and guarded in every string field.

A stream's strings are pieces of texts that run across chunks. This module splits each chunk into
channels (a stream position: a choice, and the path inside it, with tool calls keyed by their
`index`) and drives one privacy `guard.ReplyFilter` per channel, so a placeholder or a value split
across chunks is restored or masked whole; what a channel still holds is put back where it
belongs when its choice ends. The privacy package itself sees only the texts.

A caller that keeps the stream's texts (the Responses API's stored state) sets
`reply_texts.reply_scans` around the stream: each channel's guard then records what its scans
found in the text it sent, and hands it over when the channel closes, so that text is redacted
from those scans instead of being scanned once more.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable
from typing import Any

from nuri.gateway.reply_texts import EACH, Channel, TermChannel, is_prose, reply_scans, token_bytes
from nuri.policy.term_stream import Terminology
from nuri.privacy import fields as _fields
from nuri.privacy.guard import DEFAULT_HOLD_CHARS, DEFAULT_MIN_EMIT, ReplyFilter
from nuri.privacy.pseudonymizer import Pseudonymizer, SupportsScan
from nuri.privacy.types import Entity

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
    chunk are not deltas: they are restored and guarded whole in each chunk, memoised.

    With `terms`, a choice's prose channels (content, text, refusal) then go through terminology
    (`policy/term_stream.py`), which holds back at most one term more and may raise `TermBlocked`."""

    __slots__ = ("_filters", "_last", "_make", "_memo", "_memo_version", "_pseudo", "_repeating", "_scans",
                 "_terms", "_whole")

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
        terms: Terminology | None = None,
    ) -> None:
        sent = set(sent_values)
        self._terms = terms
        self._scans = reply_scans.get()          # set by a caller that keeps the texts

        def make(json_escape: bool, record: bool = False) -> ReplyFilter:
            return ReplyFilter(pseudonymizer, scanner, types=types, sent_values=sent, json_escape=json_escape,
                               hold_chars=hold_chars, min_emit=min_emit, min_score=min_score, record=record)

        self._make = make
        self._pseudo = pseudonymizer
        self._filters: dict[ChannelKey, Channel] = {}
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

    def _channel(self, key: ChannelKey) -> Channel:
        f: Channel = self._make(key[1][-1] == "arguments", self._scans is not None)
        if self._terms is not None and key[0] is not None and is_prose(key[1]):
            f = TermChannel(f, self._terms.filter())
        self._filters[key] = f
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
            channel = self._filters.pop(key)
            rest = channel.flush()
            if self._scans is not None:
                keep_findings(channel, self._scans)
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


def keep_findings(channel: Channel, scans: dict[str, list[Entity]]) -> None:
    """What a closed channel's guard found in the text it sent, kept in `scans` by that text (a
    channel through terminology sent other text than its guard did: nothing is kept for it)."""
    findings = getattr(channel, "findings", None)
    found = findings() if findings is not None else None
    if found is None:
        return
    text, entities = found
    scans[text] = [*scans[text], *entities] if text in scans else entities


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


# -- the Responses API's event stream ----------------------------------------------------------

# Delta events and the field of their `.done` event that carries the whole text again.
_RESPONSE_DONE_FIELD = {
    "response.output_text": "text",
    "response.refusal": "refusal",
    "response.function_call_arguments": "arguments",
    "response.reasoning_text": "text",
    "response.reasoning_summary_text": "text",
}
_RESPONSE_PROSE = frozenset({"response.output_text", "response.refusal"})
# Events that carry the whole Response object; its output is rebuilt from the channels.
RESPONSE_SNAPSHOTS = frozenset({"response.created", "response.in_progress", "response.queued", "response.completed",
                                "response.incomplete", "response.failed"})
# Event fields that place an event in the stream, never text (`type` is an enum word, exempt anyway).
_RESPONSE_PLACE = frozenset({"type", "sequence_number", "output_index", "content_index", "summary_index",
                             "item_id"})
# A delta event with only these keys (and no logprobs) has no string to check but its delta.
_DELTA_KEYS = _RESPONSE_PLACE | {"delta", "logprobs", "obfuscation"}
ResponsesKey = tuple[str, Any, Any]      # (delta kind, output index, content or summary index)


class _Run:
    """One channel of a Responses stream: its filter and what the client was sent of it."""

    __slots__ = ("closed", "filter", "item_id", "sent")

    def __init__(self, channel: Channel, item_id: Any) -> None:
        self.filter = channel
        self.item_id = item_id
        self.sent: list[str] = []
        self.closed = False

    def feed(self, delta: str) -> str:
        out = self.filter.feed(delta)
        if out:
            self.sent.append(out)
        return out

    def close(self) -> str:
        """What the channel still held (now sent too); nothing once closed."""
        if self.closed:
            return ""
        self.closed = True
        rest = self.filter.flush()
        if rest:
            self.sent.append(rest)
        return rest

    @property
    def text(self) -> str:
        return "".join(self.sent)


class ResponsesEventFilter:
    """Restores and guards a Responses API event stream (a deployment with `responses: true`).

    Each text arriving in deltas is a channel with one `ReplyFilter`, keyed by kind and place:
    `response.output_text.delta` → ("response.output_text", output_index, content_index),
    `response.refusal.delta` likewise, `response.function_call_arguments.delta` →
    (…, output_index, None), JSON-escaped; any other `*.delta` by its kind and indices. The events
    that repeat a whole text (`*.done`, `response.content_part.done`, `response.output_item.done`
    and the Response object of `response.completed` and its kin) are not fed to the channels: their
    text is replaced by what the channel sent, after the channel is closed, and what it still held
    goes out first as one more delta. Deltas joined therefore always equal the final text. Every
    other string of every event is restored and guarded whole. Sequence numbers are renumbered,
    since a delta may be dropped (all held) or added (a flush)."""

    __slots__ = ("_chunks", "_make", "_runs", "_scans", "_seq", "_terms")

    def __init__(self, pseudonymizer: Pseudonymizer, scanner: SupportsScan | None, *,
                 types: set[str] | None = None, sent_values: Iterable[str] = (),
                 hold_chars: int = DEFAULT_HOLD_CHARS, min_emit: int = DEFAULT_MIN_EMIT,
                 min_score: float = 0.0, terms: Terminology | None = None) -> None:
        sent = set(sent_values)
        self._terms = terms
        self._scans = reply_scans.get()          # set by a caller that keeps the texts

        def make(json_escape: bool) -> ReplyFilter:
            return ReplyFilter(pseudonymizer, scanner, types=types, sent_values=sent, json_escape=json_escape,
                               hold_chars=hold_chars, min_emit=min_emit, min_score=min_score,
                               record=self._scans is not None)

        self._make = make
        # the whole-string checks (memoised) are the chunk filter's
        self._chunks = ChunkFilter(pseudonymizer, scanner, types=types, sent_values=sent, hold_chars=hold_chars,
                                   min_emit=min_emit, min_score=min_score)
        self._runs: dict[ResponsesKey, _Run] = {}
        self._seq = 0

    def process(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The events to send for one upstream event (none, it, or a flushed delta and it)."""
        kind = event.get("type")
        kind = kind if isinstance(kind, str) else ""
        out: list[dict[str, Any]] = []
        if kind.endswith(".delta") and isinstance(event.get("delta"), str):
            text = self._run(kind[:-6], event).feed(event["delta"])
            if text:
                event["delta"] = text
                plain = _DELTA_KEYS.issuperset(event) and not event.get("logprobs")
                out.append(event if plain else self._whole(event, {("delta",): text}))
        elif kind.endswith(".done") and kind[:-5] in _RESPONSE_DONE_FIELD:
            out += self._closing(kind[:-5], event)
            out.append(self._done(kind[:-5], event))
        elif kind == "response.content_part.done" and isinstance(event.get("part"), dict):
            for base in _RESPONSE_PROSE:
                out += self._closing(base, event)
            out.append(self._whole(event, self._part(event.get("output_index"), event.get("content_index"),
                                                     event["part"])))
        elif kind == "response.output_item.done" and isinstance(event.get("item"), dict):
            out += self._close_item(event.get("output_index"), event)
            out.append(self._whole(event, self._item(event.get("output_index"), event["item"], ("item",))))
        elif kind in RESPONSE_SNAPSHOTS and isinstance(event.get("response"), dict):
            fixed: dict[_fields.Path, str] = {}
            output = event["response"].get("output")
            final = kind not in ("response.created", "response.in_progress", "response.queued")
            if final:
                for key in list(self._runs):
                    out += self._flush(key, event)
            for i, item in enumerate(output if isinstance(output, list) else []):
                if isinstance(item, dict):
                    fixed.update(self._item(i, item, ("response", "output", i)))
            out.append(self._whole(event, fixed))
        else:
            out.append(self._whole(event, {}))
        for e in out:
            e["sequence_number"] = self._seq
            self._seq += 1
        return out

    # -- channels ------------------------------------------------------------------------------
    def _key(self, base: str, event: dict[str, Any]) -> ResponsesKey:
        index = event.get("content_index", event.get("summary_index"))
        if base == "response.function_call_arguments":
            index = None
        return base, event.get("output_index", event.get("item_id")), index

    def _run(self, base: str, event: dict[str, Any]) -> _Run:
        key = self._key(base, event)
        run = self._runs.get(key)
        if run is None:
            f: Channel = self._make(base == "response.function_call_arguments")
            if self._terms is not None and base in _RESPONSE_PROSE:
                f = TermChannel(f, self._terms.filter())
            run = self._runs[key] = _Run(f, event.get("item_id"))
        return run

    def _flush(self, key: ResponsesKey, like: dict[str, Any]) -> list[dict[str, Any]]:
        """A last delta with what channel `key` still held, placed as its deltas were."""
        run = self._runs[key]
        closing = not run.closed
        rest = run.close()
        if closing and self._scans is not None:
            keep_findings(run.filter, self._scans)
        if not rest:
            return []
        base, output_index, index = key
        event: dict[str, Any] = {"type": base + ".delta", "sequence_number": 0}
        item_id = run.item_id if run.item_id is not None else like.get("item_id")
        if item_id is not None:
            event["item_id"] = item_id
        event["output_index"] = output_index
        if index is not None:
            event["summary_index" if base.startswith("response.reasoning_summary") else "content_index"] = index
        event["delta"] = rest
        if base == "response.output_text":
            event["logprobs"] = []
        return [event]

    def _closing(self, base: str, event: dict[str, Any]) -> list[dict[str, Any]]:
        key = self._key(base, event)
        return self._flush(key, event) if key in self._runs else []

    def _close_item(self, output_index: Any, event: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key in [k for k in self._runs if k[1] == output_index]:
            out += self._flush(key, event)
        return out

    def _done(self, base: str, event: dict[str, Any]) -> dict[str, Any]:
        name = _RESPONSE_DONE_FIELD[base]
        key = self._key(base, event)
        run = self._runs.get(key)
        if run is not None:
            return self._whole(event, {(name,): run.text})
        # the whole text, never sent in deltas: checked as one
        return self._whole(event, {})

    def _sent(self, base: str, output_index: Any, index: Any) -> str | None:
        run = self._runs.get((base, output_index, index))
        return run.text if run is not None else None

    def _part(self, output_index: Any, content_index: Any, part: dict[str, Any]) -> dict[_fields.Path, str]:
        """The texts of a content part that channels sent, by path."""
        fixed: dict[_fields.Path, str] = {}
        for base, name in (("response.output_text", "text"), ("response.refusal", "refusal")):
            sent = self._sent(base, output_index, content_index)
            if sent is not None and isinstance(part.get(name), str):
                fixed[("part", name)] = sent
        return fixed

    def _item(self, output_index: Any, item: dict[str, Any], at: _fields.Path) -> dict[_fields.Path, str]:
        """The texts of an output item that channels sent, by path: those are not checked again."""
        fixed: dict[_fields.Path, str] = {}
        content = item.get("content")
        for j, part in enumerate(content if isinstance(content, list) else []):
            if not isinstance(part, dict):
                continue
            for base, name in (("response.output_text", "text"), ("response.refusal", "refusal"),
                               ("response.reasoning_text", "text")):
                sent = self._sent(base, output_index, j)
                if sent is not None and isinstance(part.get(name), str):
                    fixed[(*at, "content", j, name)] = sent
        summary = item.get("summary")
        for j, part in enumerate(summary if isinstance(summary, list) else []):
            sent = self._sent("response.reasoning_summary_text", output_index, j)
            if sent is not None and isinstance(part, dict) and isinstance(part.get("text"), str):
                fixed[(*at, "summary", j, "text")] = sent
        sent = self._sent("response.function_call_arguments", output_index, None)
        if sent is not None and isinstance(item.get("arguments"), str):
            fixed[(*at, "arguments")] = sent
        return fixed

    # -- whole strings -------------------------------------------------------------------------
    def _whole(self, event: dict[str, Any], fixed: dict[_fields.Path, str]) -> dict[str, Any]:
        """`event` (in place) with the `fixed` paths set to what their channels sent and every other
        string restored and guarded whole, object keys too. Placement fields are the protocol's."""
        for path, value in fixed.items():
            _put(event, path, value)
        renames: list[tuple[_fields.Path, str]] = []
        check = self._chunks._check_whole
        for path, text in _fields.reply_texts(event):
            if path in fixed or len(path) == 1 and path[0] in _RESPONSE_PLACE:
                continue
            if isinstance(path[-1], _fields.KeyOf):
                if (new := check(text, False)) != text:
                    renames.append((path, new))
                continue
            if (new := check(text, path[-1] == "arguments")) != text:
                _put(event, path, new)
        for path, new in sorted(renames, key=lambda c: -len(c[0])):
            _rename_key(_node(event, path[:-1]), path[-1].key, new)
        return event

    def close(self) -> list[dict[str, Any]]:
        """What channels still hold when the stream ends without its closing events."""
        out: list[dict[str, Any]] = []
        for key in list(self._runs):
            out += self._flush(key, {})
        for e in out:
            e["sequence_number"] = self._seq
            self._seq += 1
        return out

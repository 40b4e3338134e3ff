"""Whole replies, restored and guarded string by string, and what streams share with them.

The privacy package restores and guards texts (`guard.ReplyFilter`, `Pseudonymizer.restore_text`);
this module knows where a reply's texts are (`fields.reply_texts`) and which of them continue one
another: consecutive list entries (logprobs tokens, text parts) are one text, as they are across
the chunks of a stream (gateway/stream_privacy.py), so a value or a placeholder split across them
is restored or masked whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any, Protocol

from nuri.policy.term_stream import TermFilter, Terminology
from nuri.privacy import fields as _fields
from nuri.privacy.guard import ReplyFilter, ReplyGuard
from nuri.privacy.pseudonymizer import Pseudonymizer, SupportsScan
from nuri.privacy.restorer import StreamRestorer
from nuri.privacy.types import Entity

# What the reply guard found in each text of a whole reply, for a caller that keeps the reply and
# must redact it (the Responses API's stored state): set to a dict by the caller around the
# pipeline call, filled by `filter_reply`, so the reply is not scanned a second time. Holds the
# reply's own texts, only as long as the request does.
reply_scans: ContextVar[dict[str, list[Entity]] | None] = ContextVar("nuri_reply_scans", default=None)


class _Recording:
    """The guard's scanner, remembering what it found per text in `found`."""

    __slots__ = ("found", "scanner")

    def __init__(self, scanner: SupportsScan, found: dict[str, list[Entity]]) -> None:
        self.scanner = scanner
        self.found = found

    def scan(self, text: str) -> list[Entity]:
        hit = self.found.get(text)
        if hit is None:
            hit = self.found[text] = self.scanner.scan(text)
        return list(hit)


class Channel(Protocol):
    """One text arriving in pieces: `StreamRestorer`, or `guard.ReplyFilter` (restore, then guard)."""

    def feed(self, delta: str) -> str: ...

    def flush(self) -> str: ...


class _Each:
    """A list position collapsed in a path: consecutive entries (logprobs tokens, text parts) are
    one text, so a value split across them is still seen whole."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "[*]"


EACH = _Each()

# Where a reply's prose is (a choice's content, text parts, refusal, a completion's text): what
# terminology reads. Tool arguments, logprobs tokens and unknown keys are left as they are.
TEXT_LEAVES = frozenset({"content", "text", "refusal"})


def is_prose(path: tuple[Any, ...]) -> bool:
    """Whether a string at `path` (of a reply, or of a stream channel inside a choice) is prose."""
    return bool(path) and path[-1] in TEXT_LEAVES and "logprobs" not in path and "tool_calls" not in path


class TermChannel:
    """A channel's text through privacy first (restore, guard), then terminology."""

    __slots__ = ("inner", "terms")

    def __init__(self, inner: Channel, terms: TermFilter) -> None:
        self.inner = inner
        self.terms = terms

    def __repr__(self) -> str:
        return f"TermChannel({self.inner!r}, {self.terms!r})"

    def feed(self, delta: str) -> str:
        text = self.inner.feed(delta)
        return self.terms.feed(text) if text else ""

    def flush(self) -> str:
        return self.terms.feed(self.inner.flush()) + self.terms.flush()


def token_bytes(token: str) -> list[int]:
    """A logprobs entry's `bytes` for its token: once the token is rewritten, the upstream's
    bytes would still spell the raw value."""
    return list(token.encode("utf-8"))


# List positions that are separate texts, never one text's pieces: choices, tool calls, and a
# Response object's output items (only content parts of one item continue one another).
_SEPARATE = frozenset({"choices", "tool_calls", "output"})
# Where a reply's prose lives: a chat reply's choices, a Response object's output items.
_PROSE_ROOTS = frozenset({"choices", "output"})


def run_key(path: _fields.Path) -> _fields.Path | None:
    """`path` with each list position that continues a text collapsed to EACH (a choice's, a tool
    call's or a Response output item's position does not: those are separate texts); None when
    there is none."""
    if isinstance(path[-1], _fields.KeyOf):
        return None
    key: list[Any] = []
    prev: Any = None
    for step in path:
        key.append(EACH if isinstance(step, int) and prev not in _SEPARATE else step)
        prev = step
    return tuple(key) if EACH in key else None


def rewrite_reply(body: dict[str, Any], check: Callable[[_fields.Path, str], str],
                  channel: Callable[[_fields.Path], Channel]) -> dict[str, Any]:
    """`body` with every string `fields.reply_texts` yields through `check(path, text)`; the input
    stays untouched (`body` itself when nothing changes).

    Consecutive list entries are one text, as they are in a stream: they are checked joined and,
    only when that changes anything, sent through one `channel`, so a value or a placeholder split
    across logprobs tokens is masked or restored whole. A logprobs `token` that changes gets its
    `bytes` recomputed, so the raw value cannot come back through them."""
    changes: list[tuple[_fields.Path, Any]] = []
    runs: dict[_fields.Path, list[tuple[_fields.Path, str]]] = {}
    for path, text in _fields.reply_texts(body):
        key = run_key(path)
        if key is not None:
            runs.setdefault(key, []).append((path, text))
        elif (new := check(path, text)) != text:
            changes.append((path, new))
    for members in runs.values():
        changes.extend(_run_changes(members, check, channel))
    for path, new in list(changes):
        if path[-1] == "token":
            parent = _node(body, path[:-1])
            if isinstance(parent, dict) and "bytes" in parent:
                changes.append(((*path[:-1], "bytes"), token_bytes(new)))
    return _fields.apply(body, changes)


def _run_changes(members: list[tuple[_fields.Path, str]], check: Callable[[_fields.Path, str], str],
                 channel: Callable[[_fields.Path], Channel]) -> list[tuple[_fields.Path, str]]:
    first = members[0][0]
    if len(members) == 1:
        new = check(first, members[0][1])
        return [(first, new)] if new != members[0][1] else []
    joined = "".join(text for _, text in members)
    if check(first, joined) == joined:
        return []
    ch = channel(first)
    outs = [ch.feed(text) for _, text in members]
    outs[-1] += ch.flush()
    return [(path, out) for (path, text), out in zip(members, outs, strict=True) if out != text]


def _node(root: Any, path: _fields.Path) -> Any:
    for key in path:
        root = root[key]
    return root


def restore_reply(body: dict[str, Any], pseudonymizer: Pseudonymizer) -> dict[str, Any]:
    """A new non-streamed reply with every string that could carry model output restored
    (`fields.reply_texts`: content, refusal, tool calls, logprobs tokens, unknown keys).
    `arguments` hold JSON text, so values are JSON-escaped there; a placeholder split across
    logprobs tokens is restored whole."""

    def escape(path: _fields.Path) -> bool:
        return path[-1] == "arguments"

    return rewrite_reply(body, lambda path, text: pseudonymizer.restore_text(text, json_escape=escape(path)),
                         lambda path: StreamRestorer(pseudonymizer, json_escape=escape(path)))


def _with_terms(terms: Terminology, check: Callable[[_fields.Path, str], str],
                channel: Callable[[_fields.Path], Channel]) -> tuple[Callable[[_fields.Path, str], str],
                                                                     Callable[[_fields.Path], Channel]]:
    """`check` and `channel` followed by terminology on the reply's prose."""

    def termed_check(path: _fields.Path, text: str) -> str:
        out = check(path, text)
        return terms.apply(out) if is_prose(path) and path[0] in _PROSE_ROOTS else out

    def termed_channel(path: _fields.Path) -> Channel:
        inner = channel(path)
        return TermChannel(inner, terms.filter()) if is_prose(path) and path[0] in _PROSE_ROOTS else inner

    return termed_check, termed_channel


def filter_reply(
    body: dict[str, Any],
    pseudonymizer: Pseudonymizer,
    scanner: SupportsScan | None,
    *,
    types: set[str] | None = None,
    sent_values: Iterable[str] = (),
    min_score: float = 0.0,
    terms: Terminology | None = None,
) -> dict[str, Any]:
    """A non-streamed reply, restored and guarded in every string that could carry model output
    (`fields.reply_texts`), then, with `terms`, its prose through terminology (which may raise
    `TermBlocked`): a new dict, the input stays untouched."""
    if scanner is None and terms is None:
        return restore_reply(body, pseudonymizer)
    if scanner is None:
        def restore(path: _fields.Path, text: str) -> str:
            return pseudonymizer.restore_text(text, json_escape=path[-1] == "arguments")

        def restorer(path: _fields.Path) -> Channel:
            return StreamRestorer(pseudonymizer, json_escape=path[-1] == "arguments")

        return rewrite_reply(body, *_with_terms(terms, restore, restorer))  # type: ignore[arg-type]
    sent = set(sent_values)
    found = reply_scans.get()
    if found is not None:
        scanner = _Recording(scanner, found)
    guard = ReplyGuard(scanner, sent | pseudonymizer.sent_values, types, min_score=min_score)

    def check(path: _fields.Path, text: str) -> str:
        return guard.check_text(pseudonymizer.restore_text(text, json_escape=path[-1] == "arguments"))

    def channel(path: _fields.Path) -> ReplyFilter:
        return ReplyFilter(pseudonymizer, scanner, types=types, sent_values=sent,
                           json_escape=path[-1] == "arguments", min_score=min_score)

    if terms is not None:
        return rewrite_reply(body, *_with_terms(terms, check, channel))
    return rewrite_reply(body, check, channel)

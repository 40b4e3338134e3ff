"""Streaming restoration: tokens split across SSE events come back as values, never as pieces.

An upstream may emit `<PER` in one event and `SON_1>` in the next. `StreamRestorer.feed` returns
only text that can no longer be part of a token, and holds back the longest suffix of the
pending text that is still a prefix of some token — nothing more, so the client sees text as
early as possible. One restorer per text channel (see `stream_filter.ChunkFilter` for how channels are keyed).

`rewrite_reply` is the non-streamed counterpart: one function over every string of a reply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from nuri.privacy import fields as _fields
from nuri.privacy.pseudonymizer import Pseudonymizer


class StreamRestorer:
    """Incremental `Pseudonymizer.restore_text` over a stream of deltas."""

    __slots__ = ("_buf", "_json_escape", "_max_key", "_prefixes", "_pseudo", "_version")

    def __init__(self, pseudonymizer: Pseudonymizer, *, json_escape: bool = False) -> None:
        self._pseudo = pseudonymizer
        self._json_escape = json_escape
        self._buf = ""
        self._version = -1
        self._prefixes: frozenset[str] = frozenset()
        self._max_key = 0

    def __repr__(self) -> str:
        return f"StreamRestorer(held={len(self._buf)})"

    @property
    def held(self) -> int:
        """Characters received but not yet emitted."""
        return len(self._buf)

    @property
    def max_hold(self) -> int:
        """Upper bound of `held` after any feed: the longest token."""
        self._refresh()
        return self._max_key

    def _refresh(self) -> None:
        if self._version == self._pseudo.version:
            return
        prefixes: set[str] = set()
        keys = list(self._pseudo.mapping)
        for k in keys:
            for i in range(1, len(k)):
                prefixes.add(k[:i])
        # a whole token that is also the start of a longer token must wait as well
        for k in keys:
            if k in prefixes:
                continue
            if any(o != k and o.startswith(k) for o in keys):
                prefixes.add(k)
        self._prefixes = frozenset(prefixes)
        self._max_key = max((len(k) for k in keys), default=0)
        self._version = self._pseudo.version

    def _hold_len(self, buf: str) -> int:
        prefixes = self._prefixes
        for n in range(min(self._max_key, len(buf)), 0, -1):
            if buf[-n:] in prefixes:
                return n
        return 0

    def feed(self, delta: str) -> str:
        """Text that is safe to emit now (restored)."""
        if not delta:
            return ""
        self._refresh()
        buf = self._buf + delta
        if not self._prefixes and self._max_key == 0:
            self._buf = ""
            return buf
        cut = len(buf) - self._hold_len(buf)
        pat = self._pseudo.token_pattern()
        if pat is not None:
            # a token that starts before the cut but runs into the held part waits whole
            for m in pat.finditer(buf):
                if m.start() >= cut:
                    break
                if m.end() > cut:
                    cut = m.start()
                    break
        self._buf = buf[cut:]
        return self._pseudo.restore_text(buf[:cut], json_escape=self._json_escape)

    def flush(self) -> str:
        """The rest, at end of stream (an incomplete token is emitted as the text it is)."""
        buf, self._buf = self._buf, ""
        return self._pseudo.restore_text(buf, json_escape=self._json_escape)


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


def token_bytes(token: str) -> list[int]:
    """A logprobs entry's `bytes` for its token: once the token is rewritten, the upstream's
    bytes would still spell the raw value."""
    return list(token.encode("utf-8"))


def run_key(path: _fields.Path) -> _fields.Path | None:
    """`path` with each list position that continues a text collapsed to EACH (a choice's or a
    tool call's position does not: those are separate texts); None when there is none."""
    if isinstance(path[-1], _fields.KeyOf):
        return None
    key: list[Any] = []
    prev: Any = None
    for step in path:
        key.append(EACH if isinstance(step, int) and prev not in ("choices", "tool_calls") else step)
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

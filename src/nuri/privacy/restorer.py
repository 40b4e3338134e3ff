"""Streaming restoration: tokens split across SSE events come back as values, never as pieces.

An upstream may emit `<PER` in one event and `SON_1>` in the next. `StreamRestorer.feed` returns
only text that can no longer be part of a token, and holds back the longest suffix of the
pending text that is still a prefix of some token — nothing more, so the client sees text as
early as possible. One restorer per text channel; which strings of a reply form one channel is the gateway's business
(gateway/stream_privacy.py, gateway/reply_texts.py).
"""

from __future__ import annotations

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

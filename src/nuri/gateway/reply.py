"""The respond step: restore placeholders and guard replies, for whole replies and streams.

One `ReplyPrivacy` per request holds the pseudonymiser (created only if a route step needs
masking) and makes one filter per text channel of a stream (each choice's content, each tool
call's arguments), because a placeholder or an invented phone number can be split across
events only within one channel.
"""

from __future__ import annotations

from typing import Any

from nuri.privacy import fields
from nuri.privacy.guard import ReplyGuard
from nuri.privacy.pseudonymizer import Pseudonymizer
from nuri.privacy.restorer import StreamRestorer
from nuri.privacy.types import Classification


class _Channel:
    """restore → guard for one stream channel; `json_escape` for tool-call arguments."""

    __slots__ = ("guard", "restorer")

    def __init__(self, restorer: StreamRestorer | None, guard: ReplyGuard | None) -> None:
        self.restorer = restorer
        self.guard = guard

    def feed(self, text: str) -> str:
        if self.restorer is not None:
            text = self.restorer.feed(text)
        if self.guard is not None and text:
            text = self.guard.feed(text)
        return text

    def flush(self) -> str:
        text = self.restorer.flush() if self.restorer is not None else ""
        if self.guard is not None:
            text = self.guard.feed(text) + self.guard.flush() if text else self.guard.flush()
        return text


class _KnownScans:
    """The classification's scan of each request field, reused when masking that field."""

    def __init__(self, scanner: Any, body: dict[str, Any], endpoint: str, classification: Classification) -> None:
        self.scanner = scanner
        by_path: dict[Any, list[Any]] = {}
        for e in classification.entities:
            by_path.setdefault(getattr(e, "path", None), []).append(e)
        self.known = {text: by_path.get(path, []) for path, text in fields.request_texts(body, endpoint)}

    def scan(self, text: str) -> list[Any]:
        hit = self.known.get(text)
        return list(hit) if hit is not None else self.scanner.scan(text)


class ReplyPrivacy:
    def __init__(self, scanner: Any, classification: Classification | None, settings: Any, guard: bool) -> None:
        self.scanner = scanner
        self.classification = classification
        self.settings = settings
        self.sent = {e.text for e in classification.entities} if classification is not None else set()
        self.guard_on = guard and scanner is not None
        self.pseudonymizer: Pseudonymizer | None = None
        self.channels: dict[tuple[Any, ...], _Channel] = {}

    # -- transform ------------------------------------------------------------------------
    def mask(self, body: dict[str, Any], endpoint: str, mask_types: frozenset[str]) -> dict[str, Any]:
        if not mask_types:
            return body
        if self.pseudonymizer is None:
            self.pseudonymizer = Pseudonymizer(self.settings)
        scans = self.scanner
        if self.classification is not None:
            scans = _KnownScans(self.scanner, body, endpoint, self.classification)
        return self.pseudonymizer.mask_request(body, endpoint, scans, set(mask_types))

    def _guard(self) -> ReplyGuard | None:
        if not self.guard_on:
            return None
        sent = self.sent | (self.pseudonymizer.sent_values if self.pseudonymizer else set())
        # Decide every ~8 characters (about two tokens): streams stay live, scans stay affordable.
        return ReplyGuard(self.scanner, sent, min_emit=8)

    # -- whole replies ----------------------------------------------------------------------
    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.pseudonymizer is not None and len(self.pseudonymizer):
            body = self.pseudonymizer.restore_reply(body)
        guard = self._guard()
        if guard is not None:
            body = fields.rewrite(body, list(fields.reply_texts(body)), guard.check_text)
        return body

    # -- streams ----------------------------------------------------------------------------
    def _channel(self, key: tuple[Any, ...], json_escape: bool) -> _Channel:
        channel = self.channels.get(key)
        if channel is None:
            restorer = None
            if self.pseudonymizer is not None and len(self.pseudonymizer):
                restorer = StreamRestorer(self.pseudonymizer, json_escape=json_escape)
            channel = _Channel(restorer, self._guard())
            self.channels[key] = channel
        return channel

    @property
    def active(self) -> bool:
        return self.guard_on or (self.pseudonymizer is not None and len(self.pseudonymizer) > 0)

    def chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """Filter one stream chunk in place; on a choice's finish, what was held back is flushed."""
        if not self.active:
            return chunk
        for choice in chunk.get("choices") or []:
            idx = choice.get("index", 0)
            finished = choice.get("finish_reason") is not None
            if "text" in choice:  # legacy completions
                choice["text"] = self._pass(("text", idx), choice.get("text") or "", finished, False)
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str) or finished:
                content = self._pass(("content", idx), delta.get("content") or "", finished, False)
                if content or isinstance(delta.get("content"), str):
                    delta["content"] = content
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    fn["arguments"] = self._pass(("tool", idx, call.get("index", 0)), fn["arguments"], False, True)
            if finished:
                self._flush_tools(idx, delta)
        return chunk

    def _pass(self, key: tuple[Any, ...], text: str, finished: bool, json_escape: bool) -> str:
        channel = self._channel(key, json_escape)
        out = channel.feed(text) if text else ""
        if finished:
            out += channel.flush()
            del self.channels[key]
        return out

    def _flush_tools(self, idx: int, delta: dict[str, Any]) -> None:
        for key in [k for k in self.channels if k[0] == "tool" and k[1] == idx]:
            rest = self.channels.pop(key).flush()
            if rest:
                delta.setdefault("tool_calls", []).append({"index": key[2], "function": {"arguments": rest}})

    def leftovers(self) -> list[tuple[tuple[Any, ...], str]]:
        """Text still held when a stream ends without finish_reason (flushed into a last chunk)."""
        out = [(key, channel.flush()) for key, channel in self.channels.items()]
        self.channels.clear()
        return [(k, t) for k, t in out if t]

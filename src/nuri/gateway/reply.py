"""The respond step: restore placeholders, guard and apply terminology, for whole replies and streams.

One `ReplyPrivacy` per request. It masks each route step's body as policy requires (one
pseudonymiser for the request, so a fallback reuses the same placeholders), and builds the reply
filters (reply_texts.py for whole replies, stream_privacy.py for streams) around the privacy
package's text filters, with the values the client sent, which the guard lets through.
"""

from __future__ import annotations

from typing import Any

from nuri.gateway.reply_texts import filter_reply
from nuri.gateway.stream_privacy import ChunkFilter
from nuri.policy.term_stream import Terminology
from nuri.privacy import fields
from nuri.privacy.fields import Path
from nuri.privacy.pseudonymizer import Pseudonymizer
from nuri.privacy.types import Classification

# Decide every ~8 characters (about two tokens): streams stay live, scans stay affordable.
STREAM_MIN_EMIT = 8


class _KnownScans:
    """The classification's scan of each request field, reused when masking that field."""

    def __init__(self, scanner: Any, texts: list[tuple[Path, str]], classification: Classification) -> None:
        self.scanner = scanner
        by_path: dict[Any, list[Any]] = {}
        for e in classification.entities:
            by_path.setdefault(getattr(e, "path", None), []).append(e)
        self.known = {text: by_path.get(path, []) for path, text in texts}

    def scan(self, text: str) -> list[Any]:
        hit = self.known.get(text)
        return list(hit) if hit is not None else self.scanner.scan(text)


class ReplyPrivacy:
    """`terms`: the request's terminology (policy/term_stream.py), applied to a reply's prose after
    restoring and guarding, whole or streamed."""

    def __init__(self, scanner: Any, classification: Classification | None, settings: Any, guard: bool,
                 terms: Terminology | None = None) -> None:
        self.scanner = scanner if guard else None
        self.classification = classification
        self.settings = settings
        self.sent = {e.text for e in classification.entities} if classification is not None else set()
        self.pseudonymizer = Pseudonymizer(settings)
        self.terms = terms

    @property
    def active(self) -> bool:
        return self.scanner is not None or len(self.pseudonymizer) > 0 or self.terms is not None

    def mask(self, body: dict[str, Any], endpoint: str, mask_types: frozenset[str],
             texts: list[tuple[Path, str]] | None = None) -> dict[str, Any]:
        """The body a route step may see: as sent, or with `mask_types` pseudonymised. `texts`
        are the body's walked strings (the parsed request's), walked here when not given."""
        if not mask_types:
            return body
        if texts is None:
            texts = list(fields.request_texts(body, endpoint))
        scans: Any = self.scanner
        if self.classification is not None:
            scans = _KnownScans(self.scanner, texts, self.classification)
        return self.pseudonymizer.mask_texts(body, texts, scans, set(mask_types))

    def _guard_options(self) -> dict[str, Any]:
        return {"sent_values": self.sent, "min_score": self.settings.guard_min_score}

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        """A whole reply, restored and guarded."""
        if not self.active:
            return body
        return filter_reply(body, self.pseudonymizer, self.scanner, terms=self.terms, **self._guard_options())

    def stream_filter(self) -> ChunkFilter | None:
        """Per-channel restore and guard for a stream; None when there is nothing to do."""
        if not self.active:
            return None
        return ChunkFilter(self.pseudonymizer, self.scanner, hold_chars=self.settings.guard_hold_chars,
                           min_emit=STREAM_MIN_EMIT, terms=self.terms, **self._guard_options())

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
per `min_emit` characters at the start of a stream, and once there is context, once per half the
context's length (still within `hold_chars`): each scan reads the context again.

Compose per text channel: upstream delta → `StreamRestorer` → `ReplyGuard` → client, which is
what `ReplyFilter` does. This module sees texts only: which strings of a reply are one channel is
the gateway's business (gateway/stream_privacy.py for streams, gateway/reply_texts.py for whole
replies).

A caller that keeps the guarded text (the Responses API's stored state) can ask a streaming guard
to `record` what its scans found in the text it emitted, in the emitted text's own offsets
(`findings`), so that text need not be scanned a second time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from nuri.privacy.pseudonymizer import Pseudonymizer, SupportsScan, marker_spans, redacted, value_key
from nuri.privacy.restorer import StreamRestorer
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

    __slots__ = ("_abs", "_context_chars", "_ctx", "_found", "_hold_chars", "_last_mask_end", "_masked", "_min_emit",
                 "_min_score", "_out", "_out_len", "_pending", "_placed", "_scanner", "_seen", "_sent_exact",
                 "_sent_keys", "_types", "_words")

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
        record: bool = False,
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
        # with `record`: what the scans found in the emitted text, in its offsets (see `findings`)
        self._found: list[Entity] | None = [] if record else None
        self._out: list[str] = []         # the emitted text, in pieces (only when recording)
        self._out_len = 0
        self._seen: set[tuple[int, int]] = set()   # stream spans of entities already placed or masked
        self._placed = True               # False once an entity could not be placed in the emitted text

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

    def _to_mask(self, text: str, scanned: list[Entity] | None = None) -> list[Entity]:
        blocked = marker_spans(text)
        out = []
        for e in self._scanner.scan(text) if scanned is None else scanned:
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
        if not final and (cut == 0 or cut < max(self._min_emit, len(self._ctx) >> 1) and len(p) < self._hold_chars):
            # all of it could still grow into an entity, or too little to be worth a scan yet: a
            # scan reads the emitted context again, so once there is context it waits for new
            # text of at least half its length (each character is then scanned about three times,
            # not nine as at every 8 characters behind 64 of context); the first text still goes
            # out after `min_emit`
            self._pending = p
            return ""
        ctx = self._ctx
        off = len(ctx)
        scanned = self._scanner.scan(ctx + p)
        ents = [e for e in self._to_mask(ctx + p, scanned) if e.end > off]
        if not final:
            for e in ents:
                s, t = e.start - off, e.end - off
                if t >= len(p) or s < cut < t:
                    cut = min(cut, max(s, 0))
        out: list[str] = []
        spans: list[tuple[int, int, int]] = []    # (start, end, length of what replaced it) in `p`
        pos = 0
        for e in ents:
            s, t = e.start - off, e.end - off
            if t > cut or s < pos and t <= pos:
                continue
            s = max(s, pos)
            out.append(p[pos:s])
            marker = ""
            if self._abs + s > self._last_mask_end or e.start >= off:
                marker = redacted(e.type)
                out.append(marker)
                self._masked[e.type] = self._masked.get(e.type, 0) + 1
            spans.append((s, t, len(marker)))
            self._last_mask_end = self._abs + t
            pos = t
        out.append(p[pos:cut])
        text = "".join(out)
        if self._found is not None:
            self._record(scanned, off, cut, spans)
            self._out.append(text)
            self._out_len += len(text)
        emitted = p[:cut]
        self._ctx = (ctx + emitted)[-self._context_chars:]
        self._pending = p[cut:]
        self._abs += cut
        return text

    # -- what the scans found, for a caller that keeps the emitted text -------------------------
    def _record(self, scanned: list[Entity], off: int, cut: int, spans: list[tuple[int, int, int]]) -> None:
        """Place what this window's scan found in the text emitted now (`p[:cut]`) in the emitted
        text's offsets. An entity held back is placed by a later window; one replaced by a
        marker needs nothing; one that reaches back into text emitted before, unless an earlier
        window placed that very span, cannot be placed, and the findings are then incomplete."""
        assert self._found is not None
        window = self._abs - off              # stream offset of the window's first character
        for e in scanned:
            key = (window + e.start, window + e.end)
            if key in self._seen:
                continue
            s, t = e.start - off, e.end - off
            if t > cut:
                continue
            if s < 0:
                self._placed = False
                continue
            self._seen.add(key)
            if any(a <= s and t <= b for a, b, _n in spans):
                continue
            self._found.append(replace(e, start=self._place(s, spans, end=False), end=self._place(t, spans, end=True)))

    def _place(self, i: int, spans: list[tuple[int, int, int]], *, end: bool) -> int:
        """Where position `i` of this step's text lands in the emitted text; inside a replaced span,
        that span's replacement (its start, or its end for an entity's end)."""
        at = self._out_len + i
        for a, b, n in spans:
            if b <= i:
                at -= (b - a) - n
            elif a < i:
                return at - (i - a) + (n if end else 0)
            else:
                break
        return at

    def findings(self) -> tuple[str, list[Entity]] | None:
        """The text emitted so far and what the scans found in it, in its offsets; None unless the
        guard was built to `record`, or when an entity could not be placed."""
        if self._found is None or not self._placed:
            return None
        text = "".join(self._out)
        return text, [replace(e, text=text[e.start:e.end]) for e in self._found]


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
        record: bool = False,
    ) -> None:
        self.pseudonymizer = pseudonymizer
        self._json_escape = json_escape
        self.restorer = StreamRestorer(pseudonymizer, json_escape=json_escape)
        self.guard: ReplyGuard | None = None
        if scanner is not None:
            sent = set(sent_values) | pseudonymizer.sent_values
            self.guard = ReplyGuard(scanner, sent, types, hold_chars=hold_chars, min_emit=min_emit,
                                    min_score=min_score, record=record)

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

    def findings(self) -> tuple[str, list[Entity]] | None:
        """The guard's `findings` (what it emitted and found in it), when it was built to `record`."""
        return self.guard.findings() if self.guard is not None else None

    def check_text(self, text: str) -> str:
        """Non-streamed: restore then guard."""
        restored = self.pseudonymizer.restore_text(text, json_escape=self._json_escape)
        return self.guard.check_text(restored) if self.guard is not None else restored

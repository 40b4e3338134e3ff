"""Text normalisation with an offset map back to the original.

People (and attackers) write identifiers as ０１０-１２３４-５６７８, with zero-width characters
inside, or with every digit spaced out (9 0 0 1 0 1 - 1 …). Detectors only know one shape, so the
scanner runs them on a normalised copy and maps each span back to the text as given:

* NFKC per character (fullwidth digits and Latin, compatibility forms, decomposed Hangul);
* zero-width and invisible format characters removed;
* separators inside digits written one by one (``0 1 0 1 2 3 4 …``, ``0.1.0.…``) removed.

Most text is already NFKC, has no invisible characters and no spaced digits; that case costs one
C-level check and no copy (``Normalized.identity``).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field
from typing import NamedTuple

# Zero-width and invisible formatting characters used to split identifiers.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
_INVISIBLE_SET = frozenset(_INVISIBLE)
# Seven or more digits written one at a time with one separator between them. Ordinary
# formatting never groups digits singly that often, so dropping the separators is safe.
_SPACED_DIGITS = re.compile(r"\d(?<!\d\d)(?:[ .\-·_/]{1,3}\d){6,}(?!\d)")
_INVISIBLE_RX = re.compile(f"[{_INVISIBLE}]")
_SPACED_HINT = re.compile(r"\d[ .\-·_/]{1,3}\d[ .\-·_/]{1,3}\d[ .\-·_/]{1,3}\d")


def _needs_work(text: str) -> bool:
    if _INVISIBLE_RX.search(text):
        return True
    return _SPACED_HINT.search(text) is not None and _SPACED_DIGITS.search(text) is not None


class Segment(NamedTuple):
    """Normalised characters [n_start, n_end) and the original characters [o_start, o_end) they
    came from: one to one in a clean run (`exact`), each of them from the whole span otherwise."""

    n_start: int
    n_end: int
    o_start: int
    o_end: int
    exact: bool


@dataclass(slots=True)
class Normalized:
    """Normalised text and where its characters came from in the original.

    The map is kept as segments rather than one entry per character: text is mostly clean runs
    with a few rewritten spots, so building and keeping it costs per spot, not per character."""

    text: str
    segments: list[Segment] | None = None   # None = identity
    _n_starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.segments is not None:
            self._n_starts = [seg.n_start for seg in self.segments]

    @property
    def identity(self) -> bool:
        return self.segments is None

    def _segment(self, i: int) -> Segment:
        assert self.segments is not None
        return self.segments[bisect.bisect_right(self._n_starts, i) - 1]

    def _char_start(self, i: int) -> int:
        seg = self._segment(i)
        return seg.o_start + (i - seg.n_start) if seg.exact else seg.o_start

    def _char_end(self, i: int) -> int:
        seg = self._segment(i)
        return seg.o_start + (i - seg.n_start) + 1 if seg.exact else seg.o_end

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of the normalised text to the smallest span of the original covering it."""
        if self.segments is None:
            return start, end
        if end <= start:
            if start < len(self.text):
                pos = self._char_start(start)
            else:
                pos = self.segments[-1].o_end if self.segments else 0
            return pos, pos
        return self._char_start(start), self._char_end(end - 1)


    def spans(self, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """`span` for many spans sorted by start and not overlapping, in one walk over the map."""
        if self.segments is None:
            return pairs
        segments, out, k = self.segments, [], 0

        def char(i: int, edge: int) -> int:       # edge 0: where char i starts, 1: where it ends
            nonlocal k
            while segments[k].n_end <= i:
                k += 1
            seg = segments[k]
            if seg.exact:
                return seg.o_start + (i - seg.n_start) + edge
            return seg.o_end if edge else seg.o_start

        for start, end in pairs:
            if end <= start or end > len(self.text):
                out.append(self.span(start, end))
            else:
                out.append((char(start, 0), char(end - 1, 1)))
        return out


# Characters NFKC leaves alone (printable ASCII, Hangul syllables, CJK unified ideographs) are
# copied in runs; everything else is normalised one cluster (base + combining marks) at a time.
_COMBINING = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\u1160-\u11ff\ud7b0-\ud7ff\u3099\u309a"
# One negated class first, so the engine scans for it at C speed; a combining mark found this way
# takes its base character (just before it) into the cluster.
_DIRTY = re.compile(f"[^\\x20-\\x7e\\n\\r\\t\uac00-\ud7a3\u4e00-\u9fff][{_COMBINING}]*")
_COMBINING_RX = re.compile(f"[{_COMBINING}]")


def normalize(text: str) -> Normalized:
    """Normalise for detection; spans found in `.text` map back with `.span()`."""
    if unicodedata.is_normalized("NFKC", text) and not _needs_work(text):
        return Normalized(text)
    out: list[str] = []
    segments: list[Segment] = []
    n = 0     # length of the normalised text so far
    pos = 0
    for m in _DIRTY.finditer(text):
        i, j = m.span()
        if i > pos and _COMBINING_RX.match(text, i):
            i -= 1
        if i > pos:                                   # a clean run: copied, offsets 1:1
            out.append(text[pos:i])
            segments.append(Segment(n, n + i - pos, pos, i, True))
            n += i - pos
        cluster = "".join(c for c in unicodedata.normalize("NFKC", text[i:j]) if c not in _INVISIBLE_SET)
        if cluster:
            out.append(cluster)
            segments.append(Segment(n, n + len(cluster), i, j, len(cluster) == j - i == 1))
            n += len(cluster)
        pos = j
    if pos < len(text):
        out.append(text[pos:])
        segments.append(Segment(n, n + len(text) - pos, pos, len(text), True))
    joined = "".join(out)
    # Second pass on the normalised text: drop separators inside digits spelled out one by one.
    drop = [k for m in _SPACED_DIGITS.finditer(joined) for k in range(m.start(), m.end())
            if joined[k] in _SPACED_SEP_CHARS]
    if drop:
        joined = _without(joined, drop)
        segments = _drop_from_segments(segments, drop)
    return Normalized(joined, segments)


_SPACED_SEP_CHARS = frozenset(" .-·_/")


def _without(text: str, drop: list[int]) -> str:
    """`text` minus the (sorted) positions in `drop`, copied in slices."""
    parts = []
    prev = 0
    for k in drop:
        parts.append(text[prev:k])
        prev = k + 1
    parts.append(text[prev:])
    return "".join(parts)


def _drop_from_segments(segments: list[Segment], drop: list[int]) -> list[Segment]:
    """The segments once the normalised characters at the (sorted) positions `drop` are gone."""
    out: list[Segment] = []
    removed = 0                     # characters dropped so far (all before the current position)
    d = 0
    for seg in segments:
        inside = []
        while d < len(drop) and drop[d] < seg.n_end:
            inside.append(drop[d])
            d += 1
        if not seg.exact:           # a rewritten cluster: fewer characters, same original span
            kept = seg.n_end - seg.n_start - len(inside)
            if kept:
                out.append(Segment(seg.n_start - removed, seg.n_start - removed + kept, seg.o_start, seg.o_end, False))
            removed += len(inside)
            continue
        piece = seg.n_start         # a clean run: cut into the pieces between dropped characters
        for k in [*inside, seg.n_end]:
            if k > piece:
                o = seg.o_start + (piece - seg.n_start)
                out.append(Segment(piece - removed, k - removed, o, o + (k - piece), True))
            if k < seg.n_end:
                removed += 1
            piece = k + 1
    return out

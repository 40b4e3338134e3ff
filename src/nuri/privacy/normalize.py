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

import re
import unicodedata
from dataclasses import dataclass
from itertools import chain

# Zero-width and invisible formatting characters used to split identifiers.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
_INVISIBLE_SET = frozenset(_INVISIBLE)
# Seven or more digits written one at a time with one separator between them. Ordinary
# formatting never groups digits singly that often, so dropping the separators is safe.
_SPACED_DIGITS = re.compile(r"(?<!\d)\d(?:[ .\-·_/]{1,3}\d){6,}(?!\d)")
_INVISIBLE_RX = re.compile(f"[{_INVISIBLE}]")
_SPACED_HINT = re.compile(r"\d[ .\-·_/]{1,3}\d[ .\-·_/]{1,3}\d[ .\-·_/]{1,3}\d")


def _needs_work(text: str) -> bool:
    if _INVISIBLE_RX.search(text):
        return True
    return _SPACED_HINT.search(text) is not None and _SPACED_DIGITS.search(text) is not None


@dataclass(slots=True)
class Normalized:
    """Normalised text and, per normalised character, where it came from in the original."""

    text: str
    starts: list[int] | None = None   # original start offset of each normalised char; None = identity
    ends: list[int] | None = None     # original end offset of each normalised char

    @property
    def identity(self) -> bool:
        return self.starts is None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of the normalised text to the smallest span of the original covering it."""
        if self.starts is None or self.ends is None:
            return start, end
        if end <= start:
            pos = self.starts[start] if start < len(self.starts) else (self.ends[-1] if self.ends else 0)
            return pos, pos
        return self.starts[start], self.ends[end - 1]


# Characters NFKC leaves alone (printable ASCII, Hangul syllables, CJK unified ideographs) are
# copied in runs; everything else is normalised one cluster (base + combining marks) at a time.
_COMBINING = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\u1160-\u11ff\ud7b0-\ud7ff\u3099\u309a"
_DIRTY = re.compile(f"(?s:.)[{_COMBINING}]+|[^\\x20-\\x7e\\n\\r\\t\uac00-\ud7a3\u4e00-\u9fff]")


def normalize(text: str) -> Normalized:
    """Normalise for detection; spans found in `.text` map back with `.span()`."""
    if unicodedata.is_normalized("NFKC", text) and not _needs_work(text):
        return Normalized(text)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for m in _DIRTY.finditer(text):
        i, j = m.span()
        if i > pos:                                   # a clean run: copied, offsets 1:1
            out.append(text[pos:i])
            starts.extend(range(pos, i))
            ends.extend(range(pos + 1, i + 1))
        for c in unicodedata.normalize("NFKC", m.group(0)):
            if c not in _INVISIBLE_SET:
                out.append(c)
                starts.append(i)
                ends.append(j)
        pos = j
    if pos < len(text):
        out.append(text[pos:])
        starts.extend(range(pos, len(text)))
        ends.extend(range(pos + 1, len(text) + 1))
    joined = "".join(out)
    # Second pass on the normalised text: drop separators inside digits spelled out one by one.
    drop = [k for m in _SPACED_DIGITS.finditer(joined) for k in range(m.start(), m.end())
            if joined[k] in _SPACED_SEP_CHARS]
    if drop:
        joined, starts, ends = (_without(seq, drop) for seq in (joined, starts, ends))  # type: ignore[assignment]
    return Normalized(joined, starts, ends)


_SPACED_SEP_CHARS = frozenset(" .-·_/")


def _without(seq: str | list[int], drop: list[int]) -> str | list[int]:
    """`seq` minus the (sorted) positions in `drop`, copied in slices rather than item by item."""
    parts = []
    prev = 0
    for k in drop:
        parts.append(seq[prev:k])
        prev = k + 1
    parts.append(seq[prev:])
    if isinstance(seq, str):
        return "".join(parts)
    return list(chain.from_iterable(parts))

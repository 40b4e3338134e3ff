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

# Zero-width and invisible formatting characters used to split identifiers.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
_INVISIBLE_SET = frozenset(_INVISIBLE)
# Seven or more digits written one at a time with one separator between them. Ordinary
# formatting never groups digits singly that often, so dropping the separators is safe.
_SPACED_DIGITS = re.compile(r"(?<!\d)\d(?:[ .\-·_/]{1,3}\d){6,}(?!\d)")
_SPACED_SEP = re.compile(r"[ .\-·_/]")
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


def _cluster_end(text: str, i: int) -> int:
    """End of the grapheme-ish cluster at i: a base plus combining marks / trailing jamo."""
    n = len(text)
    j = i + 1
    while j < n:
        ch = text[j]
        if unicodedata.combining(ch) or "\u1160" <= ch <= "\u11ff" or "\ud7b0" <= ch <= "\ud7ff":
            j += 1
        else:
            break
    return j


def normalize(text: str) -> Normalized:
    """Normalise for detection; spans found in `.text` map back with `.span()`."""
    if unicodedata.is_normalized("NFKC", text) and not _needs_work(text):
        return Normalized(text)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _INVISIBLE_SET:
            i += 1
            continue
        j = _cluster_end(text, i)
        piece = text[i:j]
        norm = unicodedata.normalize("NFKC", piece)
        for c in norm:
            if c in _INVISIBLE_SET:
                continue
            out.append(c)
            starts.append(i)
            ends.append(j)
        i = j
    joined = "".join(out)
    # Second pass on the normalised text: drop separators inside digits spelled out one by one.
    if _SPACED_DIGITS.search(joined):
        keep = [True] * len(joined)
        for m in _SPACED_DIGITS.finditer(joined):
            for k in range(m.start(), m.end()):
                if _SPACED_SEP.match(joined[k]):
                    keep[k] = False
        joined = "".join(c for c, k in zip(joined, keep, strict=True) if k)
        starts = [s for s, k in zip(starts, keep, strict=True) if k]
        ends = [e for e, k in zip(ends, keep, strict=True) if k]
    return Normalized(joined, starts, ends)

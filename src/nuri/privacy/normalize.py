"""Text normalisation with an offset map back to the original.

People (and attackers) write identifiers as ０１０-１２３４-５６７８, as ٠١٠—٢٣٤٥—٦٧٨٩, with zero-width
characters or bidi isolates inside, with Cyrillic letters that look like Latin ones, or with every
digit spaced out (9 0 0 1 0 1 - 1 …). Detectors only know one shape, so the scanner runs them on a
normalised copy and maps each span back to the text as given:

* NFKC per character (fullwidth digits and Latin, compatibility forms, decomposed Hangul);
* format characters (category Cf: zero-width, bidi controls, soft hyphen, BOM), the combining
  grapheme joiner and variation selectors removed;
* every decimal digit folded to ASCII 0-9, every dash to '-', every space to ' ';
* look-alikes folded to their UTS #39 confusable skeleton where that is ASCII (Cyrillic 'а' → 'a',
  Greek 'ο' → 'o'); Hangul, Han, kana and CJK punctuation are never folded;
* separators inside digits written one by one (``0 1 0 1 2 3 4 …``, ``0.1.0.…``) and inside an
  e-mail address spelled out one character at a time (``h o n g @ e x …``) removed.

Most text is already NFKC and holds none of these characters; that case costs a few C-level
checks and no copy (``Normalized.identity``).
"""

from __future__ import annotations

import array
import bisect
import importlib.resources
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import NamedTuple

# Blocks never folded, so Korean (and Chinese, Japanese) text stays as written: Hangul jamo,
# CJK radicals to CJK unified ideographs (with kana, CJK punctuation, compatibility jamo),
# Hangul extensions and syllables, compatibility ideographs, CJK compatibility forms,
# halfwidth kana and Hangul, kana supplements. Surrogates and private use sit among them.
_KEPT = ((0x1100, 0x1200), (0x2E80, 0xA000), (0xA960, 0xA980), (0xAC00, 0xFB00), (0xFE30, 0xFE50),
         (0xFF65, 0xFFDD), (0x1AFF0, 0x1B170))
# Invisible joiners and selectors that are not format characters: the combining grapheme joiner,
# Mongolian free variation selectors, variation selectors and their supplement.
_DROPPED_MARKS = ((0x034F, 0x0350), (0x180B, 0x180E), (0x180F, 0x1810), (0xFE00, 0xFE10), (0xE0100, 0xE01F0))
_EXTRA_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
# Punctuation and symbols whose look-alike fold matters to identifiers and addresses; other
# skeletons ('“' → "''", '×' → 'x') would only rewrite ordinary prose.
_FOLDED_PUNCTUATION = frozenset("-./:@_+")


def _kept(cp: int) -> bool:
    return any(a <= cp < b for a, b in _KEPT)


def _scanned_chars() -> str:
    """Every character that could need folding: non-ASCII, outside the kept blocks, in the planes
    that hold format characters, digits, dashes and spaces."""
    ranges, lo = [], 0x80
    for a, b in _KEPT:
        ranges.append(range(lo, a))
        lo = b
    ranges += [range(lo, 0x20000), range(0xE0000, 0xE1000)]
    return "".join(array.array("I", r).tobytes().decode("utf-32-le") for r in ranges)


_CATEGORY_FOLDS = {"Cf": "", "Pd": "-", "Zs": " "}


def _category_folds() -> dict[int, str]:
    """Format characters dropped, decimal digits to ASCII, dashes to '-', spaces to ' '."""
    chars = _scanned_chars()
    codes = "".join(map(unicodedata.category, chars))      # two letters per character
    out: dict[int, str] = {}
    for m in re.finditer("Cf|Nd|Pd|Zs", codes):
        c = chars[m.start() // 2]
        out[ord(c)] = str(unicodedata.decimal(c)) if m.group() == "Nd" else _CATEGORY_FOLDS[m.group()]
    out.update({cp: "" for a, b in _DROPPED_MARKS for cp in range(a, b)})
    out.update({ord(c): "-" for c in _EXTRA_DASHES})
    return out


def _confusable_folds() -> dict[int, str]:
    """Letters, digits and identifier punctuation whose confusable skeleton is ASCII. The data is
    Unicode's confusables.txt as shipped by the `confusable-homoglyphs` package."""
    source = importlib.resources.files("confusable_homoglyphs") / "confusables.json"
    data = json.loads(source.read_text("utf-8"))
    out: dict[int, str] = {}
    for char, homoglyphs in data.items():
        if len(char) != 1 or char.isascii() or _kept(ord(char)):
            continue
        target = next((h["c"] for h in homoglyphs if h["c"].isascii()), "")
        kind = unicodedata.category(char)[0]
        if (kind in "LN" and target.isalnum()) or (kind in "PS" and target in _FOLDED_PUNCTUATION and target):
            out[ord(char)] = target
    return out


def _fold_table() -> dict[int, str]:
    table = _confusable_folds()
    table.update(_category_folds())          # categories first: '٠' is a zero, not a dot
    return {cp: s for cp, s in table.items() if chr(cp) != s}


_FOLD = _fold_table()


def _char_class(cps: list[int]) -> str:
    """A regex character class body for the (sorted) code points, as ranges."""
    parts: list[str] = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        first, last = re.escape(chr(cps[i])), re.escape(chr(cps[j]))
        parts.append(first if i == j else f"{first}-{last}")
        i = j + 1
    return "".join(parts)


# Any character the fold table rewrites. Characters beyond the BMP (emoji, mathematical letters)
# are all let through to the per-character path: one range keeps the class a plain bitmap lookup.
_FOLD_HINT = re.compile(f"[{_char_class(sorted(cp for cp in _FOLD if cp <= 0xFFFF))}\U00010000-\U0010ffff]")
# Seven or more digits written one at a time with one separator between them. Ordinary
# formatting never groups digits singly that often, so dropping the separators is safe.
_SEP = " \t.\\-·•∙⋅‧・_/"
_SPACED_SEP_CHARS = frozenset(_SEP.replace("\\", ""))
_SPACED_DIGITS = re.compile(rf"\d(?<!\d\d)(?:[{_SEP}]{{1,3}}\d){{6,}}(?!\d)")
_SPACED_HINT = re.compile(rf"\d[{_SEP}]{{1,3}}\d[{_SEP}]{{1,3}}\d[{_SEP}]{{1,3}}\d")
# An e-mail address spelled out one character at a time: at least two characters, '@', then at
# least four; every piece a single character between blanks, so words are never joined.
_SPACED_EMAIL = re.compile(
    r"[A-Za-z0-9](?<![A-Za-z0-9._%+\-][A-Za-z0-9])(?:[ \t]{1,3}[A-Za-z0-9._%+\-]){1,63}[ \t]{1,3}@"
    r"(?:[ \t]{1,3}[A-Za-z0-9.\-]){4,253}(?![A-Za-z0-9._%+\-@])"
)
_SPACED_EMAIL_HINT = re.compile(r"@[ \t]{1,3}[A-Za-z0-9]")


def _needs_work(text: str) -> bool:
    if not text.isascii() and _FOLD_HINT.search(text):
        return True
    if _SPACED_HINT.search(text) and _SPACED_DIGITS.search(text):
        return True
    return bool(_spaced_emails(text))


def _spaced_emails(text: str) -> list[re.Match[str]]:
    """E-mail addresses spelled out one character at a time (with a dot in the domain)."""
    if "@" not in text or not _SPACED_EMAIL_HINT.search(text):
        return []
    return [m for m in _SPACED_EMAIL.finditer(text) if "." in m.group().partition("@")[2]]


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
        cluster = unicodedata.normalize("NFKC", text[i:j]).translate(_FOLD)
        if cluster:
            out.append(cluster)
            segments.append(Segment(n, n + len(cluster), i, j, len(cluster) == j - i == 1))
            n += len(cluster)
        pos = j
    if pos < len(text):
        out.append(text[pos:])
        segments.append(Segment(n, n + len(text) - pos, pos, len(text), True))
    joined = "".join(out)
    drop = _spaced_out(joined)
    if drop:
        joined = _without(joined, drop)
        segments = _drop_from_segments(segments, drop)
    return Normalized(joined, segments)


def _spaced_out(text: str) -> list[int]:
    """Second pass on the folded text: the (sorted) positions of separators inside digits and
    e-mail addresses spelled out one character at a time."""
    drop = {k for m in _SPACED_DIGITS.finditer(text) for k in range(m.start(), m.end())
            if text[k] in _SPACED_SEP_CHARS}
    for m in _spaced_emails(text):
        drop.update(k for k in range(m.start(), m.end()) if text[k] in " \t")
    return sorted(drop)


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


def compose(outer: Normalized, inner: Normalized) -> Normalized:
    """`inner` is a view of `outer.text`; the result maps `inner.text` straight back to the text
    `outer` came from, so views can be stacked (folded, then decoded, then folded again)."""
    if inner.segments is None:
        return outer
    if outer.segments is None:
        return inner
    outer_segments = outer.segments
    out: list[Segment] = []
    k = 0                        # inner segments map to rising spans of outer.text: one walk
    for seg in inner.segments:
        while k + 1 < len(outer_segments) and outer_segments[k].n_end <= seg.o_start:
            k += 1
        if not seg.exact:
            lo, hi = outer.span(seg.o_start, seg.o_end)
            out.append(Segment(seg.n_start, seg.n_end, lo, hi, False))
            continue
        j = k
        while j < len(outer_segments) and outer_segments[j].n_start < seg.o_end:
            out.append(_piece(seg, outer_segments[j]))
            j += 1
    return Normalized(inner.text, out)


def _piece(seg: Segment, o: Segment) -> Segment:
    """The part of the exact inner segment `seg` that lies over the outer segment `o`."""
    a, b = max(seg.o_start, o.n_start), min(seg.o_end, o.n_end)
    n0, n1 = seg.n_start + (a - seg.o_start), seg.n_start + (b - seg.o_start)
    if o.exact:
        return Segment(n0, n1, o.o_start + (a - o.n_start), o.o_start + (b - o.n_start), True)
    return Segment(n0, n1, o.o_start, o.o_end, False)

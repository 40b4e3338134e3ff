"""A bounded cache of per-string classification, so a conversation's history is not rescanned.

Each turn of a chat resends every earlier message; without a cache, turn 20 scans twenty times
the text turn 1 did. What a scan finds in a string depends only on the string and the scanner's
settings, so the result for a string seen before can be reused — as long as the cache lives no
longer than its scanner (the evaluator owns both, and a reload builds new ones).

The cache stores no text. The key is a keyed BLAKE2b digest of the string (a random key per
process, so a digest cannot be checked against guessed values elsewhere); the value holds only
what a scan reports besides the value itself: type, offsets, score, evidence, category and
detail of each finding (the detector's reason; for two phone rules it names the number's
prefix, e.g. "prefix 012 not an area or mobile code"), and the whole-text signals (categories,
topics, grade, markings, domains, script counts). An entity's text is cut from the string being
classified on every hit, so it exists only while the request is in flight, as without the cache.

Bounded by weight, least recently used first out: an entry counts one plus its findings, so a
flood of strings dense with findings cannot grow it past the budget. One lock guards the
table: the event loop and the classification worker thread both use it. `mostly_cached` lets
the evaluator keep a large body whose history is cached on the event loop (little left to scan).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from nuri.privacy.types import Classification, Entity, Evidence, PipaCategory

# The per-process key of the digests: never stored, never logged.
_KEY = os.urandom(32)
# Characters on each side of a field boundary that the joined view of privacy/classify.py looks
# at: longer than any identifier with its context cue, short enough that the joined scan stays cheap.
JOIN_REACH = 48


class Finding(NamedTuple):
    """One entity without its value."""

    type: str
    start: int
    end: int
    score: float
    evidence: Evidence
    category: PipaCategory
    detail: str


class Analysis(NamedTuple):
    """What `Scanner.analyse` reports for one string, without the string: its findings, and its
    whole-text signals (categories, topics, grade, markings, languages, domains, length) as a
    classification with no entities, with the per-script counts."""

    findings: tuple[Finding, ...]
    signals: Classification
    counts: dict[str, int]


class Window(NamedTuple):
    """What the joined view reports for one window around field boundaries."""

    findings: tuple[Finding, ...]
    n2sf_grade: str
    markings: list[str]


def digest(kind: bytes, text: str) -> bytes:
    """The cache key of `text` for one kind of scan (`kind` personalises the hash): keyed, so it
    reveals nothing without the key."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=_KEY, digest_size=16, person=kind).digest()


def findings_of(entities: list[Entity]) -> tuple[Finding, ...]:
    return tuple(Finding(e.type, e.start, e.end, e.score, e.evidence, e.category, e.detail) for e in entities)


def entities_of(findings: tuple[Finding, ...], text: str) -> list[Entity]:
    """Fresh entities for `text` (callers set their paths), values cut from the text itself."""
    if not findings:
        return []
    return [Entity(f.type, f.start, f.end, text[f.start:f.end], f.score, f.evidence, f.category, f.detail)
            for f in findings]


class ScanCache:
    """Per-string classification by keyed digest; `capacity` 0 turns it off."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._table: OrderedDict[bytes, tuple[Analysis | Window, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._table)

    def mostly_cached(self, texts: list[str], budget: int) -> bool:
        """Whether classifying `texts` scans at most `budget` characters afresh: the strings not in
        the cache, plus the most a boundary window can add (twice the join reach per boundary).
        For deciding whether a large body needs a worker thread; it stops counting at the budget."""
        if self.capacity <= 0:
            return False
        left = budget - 2 * JOIN_REACH * max(0, len(texts) - 1)
        table = self._table
        for text in texts:
            if left < 0:
                return False
            if digest(b"a", text) not in table:
                left -= len(text)
        return left >= 0

    def _get(self, key: bytes) -> Analysis | Window | None:
        with self._lock:
            found = self._table.get(key)
            if found is None:
                self.misses += 1
                return None
            self._table.move_to_end(key)
            self.hits += 1
            return found[0]

    def _put(self, key: bytes, value: Analysis | Window) -> None:
        weight = 1 + len(value.findings)
        if weight > self.capacity:
            return
        with self._lock:
            old = self._table.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            self._table[key] = (value, weight)
            self._weight += weight
            while self._weight > self.capacity:
                _key, (_value, w) = self._table.popitem(last=False)
                self._weight -= w

    def analyse(self, text: str, analyse: Callable[[str], tuple[Classification, dict[str, int]]],
                ) -> tuple[Classification, dict[str, int]]:
        """`analyse(text)` (the scanner's), from the cache when this string was seen.

        A hit is cheap because it shares: its sets, lists and counts are the cache's, and with
        no findings the classification itself is, so callers only read what they get back (the
        entities, which they give paths, are always fresh)."""
        if self.capacity <= 0:
            return analyse(text)
        key = digest(b"a", text)
        hit = self._get(key)
        if isinstance(hit, Analysis):
            shell = hit.signals
            if not hit.findings:
                return shell, hit.counts
            return Classification(
                entities=entities_of(hit.findings, text), categories=shell.categories,
                sensitive_topics=shell.sensitive_topics, n2sf_grade=shell.n2sf_grade, markings=shell.markings,
                languages=shell.languages, domains=shell.domains, chars=shell.chars,
            ), hit.counts
        part, counts = analyse(text)
        shell = Classification(categories=set(part.categories), sensitive_topics=set(part.sensitive_topics),
                               n2sf_grade=part.n2sf_grade, markings=list(part.markings),
                               languages=dict(part.languages), domains=set(part.domains), chars=part.chars)
        self._put(key, Analysis(findings_of(part.entities), shell, dict(counts)))
        return part, counts

    def window(self, window: str, scan: Callable[[str], list[Entity]],
               markings: Callable[[str], tuple[str, list[str]]]) -> tuple[list[Entity], str, list[str]]:
        """The joined view of one window: `scan(window)` and `markings(window)`, from the cache
        when this window was seen (a conversation's earlier boundaries are the same every turn).
        The markings list is shared on a hit: read it only."""
        if self.capacity <= 0:
            grade, found = markings(window)
            return scan(window), grade, found
        key = digest(b"w", window)
        hit = self._get(key)
        if isinstance(hit, Window):
            return entities_of(hit.findings, window), hit.n2sf_grade, hit.markings
        entities = scan(window)
        grade, found = markings(window)
        self._put(key, Window(findings_of(entities), grade, list(found)))
        return entities, grade, found

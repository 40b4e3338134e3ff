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
from typing import Any

from nuri.privacy.types import Classification, Entity, Evidence, PipaCategory

# The per-process key of the digests: never stored, never logged.
_KEY = os.urandom(32)
# Characters on each side of a field boundary that the joined view of privacy/classify.py looks
# at: longer than any identifier with its context cue, short enough that the joined scan stays cheap.
JOIN_REACH = 48


# An entry is kept as plain tuples of strings and numbers, never as objects: the cyclic collector
# stops tracking such tuples after a few passes (a level of nesting a pass), so thousands of
# entries cost a full collection nothing. Kept as classifications (sets, lists, dataclasses,
# enums), the entries of a busy gateway's cache were 150,000 tracked objects, and each full
# collection walked them: 50–60 ms every ~900 requests (docs/benchmarks.md, "The collector").
#   finding:  (type, start, end, score, evidence value, category value, detail)
#   analysis: (findings, categories, topics, grade, markings, languages, domains, chars, counts)
#   window:   (findings, grade, markings)
Finding = tuple[str, int, int, float, str, str, str]
Entry = tuple[Any, ...]
_EVIDENCE = {e.value: e for e in Evidence}
_CATEGORY = {c.value: c for c in PipaCategory}


def digest(kind: bytes, text: str) -> bytes:
    """The cache key of `text` for one kind of scan (`kind` personalises the hash): keyed, so it
    reveals nothing without the key."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=_KEY, digest_size=16, person=kind).digest()


def findings_of(entities: list[Entity]) -> tuple[Finding, ...]:
    return tuple((e.type, e.start, e.end, e.score, e.evidence.value, e.category.value, e.detail) for e in entities)


def entities_of(findings: tuple[Finding, ...], text: str) -> list[Entity]:
    """Fresh entities for `text` (callers set their paths), values cut from the text itself."""
    if not findings:
        return []
    return [Entity(kind, start, end, text[start:end], score, _EVIDENCE[evidence], _CATEGORY[category], detail)
            for kind, start, end, score, evidence, category, detail in findings]


def _analysis(part: Classification, counts: dict[str, int]) -> Entry:
    return (findings_of(part.entities), tuple(c.value for c in part.categories), tuple(part.sensitive_topics),
            part.n2sf_grade, tuple(part.markings), tuple(part.languages.items()), tuple(part.domains), part.chars,
            tuple(counts.items()))


def _classification(entry: Entry, text: str) -> tuple[Classification, dict[str, int]]:
    findings, categories, topics, grade, markings, languages, domains, chars, counts = entry
    return Classification(
        entities=entities_of(findings, text), categories={_CATEGORY[c] for c in categories},
        sensitive_topics=set(topics), n2sf_grade=grade, markings=list(markings), languages=dict(languages),
        domains=set(domains), chars=chars,
    ), dict(counts)


class ScanCache:
    """Per-string classification by keyed digest; `capacity` 0 turns it off."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._table: OrderedDict[bytes, tuple[Entry, int]] = OrderedDict()
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

    def _get(self, key: bytes) -> Entry | None:
        with self._lock:
            found = self._table.get(key)
            if found is None:
                self.misses += 1
                return None
            self._table.move_to_end(key)
            self.hits += 1
            return found[0]

    def _put(self, key: bytes, value: Entry) -> None:
        weight = 1 + len(value[0])       # one plus its findings
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
        """`analyse(text)` (the scanner's), from the cache when this string was seen; a hit is a
        fresh classification, its entities' values cut from `text`."""
        if self.capacity <= 0:
            return analyse(text)
        key = digest(b"a", text)
        hit = self._get(key)
        if hit is not None:
            return _classification(hit, text)
        part, counts = analyse(text)
        self._put(key, _analysis(part, counts))
        return part, counts

    def window(self, window: str, scan: Callable[[str], list[Entity]],
               markings: Callable[[str], tuple[str, list[str]]]) -> tuple[list[Entity], str, list[str]]:
        """The joined view of one window: `scan(window)` and `markings(window)`, from the cache
        when this window was seen (a conversation's earlier boundaries are the same every turn)."""
        if self.capacity <= 0:
            grade, found = markings(window)
            return scan(window), grade, found
        key = digest(b"w", window)
        hit = self._get(key)
        if hit is not None:
            findings, grade, marked = hit
            return entities_of(findings, window), grade, list(marked)
        entities = scan(window)
        grade, found = markings(window)
        self._put(key, (findings_of(entities), grade, tuple(found)))
        return entities, grade, found

"""The scanner: normalise once, run the detectors that can match, resolve overlaps, map back.

Speed matters (every request passes here): regexes are compiled at import and start with a plain
character class (so the engine's fast first-character scan applies), and a detector runs only
where a cheap prefilter says it can match: identifier detectors see only windows around digit
runs (joined by blank lines, hits mapped back), addresses only windows around "로/길/동 + number",
e-mail only around ``@``; secrets, dates of birth and passports only when a hint word occurs.
Which detectors exist, and each one's prefilter, is declared in detectors/registry.py; the scanner
turns that list into steps once per settings (`plan`). Overlaps keep the highest-scoring entity,
then the longest.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from itertools import accumulate

from nuri.config import PrivacySettings
from nuri.privacy import signals
from nuri.privacy.decode import decode
from nuri.privacy.detectors.base import RUN_START, Hit
from nuri.privacy.detectors.registry import REGISTRATIONS, category
from nuri.privacy.detectors.spec import Detect, Gate, Registration, Shape, Trigger
from nuri.privacy.normalize import Normalized, normalize
from nuri.privacy.types import Classification, Entity, Evidence, PipaCategory

_SEPARATOR = "\n\n\n\n"
_SNAP = 32


_WS = re.compile(r"\s")


def _snap_left(text: str, a: int) -> int:
    """Move `a` left to just after whitespace (at most _SNAP characters)."""
    lo = max(0, a - _SNAP)
    cut = max(text.rfind(" ", lo, a), text.rfind("\n", lo, a), text.rfind("\t", lo, a))
    return cut + 1 if cut >= 0 else lo


def _snap_right(text: str, b: int) -> int:
    """Move `b` right to the next whitespace (at most _SNAP characters)."""
    m = _WS.search(text, b, min(len(text), b + _SNAP))
    return m.start() if m else min(len(text), b + _SNAP)


def windows(text: str, trigger: re.Pattern[str], before: int, after: int, snap: bool = True) -> list[tuple[int, int]]:
    """Merged spans around each trigger match; `snap` widens them to whitespace so that words at
    the edges stay whole (addresses walk back over words; identifiers need only fixed context)."""
    n = len(text)
    out: list[tuple[int, int]] = []
    for m in trigger.finditer(text):
        a, b = max(0, m.start() - before), min(n, m.end() + after)
        if snap:
            a, b = _snap_left(text, a), _snap_right(text, b)
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _run_windowed(text: str, spans: list[tuple[int, int]], detectors: list[Detect]) -> list[Hit]:
    """Run detectors once over the windows joined by blank lines; map hits back to `text`."""
    if not spans:
        return []
    if len(spans) == 1 and spans[0] == (0, len(text)):
        return [h for fn in detectors for h in fn(text)]
    joined_starts: list[int] = []
    parts: list[str] = []
    pos = 0
    for a, b in spans:
        joined_starts.append(pos)
        parts.append(text[a:b])
        pos += (b - a) + len(_SEPARATOR)
    joined = _SEPARATOR.join(parts)
    hits: list[Hit] = []
    for fn in detectors:
        for h in fn(joined):
            i = bisect.bisect_right(joined_starts, h.start) - 1
            shift = spans[i][0] - joined_starts[i]
            if h.end - joined_starts[i] <= spans[i][1] - spans[i][0]:
                hits.append(h._replace(start=h.start + shift, end=h.end + shift))
    return hits


# The decoded view is scanned only around what decoding rewrote (the rest reads as in the plain
# view), with room for context words before a value and an e-mail's domain after its '@'.
_DECODED_REACH = 96


def _rewritten(view: Normalized) -> list[tuple[int, int]]:
    """Merged spans of `view.text` around its rewritten characters, widened to whitespace."""
    text, n = view.text, len(view.text)
    merged: list[tuple[int, int]] = []
    for seg in view.segments or ():
        if seg.exact:
            continue
        a, b = max(0, seg.n_start - _DECODED_REACH), min(n, seg.n_end + _DECODED_REACH)
        if merged and a <= merged[-1][1] + 2 * _SNAP:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [(_snap_left(text, a), _snap_right(text, b)) for a, b in merged]


def _in_original(view: Normalized, hits: list[Hit]) -> list[Hit]:
    """`hits` (sorted, not overlapping, offsets in `view.text`) with offsets in the original text."""
    if view.identity:
        return hits
    spans = view.spans([(h.start, h.end) for h in hits])
    return [h._replace(start=start, end=end) for h, (start, end) in zip(hits, spans, strict=True)]


def merge_views(plain: list[Hit], decoded: list[Hit]) -> list[Hit]:
    """Hits of the plain and the decoded view (original offsets), overlaps resolved as within one
    view. A plain hit that loses to an overlapping one without lying inside it widens the winner:
    decoding never leaves part of what the plain view found unmasked."""
    chosen = resolve(plain + decoded)
    kept = set(chosen)
    for h in plain:
        if h not in kept:
            chosen = _absorb(chosen, h)
    return chosen


def _absorb(chosen: list[Hit], h: Hit) -> list[Hit]:
    """`chosen` (sorted, not overlapping) once it covers all of `h`."""
    over = [c for c in chosen if c.start < h.end and h.start < c.end]
    pos = h.start
    for c in over:
        if c.start > pos:
            break
        pos = max(pos, c.end)
    if pos >= h.end:
        return chosen
    best = max([*over, h], key=lambda c: (c.score, c.end - c.start))
    widened = best._replace(start=min(c.start for c in [*over, h]), end=max(c.end for c in [*over, h]))
    return sorted([c for c in chosen if c not in over] + [widened], key=lambda c: c.start)


def resolve(hits: list[Hit]) -> list[Hit]:
    """Non-overlapping hits: highest score first, then longest, then earliest; sorted by start."""
    chosen_starts: list[int] = []
    chosen: list[Hit] = []
    for h in sorted(hits, key=lambda h: (-h.score, -(h.end - h.start), h.start)):
        if h.end <= h.start:
            continue
        i = bisect.bisect_left(chosen_starts, h.start)
        if i > 0 and chosen[i - 1].end > h.start:
            continue
        if i < len(chosen) and chosen[i].start < h.end:
            continue
        chosen_starts.insert(i, h.start)
        chosen.insert(i, h)
    return chosen


def _tagged_names_yield(names: list[Hit], others: list[Hit], min_score: float) -> list[Hit]:
    """Names only the learned tagger found, minus those overlapping another reported entity: a
    tagged "name" inside an address (세종대로, 김포공항 주차장) is the address's, whatever the scores say."""
    if not others or all(h.evidence is not Evidence.MODEL for h in names):
        return names
    spans = sorted((h.start, h.end) for h in others if h.score >= min_score)
    if not spans:
        return names
    starts = [a for a, _ in spans]
    reach = list(accumulate((b for _, b in spans), max))      # furthest end among spans up to here
    out: list[Hit] = []
    for h in names:
        if h.evidence is Evidence.MODEL:
            i = bisect.bisect_left(starts, h.end)
            if i and reach[i - 1] > h.start:
                continue
        out.append(h)
    return out


# One step of a scan: adds its hits for (text, lowered) to the list.
Step = Callable[[str, str, list[Hit]], None]


def _shapes(shapes: list[Shape]) -> Detect:
    """One detect function for several digit-run shapes: each is an optional lookahead after a
    run's first digit, so one scan tries them all at every run start and none hides another."""
    pattern = re.compile(RUN_START + "".join(f"(?:{shape.pattern})?" for shape in shapes))
    judges = [(shape.group, shape.hit) for shape in shapes]

    def detect(text: str) -> list[Hit]:
        found: list[Hit] = []
        for m in pattern.finditer(text):
            if m.lastindex is None:
                continue
            for group, hit in judges:
                if m.group(group) is not None and (h := hit(text, m)) is not None:
                    found.append(h)
        return found

    return detect


def _windowed_step(trigger: Trigger, gate: Gate | None, detectors: list[Detect]) -> Step:
    pattern, before, after, snap = trigger.pattern, trigger.before, trigger.after, trigger.snap

    def step(text: str, lowered: str, hits: list[Hit]) -> None:
        if gate is None or gate(text, lowered):
            hits += _run_windowed(text, windows(text, pattern, before, after, snap), detectors)

    return step


def _whole_step(reg: Registration, detect: Callable[..., list[Hit]], min_score: float) -> Step:
    gate, lowered_too, yields = reg.gate, reg.lowered, reg.yields

    def step(text: str, lowered: str, hits: list[Hit]) -> None:
        if gate is not None and not gate(text, lowered):
            return
        found = detect(text, lowered) if lowered_too else detect(text)
        hits += _tagged_names_yield(found, hits, min_score) if yields else found

    return step


def plan(settings: PrivacySettings, replace: dict[str, Detect] | None = None,
         registrations: Sequence[Registration] = REGISTRATIONS) -> list[Step]:
    """The scan steps for `settings`: the registered detectors that are not disabled, those
    sharing a trigger (and gate) grouped into one windowing, shapes into one regex. `replace`
    swaps a registration's detect function by name (benchmarks compare detectors this way)."""
    disabled = set(settings.disabled_entities)
    steps: list[Step] = []
    group: list[Registration] = []

    def close_group() -> None:
        if not group:
            return
        detectors: list[Detect] = []
        shapes = [reg.shape for reg in group if reg.shape is not None]
        for reg in group:
            if reg.shape is None:
                detectors.append(_detect_of(reg, settings, replace))
            elif reg.shape is shapes[0]:
                detectors.append(_shapes(shapes))   # at the first shape's place, with all of them
        trigger, gate = group[0].trigger, group[0].gate
        assert trigger is not None
        steps.append(_windowed_step(trigger, gate, detectors))
        group.clear()

    for reg in registrations:
        if not reg.types - disabled:
            continue
        if group and (reg.trigger is not group[0].trigger or reg.gate is not group[0].gate):
            close_group()
        if reg.trigger is not None:
            group.append(reg)
            continue
        close_group()
        steps.append(_whole_step(reg, _detect_of(reg, settings, replace), settings.min_score))
    close_group()
    return steps


def _detect_of(reg: Registration, settings: PrivacySettings, replace: dict[str, Detect] | None) -> Callable[..., list[Hit]]:
    if replace and reg.name in replace:
        return replace[reg.name]
    if reg.build is not None:
        return reg.build(settings)
    assert reg.detect is not None
    return reg.detect


class Scanner:
    """Finds personal data in text; offsets refer to the text as given."""

    def __init__(self, settings: PrivacySettings | None = None, *, replace: dict[str, Detect] | None = None,
                 registrations: Sequence[Registration] = REGISTRATIONS) -> None:
        """`replace`: detect functions by registration name, in place of the registered ones;
        `registrations`: the detectors to run, by default every registered one."""
        self.settings = settings or PrivacySettings()
        self._disabled = set(self.settings.disabled_entities)
        self._steps = plan(self.settings, replace, registrations)
        self._min_score = self.settings.min_score

    def _hits(self, text: str) -> list[Hit]:
        hits: list[Hit] = []
        lowered = text.lower()
        for step in self._steps:
            step(text, lowered, hits)
        if self._disabled:
            hits = [h for h in hits if h.type not in self._disabled]
        return [h for h in hits if h.score >= self._min_score]

    def scan(self, text: str) -> list[Entity]:
        """Entities sorted by start, non-overlapping, spans in the original `text`."""
        if not text:
            return []
        folded = normalize(text)
        return self._entities(text, folded, decode(text, folded))

    def _entities(self, text: str, norm: Normalized, decoded: Normalized | None = None) -> list[Entity]:
        """Entities of the folded view `norm` and, if the text holds encoded runs, of the decoded
        view, merged in original offsets."""
        hits = _in_original(norm, resolve(self._hits(norm.text)))
        if decoded is not None:
            found = _run_windowed(decoded.text, _rewritten(decoded), [self._hits])
            hits = merge_views(hits, _in_original(decoded, resolve(found)))
        spans = [(h.start, h.end) for h in hits]
        return [Entity(h.type, start, end, text[start:end], round(h.score, 3), h.evidence, category(h.type), h.detail)
                for h, (start, end) in zip(hits, spans, strict=True)]

    def classify_text(self, text: str) -> Classification:
        """Entities plus whole-text signals (topics, N2SF grade, languages, domains) of one text."""
        return self.analyse(text)[0]

    def analyse(self, text: str) -> tuple[Classification, dict[str, int]]:
        """`classify_text` plus the per-script character counts, so requests can sum them."""
        normalized = normalize(text)
        decoded = decode(text, normalized) if text else None
        entities = self._entities(text, normalized, decoded) if text else []
        norm = normalized.text
        grade, found = signals.markings(norm, self.settings.n2sf_markings)
        if decoded is not None:       # a marking written encoded counts as well
            decoded_grade, decoded_found = signals.markings(decoded.text, self.settings.n2sf_markings)
            grade = signals.higher(grade, decoded_grade)
            found += [m for m in decoded_found if m not in found]
        found_topics, found_domains = signals.topics_and_domains(norm)
        cats = {e.category for e in entities}
        if found_topics:
            cats.add(PipaCategory.SENSITIVE)
        counts = signals.script_counts(norm)
        return Classification(
            entities=entities,
            categories=cats,
            sensitive_topics=found_topics,
            n2sf_grade=grade,
            markings=found,
            languages=signals.shares(counts),
            domains=found_domains,
            chars=len(text),
        ), counts

"""Classification of a whole request: what it carries, as the input of policy.

Every string the walk in `fields` yields is scanned — any key, any depth, tool definitions and
schemas included — so a value hidden in a tool description or an unknown key counts like one in
the user's message. Content Nuri cannot read (image, audio, file parts) is recorded by media type.

A value can also be split across fields (`…900101` in one text part, `1234568` in the next, or
across two messages). Besides each field, the joined view of all fields in order is scanned
around every boundary between them; an entity that crosses a boundary is cut into one piece per
field it touches, and each piece is reported with its field's path so masking removes all of it.

Text beyond `privacy.max_scan_chars` in all is refused (413) before any scan, or with
`over_limit: keep_home` scanned up to the cap and the rest recorded as unscanned content, which
keeps the request in the home country: the cost of a scan is bounded, and nothing is forwarded
abroad unread.

Entities keep their values only in memory; `Classification.summary()` is what may leave. With
a `ScanCache` (the evaluator's), a string or a boundary window seen before is not scanned again:
its findings come back from the cache, which holds no text (privacy/scan_cache.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nuri.errors import PayloadTooLarge
from nuri.privacy import signals
from nuri.privacy.fields import Path, Unscanned, walk
from nuri.privacy.normalize import normalize
from nuri.privacy.scan_cache import JOIN_REACH, ScanCache
from nuri.privacy.scanner import Scanner
from nuri.privacy.types import SPLIT_PIECE, Classification, Entity, PipaCategory

# JOIN_REACH (scan_cache.py, which bounds a body's fresh scan with it): characters on each side of
# a boundary that the joined view looks at.
JOINED: Path = ("<joined>",)
# The media type a request's text beyond `privacy.max_scan_chars` is recorded under with
# `over_limit: keep_home`: content kind `file`, so rules on unscanned content apply to it.
OVER_SCAN_LIMIT = "text/x-nuri-over-scan-limit"


def classify_request(body: dict[str, Any], endpoint: str, scanner: Scanner) -> Classification:
    """Classify every string of a request body (the endpoint does not change the walk)."""
    if not isinstance(body, dict):
        return Classification()
    return classify_texts(*walk(body), scanner)


def classify_texts(texts: list[tuple[Path, str]], unscanned: list[Unscanned], scanner: Scanner,
                   cache: ScanCache | None = None) -> Classification:
    """Classify a request already walked: its texts with their paths, and what could not be read;
    with `cache`, strings and boundary windows seen before are not rescanned (same result)."""
    result = Classification()
    over = _over_scan_limit(texts, scanner)
    if over:
        texts = _within(texts, scanner.settings.max_scan_chars)
    counts: dict[str, int] = {}
    for path, text in texts:
        part, scripts = cache.analyse(text, scanner.analyse) if cache is not None else scanner.analyse(text)
        for e in part.entities:
            e.path = path
        _merge(result, part)
        for script, n in scripts.items():
            counts[script] = counts.get(script, 0) + n
        result.chars += part.chars
    if len(texts) > 1:
        _join_boundaries(result, texts, scanner, cache)
    result.unscanned = [u.media_type for u in unscanned] + ([OVER_SCAN_LIMIT] if over else [])
    if result.sensitive_topics:
        result.categories.add(PipaCategory.SENSITIVE)
    result.languages = signals.shares(counts)
    return result


def _over_scan_limit(texts: list[tuple[Path, str]], scanner: Scanner) -> bool:
    """Whether the text is over the scan cap; refused here under `over_limit: refuse`, so that one
    request cannot hold a scanner for seconds and nothing over the cap is forwarded unscanned."""
    settings = scanner.settings
    limit = getattr(settings, "max_scan_chars", None)
    if limit is None:
        return False
    total = sum(len(t) for _p, t in texts)
    if total <= limit:
        return False
    if getattr(settings, "over_limit", "refuse") != "keep_home":
        raise PayloadTooLarge(
            f"request text is {total} characters; the scan limit is {limit} (privacy.max_scan_chars)",
            code="scan_limit_exceeded",
        )
    return True


def _within(texts: list[tuple[Path, str]], limit: int) -> list[tuple[Path, str]]:
    """The fields in order, cut to `limit` characters in all: what keep_home scans."""
    out: list[tuple[Path, str]] = []
    for path, text in texts:
        if limit <= 0:
            break
        out.append((path, text[:limit]))
        limit -= len(text)
    return out


def _merge(result: Classification, part: Classification) -> None:
    result.entities.extend(part.entities)
    result.categories |= part.categories
    result.sensitive_topics |= part.sensitive_topics
    result.domains |= part.domains
    for m in part.markings:
        if m not in result.markings:
            result.markings.append(m)
    result.n2sf_grade = signals.higher(result.n2sf_grade, part.n2sf_grade)


def _join_boundaries(result: Classification, texts: list[tuple[Path, str]], scanner: Scanner,
                     cache: ScanCache | None = None) -> None:
    """Scan the joined text around each boundary between fields; add what crosses one."""
    starts: list[int] = []
    pos = 0
    for _path, text in texts:
        starts.append(pos)
        pos += len(text)
    joined = "".join(t for _p, t in texts)
    marked = scanner.settings.n2sf_markings

    def markings_of(window: str) -> tuple[str, list[str]]:
        return signals.markings(normalize(window).text, marked)

    for a, b in _windows(starts[1:], len(joined)):
        window = joined[a:b]
        if cache is not None:
            found, grade, markings = cache.window(window, scanner.scan, markings_of)
        else:
            found = scanner.scan(window)
            grade, markings = markings_of(window)
        crossing = [e for e in found if _crosses(a + e.start, a + e.end, starts)]
        for e in crossing:
            result.entities.extend(_pieces(e, a, starts, texts, result.entities))
            # the whole value too, under a path no field has: the reply guard lets it back
            # to the client (it was sent), and masking works from the pieces
            whole = f"{e.detail}; joined across fields" if e.detail else "joined across fields"
            result.entities.append(replace(e, start=a + e.start, end=a + e.end, path=JOINED, detail=whole))
            result.categories.add(e.category)
        if markings:          # a marking written across two fields ("[대" | "외비]")
            _merge(result, Classification(markings=markings, n2sf_grade=grade))


def _windows(boundaries: list[int], total: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for b in boundaries:
        a, z = max(0, b - JOIN_REACH), min(total, b + JOIN_REACH)
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], z)
        else:
            out.append((a, z))
    return out


def _crosses(start: int, end: int, starts: list[int]) -> bool:
    return any(start < b < end for b in starts[1:])


def _pieces(e: Entity, offset: int, starts: list[int], texts: list[tuple[Path, str]],
            known: list[Entity]) -> list[Entity]:
    """The part of a crossing entity inside each field it touches, as that field's entity; a
    piece already inside an entity found in its own field adds nothing."""
    start, end = offset + e.start, offset + e.end
    out: list[Entity] = []
    for i, (path, text) in enumerate(texts):
        lo, hi = starts[i], starts[i] + len(text)
        if hi <= start or lo >= end or hi == lo:
            continue
        s, t = max(start, lo) - lo, min(end, hi) - lo
        if any(k.path == path and k.start <= s and t <= k.end for k in known):
            continue
        out.append(replace(e, start=s, end=t, text=text[s:t], path=path, detail=SPLIT_PIECE))
    return out

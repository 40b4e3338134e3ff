"""Test helpers for pseudonymisation, restoration and reply-guard tests.

`StandInScanner` is a tiny regex scanner with fixed, predictable output, so the streaming
properties can be checked independently of detector quality; `real_scanner()` returns Nuri's
Scanner when it is importable, for the end tests.
"""

from __future__ import annotations

import re

from nuri.privacy.types import Entity, Evidence, PipaCategory

_PATTERNS = [
    ("KR_RRN", re.compile(r"(?<!\d)\d{6}-[1-8]\d{6}(?!\d)"), PipaCategory.UNIQUE_ID),
    ("CARD", re.compile(r"(?<!\d)\d{4}-\d{4}-\d{4}-\d{4}(?!\d)"), PipaCategory.FINANCIAL),
    ("PHONE", re.compile(r"(?<!\d)01[016789]-?\d{3,4}-?\d{4}(?!\d)"), PipaCategory.PERSONAL),
    ("EMAIL", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
     PipaCategory.PERSONAL),
    ("PERSON", re.compile(r"김철수|이영희|박민수|최지우|Jane Roe"), PipaCategory.PERSONAL),
]


class StandInScanner:
    """Regex-only scanner with the Scanner interface (sorted, non-overlapping entities)."""

    def scan(self, text: str) -> list[Entity]:
        found: list[Entity] = []
        for etype, pat, cat in _PATTERNS:
            for m in pat.finditer(text):
                found.append(Entity(etype, m.start(), m.end(), m.group(0), 0.9, Evidence.PATTERN, cat))
        found.sort(key=lambda e: (e.start, -(e.end - e.start)))
        out: list[Entity] = []
        last = -1
        for e in found:
            if e.start >= last:
                out.append(e)
                last = e.end
        return out


def real_scanner():
    """Nuri's Scanner, or None while it is not importable."""
    try:
        from nuri.privacy.scanner import Scanner
    except ImportError:
        return None
    return Scanner()

"""Chunks by structure: a chunk never crosses a section (heading or page); inside one,
paragraphs are packed up to the size limit, and a paragraph longer than that is cut at sentence
ends. Offsets are character positions in the document's text, its sections joined by a blank
line, so a citation can point at the exact span.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nuri.rag.readers import Document

SECTION_GAP = "\n\n"
_PARAGRAPHS = re.compile(r"\n\s*\n")
# after a sentence end (., ?, !, 다. 요. and CJK full stops) and its spaces
_SENTENCE_END = re.compile(r"(?<=[.?!。？！])\s+")


@dataclass(slots=True)
class Piece:
    text: str
    heading: str
    page: int | None
    start: int
    end: int


def chunk_document(doc: Document, max_chars: int) -> list[Piece]:
    pieces: list[Piece] = []
    base = 0
    for section in doc.sections:
        for start, end in _pack(section.text, max_chars):
            text = section.text[start:end].strip()
            if text:
                lead = len(section.text[start:end]) - len(section.text[start:end].lstrip())
                pieces.append(Piece(text, section.heading, section.page, base + start + lead,
                                    base + start + lead + len(text)))
        base += len(section.text) + len(SECTION_GAP)
    return pieces


def _spans(text: str, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for m in pattern.finditer(text):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, len(text)))
    return [(a, b) for a, b in out if text[a:b].strip()]


def _pack(text: str, limit: int) -> list[tuple[int, int]]:
    """Spans of `text` no longer than `limit`, made of whole paragraphs where they fit."""
    units: list[tuple[int, int]] = []
    for a, b in _spans(text, _PARAGRAPHS):
        if b - a <= limit:
            units.append((a, b))
            continue
        for sa, sb in _spans(text[a:b], _SENTENCE_END):
            for cut in range(sa, sb, limit):        # a sentence over the limit: hard cuts
                units.append((a + cut, a + min(sb, cut + limit)))
    out: list[tuple[int, int]] = []
    for a, b in units:
        if out and b - out[-1][0] <= limit:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out

"""Shared types of the personal-data engine.

An `Entity` holds its value only while a request is in flight; anything that leaves the
request (audit, logs, metrics, explain) uses `Classification.summary()`, which holds types,
counts and keyed hashes, never values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class PipaCategory(StrEnum):
    UNIQUE_ID = "unique_identification"   # PIPA Art. 24: RRN, FRN, passport, driver licence
    SENSITIVE = "sensitive"               # PIPA Art. 23 topics (health, beliefs, …)
    PERSONAL = "personal"                 # other personal information
    FINANCIAL = "credit_financial"        # card, bank account (Credit Information Act)
    SECRET = "secret"                     # API keys, tokens, passwords


class Evidence(StrEnum):
    CHECKSUM = "checksum"     # a check digit validated
    CONTEXT = "context"       # a nearby keyword (주민등록번호, 계좌, 님 …)
    PATTERN = "pattern"       # the shape alone
    MODEL = "model"           # morphological analysis / dictionary


# The detail of an entity that is one field's piece of a value split across fields.
SPLIT_PIECE = "piece of a value split across fields"


@dataclass(slots=True)
class Entity:
    type: str                 # KR_RRN, PHONE, PERSON, … (see privacy/README in docs/architecture.md)
    start: int                # character offsets in the original text
    end: int
    text: str                 # the value: in memory, inside the request only
    score: float
    evidence: Evidence
    category: PipaCategory
    detail: str = ""          # why it counts ("checksum", "shape+cue, never-issued area 900"); no value
    path: tuple[Any, ...] = ()  # which request field it came from (fields.request_texts path)


@dataclass(slots=True)
class Classification:
    """What a whole request carries; the input of policy."""

    entities: list[Entity] = field(default_factory=list)
    categories: set[PipaCategory] = field(default_factory=set)
    sensitive_topics: set[str] = field(default_factory=set)     # health, beliefs, union, criminal, …
    n2sf_grade: str = "O"                                       # C | S | O
    markings: list[str] = field(default_factory=list)           # the markings found (e.g. "대외비")
    languages: dict[str, float] = field(default_factory=dict)   # hangul, latin, han, kana → share
    domains: set[str] = field(default_factory=set)              # AI Basic Act high-impact tags
    chars: int = 0
    unscanned: list[str] = field(default_factory=list)          # media types of content not read

    @property
    def entity_types(self) -> set[str]:
        return {e.type for e in self.entities}

    def counts(self) -> dict[str, int]:
        """Entities per type; a value split across fields counts once (its pieces do not)."""
        out: dict[str, int] = {}
        for e in self.entities:
            if e.detail != SPLIT_PIECE:
                out[e.type] = out.get(e.type, 0) + 1
        return out

    def summary(self) -> dict[str, Any]:
        """What may leave the request (audit, logs, explain, `nuri scan --json`): no values."""
        return {
            "entity_counts": dict(sorted(self.counts().items())),
            "categories": sorted(c.value for c in self.categories),
            "sensitive_topics": sorted(self.sensitive_topics),
            "n2sf_grade": self.n2sf_grade,
            "markings": list(self.markings),
            "languages": dict(self.languages),
            "domains": sorted(self.domains),
            "chars": self.chars,
            "unscanned_content": sorted(set(self.unscanned)),
        }

    @property
    def content_kinds(self) -> set[str]:
        """image | audio | file for each unscanned media type: what `content:` in a rule matches."""
        return {content_kind(m) for m in self.unscanned}


def content_kind(media_type: str) -> str:
    major = media_type.split("/", 1)[0]
    return major if major in ("image", "audio") else "file"

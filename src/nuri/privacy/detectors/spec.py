"""How a detector declares itself: the entity types it reports and where and how it runs.

Each detector module declares its `EntityKind`s (type name, PIPA category, surrogate maker, how
two spellings of a value compare) and one or more `Registration`s (detect function and the cheap
prefilter that decides where it may run); `registry.py` lists the registrations in scan order and
everything else (the scanner, categories, policy's known types, surrogates) reads them from there.

Prefilters keep the scanner fast: a detector with a `trigger` sees only windows around the
trigger's matches (detectors sharing one `Trigger` object share one windowing); a `gate` is a
yes/no test on the whole text (and its lower-cased copy) that skips the detector entirely; a
`shape` is a lookahead tried at every start of a digit run, combined with the other shapes of its
trigger into a single regex scan.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from nuri.privacy.detectors.base import Hit
from nuri.privacy.surrogates import Surrogate
from nuri.privacy.types import PipaCategory

if TYPE_CHECKING:
    from nuri.config import PrivacySettings

Fold = Literal["digits", "lower", "text"]
Detect = Callable[[str], list[Hit]]
Gate = Callable[[str, str], bool]
"""(text, text.lower()) → may the detector match anywhere in it?"""


@dataclass(frozen=True, slots=True)
class EntityKind:
    """One entity type as policy, audit and the pseudonymiser see it."""

    name: str                     # KR_RRN, PHONE, …: what rules name (policy `entities:`)
    category: PipaCategory        # PIPA / Credit Information Act category
    surrogate: Surrogate          # the fake value's maker (surrogates.py)
    fold: Fold = "text"           # digits: separators do not count; lower: case does not; text: spacing does not


@dataclass(frozen=True, slots=True, eq=False)
class Trigger:
    """Windows of `before`/`after` characters around each match of `pattern`; `snap` widens them
    to whitespace so words at the edges stay whole. Compared by identity: detectors given the same
    trigger object are run together over one set of windows."""

    pattern: re.Pattern[str]
    before: int
    after: int
    snap: bool = True


@dataclass(frozen=True, slots=True)
class Shape:
    """A lookahead tried right after the first digit of every digit run (`base.RUN_START`), with a
    named group `group` that captures the rest of the value, and `hit` that judges a match."""

    pattern: str
    group: str
    hit: Callable[[str, re.Match[str]], Hit | None]


@dataclass(frozen=True, slots=True)
class Registration:
    """One detector run: exactly one of `detect`, `shape` or `build` (for a detector configured by
    settings); `lowered` passes `text.lower()` as a second argument to `detect`; `yields` drops
    model-tagged hits that overlap any hit found before (a tagged "name" inside an address)."""

    name: str
    kinds: tuple[EntityKind, ...]
    detect: Callable[..., list[Hit]] | None = None
    trigger: Trigger | None = None
    gate: Gate | None = None
    shape: Shape | None = None
    build: Callable[[PrivacySettings], Detect] | None = None
    lowered: bool = False
    yields: bool = False

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.detect, self.shape, self.build)) != 1:
            raise ValueError(f"detector {self.name}: give exactly one of detect, shape, build")
        if self.shape is not None and self.trigger is None:
            raise ValueError(f"detector {self.name}: a shape runs within a trigger's windows")

    @property
    def types(self) -> frozenset[str]:
        return frozenset(k.name for k in self.kinds)


NUMERIC = Trigger(
    re.compile(r"\d(?:(?:[-.\s–]?\d){5,}|\d{2}[A-Z]\d{4}|\s?[가-힣]\s?\d{4}|\.\d{1,3}\.\d)"), before=32, after=16,
    snap=False)
"""Identifiers: most of a Korean text has no digit run, and every identifier holds six or more
digits (optionally separated), a plate pattern or an IPv4 dot. No snapping is needed: a match
starts at most 6 characters before its digits ("+82 ", "(02) ", "서울 "), context is looked for at
most 24 characters before a match (one more for a lookbehind) and 12 after it, so these reaches
see exactly what the whole text would show."""

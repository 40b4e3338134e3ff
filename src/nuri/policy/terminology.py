"""Terminology rules: the organisation's preferred names, and the contested ones a reply may carry.

A term (a policy pack's `terms:`, or a glossary file in the same format listed in
`policy.files`) names a preferred form per language (ko, en, ja, zh) and the contested forms per
language, with one action:

  annotate  the preferred form first, the model's word after it: "East Sea (Sea of Japan)"
  rewrite   the preferred form instead: "East Sea"
  flag      the reply is unchanged; the x-nuri-terminology header, a metric and the audit record
            name the term
  block     the reply is refused (a stream ends with an error event before the term is sent)

Matching is word-aware, case- and script-aware. A Latin form matches whole words only, in any
case ("sea of japan"), never inside a longer word ("Sea of Japanese studies"); a Hangul form may be
followed by a particle (일본해는, 일본해의) but not by another syllable that makes it a longer word
(일본해군); Han and kana forms, written without spaces, match anywhere except where a `keep` form
(日本海軍, the navy) starts. A form written the same in Japanese and Chinese (日本海) takes the
language of the text around it: kana nearby means Japanese. The agreed dual naming ("East Sea
(Sea of Japan)", "Sea of Japan (East Sea)") is already annotated: annotate and flag leave it,
rewrite keeps only the preferred form, block refuses it.

`TermSet` is the compiled form (one regex over every form, longest first); the streaming text
filter that applies it, with the same hold-back as placeholder restoration, is
`policy/term_stream.py`. The eval harness's naming scorer reads the same terms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nuri.errors import PermissionDenied

TermAction = Literal["annotate", "rewrite", "flag", "block"]
Lang = Literal["ko", "en", "ja", "zh"]
LANGS: tuple[str, ...] = ("ko", "en", "ja", "zh")

# What may follow a Hangul form: a particle or ending, not another syllable of a longer word.
_PARTICLE_STARTS = frozenset("은는이가을를의에와과도만로으까부처보라야나랑하께서들며면란")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")


def _is_latin(ch: str) -> bool:
    return ch.isascii() and ch.isalnum() or "\u00c0" <= ch <= "\u024f"


def _is_hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3"


def _is_cjk(ch: str) -> bool:
    return "\u3040" <= ch <= "\u30ff" or "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


class Term(BaseModel):
    """One term of a pack or glossary; see the module docstring for the actions."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str = ""
    preferred: dict[Lang, str] = Field(description="the organisation's form, per language")
    contested: dict[Lang, list[str]] = Field(description="forms to act on, per language")
    action: TermAction = "annotate"
    keep: list[str] = Field(default_factory=list, description="longer words that start with a contested "
                                                               "form and are not it (日本海軍)")
    case_sensitive: bool = False

    @field_validator("contested", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _usable(self) -> Term:
        if not self.preferred or not all(v.strip() for v in self.preferred.values()):
            raise ValueError("'preferred' must name at least one non-empty form")
        forms = [f for fs in self.contested.values() for f in fs]
        if not forms:
            raise ValueError("'contested' must list at least one form")
        if any(not f.strip() or f != f.strip() for f in forms + self.keep):
            raise ValueError("contested and keep forms must be non-empty, without surrounding spaces")
        for lang in self.contested:
            if self.action in ("annotate", "rewrite") and lang not in self.preferred and "en" not in self.preferred:
                raise ValueError(f"contested forms in {lang!r} need a preferred form in {lang!r} (or 'en')")
        return self

    def preferred_for(self, lang: str) -> str:
        return self.preferred.get(lang) or self.preferred.get("en") or next(iter(self.preferred.values()))  # type: ignore[call-overload]


class TermBlocked(PermissionDenied):
    """A reply carried a term under a `block` rule; the client gets this error instead."""

    code = "reply_blocked"

    def __init__(self, term_id: str) -> None:
        super().__init__(f"the reply was withheld: it used a name that terminology rule {term_id} blocks")
        self.term_id = term_id


@dataclass(slots=True)
class TermLog:
    """What terminology did to one reply: (term id, action) → times; types of acts, never text."""

    hits: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, term_id: str, action: str) -> None:
        key = (term_id, action)
        self.hits[key] = self.hits.get(key, 0) + 1

    @property
    def corrected(self) -> int:
        """Occurrences changed or refused (annotate, rewrite, block); flags change nothing."""
        return sum(n for (_, action), n in self.hits.items() if action != "flag")

    def summary(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (term, action), n in sorted(self.hits.items()):
            out.setdefault(action, {})[term] = n
        return out


@dataclass(frozen=True, slots=True)
class Surface:
    """One literal the matcher looks for: a contested form, the dual naming, or a `keep` word."""

    term: Term
    kind: Literal["contested", "paired", "keep"]
    form: str
    langs: tuple[str, ...]


def _paired(pref: str, form: str) -> list[str]:
    out = []
    for a, b in ((pref, form), (form, pref)):
        for space in ("", " "):
            for left, right in (("(", ")"), ("（", "）")):
                out.append(f"{a}{space}{left}{b}{right}")
    return out


def _trie(words: Iterable[str], *, every_prefix: bool) -> str:
    """A regex matching any of `words` (longest first), or with `every_prefix` any non-empty
    prefix of one: an alternation shaped as a trie, so a position is given up at its first
    character instead of once per word."""
    root: dict[str, dict[str, Any]] = {}
    for w in words:
        node = root
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any], top: bool) -> str:
        branches = [re.escape(ch) + build(child, False) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if not top and (every_prefix or "" in node):
            return "(?:" + body + ")?"
        return body

    return build(root, True)


class TermSet:
    """Compiled terms: one case-insensitive regex over every surface and one for a text's tail that
    may still grow into one (what a stream holds back)."""

    def __init__(self, terms: Iterable[Term]) -> None:
        self.terms = list(terms)
        self.surfaces: dict[str, list[Surface]] = {}
        for term in self.terms:
            langs_of: dict[str, list[Lang]] = {}
            for lang, forms in term.contested.items():
                for form in forms:
                    langs_of.setdefault(form, []).append(lang)
            for form, langs in langs_of.items():
                self._add(Surface(term, "contested", form, tuple(langs)))
                for lang in langs:
                    for text in _paired(term.preferred_for(lang), form):
                        self._add(Surface(term, "paired", text, (lang,)))
            for form in term.keep:
                self._add(Surface(term, "keep", form, ()))
        keys = list(self.surfaces)
        self.max_len = max((len(k) for k in keys), default=0)
        self.ambiguous = any(len(s.langs) > 1 for ss in self.surfaces.values() for s in ss)
        # Both regexes run on the lower-cased text, case-sensitively: a pattern that starts with
        # plain characters lets the engine skip to the positions where a key can start, which
        # IGNORECASE or a boundary look-behind would not (both measured 4-10x slower per chunk).
        # Boundaries are checked in Python on the rare hits (`surface_at`).
        self.match = re.compile(_trie(keys, every_prefix=False)) if keys else None
        self.tail = re.compile("(?:" + _trie(keys, every_prefix=True) + r")\Z") if keys else None
        # A text whose last character appears in no key cannot end inside one: no tail to look for.
        self.key_chars = frozenset("".join(keys))

    def _add(self, surface: Surface) -> None:
        key = surface.form.lower()
        have = self.surfaces.setdefault(key, [])
        if not any(s.term.id == surface.term.id and s.kind == surface.kind for s in have):
            have.append(surface)

    def __bool__(self) -> bool:
        return bool(self.surfaces)

    def surface_at(self, text: str, start: int, end: int, before: str, *, final: bool) -> Surface | None | bool:
        """The surface a regex match at text[start:end] stands for (`before`: the character before
        it, "" at the start); None when it is not one there (a word boundary fails, a
        case-sensitive form differs); True when it cannot be told until more text comes."""
        found = text[start:end]
        for s in self.surfaces.get(found.lower(), ()):
            if s.term.case_sensitive and s.kind != "keep" and found != s.form:
                continue
            first, last = found[0], found[-1]
            if before and (_is_latin(first) and _is_latin(before) or _is_hangul(first) and _is_hangul(before)):
                continue
            if end >= len(text):
                if not final and (_is_latin(last) or _is_hangul(last)):
                    return True
                return s
            after = text[end]
            if _is_latin(last) and _is_latin(after):
                continue
            if _is_hangul(last) and _is_hangul(after) and after not in _PARTICLE_STARTS:
                continue
            return s
        return None


def contested_in(terms: TermSet, text: str) -> dict[str, int]:
    """Term id → contested occurrences in a whole text that a rule would act on (the dual naming
    and `keep` words do not count): what the eval leaderboard rates replies by."""
    found: dict[str, int] = {}
    if terms.match is None:
        return found
    low = text.lower()
    m = terms.match.search(low) if len(low) == len(text) else None
    while m is not None:
        start, end = m.start(), m.end()
        surface = terms.surface_at(text, start, end, text[start - 1] if start else "", final=True)
        if isinstance(surface, Surface):
            if surface.kind == "contested":
                found[surface.term.id] = found.get(surface.term.id, 0) + 1
            m = terms.match.search(low, end)
        else:
            m = terms.match.search(low, start + 1)
    return found


def language_of(surface: Surface, context: str) -> str:
    """The language a matched form is written in: its only one, or (日本海: ja and zh) by script."""
    if len(surface.langs) == 1:
        return surface.langs[0]
    if "ja" in surface.langs and _KANA.search(context):
        return "ja"
    return next((lang for lang in surface.langs if lang != "ja"), surface.langs[0])


def replacement(surface: Surface, found: str, context: str, log: TermLog) -> str:
    """What to emit for a matched surface (raises TermBlocked for a block rule)."""
    term = surface.term
    action = term.action
    if surface.kind == "keep":
        return found
    if surface.kind == "paired":
        if action == "block":
            log.add(term.id, action)
            raise TermBlocked(term.id)
        if action != "rewrite":
            return found                     # the dual naming already says both
        log.add(term.id, action)
        return term.preferred_for(surface.langs[0])
    log.add(term.id, action)
    if action == "flag":
        return found
    if action == "block":
        raise TermBlocked(term.id)
    lang = language_of(surface, context)
    pref = term.preferred_for(lang)
    if action == "rewrite":
        return pref.upper() if len(found) > 1 and found.isupper() and found.isascii() else pref
    if lang in ("ja", "zh") and _is_cjk(found[0]):
        return f"{pref}（{found}）"
    if lang == "ko":
        return f"{pref}({found})"             # 동해(일본해): Korean writes it without a space
    return f"{pref} ({found})"


@lru_cache(maxsize=8)
def shipped_terms(pack: str = "kr-terminology") -> TermSet:
    """A shipped pack's terms as written (its default parameters): what the eval scorers share."""
    from nuri.config import PolicySettings
    from nuri.policy.loader import PACKS_DIR, parse_pack

    text = (PACKS_DIR / f"{pack}.yaml").read_text(encoding="utf-8")
    return TermSet(parse_pack(text, f"policy pack {pack!r}", PolicySettings(packs=[pack])).terms)

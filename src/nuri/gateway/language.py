"""Language fidelity: is a reply written in a language the request was?

Both sides are measured the same cheap way: letters per script from UTF-8 lead bytes
(`privacy.signals.script_counts`, memchr speed), read as a language family — Hangul is Korean,
kana (with the Han around it) Japanese, Han without kana Chinese, Latin letters "latin" (English
for most traffic; telling English from French would need a model, which the Korean-first question
"asked in Korean, answered in English?" does not). A reply misses when the language it is mostly
written in makes up less than `min_share` of the request's letters, unless the request asks for
that language by name ("영어로", "in Japanese"). Replies with too few letters are not judged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nuri.privacy import signals
from nuri.privacy.detectors.base import keyword_pattern

# Phrases that ask for an answer in a language, lower-cased: a Korean question asking for English
# is answered correctly in English.
_ASKS: dict[str, tuple[str, ...]] = {
    "latin": ("영어로", "영문으로", "영어 번역", "영역", "in english", "into english", "英語で", "英語に", "用英文",
              "用英语", "翻译成英文", "翻译成英语"),
    "ko": ("한국어로", "한글로", "in korean", "into korean", "韓国語で", "韓国語に", "用韩语", "翻译成韩语"),
    "ja": ("일본어로", "in japanese", "into japanese", "日本語で", "日本語に", "用日语", "翻译成日语"),
    "zh": ("중국어로", "in chinese", "into chinese", "中国語で", "中国語に", "用中文", "用汉语", "翻译成中文"),
}
_ASK_WINDOW = 4096       # characters at the end of each request text searched for those phrases
_ASK_LANG = {phrase: lang for lang, phrases in _ASKS.items() for phrase in phrases}
# One pass over the text for all phrases (a trie-shaped alternation): a third of the time of one
# substring search per phrase, on every request.
_ASK_RE = re.compile(keyword_pattern(_ASK_LANG))


def families(counts: Mapping[str, float]) -> dict[str, float]:
    """Script letter counts (or shares) read as language families."""
    kana, han = counts.get("kana", 0), counts.get("han", 0)
    out = {"ko": counts.get("hangul", 0), "latin": counts.get("latin", 0),
           "ja": kana + han if kana else 0, "zh": 0 if kana else han}
    return {k: v for k, v in out.items() if v}


def family_shares(script_shares: Mapping[str, float]) -> dict[str, float]:
    """A classification's script shares (`Classification.languages`) as language-family shares."""
    fam = families(script_shares)
    total = sum(fam.values())
    return {k: v / total for k, v in fam.items()} if total else {}


def dominant(counts: Mapping[str, float]) -> str | None:
    fam = families(counts)
    return max(fam, key=fam.__getitem__) if fam else None


def asked_for(texts: Iterable[str]) -> frozenset[str]:
    """Languages the request asks the answer to be in, by name."""
    found: set[str] = set()
    for text in texts:
        found.update(_ASK_LANG[m.group(0)] for m in _ASK_RE.finditer(text[-_ASK_WINDOW:].lower()))
    return frozenset(found)


class AskedLater:
    """The languages `texts` ask for by name, found on the first call and kept: most replies are
    in the request's own language and never need them (cheaper per request than a
    `functools.cache` made for each)."""

    __slots__ = ("_texts", "_found")

    def __init__(self, texts: list[tuple[Any, str]]) -> None:
        self._texts = texts
        self._found: frozenset[str] | None = None

    def __call__(self) -> frozenset[str]:
        if self._found is None:
            self._found = asked_for(t for _, t in self._texts)
        return self._found


@dataclass(frozen=True, slots=True)
class LanguageCheck:
    """The outcome for one reply: the request's languages (shares), the reply's, and a miss."""

    asked: dict[str, float]
    replied: str | None
    miss: bool

    def as_detail(self) -> dict[str, object]:
        return {"asked": {k: round(v, 3) for k, v in sorted(self.asked.items())}, "replied": self.replied,
                "miss": self.miss}


# The languages a request asks for by name, or how to find them when first needed.
Named = frozenset[str] | Callable[[], frozenset[str]]


def check(request_shares: Mapping[str, float], named: Named, reply_text: str, *,
          min_share: float, min_letters: int) -> LanguageCheck | None:
    """Judge a reply against the request; None when either side has too little text to tell.
    `named` is read only for a reply outside the request's own languages."""
    asked = family_shares(request_shares)
    if not asked:
        return None
    counts = signals.script_counts(reply_text)
    if sum(counts.values()) - counts.get("other", 0) < min_letters:
        return None
    replied = dominant(counts)
    if replied is None:
        return None
    miss = asked.get(replied, 0.0) < min_share and replied not in (named() if callable(named) else named)
    return LanguageCheck(asked, replied, miss)


def mostly_korean(request_shares: Mapping[str, float]) -> bool:
    shares = family_shares(request_shares)
    return bool(shares) and max(shares, key=shares.__getitem__) == "ko"

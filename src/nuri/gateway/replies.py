"""What a reply owes besides privacy: the organisation's terminology, the AI notice, the asked-for
language. One `ReplyRules` per request, built after the decision; the pipeline asks it at the
respond step and the record step reads what it found (term ids, actions, languages: names and
counts, never reply text).

Terminology comes from the policy (`terms:` of the loaded packs and files, compiled once per
loaded policy and swapped with it on reload); labels and language settings from `replies:`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nuri.gateway import labels
from nuri.gateway.labels import Label, StreamLabel
from nuri.gateway.language import AskedLater, LanguageCheck, Named, check
from nuri.policy.loader import load_terms
from nuri.policy.term_stream import Terminology
from nuri.policy.terminology import TermSet

_COMPILED: dict[int, tuple[Any, TermSet | None]] = {}


def term_set(policy: Any) -> TermSet | None:
    """The compiled terms of a loaded policy (None: policy off or no terms), kept per settings
    object: a reload brings a new one."""
    hit = _COMPILED.get(id(policy))
    if hit is not None and hit[0] is policy:
        return hit[1]
    terms = TermSet(load_terms(policy)) if policy.enabled else None
    compiled = terms if terms else None
    if len(_COMPILED) > 8:
        _COMPILED.clear()
    _COMPILED[id(policy)] = (policy, compiled)
    return compiled


class ReplyRules:
    """A request's reply obligations and what came of them."""

    __slots__ = ("label", "language", "named", "retried_from", "settings", "shares", "terms")

    def __init__(self, settings: Any, terms: TermSet | None, label: Label | None,
                 shares: dict[str, float], named: Named) -> None:
        self.settings = settings
        self.terms = Terminology(terms) if terms is not None else None
        self.label = label
        self.shares = shares
        self.named = named
        self.language: LanguageCheck | None = None
        self.retried_from: str | None = None       # the deployment whose reply missed the language

    @classmethod
    def build(cls, gw: Any, ctx: Any, texts: Iterable[tuple[Any, str]]) -> ReplyRules:
        replies = gw.config.replies
        shares = dict(getattr(ctx.classification, "languages", None) or {})
        label = labels.resolve(replies.label, ctx.decision, ctx.principal.team, ctx.endpoint, shares)
        # The languages asked for by name matter only when a reply is not in the request's own
        # language; finding them reads the end of every text (a long history each turn), so it
        # waits until a reply needs it.
        pairs = texts if isinstance(texts, list) else list(texts)
        named: Named = AskedLater(pairs) if replies.language.check else frozenset()
        return cls(replies, term_set(gw.config.policy), label, shares, named)

    # -- language ---------------------------------------------------------------------------
    def _check(self, text: str) -> LanguageCheck | None:
        s = self.settings.language
        if not s.check:
            return None
        self.language = check(self.shares, self.named, text, min_share=s.min_share, min_letters=s.min_letters)
        return self.language

    def language_retry(self, reply: dict[str, Any], steps: list[Any], served: Any) -> list[Any] | None:
        """Judge a whole reply's language; the route steps after `served` to retry on when it
        missed and retry is on (once: a second miss stands)."""
        result = self._check(reply_text(reply))
        if result is None or not result.miss or not self.settings.language.retry or self.retried_from:
            return None
        ids = [s.deployment.id for s in steps]
        here = ids.index(served.deployment.id) if served is not None and served.deployment.id in ids else -1
        rest = [s for s in steps[here + 1:] if s.deployment.id != served.deployment.id]
        if not rest:
            return None
        self.retried_from = served.deployment.id
        return rest

    def check_stream(self, pieces: list[str]) -> None:
        """Judge a streamed reply's language from the text relayed (flagged only: it was sent)."""
        self._check("".join(pieces))

    # -- labels -----------------------------------------------------------------------------
    def label_reply(self, reply: dict[str, Any]) -> None:
        if self.label is not None:
            labels.label_reply(self.label, reply)

    def stream_label(self, first: dict[str, Any], endpoint: str) -> StreamLabel | None:
        return StreamLabel(self.label, first, endpoint == "chat") if self.label is not None else None

    # -- what the client and the record see ----------------------------------------------------
    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.label is not None and "header" in self.label.modes:
            out["x-nuri-ai-notice"] = self.label.header()
        if self.terms is not None and self.terms.log.hits:
            out["x-nuri-terminology"] = ",".join(f"{t}={a}" for (t, a) in sorted(self.terms.log.hits))
        if self.language is not None and self.language.miss:
            asked = max(self.language.asked, key=self.language.asked.__getitem__)
            out["x-nuri-language-mismatch"] = f"{asked}->{self.language.replied}"
        if self.retried_from is not None:
            out["x-nuri-language-retry"] = self.retried_from
        return out

    def audit(self) -> dict[str, Any]:
        """The audit record's `reply` detail (and what /metrics counts from it)."""
        out: dict[str, Any] = {}
        if self.terms is not None:
            out["terms"] = self.terms.log.summary()
        if self.language is not None:
            out["language"] = self.language.as_detail()
            if self.retried_from is not None:
                out["language"]["retried_from"] = self.retried_from
        if self.label is not None:
            out["label"] = sorted(self.label.modes)
        return out


def reply_text(reply: dict[str, Any]) -> str:
    """The prose of a whole reply (every choice's content or text), for the language check."""
    parts: list[str] = []
    for choice in reply.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else choice.get("text")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    for item in reply.get("output") or []:        # a Response object (Responses API passed through)
        if isinstance(item, dict) and item.get("type") == "message" and isinstance(item.get("content"), list):
            parts.extend(p["text"] for p in item["content"] if isinstance(p, dict) and isinstance(p.get("text"), str))
    return "\n".join(parts)

"""Terminology over a text arriving in pieces, with the hold-back placeholder restoration uses.

`TermFilter.feed` returns the text that can no longer become part of a term, with the terms in
it annotated, rewritten, flagged or refused (`policy/terminology.py`), and holds back only the
longest tail that could still grow into one — a term split across chunks ("Sea of Ja" | "pan") is
seen whole, and the added delay is at most one term. A whole text goes through the same code
(`check_text`), so a streamed and a non-streamed reply come out the same. One filter per text
channel; which strings of a reply form one channel is the gateway's business.
"""

from __future__ import annotations

from nuri.policy.terminology import TermLog, TermSet, replacement

_CONTEXT_CHARS = 64      # emitted text kept to tell Japanese from Chinese (kana nearby)


class TermFilter:
    """Incremental terminology for one text channel."""

    __slots__ = ("_context", "_log", "_pending", "_prev", "_terms")

    def __init__(self, terms: TermSet, log: TermLog) -> None:
        self._terms = terms
        self._log = log
        self._pending = ""
        self._prev = ""           # the last character emitted, for a word boundary on the left
        self._context = ""        # recent emitted text, for the script of an ambiguous form

    def __repr__(self) -> str:
        return f"TermFilter(held={len(self._pending)})"

    @property
    def held(self) -> int:
        return len(self._pending)

    def feed(self, delta: str) -> str:
        """Text safe to emit now."""
        if not delta:
            return ""
        return self._step(self._pending + delta if self._pending else delta, final=False)

    def flush(self) -> str:
        """The rest, at the end of the text."""
        if not self._pending:
            return ""
        return self._step(self._pending, final=True)

    def check_text(self, text: str) -> str:
        """A whole text (a non-streamed reply's string)."""
        if not text:
            return text
        return self._step(text, final=True)

    def _step(self, text: str, *, final: bool) -> str:
        terms = self._terms
        low = text.lower()
        n = len(text)
        if len(low) != n:                   # a letter whose lower case is longer (İ): keep offsets
            low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        cut = n
        if not final and low[-1] in terms.key_chars:
            held = terms.tail.search(low, n - terms.max_len if n > terms.max_len else 0)  # type: ignore[union-attr]
            if held is not None:
                cut = held.start()
        match = terms.match
        m = match.search(low)  # type: ignore[union-attr]
        if m is None or m.start() >= cut:   # nearly every piece of text: nothing to do
            if cut:
                self._emitted(text, cut)
            self._pending = text[cut:]
            return text[:cut] if cut < n else text
        out: list[str] = []
        pos = 0
        while m is not None and m.start() < cut:
            start, end = m.start(), m.end()
            if end > cut:
                cut = start                    # a term running into the held tail waits whole
                break
            before = text[start - 1] if start else self._prev
            surface = terms.surface_at(text, start, end, before, final=final)
            if surface is True:
                cut = start
                break
            if surface is None or surface is False:
                m = match.search(low, start + 1)  # type: ignore[union-attr]
                continue
            context = self._context + text[:cut] if terms.ambiguous else ""
            out.append(text[pos:start])
            out.append(replacement(surface, text[start:end], context, self._log))
            pos = end
            m = match.search(low, end)  # type: ignore[union-attr]
        out.append(text[pos:cut])
        if cut:
            self._emitted(text, cut)
        self._pending = text[cut:]
        return "".join(out)

    def _emitted(self, text: str, cut: int) -> None:
        self._prev = text[cut - 1]
        if self._terms.ambiguous:
            self._context = (self._context + text[:cut])[-_CONTEXT_CHARS:]


class Terminology:
    """A request's terms and the log of what they did to its reply: one filter per text channel."""

    __slots__ = ("log", "terms")

    def __init__(self, terms: TermSet, log: TermLog | None = None) -> None:
        self.terms = terms
        self.log = log if log is not None else TermLog()

    def filter(self) -> TermFilter:
        return TermFilter(self.terms, self.log)

    def apply(self, text: str) -> str:
        """A whole text, annotated, rewritten, flagged or refused."""
        return TermFilter(self.terms, self.log).check_text(text)

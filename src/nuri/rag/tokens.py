"""Search terms: Korean morphemes from kiwipiepy, or whitespace words for comparison.

Korean glues particles and endings to words (출장비는, 출장비를, 출장비가), so whitespace words
of a question rarely equal those of the passage that answers it. Kiwi splits them off; content
morphemes (nouns, verb and adjective stems, roots, numbers, foreign words, adverbs) are the
terms, and particles, endings and punctuation are dropped.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

_CONTENT_TAGS = ("NN", "NR", "NP", "VV", "VA", "XR", "SL", "SN", "SH", "MAG")
_WORD = re.compile(r"\w+")


class KiwiTokenizer:
    """Content morphemes; the Kiwi model (a few seconds to load) is loaded on first use."""

    name = "kiwi"

    def __init__(self) -> None:
        self._kiwi: Any = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        with self._lock:
            if self._kiwi is None:
                from kiwipiepy import Kiwi

                self._kiwi = Kiwi()
            return self._kiwi

    def tokens(self, text: str) -> list[str]:
        return self.many([text])[0]

    def many(self, texts: Iterable[str]) -> list[list[str]]:
        kiwi = self._model()
        batch = list(texts)
        return [[_term(t.form, t.tag) for t in result if t.tag.startswith(_CONTENT_TAGS)]
                for result in kiwi.tokenize(batch)]


def _term(form: str, tag: str) -> str:
    return form.lower() if tag == "SL" else form


class WhitespaceTokenizer:
    """Words between spaces and punctuation, lower-cased: the baseline Kiwi is measured against."""

    name = "whitespace"

    def tokens(self, text: str) -> list[str]:
        return _WORD.findall(text.lower())

    def many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self.tokens(t) for t in texts]

"""Token estimates for when an upstream reports no usage, and for admission before a call.

A fixed ratio is wrong for any one tokenizer but right on average, and cheap: 1 token per
Hangul/Han/Kana character (Korean subword tokenizers land near that), 1 per 4 other bytes.
"""

from __future__ import annotations

from collections.abc import Iterable


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    # Hangul, Han and Kana take 3 bytes in UTF-8: the byte surplus counts them in C, not Python.
    wide = (len(text.encode("utf-8", "surrogatepass")) - len(text)) // 2
    return wide + (len(text) - wide + 3) // 4


def estimate_many(texts: Iterable[str]) -> int:
    return sum(estimate_tokens(t) for t in texts)

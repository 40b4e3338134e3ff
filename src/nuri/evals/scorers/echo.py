"""Echo check: a reply that copies its own prompt back is not an answer.

Small base models often repeat the prompt. A copied prompt carries the passages, citation
markers, instructions and sometimes words like "불법", which would otherwise satisfy grounded,
refusal or naming rules without answering anything. A reply is an echo when it contains a
sentence of the suite's own instructions (template text, which no answer needs to repeat) or the
longest line of the prompt verbatim (a whole question, passage or source sentence).
"""

from __future__ import annotations

import re

_FIELD = re.compile(r"\{[^{}]*\}")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


def template_sentences(template: str, min_chars: int = 15) -> list[str]:
    """The fixed text of a template, sentence by sentence, without its {fields}."""
    out: list[str] = []
    for part in _FIELD.split(template):
        for line in part.splitlines():
            out += [s.strip() for s in _SENTENCE_END.split(line) if len(s.strip()) >= min_chars]
    return out


def echoes_prompt(reply: str, prompt: str, template: str = "", min_line: int = 20) -> bool:
    if any(sentence in reply for sentence in template_sentences(template)):
        return True
    lines = [line.strip() for line in prompt.splitlines() if len(line.strip()) >= min_line]
    return bool(lines) and max(lines, key=len) in reply

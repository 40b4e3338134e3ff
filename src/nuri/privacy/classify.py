"""Classification of a whole OpenAI request: what it carries, as the input of policy.

Every text field `fields.request_texts` yields is scanned (system, user, assistant and tool
messages, multi-part text, `name`, tool-call arguments, legacy prompts, embedding inputs), so a
value hidden in a tool result or a function argument counts like one in the user's message.
Entities keep their values only in memory; `Classification.summary()` is what may leave.
"""

from __future__ import annotations

from typing import Any

from nuri.privacy import signals
from nuri.privacy.fields import request_texts
from nuri.privacy.scanner import Scanner
from nuri.privacy.types import Classification, PipaCategory


def classify_request(body: dict[str, Any], endpoint: str, scanner: Scanner) -> Classification:
    """Classify every text field of a request; endpoint: chat | completions | embeddings."""
    result = Classification()
    counts: dict[str, int] = {}
    if not isinstance(body, dict):
        return result
    for path, text in request_texts(body, endpoint):
        part, scripts = scanner.analyse(text)
        for e in part.entities:
            e.path = path
        result.entities.extend(part.entities)
        result.categories |= part.categories
        result.sensitive_topics |= part.sensitive_topics
        result.domains |= part.domains
        for m in part.markings:
            if m not in result.markings:
                result.markings.append(m)
        result.n2sf_grade = signals.higher(result.n2sf_grade, part.n2sf_grade)
        for script, n in scripts.items():
            counts[script] = counts.get(script, 0) + n
        result.chars += part.chars
    if result.sensitive_topics:
        result.categories.add(PipaCategory.SENSITIVE)
    result.languages = signals.shares(counts)
    return result

"""E-mail addresses (RFC 5322 in the common dot-atom form), also glued to Hangul."""

from __future__ import annotations

import re

from nuri.privacy import surrogates
from nuri.privacy.detectors.base import Hit
from nuri.privacy.detectors.spec import EntityKind, Registration, Trigger
from nuri.privacy.types import Evidence, PipaCategory

_EMAIL = re.compile(
    # the left boundary sits after the first character, so the engine's fast scan for it applies
    r"[A-Za-z0-9](?<![A-Za-z0-9._%+\-][A-Za-z0-9])[A-Za-z0-9._%+\-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
)


def detect(text: str) -> list[Hit]:
    return [Hit("EMAIL", m.start(), m.end(), 0.95, Evidence.PATTERN) for m in _EMAIL.finditer(text)]


EMAIL = EntityKind("EMAIL", PipaCategory.PERSONAL, surrogates.email, "lower")
REGISTRATION = Registration("email", (EMAIL,), detect, trigger=Trigger(re.compile("@"), before=80, after=260),
                            gate=lambda text, lowered: "@" in text)

"""Secrets: API keys and tokens with a known shape, JWTs, PEM private keys, passwords in URLs
and after a password label. Shapes follow the issuers' published key formats (OpenAI, Anthropic,
AWS, GitHub, Slack, Google, Stripe)."""

from __future__ import annotations

import re

from nuri.privacy import surrogates
from nuri.privacy.detectors.base import Hit, keyword_pattern
from nuri.privacy.detectors.spec import EntityKind, Registration
from nuri.privacy.types import Evidence, PipaCategory

_KEYS = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"sk-ant-[A-Za-z0-9_\-]{20,}"
    r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
    r")(?![A-Za-z0-9_\-])"
)
_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]{16,}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
)
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:/@]{1,64}:([^\s@/]{1,128})@")
_LABELLED = re.compile(
    r"(?:(?<![A-Za-z])(?:password|passwd|pwd|pass|secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token|token)"
    r"|비밀번호|패스워드|암호)\s*[\"']?\s*([:=]|is|는|은)\s*[\"']?([^\s\"',;가-힣]{6,128})",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?<![A-Za-z])Bearer\s+([A-Za-z0-9._~+/\-]{20,}=*)")
# Each pattern runs only when its own hint occurs (substring tests run at C speed); the labelled
# form is tried only where a label word starts, as a case-insensitive scan of the whole text costs
# more than all other detectors together.
_KEY_HINTS = (
    "sk-", "sk_", "rk_", "pk_", "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "github_pat_", "glpat-", "xox", "AIza", "hf_", "eyJ",
)
_LABEL_HINTS = ("pass", "pwd", "secret", "key", "token", "비밀번호", "패스워드", "암호")
_LABEL_BACK = len("access_")     # the hint "token" sits this far into "access_token"
# One pass over the lower-cased text decides whether any of the patterns can match at all.
_ANY_HINT = re.compile(keyword_pattern(
    [h.lower() for h in _KEY_HINTS] + list(_LABEL_HINTS) + ["private key", "://", "bearer"]
))
_IGNORED_VALUES = frozenset({"required", "none", "null", "******", "hidden"})


def _label_matches(text: str, lowered: str) -> list[re.Match[str]]:
    if len(lowered) != len(text):      # a rare character changed length: offsets would not agree
        return list(_LABELLED.finditer(text))
    found: dict[int, re.Match[str]] = {}
    for hint in _LABEL_HINTS:
        i = lowered.find(hint)
        while i >= 0:
            for start in range(max(0, i - _LABEL_BACK), i + 1):
                m = _LABELLED.match(text, start)
                if m:
                    found[m.start()] = m
                    break
            i = lowered.find(hint, i + 1)
    return list(found.values())


def detect(text: str, lowered: str | None = None) -> list[Hit]:
    """Secrets in `text`; pass `lowered` (``text.lower()``) when the caller already has it."""
    lowered = text.lower() if lowered is None else lowered
    if not _ANY_HINT.search(lowered):
        return []
    hits: list[Hit] = []
    if any(h in text for h in _KEY_HINTS):
        hits += [Hit("SECRET", m.start(), m.end(), 0.97, Evidence.PATTERN) for m in _KEYS.finditer(text)]
    if "PRIVATE KEY" in text:
        hits += [Hit("SECRET", m.start(), m.end(), 0.99, Evidence.PATTERN) for m in _PEM.finditer(text)]
    if "://" in text and "@" in text:
        hits += [Hit("SECRET", m.start(1), m.end(1), 0.98, Evidence.PATTERN) for m in _URL_PASSWORD.finditer(text)]
    if "Bearer" in text:
        hits += [Hit("SECRET", m.start(1), m.end(1), 0.9, Evidence.PATTERN) for m in _BEARER.finditer(text)]
    if any(h in lowered for h in _LABEL_HINTS):
        for m in _label_matches(text, lowered):
            value = m.group(2)
            if m.group(1) not in ":=" and (value.isalpha() or not any(c.isascii() for c in value)):
                continue  # "password is required", "비밀번호는 변경되었습니다"
            if value.lower() in _IGNORED_VALUES or set(value) <= {"*", "x", "X"}:
                continue
            hits.append(Hit("SECRET", m.start(2), m.end(2), 0.8, Evidence.CONTEXT))
    return hits


SECRET = EntityKind("SECRET", PipaCategory.SECRET, surrogates.secret)
REGISTRATION = Registration("secret", (SECRET,), detect, lowered=True)

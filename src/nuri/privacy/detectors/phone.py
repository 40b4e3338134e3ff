"""Phone numbers: Korean numbering plan by regex, international numbers via `phonenumbers`.

Korean rules (REFERENCE §1): mobile 010 (legacy 011/016–019), Seoul 02, area codes 031–033,
041–044, 051–055, 061–064, VoIP 070; `+82` drops the leading 0; an exchange (the middle group)
never starts with 0 or 1, and 010 has four-digit exchanges. Numbers written with `+` and a
country code are validated with Google's libphonenumber metadata (the `phonenumbers` package).

Numbers the plan would not assign still count, at a lower score: test numbers (010-0000-1234,
the fictional 555-0100…555-0199 range of North America) and made-up ones are what gets pasted.
Without a phone word only the shapes reported before count; unlisted prefixes, a 3-digit 010
exchange and bare 555-01xx need a phone word nearby.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import phonenumbers

from nuri.privacy import surrogates
from nuri.privacy.detectors.base import NEGATIVE_CONTEXT, Hit, before, keywords, near
from nuri.privacy.detectors.spec import NUMERIC, EntityKind, Registration
from nuri.privacy.types import Evidence, PipaCategory

_S = r"(?:\s?[-‐‑–.)]\s?|\s)?"
_KR_REST = rf"(1[016789]|2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70){_S}(\d{{3,4}}){_S}(\d{{4}})(?!\d)"
_KR = re.compile("0(?<!\\d0)" + _KR_REST)
_KR_INTL = re.compile(r"(?:\+|00)82[-.\s]?(?:\(0\))?\s?" + _KR_REST)
# Patterns start with a literal or a plain class (the engine's fast scan); left boundaries are checked in code.
_PAREN_KR = re.compile(r"\(0(2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70)\)\s?(\d{3,4})[-.\s]?(\d{4})(?!\d)")
_INTL = re.compile(r"\+(?<![\w+]\+)(?!82)[1-9][\d\s().\-]{6,20}\d(?!\d)")
_US = re.compile(r"(?:\(\d{3}\)\s?|\d{3}[-.])\d{3}[-.]\d{4}(?!\d)")
# Next to a phone word only: a grouped Korean-looking number with any prefix, and the seven-digit
# fictional North American numbers.
_KR_ANY = re.compile(r"0(?<!\d0)(?!(?:1[016789]|2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70)[-.\s])"
                     r"([1-9]\d{0,2})([-.\s])(\d{3,4})\2(\d{4})(?!\d|[-.]\d)")
_US_LOCAL = re.compile(r"555[-.\s]01\d\d(?!\d|[-.]\d)")
_FICTIONAL = re.compile(r"555\D{0,3}01\d\d$")
_CTX_WORDS = ("전화", "연락처", "연락", "휴대폰", "핸드폰", "휴대전화", "tel", "phone", "mobile", "cell", "call", "fax", "팩스")
_CTX = keywords(_CTX_WORDS)

_EXCHANGE_NOT_1 = frozenset({"10", "2", "31", "32", "33", "41", "42", "43", "44", "51", "52", "53", "54", "55",
                             "61", "62", "63", "64", "70"})
CUE_BONUS = 0.08
PLAN_PENALTY = 0.05   # small: an unassigned exchange is still a number someone typed as a phone
SCORE_LENIENT_CUE = 0.7


def _plan_problem(prefix: str, exchange: str) -> str:
    """Why the Korean numbering plan would not assign this number ("" when it would): 010 and 070
    have four-digit exchanges, and no exchange starts with 0, nor with 1 outside the legacy
    mobile prefixes (1xx are special-service numbers). libphonenumber accepts more than this."""
    if prefix in ("10", "70") and len(exchange) != 4:
        return f"0{prefix} with a 3-digit exchange"
    if exchange[0] == "0" or (exchange[0] == "1" and prefix in _EXCHANGE_NOT_1):
        return f"exchange starting {exchange[0]}"
    return ""


def _korean(text: str) -> list[Hit]:
    hits: list[Hit] = []
    matches = [m for m in _KR.finditer(text) if not (m.start() and text[m.start() - 1] in "0123456789+")]
    if "+82" in text or "0082" in text:
        matches += [m for m in _KR_INTL.finditer(text) if not (m.start() and text[m.start() - 1].isdigit())]
    for m in matches:
        h = _korean_hit(text, m)
        if h is not None:
            hits.append(h)
    return hits


def _korean_hit(text: str, m: re.Match[str]) -> Hit | None:
    compact = m.group(0).replace(" ", "")
    grouped = any(c in compact for c in "-.–)") or " " in m.group(0)
    if not grouped and before(text, m.start(), NEGATIVE_CONTEXT, 16):
        return None
    ctx = near(text, m.start(), m.end(), _CTX, 16)
    if m.group(1) == "10" and len(m.group(2)) != 4 and not ctx:
        return None                      # 010-123-4567 is no mobile number; 10 digits of anything
    problem = _plan_problem(m.group(1), m.group(2))
    score = (0.9 if m.group(1).startswith("1") else 0.8) - (0 if grouped else 0.1)
    if problem:
        score -= PLAN_PENALTY
    if ctx:
        score += CUE_BONUS
    detail = ("shape+cue" if ctx else "shape") + (f", numbering plan rejects {problem}" if problem
                                                   else ", numbering plan")
    return Hit("PHONE", m.start(), m.end(), min(score, 0.98), Evidence.CONTEXT if ctx else Evidence.PATTERN,
               detail)


def _paren(text: str) -> list[Hit]:
    """`(02) 312-3456`: scored above the `02) 312…` the plain pattern may find inside it."""
    hits: list[Hit] = []
    for m in _PAREN_KR.finditer(text):
        if m.start() and text[m.start() - 1].isdigit():
            continue
        problem = _plan_problem(m.group(1), m.group(2))
        if problem:
            hits.append(Hit("PHONE", m.start(), m.end(), 0.95 - PLAN_PENALTY, Evidence.PATTERN,
                            f"shape, numbering plan rejects {problem}"))
        else:
            hits.append(Hit("PHONE", m.start(), m.end(), 0.95, Evidence.PATTERN, "shape, numbering plan"))
    return hits


def _intl(text: str, m: re.Match[str], region: str | None) -> Hit | None:
    """libphonenumber's verdict: an assigned range, a possible length in an unassigned range, or
    nothing. North America's 555-01xx numbers are fictional by design and score as such."""
    try:
        num = phonenumbers.parse(m.group(0), region)
    except phonenumbers.NumberParseException:
        return None
    if num.country_code == 1 and _FICTIONAL.search(m.group(0)):
        return Hit("PHONE", m.start(), m.end(), 0.65, Evidence.PATTERN, "shape, fictional 555-01xx")
    if phonenumbers.is_valid_number(num):
        return Hit("PHONE", m.start(), m.end(), 0.85, Evidence.CHECKSUM, "numbering plan (libphonenumber)")
    if phonenumbers.is_possible_number(num):      # right length for the country, unassigned range
        return Hit("PHONE", m.start(), m.end(), 0.7, Evidence.PATTERN, "shape, unassigned range")
    return None


def _international(text: str) -> list[Hit]:
    hits: list[Hit] = []
    for m in _INTL.finditer(text):
        h = _intl(text, m, None)
        if h is not None:
            hits.append(_with_cue(text, h) if h.score < 0.85 else h)
    return hits


def _with_cue(text: str, h: Hit) -> Hit:
    """A number the plan does not assign, raised to the lenient score next to a phone word."""
    if not near(text, h.start, h.end, _CTX, 20):
        return h
    return h._replace(score=SCORE_LENIENT_CUE, evidence=Evidence.CONTEXT,
                      detail=h.detail.replace("shape", "shape+cue", 1))


_US_LONGEST = len("(555) 555-5555")
_US_BEFORE = 10 + _US_LONGEST + 1    # a word up to 10 characters after the number
_US_AFTER = 20 + _US_LONGEST + 1     # a word up to 20 characters before it


def _around(text: str, words: Iterator[re.Match[str]], before: int, after: int) -> list[tuple[int, int]]:
    """Merged spans around each word, never ending inside a run of digits."""
    spans: list[tuple[int, int]] = []
    n = len(text)
    for w in words:
        a, b = max(0, w.start() - before), min(n, w.end() + after)
        while b < n and text[b].isdigit():
            b += 1
        if spans and a <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        else:
            spans.append((a, b))
    return spans


def _left_ok(text: str, start: int, extra: str = "_") -> bool:
    """No letter, digit or `extra` character right before `start`: the number starts there."""
    if not start:
        return True
    c = text[start - 1]
    return not (c.isdigit() or c in extra or (c.isascii() and c.isalpha()))


def _near_cues(text: str) -> list[Hit]:
    """Shapes that count only next to a phone word (`near`, 20 characters)."""
    hits: list[Hit] = []
    # North American numbers: looked for only around phone words, as the pattern has no cheap
    # first character to scan for.
    for a, b in _around(text, _CTX.finditer(text), _US_BEFORE, _US_AFTER):
        for m in _US.finditer(text, a, b):
            if _left_ok(text, m.start()) and near(text, m.start(), m.end(), _CTX, 20):
                h = _intl(text, m, "US")
                if h is not None and h.score >= 0.85:
                    hits.append(h._replace(score=0.8, evidence=Evidence.CONTEXT, detail="shape+cue, numbering plan"))
                elif h is not None:
                    hits.append(_with_cue(text, h))
    if "555" in text:
        hits += _cued(text, _US_LOCAL, lambda m: "shape+cue, fictional 555-01xx")
    return hits + _cued(text, _KR_ANY, lambda m: f"shape+cue, prefix 0{m.group(1)} not an area or mobile code")


def _cued(text: str, pattern: re.Pattern[str], detail: Callable[[re.Match[str]], str]) -> list[Hit]:
    """Matches of `pattern` that start a number, have a phone word nearby and no order or invoice
    label right before, at the lenient score."""
    return [Hit("PHONE", m.start(), m.end(), SCORE_LENIENT_CUE, Evidence.CONTEXT, detail(m))
            for m in pattern.finditer(text)
            if _left_ok(text, m.start(), "_+-.") and near(text, m.start(), m.end(), _CTX, 20)
            and not before(text, m.start(), NEGATIVE_CONTEXT, 16)]


def detect(text: str) -> list[Hit]:
    hits = _korean(text)
    if "(0" in text:
        hits += _paren(text)
    if "+" in text:
        hits += _international(text)
    return hits + _near_cues(text)


PHONE = EntityKind("PHONE", PipaCategory.PERSONAL, surrogates.phone, "digits")
REGISTRATION = Registration("phone", (PHONE,), detect, trigger=NUMERIC)

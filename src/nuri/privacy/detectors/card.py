"""Payment card numbers: 13–19 digits, Luhn check, known issuer prefix.

Korean text glues numbers to Hangul (`카드 4111-1111-1111-1111입니다`), so boundaries are digit
lookarounds, not `\\b`. Without a card word a number must pass Luhn and start with a known issuer
prefix. Next to a card word the shape is enough: test numbers, Luhn-failing made-up numbers and
issuer ranges not listed here are what gets pasted, so they count, at a lower score.
"""

from __future__ import annotations

import re

from nuri.privacy import surrogates
from nuri.privacy.checksums import luhn_valid
from nuri.privacy.detectors.base import NEGATIVE_CONTEXT, Hit, before, digits, keywords, near
from nuri.privacy.detectors.spec import NUMERIC, EntityKind, Registration
from nuri.privacy.types import Evidence, PipaCategory

_CARD = re.compile(r"\d(?<!\d\d)\d{3}(?:[ \-‐‑–.]?\d{2,6}){2,4}(?![\d])")
_GROUPED = re.compile(r"^\d{4}([ \-‐‑–.])\d{4}\1\d{4}\1\d{1,7}$|^\d{4}([ \-‐‑–.])\d{6}\2\d{4,5}$")
# Visa, Mastercard (51–55, 2221–2720), Amex, Diners/JCB, UnionPay/Discover and Korean domestic
# BINs (94xx, 95xx: BC, Nonghyup, …).
_IIN = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|35|6|9)")
_CTX = keywords(["카드", "신용카드", "체크카드", "결제", "card", "visa", "master", "amex", "credit", "debit"])
# Words that name a card itself: enough for a number that fails the checks ("결제" is not).
_CARD_WORD = keywords(["카드", "card", "visa", "master", "amex", "credit", "debit"])

SCORE_VALID_CUE = 0.97
SCORE_UNKNOWN_ISSUER_CUE = 0.85
SCORE_LUHN_FAILS_CUE = 0.7


def detect(text: str) -> list[Hit]:
    hits: list[Hit] = []
    for m in _CARD.finditer(text):
        if m.start() and text[m.start() - 1] in "0123456789.-":
            continue
        d = digits(m.group(0))
        if not 13 <= len(d) <= 19 or len(set(d)) < 2:
            continue
        h = _card(text, m, d)
        if h is not None:
            hits.append(h)
    return hits


def _card(text: str, m: re.Match[str], d: str) -> Hit | None:
    s, e = m.start(), m.end()
    valid, issuer = luhn_valid(d), bool(_IIN.match(d))
    ctx = near(text, s, e, _CTX, 20)
    if not ctx and before(text, s, NEGATIVE_CONTEXT, 16):
        return None
    grouped = bool(_GROUPED.match(m.group(0)))
    if valid and issuer:
        if ctx:
            return Hit("CARD", s, e, SCORE_VALID_CUE, Evidence.CONTEXT, "checksum+cue")
        if grouped or len(d) in (15, 16):
            return Hit("CARD", s, e, 0.9 if grouped else 0.75, Evidence.CHECKSUM, "checksum")
        return None
    return _lenient(text, s, e, valid, grouped, len(d))


def _lenient(text: str, s: int, e: int, valid: bool, grouped: bool, n: int) -> Hit | None:
    """A number that fails Luhn or the issuer list: a card only next to a card word, and not after
    an order, invoice or approval label. It must also look like a card: 13 bare digits next to
    카드 may be an RRN, and failing Luhn it needs the 4-4-4-4 / 4-6-5 grouping or 15–16 digits."""
    if not (grouped or n != 13) or not near(text, s, e, _CARD_WORD, 20):
        return None
    if before(text, s, NEGATIVE_CONTEXT, 16):
        return None
    if valid:
        return Hit("CARD", s, e, SCORE_UNKNOWN_ISSUER_CUE, Evidence.CONTEXT,
                   "shape+cue, checksum, unknown issuer range")
    if not (grouped or n in (15, 16)):
        return None
    return Hit("CARD", s, e, SCORE_LUHN_FAILS_CUE, Evidence.CONTEXT, "shape+cue, Luhn checksum fails")


CARD = EntityKind("CARD", PipaCategory.FINANCIAL, surrogates.card, "digits")
REGISTRATION = Registration("card", (CARD,), detect, trigger=NUMERIC)

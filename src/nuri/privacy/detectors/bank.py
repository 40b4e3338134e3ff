"""Bank account numbers. There is no common format or public check digit (REFERENCE §1), so a
number counts only next to a context word: 계좌, 예금주, 입금, a bank name, "account"."""

from __future__ import annotations

import re

from nuri.privacy import surrogates
from nuri.privacy.checksums import ean13
from nuri.privacy.detectors.base import NEGATIVE_CONTEXT, Hit, before, keywords, near
from nuri.privacy.detectors.spec import NUMERIC, EntityKind, Registration
from nuri.privacy.types import Evidence, PipaCategory

_ACCOUNT = re.compile(r"\d(?<!\d\d)\d{1,13}(?:[-‐‑–\s]\d{2,7}){0,3}(?![\d])")
_BANKS = [
    "국민은행", "국민", "신한", "우리은행", "우리", "하나은행", "하나", "농협", "NH", "기업은행", "기업", "IBK",
    "카카오뱅크", "카뱅", "토스뱅크", "케이뱅크", "수협", "새마을금고", "신협", "우체국", "SC제일", "제일은행",
    "씨티", "부산은행", "대구은행", "iM뱅크", "경남은행", "광주은행", "전북은행", "제주은행", "산업은행", "KDB",
    "KB", "은행",
]
_CTX = keywords(["계좌번호", "계좌", "예금주", "입금", "송금", "이체", "account", "acct", "bank", *_BANKS])


_STRONG_CTX = keywords(["계좌번호", "계좌", "account no", "입금 계좌", "account"])
_PHONE_SHAPE = re.compile(r"0(?:1[016789]|2|[3-6]\d|70)[-\s]?\d{3,4}[-\s]?\d{4}")


def detect(text: str) -> list[Hit]:
    hits: list[Hit] = []
    if not _CTX.search(text):
        return hits        # every account needs a bank word next to it: none in the text, none at all
    for m in _ACCOUNT.finditer(text):
        if m.start() and text[m.start() - 1] in "0123456789.-":
            continue
        raw = m.group(0)
        if len(raw) < 10:
            continue
        n = sum(c.isdigit() for c in raw)
        if not 10 <= n <= 14:
            continue
        if not near(text, m.start(), m.end(), _CTX, 20):
            continue               # no bank word around: not reported (checked first, it is the rarer)
        if before(text, m.start(), NEGATIVE_CONTEXT, 16) or (n == 13 and ean13(raw)):
            continue
        # A number shaped like a phone number right after 연락/전화 is one; the account
        # context may belong to the sentence before.
        score = 0.7 if _PHONE_SHAPE.fullmatch(raw) else 0.85
        if before(text, m.start(), _STRONG_CTX, 12):
            score = 0.9
        hits.append(Hit("BANK_ACCOUNT", m.start(), m.end(), score, Evidence.CONTEXT))
    return hits


BANK_ACCOUNT = EntityKind("BANK_ACCOUNT", PipaCategory.FINANCIAL, surrogates.numbered, "digits")
REGISTRATION = Registration("bank", (BANK_ACCOUNT,), detect, trigger=NUMERIC)

"""Bank account numbers. There is no common format or public check digit (REFERENCE §1), so a
number counts only next to a context word: 계좌, 예금주, 입금, a bank name, "account"."""

from __future__ import annotations

import re

from nuri.privacy.detectors.base import Hit, keywords, near
from nuri.privacy.types import Evidence

_ACCOUNT = re.compile(r"\d{2,14}(?:[-‐‑–\s]\d{2,7}){0,3}(?![\d])")
_BANKS = [
    "국민은행", "국민", "신한", "우리은행", "우리", "하나은행", "하나", "농협", "NH", "기업은행", "기업", "IBK",
    "카카오뱅크", "카뱅", "토스뱅크", "케이뱅크", "수협", "새마을금고", "신협", "우체국", "SC제일", "제일은행",
    "씨티", "부산은행", "대구은행", "iM뱅크", "경남은행", "광주은행", "전북은행", "제주은행", "산업은행", "KDB",
    "KB", "은행",
]
_CTX = keywords(["계좌번호", "계좌", "예금주", "입금", "송금", "이체", "account", "acct", "bank", *_BANKS])


def detect(text: str) -> list[Hit]:
    hits: list[Hit] = []
    for m in _ACCOUNT.finditer(text):
        if m.start() and text[m.start() - 1] in "0123456789.-":
            continue
        raw = m.group(0)
        if len(raw) < 10:
            continue
        n = len(raw) - sum(1 for c in raw if not c.isdigit())
        if not 10 <= n <= 14:
            continue
        if near(text, m.start(), m.end(), _CTX, 20):
            hits.append(Hit("BANK_ACCOUNT", m.start(), m.end(), 0.85, Evidence.CONTEXT))
    return hits

"""Surrogates: fake but well-formed values that a model sees instead of real ones.

With `privacy.surrogates` on, the pseudonymiser replaces a value by a fake of the same shape
(`010-0000-0001`, `user1@example.com`, an RRN with a valid check digit) rather than `<PHONE_1>`,
numbered by `n` so that each is unique within its type and can be found again in the reply.
Each entity type names its maker where it is declared (detectors/spec.py `EntityKind`); a maker
gets the value NFKC-folded without zero-width characters and returns None when the value does
not have the shape it knows, and `make` then falls back to numbering the value's digits, or to a
placeholder when it has too few.
"""

from __future__ import annotations

import datetime as _dt
import re
import unicodedata
from collections.abc import Callable

from nuri.privacy.checksums import brn_check, crn_check, frn_check, luhn_check, rrn_check

ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))

Surrogate = Callable[[str, int], str | None]
"""(folded value, n) → a fake of the same shape, or None for a shape it does not know."""

# Fake names for PERSON surrogates: real-looking shape, chosen from syllables rarely used in names.
_FAKE_SURNAMES = "한서윤채표탁봉범"
_FAKE_GIVEN = ("가온", "나래", "다솜", "라온", "마루", "보람", "새결", "아라", "여울", "초롱", "하랑", "한결")
_FAKE_LATIN = ("Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Robin")
_HANGUL = re.compile(r"[가-힣]")
_SECRET_PREFIX = re.compile(r"[A-Za-z]{2,6}[-_]")


def make(entity_type: str, surrogate: Surrogate | None, value: str, n: int) -> str:
    """A fake value of the same shape as `value`, unique per `n` within `entity_type`."""
    v = unicodedata.normalize("NFKC", value).translate(ZERO_WIDTH)
    fake = surrogate(v, n) if surrogate is not None else None
    if fake is None:
        fake = numbered(v, n)
    return fake if fake is not None else f"<{entity_type}_{n}>"


def _digits(v: str) -> str:
    return "".join(c for c in v if c.isdigit())


def _fill_digits(value: str, fill: str) -> str:
    """Put `fill`'s digits into `value`'s digit positions, keeping every other character."""
    it = iter(fill)
    return "".join(next(it) if ch.isdigit() else ch for ch in value)


def _num_fill(total: int, keep: str, n: int, check: Callable[[str], int] | None = None) -> str:
    rest = total - len(keep) - (1 if check else 0)
    body = keep + str(n).zfill(rest)[-rest:] if rest > 0 else keep[:total]
    if check:
        body += str(check(body))
    return body


# -- makers, one per shape --------------------------------------------------------------------
def numbered(v: str, n: int) -> str | None:
    """Letters and separators kept, the digits numbered (passports, accounts, SSNs …)."""
    nd = len(_digits(v))
    if nd >= max(4, len(str(n))):
        return _fill_digits(v, str(n).zfill(nd))
    return None


def email(v: str, n: int) -> str:
    return f"user{n}@example.com"


def ip_address(v: str, n: int) -> str:
    if ":" in v:
        return f"2001:db8::{n:x}"
    nets = ("192.0.2", "198.51.100", "203.0.113")   # RFC 5737 documentation ranges
    return f"{nets[(n - 1) // 254 % 3]}.{(n - 1) % 254 + 1}"


def person(v: str, n: int) -> str:
    if _HANGUL.search(v):
        k = n - 1
        cycle = len(_FAKE_GIVEN) * len(_FAKE_SURNAMES)
        name = _FAKE_SURNAMES[k // len(_FAKE_GIVEN) % len(_FAKE_SURNAMES)] + _FAKE_GIVEN[k % len(_FAKE_GIVEN)]
        return name + (str(k // cycle) if k >= cycle else "")
    return f"{_FAKE_LATIN[(n - 1) % len(_FAKE_LATIN)]} Doe{'' if n <= len(_FAKE_LATIN) else n}"


def address(v: str, n: int) -> str:
    if _HANGUL.search(v):
        return f"서울특별시 가상구 누리로 {n}"
    return f"{n} Example Street, Exampletown"


def vehicle_plate(v: str, n: int) -> str:
    return f"00가{n:04d}"


def date_of_birth(v: str, n: int) -> str:
    d = _dt.date(1900, 1, 1) + _dt.timedelta(days=n - 1)
    if "년" in v:
        return f"{d.year}년 {d.month}월 {d.day}일"
    sep = "." if "." in v else "/" if "/" in v else "-"
    return f"{d.year}{sep}{d.month:02d}{sep}{d.day:02d}"


def secret(v: str, n: int) -> str:
    m = _SECRET_PREFIX.match(v)
    prefix = m.group(0) if m else ""
    core = f"NURIFAKE{n:06d}"
    return prefix + core + "X" * max(0, len(v) - len(prefix) - len(core))


def _resident(check: Callable[[str], int]) -> Surrogate:
    def make_resident(v: str, n: int) -> str | None:
        digits = _digits(v)
        if len(digits) != 13:
            return None
        return _fill_digits(v, _num_fill(13, "000101" + digits[6], n, check))   # gender digit kept
    return make_resident


rrn = _resident(rrn_check)
frn = _resident(frn_check)


def brn(v: str, n: int) -> str | None:
    return _fill_digits(v, _num_fill(10, "", n, brn_check)) if len(_digits(v)) == 10 else None


def crn(v: str, n: int) -> str | None:
    return _fill_digits(v, _num_fill(13, "", n, crn_check)) if len(_digits(v)) == 13 else None


def card(v: str, n: int) -> str | None:
    nd = len(_digits(v))
    return _fill_digits(v, _num_fill(nd, "4000", n, luhn_check)) if nd >= 13 else None


def phone(v: str, n: int) -> str | None:
    digits = _digits(v)
    if len(digits) < 7:
        return None
    keep = digits[:3] if digits.startswith("0") else digits[:2]    # the carrier or area prefix
    return _fill_digits(v, _num_fill(len(digits), keep, n))


def driver_license(v: str, n: int) -> str | None:
    digits = _digits(v)
    return _fill_digits(v, _num_fill(len(digits), digits[:2], n)) if len(digits) >= 10 else None  # region kept

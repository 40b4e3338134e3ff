"""Check digits of Korean and card identifiers, for building well-formed fake values.

Used by the surrogate generator (fake but well-formed values that a model sees instead of real
ones) and by the labelled test corpus. Rules from REFERENCE §1: RRN/FRN weights 2..9,2..5 with
`(11 − s mod 11) mod 10` (RRN) or `(13 − s mod 11) mod 10` (FRN); BRN weights 1,3,7,1,3,7,1,3 plus
the ⌊5·d9/10⌋ term; CRN weights alternating 1,2; cards use Luhn.
"""

from __future__ import annotations

_RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
_BRN_WEIGHTS = (1, 3, 7, 1, 3, 7, 1, 3)


def _digits(s: str) -> list[int]:
    return [int(c) for c in s if c.isdigit()]


def rrn_check(first12: str) -> int:
    d = _digits(first12)
    s = sum(a * b for a, b in zip(d, _RRN_WEIGHTS, strict=True))
    return (11 - s % 11) % 10


def frn_check(first12: str) -> int:
    d = _digits(first12)
    s = sum(a * b for a, b in zip(d, _RRN_WEIGHTS, strict=True))
    return (13 - s % 11) % 10


def brn_check(first9: str) -> int:
    d = _digits(first9)
    s = sum(a * b for a, b in zip(d[:8], _BRN_WEIGHTS, strict=True)) + 5 * d[8] + (5 * d[8]) // 10
    return (10 - s % 10) % 10


def crn_check(first12: str) -> int:
    d = _digits(first12)
    s = sum(x * (1 if i % 2 == 0 else 2) for i, x in enumerate(d))
    return (10 - s % 10) % 10


def luhn_check(body: str) -> int:
    """The digit that makes `body + digit` pass Luhn."""
    total = 0
    for i, ch in enumerate(reversed(_digits(body))):
        x = ch * 2 if i % 2 == 0 else ch
        total += x - 9 if x > 9 else x
    return (10 - total % 10) % 10


def luhn_valid(number: str) -> bool:
    d = "".join(str(x) for x in _digits(number))
    return len(d) >= 2 and luhn_check(d[:-1]) == int(d[-1])


def rrn_valid(number: str) -> bool:
    d = "".join(str(x) for x in _digits(number))
    return len(d) == 13 and rrn_check(d[:12]) == int(d[12])


def frn_valid(number: str) -> bool:
    d = "".join(str(x) for x in _digits(number))
    return len(d) == 13 and frn_check(d[:12]) == int(d[12])


def brn_valid(number: str) -> bool:
    d = "".join(str(x) for x in _digits(number))
    return len(d) == 10 and brn_check(d[:9]) == int(d[9])


def crn_valid(number: str) -> bool:
    d = "".join(str(x) for x in _digits(number))
    return len(d) == 13 and crn_check(d[:12]) == int(d[12])

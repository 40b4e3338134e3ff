"""Check digits of Korean identifiers and cards: one formula each, for detectors and surrogates.

Detectors ask whether a number's check digit holds (`*_valid`); the surrogate generator asks for
the digit that makes a fake value well formed (`*_check`). Rules from REFERENCE §1: RRN/FRN
weights 2..9,2..5 with `(11 − s mod 11) mod 10` (RRN) or `(13 − s mod 11) mod 10` (FRN); BRN
weights 1,3,7,1,3,7,1,3 plus the ⌊5·d9/10⌋ term; CRN weights alternating 1,2; cards use Luhn.
Inputs may carry separators (`900101-1234568`): only their digits count.
"""

from __future__ import annotations

_RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
_BRN_WEIGHTS = (1, 3, 7, 1, 3, 7, 1, 3)


def only_digits(s: str) -> str:
    """The digits of `s` (itself when it is nothing else, the common case in detectors)."""
    if s.isascii() and s.isdigit():
        return s
    return "".join(c for c in s if c.isdigit())


def _weighted(d: str) -> int:
    return sum(int(c) * w for c, w in zip(d, _RRN_WEIGHTS, strict=False))


def rrn_check(first12: str) -> int:
    return (11 - _weighted(only_digits(first12)) % 11) % 10


def frn_check(first12: str) -> int:
    return (13 - _weighted(only_digits(first12)) % 11) % 10


def brn_check(first9: str) -> int:
    d = only_digits(first9)
    s = sum(int(c) * w for c, w in zip(d[:8], _BRN_WEIGHTS, strict=True)) + 5 * int(d[8]) + (5 * int(d[8])) // 10
    return (10 - s % 10) % 10


def crn_check(first12: str) -> int:
    s = sum(int(c) * (1 if i % 2 == 0 else 2) for i, c in enumerate(only_digits(first12)[:12]))
    return (10 - s % 10) % 10


def luhn_check(body: str) -> int:
    """The digit that makes `body + digit` pass Luhn."""
    total = 0
    for i, c in enumerate(reversed(only_digits(body))):
        x = int(c) * 2 if i % 2 == 0 else int(c)
        total += x - 9 if x > 9 else x
    return (10 - total % 10) % 10


def rrn_valid(number: str) -> bool:
    d = only_digits(number)
    return len(d) == 13 and rrn_check(d[:12]) == int(d[12])


def frn_valid(number: str) -> bool:
    d = only_digits(number)
    return len(d) == 13 and frn_check(d[:12]) == int(d[12])


def brn_valid(number: str) -> bool:
    d = only_digits(number)
    return len(d) == 10 and brn_check(d[:9]) == int(d[9])


def crn_valid(number: str) -> bool:
    d = only_digits(number)
    return len(d) == 13 and crn_check(d[:12]) == int(d[12])


def luhn_valid(number: str) -> bool:
    d = only_digits(number)
    return len(d) >= 2 and luhn_check(d[:-1]) == int(d[-1])


def ean13(number: str) -> bool:
    """A valid EAN-13 barcode starting 880 (GS1 Korea): a product, not a person."""
    d = only_digits(number)
    if len(d) != 13 or not d.startswith("880"):
        return False
    s = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(d[:12]))
    return (10 - s % 10) % 10 == int(d[12])

"""IP addresses: IPv4 with octet ranges, IPv6 validated by `ipaddress`. Version numbers
(v1.2.3.4, "version 1.2.3.4") are not addresses."""

from __future__ import annotations

import ipaddress
import re

from nuri.privacy import surrogates
from nuri.privacy.detectors.base import RUN_START, Hit, before, keywords
from nuri.privacy.detectors.spec import NUMERIC, EntityKind, Registration, Shape
from nuri.privacy.types import Evidence, PipaCategory

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# After a run's first digit (see RUN_START), not right after a dot: the rest of four octets.
V4_SHAPE = r"(?<![\d.]\d)(?=(?P<ipv4>\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\d]|\.\d)))"
_V4 = re.compile(RUN_START + V4_SHAPE)
_V4_EXACT = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
_V6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])")
# Two hex groups joined by colons: colons after Hangul labels ("고객: …") never start an address.
_V6_HINT = re.compile(r"[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
_VERSION = keywords(["version", "ver", "v", "release", "build"], ascii_words=True)
_VERSION_KO = keywords(["버전"])
_IP_WORD = re.compile(r"(?<![A-Za-z])ip(?![A-Za-z])|아이피|서버|server|host", re.IGNORECASE)


def hit_v4(text: str, m: re.Match[str]) -> Hit | None:
    """The V4_SHAPE matched in `m` as an address, unless it reads as a version number."""
    start, end = m.start(), m.end("ipv4")
    if (start and text[start - 1] in "0123456789.") or not _V4_EXACT.fullmatch(text, start, end):
        return None
    versionish = before(text, start, _VERSION, 9) or before(text, start, _VERSION_KO, 6)
    if versionish and not before(text, start, _IP_WORD, 12):
        return None
    return Hit("IP_ADDRESS", start, end, 0.85, Evidence.PATTERN)


def detect(text: str) -> list[Hit]:
    return [h for m in _V4.finditer(text) if (h := hit_v4(text, m)) is not None]


_HEX = frozenset("0123456789abcdefABCDEF")


def _hex_colon_hex(text: str) -> bool:
    """A colon between two hex digits: what every IPv6 address without "::" holds. Colons after
    labels ("고객: …") are common in Korean text, hex on both sides of one is not."""
    i = text.find(":", 1)
    while i != -1:
        if (text[i - 1] in _HEX and i + 1 < len(text) and text[i + 1] in _HEX
                and _V6_HINT.search(text, max(0, i - 4), i + 6)):
            return True
        i = text.find(":", i + 1)
    return False


def detect_v6(text: str) -> list[Hit]:
    """IPv6 runs on the whole text (its digits need not trigger the numeric windows)."""
    hits: list[Hit] = []
    if "::" in text or _hex_colon_hex(text):
        for m in _V6.finditer(text):
            try:
                ipaddress.IPv6Address(m.group(0))
            except ValueError:
                continue
            if m.group(0).count(":") >= 2 and len(m.group(0)) >= 3:
                hits.append(Hit("IP_ADDRESS", m.start(), m.end(), 0.85, Evidence.PATTERN))
    return hits


IP_ADDRESS = EntityKind("IP_ADDRESS", PipaCategory.PERSONAL, surrogates.ip_address, "lower")
V4 = Registration("ipv4", (IP_ADDRESS,), shape=Shape(V4_SHAPE, "ipv4", hit_v4), trigger=NUMERIC)
V6 = Registration("ipv6", (IP_ADDRESS,), detect_v6, gate=lambda text, lowered: ":" in text)
"""IPv6 runs on the whole text: its digits need not trigger the numeric windows."""

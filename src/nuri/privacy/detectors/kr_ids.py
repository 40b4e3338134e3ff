"""Korean identifiers: RRN, FRN, corporate and business numbers, passport, driver licence.

Rules and check digits: REFERENCE §1 (행정안전부 주민등록번호 체계; 국세청 사업자등록번호; 법인등록번호
규칙). RRNs and FRNs issued or changed since 2020-10-05 have random last six digits, so a valid
birth date plus gender digit is the evidence and a valid check digit only raises the score.
Business, corporate and licence numbers that fail their check digit or region code still count
next to their label word, at a lower score: test and made-up numbers are what gets pasted.
"""

from __future__ import annotations

import datetime as _dt
import re

from nuri.privacy import surrogates
from nuri.privacy.checksums import brn_valid, crn_valid, ean13, frn_valid, rrn_valid
from nuri.privacy.detectors.base import (
    NEGATIVE_CONTEXT,
    SEP,
    Hit,
    before,
    keyword_pattern,
    keywords,
    near,
    valid_date,
)
from nuri.privacy.detectors.spec import NUMERIC, EntityKind, Registration
from nuri.privacy.types import Evidence, PipaCategory

_DASH = r"\s?[-‐‑–]?\s?"
_PASSPORT_KR = re.compile(r"([MSROD])(\d{8}|\d{3}[A-Z]\d{4})(?![A-Za-z0-9])")
_REGION_NAMES = "서울|부산|경기|강원|충북|충남|전북|전남|경북|경남|제주|대구|인천|광주|대전|울산"
_LICENSE_TAIL = rf"(?P<l_s1>{SEP})\d{{2}}(?P<l_s2>{SEP})\d{{6}}(?P<l_s3>{SEP})\d{{2}}(?![\d])"
_LICENSE_REGION = re.compile(rf"(?P<l_name>{_REGION_NAMES})\s?{_LICENSE_TAIL}")
# Every shape that starts with a digit, tried at every start of a digit run in one scan: the run's
# first digit is consumed, and each shape is a lookahead from the next character that captures
# the rest of it, so shapes that share a start (a 10-digit business number inside a licence
# number) are all found. The left boundary ("-" before the run) is checked in code.
#   ss:  YYMMDD-GNNNNNN, also the 6-7 shape of corporate registration numbers
#   brn: NNN-NN-NNNNN business registration numbers
#   lic: RR-NN-NNNNNN-NN driver licences (RR: a region code starting 1 or 2, checked in code)
_DIGIT_IDS = re.compile(
    r"\d(?<!\d\d)"
    rf"(?:(?=(?P<ss>(?P<ss1>\d{{5}})(?P<ss_dash>{_DASH})(?P<ss2>\d{{7}})(?![\d]))))?"
    r"(?:(?=(?P<brn>(?P<b1>\d{2})(?P<b_sep>\s?[-‐‑–]\s?|)(?P<b2>\d{2})(?P=b_sep)(?P<b3>\d{5})(?![\d]))))?"
    rf"(?:(?<=[12])(?=(?P<lic>\d{_LICENSE_TAIL})))?"
)

# A region name right before a digit: one trie pass decides whether the region form can match.
_REGION_HINT = re.compile(keyword_pattern(_REGION_NAMES.split("|")) + r"\s?\d")

_RRN_CTX = keywords(["주민등록번호", "주민번호", "주민등록", "생년월일", "resident registration", "rrn", "주민"])
_FRN_CTX = keywords(["외국인등록번호", "외국인등록", "외국인 등록", "alien registration", "foreigner registration"])
_CRN_CTX = keywords(["법인등록번호", "법인번호", "법인 등록", "corporate registration", "법인"])
_BRN_CTX = keywords(["사업자등록번호", "사업자번호", "사업자 등록", "사업자", "business registration", "brn"])
_PASSPORT_CTX = keywords(["여권", "passport", "旅券"])
_LICENSE_CTX = keywords(["운전면허", "면허번호", "면허증", "driver", "driving licen", "licence", "license"])

_CENTURY = {"9": 1800, "0": 1800, "1": 1900, "2": 1900, "5": 1900, "6": 1900,
            "3": 2000, "4": 2000, "7": 2000, "8": 2000}


def birth_date_ok(d: str) -> bool:
    """YYMMDD plus gender digit G form a real calendar date (century from G)."""
    century = _CENTURY.get(d[6])
    if century is None:
        return False
    year, month, day = century + int(d[:2]), int(d[2:4]), int(d[4:6])
    if not valid_date(year, month, day):
        return False
    return _dt.date(year, month, day) <= _dt.date.today()   # nobody is born in the future


def _left_bad(text: str, start: int, extra: str = "") -> bool:
    """A digit (or `extra`) right before the match: it is part of a longer number."""
    return start > 0 and (text[start - 1].isdigit() or text[start - 1] in extra)


_RANDOM_TAIL = "checksum fails (random tail since 2020-10)"


def _six_seven(text: str, m: re.Match[str]) -> Hit | None:
    s, e = m.start(), m.end("ss")
    d = text[s] + m.group("ss1") + m.group("ss2")
    dashed = bool(m.group("ss_dash").strip())
    negative = before(text, s, NEGATIVE_CONTEXT, 16)
    if near(text, s, e, _CRN_CTX, 20):
        if crn_valid(d):
            return Hit("KR_CRN", s, e, 0.95, Evidence.CONTEXT, "checksum+cue")
        return Hit("KR_CRN", s, e, 0.7, Evidence.CONTEXT, "shape+cue, checksum fails")
    if not birth_date_ok(d):
        if crn_valid(d) and dashed and not negative:
            return Hit("KR_CRN", s, e, 0.8, Evidence.CHECKSUM, "checksum")
        return None
    return _resident(text, s, e, d, dashed, negative)


def _resident(text: str, s: int, e: int, d: str, dashed: bool, negative: bool) -> Hit | None:
    """A valid birth date and gender digit: an RRN or FRN. The check digit only raises the
    score, as numbers issued since 2020-10-05 end in random digits (REFERENCE §1)."""
    foreign = d[6] in "5678"
    kind = "KR_FRN" if foreign else "KR_RRN"
    check = frn_valid(d) if foreign else rrn_valid(d)
    ctx = near(text, s, e, _FRN_CTX if foreign else _RRN_CTX, 24) or (
        foreign and near(text, s, e, _RRN_CTX, 24))
    if not ctx and ((negative and not (check and dashed)) or (not dashed and ean13(d))):
        return None
    if not ctx and not check and not dashed and crn_valid(d):
        # Thirteen bare digits that fit both a post-2020 RRN and a corporate number: report the
        # one that must be protected more (a unique identifier), at a score that says so.
        return Hit(kind, s, e, 0.5, Evidence.PATTERN,
                   "13 digits, valid birth date, also a corporate checksum")
    score = 0.7 if dashed else 0.55
    evidence = Evidence.PATTERN
    if check:
        score, evidence = score + 0.25, Evidence.CHECKSUM
    if ctx:
        score, evidence = score + 0.2, Evidence.CONTEXT
    return Hit(kind, s, e, min(score, 0.99), evidence, _resident_detail(check, ctx, dashed))


def _resident_detail(check: bool, ctx: bool, dashed: bool) -> str:
    if check:
        return "checksum+cue" if ctx else "checksum"
    shape = "shape+cue" if ctx else ("shape" if dashed else "13 digits")
    return f"{shape}, valid birth date, {_RANDOM_TAIL}"


def _brn(text: str, m: re.Match[str]) -> Hit | None:
    """A business number: its check digit, or the NNN-NN-NNNNN shape next to a business word and
    not after an order label (test and made-up numbers fail the check and are still meant as one)."""
    s, e = m.start(), m.end("brn")
    d = text[s] + m.group("b1") + m.group("b2") + m.group("b3")
    check = brn_valid(d)
    if near(text, s, e, _BRN_CTX, 20):
        if check:
            return Hit("KR_BRN", s, e, 0.95, Evidence.CONTEXT, "checksum+cue")
        if before(text, s, NEGATIVE_CONTEXT, 16):
            return None
        return Hit("KR_BRN", s, e, 0.7 if m.group("b_sep") else 0.6, Evidence.CONTEXT,
                   "shape+cue, checksum fails")
    if check and m.group("b_sep") and not before(text, s, NEGATIVE_CONTEXT, 16):
        return Hit("KR_BRN", s, e, 0.8, Evidence.CHECKSUM, "checksum")
    return None


def _passport(text: str) -> list[Hit]:
    hits: list[Hit] = []
    for m in _PASSPORT_KR.finditer(text):
        if m.start() and text[m.start() - 1].isascii() and text[m.start() - 1].isalnum():
            continue
        ctx = near(text, m.start(), m.end(), _PASSPORT_CTX, 24)
        new_format = not m.group(2).isdigit()
        if ctx:
            hits.append(Hit("KR_PASSPORT", m.start(), m.end(), 0.95, Evidence.CONTEXT, "shape+cue"))
        elif new_format and not before(text, m.start(), NEGATIVE_CONTEXT, 16):
            hits.append(Hit("KR_PASSPORT", m.start(), m.end(), 0.6, Evidence.PATTERN, "shape (2021 format)"))
    return hits


def _license(text: str, m: re.Match[str], end: int, region: str | None) -> Hit | None:
    """Both forms: a two-digit region code first (`region`), or a region name (`region` None).
    A code outside 11–26 and 28 counts only next to a licence word, not after an order label."""
    known = region is None or "11" <= region <= "26" or region == "28"
    s = m.start()
    if near(text, s, end, _LICENSE_CTX, 24):
        if known:
            return Hit("KR_DRIVER_LICENSE", s, end, 0.95, Evidence.CONTEXT, "shape+cue, region code")
        if before(text, s, NEGATIVE_CONTEXT, 16):
            return None
        return Hit("KR_DRIVER_LICENSE", s, end, 0.7, Evidence.CONTEXT,
                   f"shape+cue, unknown region code {region}")
    seps = [m.group("l_s1"), m.group("l_s2"), m.group("l_s3")]
    dashed = sum(1 for x in seps if x.strip()) >= 2
    if known and (dashed or region is None) and not before(text, s, NEGATIVE_CONTEXT, 16):
        return Hit("KR_DRIVER_LICENSE", s, end, 0.7, Evidence.PATTERN, "shape, region code")
    return None


def detect(text: str) -> list[Hit]:
    hits: list[Hit | None] = []
    for m in _DIGIT_IDS.finditer(text):
        if m.lastindex is None or _left_bad(text, m.start(), "-"):
            continue
        if m.group("ss") is not None:
            hits.append(_six_seven(text, m))
        if m.group("brn") is not None:
            hits.append(_brn(text, m))
        if m.group("lic") is not None:
            hits.append(_license(text, m, m.end("lic"), text[m.start():m.start() + 2]))
    if _REGION_HINT.search(text):
        for m in _LICENSE_REGION.finditer(text):
            if not _left_bad(text, m.start(), "-"):
                hits.append(_license(text, m, m.end(), None))
    return [h for h in hits if h is not None] + _passport(text)


KR_RRN = EntityKind("KR_RRN", PipaCategory.UNIQUE_ID, surrogates.rrn, "digits")
KR_FRN = EntityKind("KR_FRN", PipaCategory.UNIQUE_ID, surrogates.frn, "digits")
KR_PASSPORT = EntityKind("KR_PASSPORT", PipaCategory.UNIQUE_ID, surrogates.numbered)
KR_DRIVER_LICENSE = EntityKind("KR_DRIVER_LICENSE", PipaCategory.UNIQUE_ID, surrogates.driver_license, "digits")
# Business and corporate numbers identify a sole trader as well: personal, not unique identifiers.
KR_BRN = EntityKind("KR_BRN", PipaCategory.PERSONAL, surrogates.brn, "digits")
KR_CRN = EntityKind("KR_CRN", PipaCategory.PERSONAL, surrogates.crn, "digits")
REGISTRATION = Registration("kr_ids", (KR_RRN, KR_FRN, KR_PASSPORT, KR_DRIVER_LICENSE, KR_BRN, KR_CRN), detect,
                            trigger=NUMERIC)

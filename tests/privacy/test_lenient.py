"""Lenient at the boundary: right shape plus a clear cue counts, even when a check fails.

Test numbers, never-issued ranges and made-up values are what integration tests and attackers
paste, so a privacy boundary masks them. They score below a value that passes its check, at or
above the reply guard's threshold, and say in `detail` which check failed. Without a cue the
same shapes stay unreported, as before.
"""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from nuri.config import PrivacySettings
from nuri.privacy.cli import register
from nuri.privacy.types import Entity, Evidence

try:
    from scan_helpers import SCANNER, brn, crn, dashed, luhn, rrn, types
except ImportError:  # collected as a package
    from .scan_helpers import SCANNER, brn, crn, dashed, luhn, rrn, types

GUARD_MIN = PrivacySettings().guard_min_score


def _bump(value: str) -> str:
    """The same number with its last digit changed: the check digit fails."""
    return value[:-1] + str((int(value[-1]) + 1) % 10)


RRN_OK = dashed(rrn("900101123456"), 6, 7)
BRN_OK = dashed(brn("123456789"), 3, 2, 5)
CRN_OK = dashed(crn("110111123456"), 6, 7)
UNKNOWN_ISSUER = dashed(luhn("800012345678901"), 4, 4, 4, 4)   # Luhn-valid, no known issuer prefix

# (text with a cue, the value, its type, what the detail must say, the same text with a value
# that passes every check)
LENIENT = [
    ("SSN: 900-12-3456", "900-12-3456", "US_SSN", "never-issued area 900", "SSN: 123-45-6789"),
    ("SSN 000-12-3456 on file", "000-12-3456", "US_SSN", "never-issued area 000", "SSN 123-45-6789 on file"),
    ("ssn 666-12-3456", "666-12-3456", "US_SSN", "never-issued area 666", "ssn 123-45-6789"),
    ("social security 123-00-4567", "123-00-4567", "US_SSN", "never-issued group 00", "social security 123-45-4567"),
    ("SSN 123-45-0000", "123-45-0000", "US_SSN", "never-issued serial 0000", "SSN 123-45-6789"),
    ("call me on 555-0123", "555-0123", "PHONE", "fictional 555-01xx", "call me on (212) 555-2671"),
    ("phone (212) 555-0123", "(212) 555-0123", "PHONE", "fictional 555-01xx", "phone (212) 555-2671"),
    ("call +1 212 555 0147 now", "+1 212 555 0147", "PHONE", "fictional 555-01xx", "call +1 212 555 2671 now"),
    ("연락처 010-0000-1234", "010-0000-1234", "PHONE", "exchange starting 0", "연락처 010-5000-1234"),
    ("연락처 010-234-5678", "010-234-5678", "PHONE", "3-digit exchange", "연락처 010-2345-5678"),
    ("전화 013-1234-5678", "013-1234-5678", "PHONE", "prefix 013 not an area or mobile code", "전화 010-5234-5678"),
    ("카드 4111-1111-1111-1112입니다", "4111-1111-1111-1112", "CARD", "Luhn checksum fails",
     "카드 4111-1111-1111-1111입니다"),
    ("카드번호 9430-1234-5678-9012", "9430-1234-5678-9012", "CARD", "Luhn checksum fails",
     "카드번호 4111-1111-1111-1111"),
    ("card 3782-822463-10006", "3782-822463-10006", "CARD", "Luhn checksum fails", "card 3782-822463-10005"),
    (f"card no. {UNKNOWN_ISSUER}", UNKNOWN_ISSUER, "CARD", "unknown issuer range", "card no. 4111-1111-1111-1111"),
    (f"주민등록번호 {_bump(RRN_OK)}", _bump(RRN_OK), "KR_RRN", "checksum fails", f"주민등록번호 {RRN_OK}"),
    (f"주민번호 {_bump(RRN_OK).replace('-', '')}", _bump(RRN_OK).replace("-", ""), "KR_RRN", "checksum fails",
     f"주민번호 {RRN_OK.replace('-', '')}"),
    (f"사업자등록번호 {_bump(BRN_OK)}", _bump(BRN_OK), "KR_BRN", "checksum fails", f"사업자등록번호 {BRN_OK}"),
    (f"법인등록번호 {_bump(CRN_OK)}", _bump(CRN_OK), "KR_CRN", "checksum fails", f"법인등록번호 {CRN_OK}"),
    ("운전면허 27-12-345678-90", "27-12-345678-90", "KR_DRIVER_LICENSE", "unknown region code 27",
     "운전면허 11-12-345678-90"),
]


def _only(text: str) -> Entity:
    [e] = SCANNER.scan(text)
    return e


@pytest.mark.parametrize(("text", "value", "kind", "why", "valid_text"), LENIENT,
                         ids=[f"{c[2]}:{c[3]}" for c in LENIENT])
def test_shape_and_cue_count_below_a_checked_value(text: str, value: str, kind: str, why: str,
                                                    valid_text: str) -> None:
    e = _only(text)
    assert (e.type, text[e.start:e.end]) == (kind, value)
    assert e.evidence is Evidence.CONTEXT
    assert why in e.detail and "cue" in e.detail
    valid = _only(valid_text)
    assert valid.type == kind and "fail" not in valid.detail and "never" not in valid.detail
    assert GUARD_MIN <= e.score < valid.score


def test_post_2020_rrn_in_the_exact_shape_scores_well_without_a_cue() -> None:
    e = _only(f"신청인 {_bump(RRN_OK)}")
    assert e.type == "KR_RRN" and e.score >= 0.7 and "checksum fails" in e.detail
    assert _only(f"신청인 {RRN_OK}").detail == "checksum"


@pytest.mark.parametrize("text", [
    "ref 900-12-3456",                       # never-issued SSN, no SSN word
    "id 123-45-0000",
    "번호 4111-1111-1111-1112",              # Luhn fails, no card word
    f"번호 {UNKNOWN_ISSUER}",                 # unknown issuer, no card word
    "코드 013-1234-5678",                    # unassigned prefix, no phone word
    "코드 010-234-5678",
    "내선 555-0123",
    f"번호 {_bump(BRN_OK)}",                  # business-number shape, check fails, no label
    "코드 27-12-345678-90",                  # unknown licence region, no label
])
def test_without_a_cue_implausible_values_stay_unreported(text: str) -> None:
    assert SCANNER.scan(text) == []


@pytest.mark.parametrize("text", [
    "주민번호 901301-1234567",                 # a cue does not make month 13 a birth date
    "카드 결제 주문번호 1234-5678-9012-3456",   # order number after the card word
    "카드 결제 2024-01-05 12:34:56, 금액 1,234,567원",
    "전화 주세요. 합계 1,250,000원, 2024.01.05 접수",
    "call at 2024-01-05 10:30, total 12,345.67",
    "SSN field left blank, order 20240105-0001",
    "연락처 주문번호 084-6541-9202 접수",        # an order label between the cue and the number
    "운전면허 주문번호 29-00-597308-65",
    "전화 문의 0216-7263-5875-2608",           # four groups: no phone number
])
def test_cues_do_not_turn_ordinary_numbers_into_personal_data(text: str) -> None:
    assert types(text) == set()


def test_scan_json_reports_detail_but_not_the_value() -> None:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """nuri"""

    register(app)
    value = _bump(RRN_OK)
    result = CliRunner().invoke(app, ["scan", f"주민번호 {value}, SSN 900-12-3456", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    by_type = {e["type"]: e for e in doc["entities"]}
    assert set(by_type) == {"KR_RRN", "US_SSN"}
    assert "checksum fails" in by_type["KR_RRN"]["detail"]
    assert by_type["US_SSN"]["detail"] == "shape+cue, never-issued area 900"
    assert all({"type", "score", "evidence", "detail"} <= set(e) for e in doc["entities"])
    assert value not in result.output and "900-12-3456" not in result.output

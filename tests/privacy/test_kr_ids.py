"""Korean identifiers: valid, invalid, evasions and look-alikes that must stay quiet."""

from __future__ import annotations

import pytest

from nuri.privacy.types import Evidence, PipaCategory

try:
    from scan_helpers import SCANNER, brn, crn, dashed, found, rrn, types
except ImportError:  # collected as a package
    from .scan_helpers import SCANNER, brn, crn, dashed, found, rrn, types


RRN = dashed(rrn("900101123456"), 6, 7)            # 900101-1234568, checksum valid
RRN_2000S = dashed(rrn("020315412345"), 6, 7)      # born 2002, G=4
FRN = dashed(rrn("850704612345", foreign=True), 6, 7)


def test_rrn_with_checksum_and_context_is_found_with_high_score() -> None:
    text = f"주민등록번호 {RRN}입니다"
    [e] = SCANNER.scan(text)
    assert (e.type, text[e.start:e.end]) == ("KR_RRN", RRN)
    assert e.score >= 0.9 and e.category is PipaCategory.UNIQUE_ID and e.evidence is Evidence.CONTEXT


def test_rrn_glued_to_hangul_and_2000s_gender_digit() -> None:
    assert found(f"번호는{RRN_2000S}이고") == [("KR_RRN", RRN_2000S)]


def test_post_2020_rrn_with_random_tail_is_still_found_but_scores_lower() -> None:
    bad_check = RRN[:-1] + str((int(RRN[-1]) + 1) % 10)   # valid date + G, checksum fails
    [e] = SCANNER.scan(f"주민번호: {bad_check}")
    assert e.type == "KR_RRN"
    [plain] = SCANNER.scan(f"{bad_check}")
    [checked] = SCANNER.scan(f"{RRN}")
    assert plain.score < checked.score


def test_impossible_and_future_birth_dates_never_fire() -> None:
    for fake in ("901301-1234567", "900230-1234567", "000000-0000000", "991231-4999999"):
        assert not types(f"코드 {fake}") & {"KR_RRN", "KR_FRN"}, fake


def test_order_number_with_date_shape_is_not_an_rrn() -> None:
    assert "KR_RRN" not in types("주문번호 9001011234567 배송 준비중")


def test_foreigner_registration_number() -> None:
    assert found(f"외국인등록번호 {FRN}") == [("KR_FRN", FRN)]


@pytest.mark.parametrize("variant", [
    "９００１０１－１２３４５６８",                       # fullwidth digits and hyphen
    "900101-12\u200b34568",                            # zero-width space inside
    "9 0 0 1 0 1 - 1 2 3 4 5 6 8",                     # every digit spaced
    "9.0.0.1.0.1.1.2.3.4.5.6.8",                       # dotted
])
def test_rrn_evasions_are_found_and_span_the_original_text(variant: str) -> None:
    text = f"주민번호 {variant} 입니다"
    [e] = SCANNER.scan(text)
    assert e.type == "KR_RRN"
    assert text[e.start:e.end] == variant


def test_business_registration_number_checksum() -> None:
    good = dashed(brn("123456789"), 3, 2, 5)
    assert found(f"사업자등록번호: {good}") == [("KR_BRN", good)]
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    assert "KR_BRN" not in types(f"번호: {bad}")              # a failed check needs the label
    [e] = SCANNER.scan(f"사업자등록번호: {bad}")
    assert e.type == "KR_BRN" and e.score < SCANNER.scan(f"사업자등록번호: {good}")[0].score


def test_corporate_registration_number_by_context_and_checksum() -> None:
    with_ctx = dashed(crn("110111123456"), 6, 7)       # date-shaped: only context decides
    assert found(f"법인등록번호 {with_ctx}") == [("KR_CRN", with_ctx)]
    no_date = dashed(crn("134511000123"), 6, 7)        # month 45: cannot be an RRN
    assert found(f"등록 {no_date}") == [("KR_CRN", no_date)]


def test_korean_passport_old_and_new_format() -> None:
    assert found("여권번호 M12345678") == [("KR_PASSPORT", "M12345678")]
    assert found("passport no. M123A4567") == [("KR_PASSPORT", "M123A4567")]
    assert "KR_PASSPORT" not in types("모델 S12345678 재고 있음")    # old format, no context


def test_driver_licence_with_numeric_and_hangul_region() -> None:
    assert found("운전면허번호 11-12-345678-90") == [("KR_DRIVER_LICENSE", "11-12-345678-90")]
    assert found("면허증 서울 12-345678-90") == [("KR_DRIVER_LICENSE", "서울 12-345678-90")]
    assert "KR_DRIVER_LICENSE" not in types("운송장 111234567890")

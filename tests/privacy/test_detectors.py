"""Phone, e-mail, card, bank, IP, secrets, SSN, passports, plates, dates of birth, addresses."""

from __future__ import annotations

import pytest

from nuri.privacy.types import PipaCategory

try:
    from scan_helpers import SCANNER, dashed, found, luhn, types
except ImportError:  # collected as a package
    from .scan_helpers import SCANNER, dashed, found, luhn, types


# --- phone -----------------------------------------------------------------------------------
@pytest.mark.parametrize("number", [
    "010-1234-5678", "010.1234.5678", "010 1234 5678", "01012345678", "02-312-3456", "031-123-4567",
    "070-1234-5678", "+82 10-1234-5678", "+82-2-312-3456", "(02) 312-3456", "011-123-4567",
])
def test_korean_phone_formats(number: str) -> None:
    assert found(f"연락처는 {number}입니다") == [("PHONE", number)]


@pytest.mark.parametrize("number", ["+1 415-555-2671", "+44 20 7946 0958", "+81 3-1234-5678"])
def test_international_numbers_are_validated_by_phonenumbers(number: str) -> None:
    assert found(f"call me at {number} tomorrow") == [("PHONE", number)]


def test_phone_evasions_map_back_to_the_original() -> None:
    for variant in ("０１０－１２３４－５６７８", "010-12\u200c34-5678", "0 1 0 1 2 3 4 5 6 7 8"):
        text = f"전화 {variant} 로 주세요"
        assert found(text) == [("PHONE", variant)], variant


def test_phone_negatives() -> None:
    assert "PHONE" not in types("가격은 1,500,000원이고 2024-01-05에 배송")
    assert "PHONE" not in types("+1 000 000")                 # not a valid number
    assert "PHONE" not in types("주문번호 01012345678")          # bare digits after an order label


# --- e-mail, IP ------------------------------------------------------------------------------
def test_email_glued_to_hangul() -> None:
    assert found("메일은kim.minsu+cs@example.co.kr로 보내세요") == [("EMAIL", "kim.minsu+cs@example.co.kr")]
    assert "EMAIL" not in types("트위터 @nuri_ai 팔로우")


def test_ip_addresses_and_version_numbers() -> None:
    assert found("서버 IP 192.168.0.12 접속") == [("IP_ADDRESS", "192.168.0.12")]
    assert found("addr 2001:db8::8a2e:370:7334 ok") == [("IP_ADDRESS", "2001:db8::8a2e:370:7334")]
    assert "IP_ADDRESS" not in types("version 1.2.3.4 released")
    assert "IP_ADDRESS" not in types("999.1.1.1")


# --- card, bank ------------------------------------------------------------------------------
def test_card_luhn_glued_to_hangul() -> None:
    [e] = SCANNER.scan("카드 4111-1111-1111-1111입니다")
    assert (e.type, e.category) == ("CARD", PipaCategory.FINANCIAL)
    card = luhn("540012345678901")
    assert found(f"결제 카드 {dashed(card, 4, 4, 4, 4)}") == [("CARD", dashed(card, 4, 4, 4, 4))]
    assert found(f"카드번호 {card} 승인") == [("CARD", card)]


def test_card_negatives() -> None:
    bad = "4111-1111-1111-1112"                     # Luhn fails: a card only next to a card word
    assert "CARD" not in types(f"번호 {bad}")
    assert "CARD" not in types("송장번호 4000 1234 5678 9010 조회")   # Luhn-valid invoice number


def test_bank_account_needs_context() -> None:
    assert found("국민은행 123456-01-234567 예금주 홍길동")[0] == ("BANK_ACCOUNT", "123456-01-234567")
    assert found("입금 계좌: 1002-123-456789") == [("BANK_ACCOUNT", "1002-123-456789")]
    assert "BANK_ACCOUNT" not in types("모델번호 123456-01-234567")


# --- secrets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("secret", [
    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123456789",
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx0123",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "xoxb-123456789012-abcdefghijkl",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
])
def test_api_keys_and_tokens(secret: str) -> None:
    text = f"키는 {secret} 입니다"
    [e] = SCANNER.scan(text)
    assert (e.type, text[e.start:e.end], e.category) == ("SECRET", secret, PipaCategory.SECRET)


def test_private_key_url_password_and_labelled_password() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1x2y3z\n-----END RSA PRIVATE KEY-----"
    assert found(f"key:\n{pem}\n") == [("SECRET", pem)]
    assert found("DATABASE_URL=postgres://app:s3cr3t-P4ss@db.internal:5432/app") == [("SECRET", "s3cr3t-P4ss")]
    assert found("비밀번호: Qwer1234!!입니다") == [("SECRET", "Qwer1234!!")]
    assert "SECRET" not in types("password is required and 비밀번호는 변경되었습니다")
    assert "SECRET" not in types("the sk-learn skeleton key idea")


# --- US SSN, other passports -------------------------------------------------------------------
def test_us_ssn() -> None:
    assert found("SSN: 123-45-6789") == [("US_SSN", "123-45-6789")]
    # never-issued numbers count only next to an SSN word (tests/privacy/test_lenient.py)
    assert "US_SSN" not in types("ref 000-12-3456 and 666-12-3456 and 900-12-3456")


def test_foreign_passport_needs_label() -> None:
    assert found("Passport No: 123456789") == [("PASSPORT", "123456789")]
    assert found("여권번호 E12345678 (중국)") == [("PASSPORT", "E12345678")]
    assert "PASSPORT" not in types("ticket 123456789")


# --- vehicle plates ----------------------------------------------------------------------------
def test_vehicle_plates() -> None:
    assert found("차량 12가3456 주차") == [("VEHICLE_PLATE", "12가3456")]
    assert found("123허 4567 렌트") == [("VEHICLE_PLATE", "123허 4567")]
    assert found("서울12가3456") == [("VEHICLE_PLATE", "서울12가3456")]
    assert "VEHICLE_PLATE" not in types("100주 2000원에 매수, 30명 1234개")


# --- date of birth -----------------------------------------------------------------------------
def test_date_of_birth_needs_a_birth_label() -> None:
    assert found("생년월일: 1990년 3월 5일") == [("DATE_OF_BIRTH", "1990년 3월 5일")]
    assert found("DOB 1985-12-01") == [("DATE_OF_BIRTH", "1985-12-01")]
    assert found("born on March 5, 1990") == [("DATE_OF_BIRTH", "March 5, 1990")]
    assert "DATE_OF_BIRTH" not in types("회의는 2024-01-05 10시, 마감 1990년 3월 5일")
    assert "DATE_OF_BIRTH" not in types("생년월일 1990-02-30")


# --- addresses ---------------------------------------------------------------------------------
@pytest.mark.parametrize("address", [
    "서울특별시 강남구 테헤란로 152",
    "경기도 성남시 분당구 판교역로 235",
    "부산 해운대구 우동 1408번지",
    "서울 마포구 월드컵북로 396, 101동 1203호",
    "세종특별자치시 한누리대로 2130",
])
def test_korean_addresses(address: str) -> None:
    assert found(f"주소는 {address}입니다") == [("ADDRESS", address)]


def test_english_address_and_address_negatives() -> None:
    assert found("Ship to 1600 Pennsylvania Avenue, Washington, DC 20500") == [
        ("ADDRESS", "1600 Pennsylvania Avenue, Washington, DC 20500")]
    assert "ADDRESS" not in types("3시에 테헤란로 2번 출구에서 만나요")
    assert "ADDRESS" not in types("1로 2로 나누면")


# --- look-alikes from real documents -----------------------------------------------------------
def test_korean_product_barcodes_are_not_identifiers() -> None:
    # EAN-13 codes from GS1 Korea start with 880 (880512… is also a 1988 birth date); their own
    # check digit tells them apart.
    text = "상품: 유기농 현미 10kg (8805120018414) 606,000원, 예금주 홍길동 (상품코드 8801742044077)"
    assert types(text) & {"KR_RRN", "KR_FRN", "BANK_ACCOUNT"} == set()


def test_phone_after_an_account_sentence_stays_a_phone() -> None:
    text = "국민은행 123456-01-234567 예금주 홍길동입니다.\n연락은 02-7924-6992로 부탁드립니다."
    assert ("PHONE", "02-7924-6992") in found(text)
    assert ("BANK_ACCOUNT", "123456-01-234567") in found(text)


def test_jwt_and_env_style_tokens() -> None:
    jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.Z2_9N6_86_x8rfmGOSHB.fd5DTeoLAH142FgJ-iDLMX"
    assert found(f"JWT_TOKEN={jwt}\nAPP_VERSION=1.2") == [("SECRET", jwt)]


def test_date_of_birth_answered_on_the_next_line() -> None:
    text = "상담원: 생년월일 말씀 부탁드립니다.\n고객: 1985.08.20이요."
    assert found(text) == [("DATE_OF_BIRTH", "1985.08.20")]
    assert "DATE_OF_BIRTH" not in types("생년월일 확인 후 2999-01-01 방문")   # a future date


def test_date_of_birth_needs_a_birth_label_not_a_lookalike() -> None:
    from nuri.privacy.detectors.date_of_birth import detect

    assert detect("사고 발생일 2020-01-01, 재생일 2021.03.04") == []
    assert [(h.start, h.end) for h in detect("학생 김하늘(2009.06.17생)")] == [(7, 17)]
    assert detect("12019.06.17생") == []  # no date inside a longer number

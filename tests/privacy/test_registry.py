"""The detector registry: one declaration per entity type drives scanning, categories, value
comparison, surrogates and what policy rules may name; check digits have one implementation."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from nuri.config import PrivacySettings
from nuri.policy.model import KNOWN_ENTITY_TYPES, When
from nuri.privacy import checksums, surrogates
from nuri.privacy.detectors.base import Hit
from nuri.privacy.detectors.registry import ENTITY_TYPES, KINDS, REGISTRATIONS, category, make_surrogate
from nuri.privacy.detectors.spec import EntityKind, Registration, Trigger
from nuri.privacy.pseudonymizer import Pseudonymizer, value_key
from nuri.privacy.scanner import Scanner
from nuri.privacy.types import Evidence, PipaCategory

try:
    from scan_helpers import brn, crn, luhn, rrn
except ImportError:  # collected as a package
    from .scan_helpers import brn, crn, luhn, rrn

PLATE, SSN, IPV4 = "12가3456", "123-45-6789", "10.20.30.40"
SHAPES_TEXT = f"차량 {PLATE} 주차, ssn {SSN}, server ip {IPV4}"


def test_the_type_list_is_the_registry() -> None:
    assert KNOWN_ENTITY_TYPES == set(ENTITY_TYPES) == set(KINDS)
    assert len(ENTITY_TYPES) == len(set(ENTITY_TYPES)) == 18
    assert {t for r in REGISTRATIONS for t in r.types} == set(ENTITY_TYPES)


def test_categories_come_from_the_declarations() -> None:
    unique = {t for t in ENTITY_TYPES if category(t) is PipaCategory.UNIQUE_ID}
    assert unique == {"KR_RRN", "KR_FRN", "KR_PASSPORT", "KR_DRIVER_LICENSE", "PASSPORT", "US_SSN"}
    assert {t for t in ENTITY_TYPES if category(t) is PipaCategory.FINANCIAL} == {"CARD", "BANK_ACCOUNT"}
    assert category("KR_BRN") is PipaCategory.PERSONAL and category("NOT_A_TYPE") is PipaCategory.PERSONAL
    found = Scanner().scan("주민번호 900101-1234568, 사업자등록번호 220-81-62517")
    assert [(e.type, e.category) for e in found] == [("KR_RRN", PipaCategory.UNIQUE_ID),
                                                    ("KR_BRN", PipaCategory.PERSONAL)]


@pytest.mark.parametrize("off", ["US_SSN", "VEHICLE_PLATE", "IP_ADDRESS"])
def test_disabling_one_shape_keeps_the_others_it_is_scanned_with(off: str) -> None:
    everything = {(e.type, e.text) for e in Scanner().scan(SHAPES_TEXT)}
    assert everything == {("VEHICLE_PLATE", PLATE), ("US_SSN", SSN), ("IP_ADDRESS", IPV4)}
    rest = {(e.type, e.text) for e in Scanner(PrivacySettings(disabled_entities=[off])).scan(SHAPES_TEXT)}
    assert rest == {(t, v) for t, v in everything if t != off}


def test_a_new_entity_type_is_one_declaration() -> None:
    employee = EntityKind("EMPLOYEE_ID", PipaCategory.PERSONAL, surrogates.numbered, "digits")

    def detect(text: str) -> list[Hit]:
        return [Hit("EMPLOYEE_ID", m.start(), m.end(), 0.9, Evidence.PATTERN)
                for m in re.finditer(r"EMP-\d{6}", text)]

    reg = Registration("employee", (employee,), detect, trigger=Trigger(re.compile("EMP-"), 8, 16))
    scanner = Scanner(registrations=(*REGISTRATIONS, reg))
    found = scanner.scan("사번 EMP-123456, 연락처 010-2345-6789")
    assert [(e.type, e.text) for e in found] == [("EMPLOYEE_ID", "EMP-123456"), ("PHONE", "010-2345-6789")]
    assert Scanner().scan("사번 EMP-123456") == []


def test_a_registration_needs_exactly_one_way_to_detect() -> None:
    kind = KINDS["EMAIL"]
    with pytest.raises(ValueError, match="exactly one"):
        Registration("nothing", (kind,))


def test_value_comparison_follows_the_declared_fold() -> None:
    assert value_key("PHONE", "010-2345-6789") == value_key("PHONE", "010 2345 6789")
    assert value_key("EMAIL", "Kim@Example.com") == value_key("EMAIL", "kim@example.com")
    assert value_key("PERSON", "김  철수") == "김 철수" and value_key("PERSON", "김철수") != "김 철수"
    p = Pseudonymizer()
    assert p.token_for("PHONE", "010-2345-6789") == p.token_for("PHONE", "01023456789")


@pytest.mark.parametrize("entity_type", ENTITY_TYPES)
def test_every_type_has_a_surrogate_that_is_not_the_value(entity_type: str) -> None:
    samples = {"KR_RRN": "900101-1234568", "KR_FRN": "900101-5234565", "KR_BRN": "220-81-62517",
               "KR_CRN": "110111-1234560", "CARD": "4111-1111-1111-1111", "PHONE": "010-2345-6789",
               "KR_DRIVER_LICENSE": "11-12-345678-90", "EMAIL": "kim@example.co.kr", "IP_ADDRESS": "10.1.2.3",
               "PERSON": "김철수", "ADDRESS": "서울특별시 강남구 테헤란로 152", "VEHICLE_PLATE": PLATE,
               "DATE_OF_BIRTH": "1985년 3월 12일", "SECRET": "sk-abcdefghijklmnopqrstuvwxyz",
               "US_SSN": SSN, "PASSPORT": "X12345678", "KR_PASSPORT": "M12345678",
               "BANK_ACCOUNT": "123456-01-234567"}
    value = samples[entity_type]
    fakes = {make_surrogate(entity_type, value, n) for n in range(1, 6)}
    assert value not in fakes and len(fakes) == 5
    assert all(not f.startswith("<") for f in fakes)       # a real-looking value, not a placeholder


def test_surrogate_check_digits_hold() -> None:
    assert checksums.rrn_valid(make_surrogate("KR_RRN", "900101-1234568", 3))
    assert checksums.frn_valid(make_surrogate("KR_FRN", "900101-5234565", 3))
    assert checksums.brn_valid(make_surrogate("KR_BRN", "220-81-62517", 3))
    assert checksums.crn_valid(make_surrogate("KR_CRN", "110111-1234560", 3))
    assert checksums.luhn_valid(make_surrogate("CARD", "4111-1111-1111-1111", 3))


@given(st.text("0123456789", min_size=12, max_size=12))
def test_check_digits_agree_with_independent_formulas(first12: str) -> None:
    assert checksums.rrn_valid(rrn(first12)) and checksums.frn_valid(rrn(first12, foreign=True))
    assert checksums.crn_valid(crn(first12)) and checksums.brn_valid(brn(first12[:9]))
    assert checksums.luhn_valid(luhn(first12 + "123"))
    bumped = str((int(rrn(first12)[-1]) + 1) % 10)
    assert not checksums.rrn_valid(rrn(first12)[:-1] + bumped)
    assert not checksums.luhn_valid(luhn(first12)[:-1] + str((int(luhn(first12)[-1]) + 1) % 10))


def test_policy_rules_name_exactly_the_registered_types() -> None:
    assert When(entity_types=[t.lower() for t in ENTITY_TYPES]).entity_types == list(ENTITY_TYPES)
    with pytest.raises(ValidationError, match="unknown entity type"):
        When(entity_types=["EMPLOYEE_ID"])

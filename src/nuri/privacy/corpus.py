"""Labelled Korean-first personal-data corpus: realistic documents with gold spans.

Nuri's accuracy claims are measured on this corpus (bench/pii_accuracy.py). It is generated,
not collected, so it holds no real person's data, and it is deterministic: the same seed gives
the same JSONL byte for byte (a test checks the committed file against the generator).

Documents imitate what reaches a gateway: customer-service chats, HR and medical notes,
contracts, government forms, bank messages, code with secrets, English and mixed-language text.
Identifiers follow REFERENCE §1: valid check digits, post-2020 RRNs/FRNs with random tails,
2021+ passports, every phone family; some are written to evade detectors (fullwidth digits,
zero-width characters, digits spaced one by one). Hard negatives carry no labels: order and
invoice numbers, dates that are not birth dates, prices, product codes, RRN-shaped numbers with
impossible dates, and historical figures in encyclopedic text.

Run: `python -m nuri.privacy.corpus [--out tests/fixtures/pii/corpus.jsonl] [--seed 20261124]`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import random
import string
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nuri.privacy.idgen import brn_check, crn_check, frn_check, luhn_check, rrn_check

TYPES = (
    "KR_RRN", "KR_FRN", "KR_PASSPORT", "KR_DRIVER_LICENSE", "KR_BRN", "KR_CRN", "PHONE", "EMAIL",
    "CARD", "BANK_ACCOUNT", "ADDRESS", "PERSON", "VEHICLE_PLATE", "IP_ADDRESS", "DATE_OF_BIRTH",
    "SECRET", "US_SSN", "PASSPORT",
)
DEFAULT_SEED = 20261124
DEFAULT_DOCS = 520
DEFAULT_PATH = Path("tests/fixtures/pii/corpus.jsonl")

# -- vocabulary ---------------------------------------------------------------------------------
SURNAMES = list("김이박최정강조윤장임한오서신권황안송류전홍고문양손배백허유남심노하곽성차주우구민진나지엄채원천방공현함변염여추도소석선설마길연위표명기반라왕금옥육인맹제모탁국어은편용") + [
    "남궁", "황보", "제갈", "선우", "독고", "사공"]
_COMMON_SURNAMES = list("김이박최정강조윤장임한오서신권황안송류홍")
GIVEN = ["민준", "서준", "도윤", "예준", "시우", "하준", "지호", "주원", "지후", "준우", "서연", "서윤", "지우",
         "서현", "민서", "하은", "하윤", "윤서", "지유", "채원", "수아", "영수", "영희", "철민", "정희", "미경",
         "성호", "현우", "은정", "상철", "경수", "혜진", "동현", "수빈", "재민", "유진", "태희", "승민", "가영",
         "나연", "보람", "진혁", "은비", "종국", "명숙", "순자", "광수", "재석", "소희", "다은", "건우", "우진",
         "선영", "정훈", "민지", "예린", "하람", "태윤", "혁", "훈", "결", "솔"]
EN_FIRST = ["James", "Emily", "Michael", "Sarah", "David", "Olivia", "Daniel", "Sophia", "Thomas", "Grace",
            "Kevin", "Hannah", "Brian", "Laura", "Jason", "Rachel"]
EN_LAST = ["Smith", "Johnson", "Brown", "Miller", "Wilson", "Taylor", "Anderson", "Clark", "Walker", "Young",
           "Park", "Kim", "Lee", "Chen", "Nguyen", "Garcia"]
ROMAN = {"김": "kim", "이": "lee", "박": "park", "최": "choi", "정": "jung", "강": "kang", "조": "cho",
         "윤": "yoon", "장": "jang", "임": "lim", "한": "han", "오": "oh", "서": "seo", "신": "shin"}
ROMAN_GIVEN = ["minjun", "seoyeon", "jiho", "haeun", "dohyun", "yujin", "sumin", "jaemin", "hyejin", "taeyang",
               "eunji", "sungho", "jiwoo", "donghyun"]
DOMAINS = ["naver.com", "gmail.com", "daum.net", "kakao.com", "hanmail.net", "nate.com", "example.co.kr",
           "corp.samsung-example.com", "agency.go.kr", "univ.ac.kr"]
REGIONS = [
    ("서울특별시", ["강남구", "서초구", "마포구", "종로구", "송파구", "영등포구", "관악구", "노원구"]),
    ("부산광역시", ["해운대구", "부산진구", "동래구", "수영구"]),
    ("대구광역시", ["수성구", "달서구"]),
    ("인천광역시", ["연수구", "남동구", "부평구"]),
    ("광주광역시", ["서구", "북구"]),
    ("대전광역시", ["유성구", "서구"]),
    ("경기도", ["성남시 분당구", "수원시 영통구", "고양시 일산동구", "용인시 수지구", "화성시", "파주시"]),
    ("강원특별자치도", ["춘천시", "원주시"]),
    ("충청남도", ["천안시 서북구", "아산시"]),
    ("전북특별자치도", ["전주시 완산구"]),
    ("경상남도", ["창원시 성산구", "김해시"]),
    ("제주특별자치도", ["제주시", "서귀포시"]),
]
SHORT_SIDO = {"서울특별시": "서울시", "부산광역시": "부산시", "경기도": "경기", "대구광역시": "대구시"}
ROADS = ["테헤란로", "강남대로", "세종대로", "올림픽로", "판교역로", "대학로", "중앙로", "센텀중앙로", "월드컵북로",
         "반포대로", "동일로", "광평로", "한누리대로", "충장로", "삼성로", "경수대로", "새문안로", "도산대로"]
DONG = ["역삼동", "서교동", "우동", "신림동", "상계동", "정자동", "삼성동", "연희동", "중동", "화정동"]
BUILDINGS = ["래미안아파트", "푸르지오", "자이아파트", "현대빌딩", "스타타워", "행복빌라"]
BANKS = ["국민은행", "신한은행", "우리은행", "하나은행", "농협", "IBK기업은행", "카카오뱅크", "토스뱅크", "SC제일은행",
         "부산은행"]
BANK_FORMATS = {
    "국민은행": (6, 2, 6), "신한은행": (3, 3, 6), "우리은행": (4, 3, 6), "하나은행": (3, 6, 5),
    "농협": (3, 4, 4, 2), "IBK기업은행": (3, 6, 2, 3), "카카오뱅크": (4, 2, 7), "토스뱅크": (4, 4, 4),
    "SC제일은행": (3, 2, 6), "부산은행": (3, 4, 4, 2),
}
PLATE_HANGUL = "가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주하허호배"
COMPANIES = ["누리테크", "한빛소프트", "대한물산", "푸른바다식품", "미래에너지", "새한건설", "다온헬스케어", "온누리상사"]
HISTORICAL = [
    ("세종대왕", "조선의 제4대 국왕으로 1397년에 태어나 1450년에 세상을 떠났다. 1443년 훈민정음을 창제하였다."),
    ("이순신", "조선 중기의 무신으로 1545년 한성에서 태어났다. 1592년 임진왜란 때 한산도 대첩을 이끌었다."),
    ("유관순", "1902년 충청남도 천안에서 태어난 독립운동가로, 1919년 아우내 장터 만세 운동에 참여하였다."),
    ("안중근", "1879년 황해도 해주에서 태어난 독립운동가로, 1909년 하얼빈에서 이토 히로부미를 저격하였다."),
    ("장영실", "조선 전기의 과학자로 1434년 자격루를 제작하였으며 측우기 제작에도 참여하였다."),
    ("정약용", "1762년에 태어난 조선 후기의 실학자로 목민심서와 경세유표를 저술하였다."),
    ("신사임당", "1504년 강릉에서 태어난 조선의 화가이자 문인으로, 율곡 이이의 어머니이다."),
    ("김구", "1876년 황해도에서 태어났으며 대한민국 임시정부의 주석을 지냈다."),
]
PRODUCTS = ["무선 이어폰", "보조배터리 20000mAh", "유기농 현미 10kg", "노트북 거치대", "캠핑 의자", "전동 칫솔"]

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")   # not %B: that follows the C library's locale
_FULLWIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")


def _zero_width(s: str, rng: random.Random) -> str:
    marks = ["\u200b", "\u200c", "\u200d", "\u2060"]
    out = []
    for i, ch in enumerate(s):
        out.append(ch)
        if ch.isdigit() and i < len(s) - 1 and rng.random() < 0.5:
            out.append(rng.choice(marks))
    if len(out) == len(s):  # always at least one invisible character
        out.insert(len(s) // 2, marks[0])
    return "".join(out)


def _spaced(s: str) -> str:
    return ("+" if s.startswith("+") else "") + " ".join(c for c in s if c.isdigit())


def evade(value: str, rng: random.Random, kind: str | None = None) -> tuple[str, str]:
    """The value written to evade detectors; returns (text, evasion kind)."""
    kind = kind or rng.choice(["fullwidth", "zero_width", "spaced"])
    if kind == "fullwidth":
        return value.translate(_FULLWIDTH), kind
    if kind == "zero_width":
        return _zero_width(value, rng), kind
    return _spaced(value), kind


# -- identifier generators ------------------------------------------------------------------------

def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _birth(rng: random.Random, lo: int = 1940, hi: int = 2019) -> _dt.date:
    start = _dt.date(lo, 1, 1).toordinal()
    end = _dt.date(hi, 12, 31).toordinal()
    return _dt.date.fromordinal(rng.randint(start, end))


def rrn(rng: random.Random, *, post2020: bool = False, foreign: bool = False,
        hyphen: bool = True) -> tuple[str, _dt.date]:
    d = _birth(rng)
    male = rng.random() < 0.5
    if foreign:
        g = (5 if male else 6) if d.year < 2000 else (7 if male else 8)
    else:
        g = (1 if male else 2) if d.year < 2000 else (3 if male else 4)
    head = f"{d:%y%m%d}{g}"
    if post2020:
        tail = _digits(rng, 6)
    else:
        body = head + _digits(rng, 5)
        tail = body[7:] + str(frn_check(body) if foreign else rrn_check(body))
    return f"{head[:6]}{'-' if hyphen else ''}{head[6]}{tail}", d


def brn(rng: random.Random) -> str:
    body = f"{rng.randint(101, 899)}{rng.randint(1, 99):02d}{_digits(rng, 4)}"
    d = body + str(brn_check(body))
    return f"{d[:3]}-{d[3:5]}-{d[5:]}"


def crn(rng: random.Random) -> str:
    body = f"{rng.randint(110, 285)}{rng.choice(['111', '171', '811', '311'])}{_digits(rng, 6)}"
    d = body + str(crn_check(body))
    return f"{d[:6]}-{d[6:]}"


def kr_passport(rng: random.Random) -> str:
    letter = rng.choice("MMMMSROD")
    if rng.random() < 0.5:
        return f"{letter}{_digits(rng, 8)}"
    return f"{letter}{_digits(rng, 3)}{rng.choice(string.ascii_uppercase)}{_digits(rng, 4)}"


def driver_license(rng: random.Random) -> str:
    region = rng.choice([*range(11, 27), 28])
    return f"{region}-{rng.randint(0, 99):02d}-{_digits(rng, 6)}-{_digits(rng, 2)}"


def phone(rng: random.Random) -> str:
    r = rng.random()
    sep = rng.choice(["-", "-", "-", ".", " ", ""])
    if r < 0.6:
        return f"010{sep}{rng.randint(2000, 9999)}{sep}{_digits(rng, 4)}"
    if r < 0.68:
        return f"{rng.choice(['011', '016', '017', '019'])}{sep}{rng.randint(200, 999)}{sep}{_digits(rng, 4)}"
    if r < 0.78:
        return f"02{sep}{rng.randint(200, 9999)}{sep}{_digits(rng, 4)}"
    if r < 0.9:
        area = rng.choice(["031", "032", "033", "041", "042", "043", "044", "051", "052", "053", "054", "055",
                           "061", "062", "063", "064", "070"])
        return f"{area}{sep}{rng.randint(200, 9999)}{sep}{_digits(rng, 4)}"
    return f"+82 10-{rng.randint(2000, 9999)}-{_digits(rng, 4)}"


def intl_phone(rng: random.Random) -> str:
    return rng.choice([
        f"+1 {rng.choice(['212', '415', '646', '312', '206'])}-{rng.randint(201, 989)}-{_digits(rng, 4)}",
        f"+44 20 7{_digits(rng, 3)} {_digits(rng, 4)}",
        f"+81 3-{_digits(rng, 4)}-{_digits(rng, 4)}",
        f"+65 {rng.choice('689')}{_digits(rng, 3)} {_digits(rng, 4)}",
    ])


def card(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.15:  # American Express 4-6-5
        body = "3" + rng.choice("47") + _digits(rng, 12)
        d = body + str(luhn_check(body))
        return f"{d[:4]}-{d[4:10]}-{d[10:]}"
    prefix = rng.choice(["4", "4", "51", "52", "53", "54", "55", "9410", "9490", "6243"])
    body = prefix + _digits(rng, 15 - len(prefix))
    d = body + str(luhn_check(body))
    sep = rng.choice(["-", "-", " ", ""])
    return sep.join(d[i:i + 4] for i in range(0, 16, 4))


def bank_account(rng: random.Random, bank: str) -> str:
    groups = BANK_FORMATS[bank]
    if bank == "카카오뱅크":
        return f"3333-{_digits(rng, 2)}-{_digits(rng, 7)}"
    return "-".join(_digits(rng, g) for g in groups)


def plate(rng: random.Random) -> str:
    head = str(rng.randint(10, 99)) if rng.random() < 0.6 else str(rng.randint(100, 399))
    p = f"{head}{rng.choice(PLATE_HANGUL)}{_digits(rng, 4)}"
    if rng.random() < 0.2:
        p = rng.choice(["서울", "경기", "부산", "인천"]) + p[-7:] if len(head) == 2 else p
    sep = " " if rng.random() < 0.2 else ""
    return p if not sep else p[:-4] + sep + p[-4:]


def ip(rng: random.Random) -> str:
    if rng.random() < 0.12:
        return f"2001:db8:{rng.randint(0, 0xffff):x}::{rng.randint(1, 0xffff):x}"
    first = rng.choice([10, 172, 192, 203, 211, 121, 58, 175, 61, 118])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def foreign_passport(rng: random.Random) -> str:
    return rng.choice([
        _digits(rng, 9),                                                        # US
        f"{rng.choice(string.ascii_uppercase)}{rng.choice(string.ascii_uppercase)}{_digits(rng, 7)}",  # JP
        f"E{_digits(rng, 8)}",                                                  # CN
        f"C{rng.choice(string.ascii_uppercase)}{_digits(rng, 7)}",              # DE-like
    ])


def secret(rng: random.Random, kind: str | None = None) -> tuple[str, str]:
    alnum = string.ascii_letters + string.digits
    kind = kind or rng.choice(["openai", "aws", "github", "slack", "google", "jwt", "stripe"])
    if kind == "openai":
        return "sk-proj-" + "".join(rng.choice(alnum + "-_") for _ in range(48)), kind
    if kind == "aws":
        return "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)), kind
    if kind == "github":
        return "ghp_" + "".join(rng.choice(alnum) for _ in range(36)), kind
    if kind == "slack":
        return f"xoxb-{_digits(rng, 12)}-{_digits(rng, 13)}-" + "".join(rng.choice(alnum) for _ in range(24)), kind
    if kind == "google":
        return "AIza" + "".join(rng.choice(alnum + "-_") for _ in range(35)), kind
    if kind == "stripe":
        return "sk_live_" + "".join(rng.choice(alnum) for _ in range(24)), kind

    def seg(n: int) -> str:
        return "".join(rng.choice(alnum + "-_") for _ in range(n))
    return f"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{seg(40)}.{seg(43)}", kind


def password(rng: random.Random) -> str:
    words = ["Summer", "Nuri", "Seoul", "Blue", "Tiger", "Moon"]
    return f"{rng.choice(words)}{rng.randint(10, 9999)}{rng.choice('!$%^*')}{rng.choice(words).lower()}"


def kname(rng: random.Random) -> str:
    surname = rng.choice(_COMMON_SURNAMES) if rng.random() < 0.85 else rng.choice(SURNAMES)
    return surname + rng.choice(GIVEN)


def en_name(rng: random.Random) -> str:
    return f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"


def email(rng: random.Random) -> str:
    local = rng.choice([
        f"{rng.choice(list(ROMAN.values()))}.{rng.choice(ROMAN_GIVEN)}",
        f"{rng.choice(ROMAN_GIVEN)}{rng.randint(1, 99)}",
        f"{rng.choice(ROMAN_GIVEN)}_{rng.choice(list(ROMAN.values()))}",
        f"{rng.choice(EN_FIRST).lower()}.{rng.choice(EN_LAST).lower()}",
    ])
    return f"{local}@{rng.choice(DOMAINS)}"


def address(rng: random.Random) -> str:
    sido, sigungus = rng.choice(REGIONS)
    sigungu = rng.choice(sigungus)
    if rng.random() < 0.15:   # 지번 (lot-number) address
        return f"{SHORT_SIDO.get(sido, sido)} {sigungu} {rng.choice(DONG)} {rng.randint(1, 999)}-{rng.randint(1, 99)}번지"
    road = rng.choice(ROADS)
    if rng.random() < 0.3:
        road = f"{road}{rng.randint(1, 40)}{rng.choice(['길', '번길'])}"
    s = f"{SHORT_SIDO.get(sido, sido) if rng.random() < 0.2 else sido} {sigungu} {road} {rng.randint(1, 400)}"
    r = rng.random()
    if r < 0.3:
        s += f", {rng.randint(101, 120)}동 {rng.randint(1, 25)}{rng.randint(1, 4):02d}호"
    elif r < 0.5:
        s += f", {rng.randint(2, 20)}층"
    elif r < 0.6:
        s += f" ({rng.choice(DONG)}, {rng.choice(BUILDINGS)})"
    return s


def dob_text(d: _dt.date, rng: random.Random) -> str:
    return rng.choice([f"{d.year}년 {d.month}월 {d.day}일", f"{d:%Y.%m.%d}", f"{d:%Y-%m-%d}", f"{d:%Y/%m/%d}"])


def other_date(rng: random.Random) -> str:
    d = _birth(rng, 2021, 2026)
    return rng.choice([f"{d.year}년 {d.month}월 {d.day}일", f"{d:%Y-%m-%d}", f"{d:%Y.%m.%d}"])


def price(rng: random.Random) -> str:
    return rng.choice([f"{rng.randint(1, 999) * 1000:,}원", f"₩{rng.randint(10, 99999) * 100:,}",
                       f"{rng.randint(1, 500)}만 원", f"${rng.randint(1, 999)}.{_digits(rng, 2)}"])


def order_no(rng: random.Random) -> str:
    d = _birth(rng, 2023, 2026)
    return rng.choice([f"{d:%Y%m%d}-{_digits(rng, 7)}", f"ORD-{d:%Y%m%d}-{_digits(rng, 4)}",
                       f"{d:%Y%m%d}{_digits(rng, 6)}", f"INV-{d.year}-{_digits(rng, 6)}"])


def product_code(rng: random.Random) -> str:
    return rng.choice([f"880{_digits(rng, 10)}", f"SKU-{_digits(rng, 4)}-{rng.choice('ABCXYZ')}{_digits(rng, 2)}",
                       f"MODEL {rng.choice(['SM', 'LG', 'KT'])}-{_digits(rng, 4)}{rng.choice('NK')}"])


def impossible_rrn(rng: random.Random) -> str:
    yy = rng.randint(0, 99)
    month, day = rng.choice([(13, rng.randint(1, 28)), (0, rng.randint(1, 28)), (2, 30), (4, 31),
                             (rng.randint(1, 12), 0), (rng.randint(1, 12), rng.randint(32, 39))])
    return f"{yy:02d}{month:02d}{day:02d}-{rng.randint(1, 4)}{_digits(rng, 6)}"


# -- document builder -----------------------------------------------------------------------------

class Doc:
    """Text assembled piece by piece, recording the gold span of every labelled piece."""

    def __init__(self, doc_id: str, kind: str, lang: str) -> None:
        self.id, self.kind, self.lang = doc_id, kind, lang
        self.parts: list[str] = []
        self.spans: list[dict[str, Any]] = []
        self.pos = 0

    def t(self, s: str) -> Doc:
        self.parts.append(s)
        self.pos += len(s)
        return self

    def e(self, etype: str, s: str, variant: str | None = None, post2020: bool = False) -> Doc:
        assert etype in TYPES, etype
        span: dict[str, Any] = {"start": self.pos, "end": self.pos + len(s), "type": etype}
        if variant:
            span["variant"] = variant
        if post2020:
            span["post2020"] = True
        self.spans.append(span)
        return self.t(s)

    def record(self) -> dict[str, Any]:
        text = "".join(self.parts)
        for s in self.spans:
            assert text[s["start"]:s["end"]].strip() == text[s["start"]:s["end"]], (self.id, s)
        return {"id": self.id, "kind": self.kind, "lang": self.lang, "text": text, "spans": self.spans}


def _maybe_evade(d: Doc, etype: str, value: str, rng: random.Random, p: float = 0.15,
                 variant: str | None = None) -> None:
    if rng.random() < p:
        v, kind = evade(value, rng)
        d.e(etype, v, kind, post2020=variant == "post2020")
    else:
        d.e(etype, value, variant, post2020=variant == "post2020")


def _title(rng: random.Random) -> str:
    return rng.choice(["님", " 님", "씨", " 고객님", " 과장", " 대리", " 부장님", " 팀장", " 환자", " 선생님", "님께서"])


# -- document kinds -----------------------------------------------------------------------------

def cs_chat(d: Doc, rng: random.Random) -> None:
    name = kname(rng)
    d.t(rng.choice(["[상담 채팅]\n", "고객센터 채팅 기록\n", ""]))
    d.t("상담원: 안녕하세요, 누리통신 고객센터입니다. 무엇을 도와드릴까요?\n고객: 요금제 변경하려고요. 제 이름은 ")
    d.e("PERSON", name).t("이고 휴대폰 번호는 ")
    _maybe_evade(d, "PHONE", phone(rng), rng)
    d.t(rng.choice(["입니다.\n", " 이에요\n", "예요.\n"]))
    d.t("상담원: 확인을 위해 생년월일 말씀 부탁드립니다.\n고객: ")
    birth = _birth(rng, 1950, 2005)
    d.e("DATE_OF_BIRTH", dob_text(birth, rng)).t("이요.\n")
    if rng.random() < 0.5:
        d.t("상담원: ").e("PERSON", name).t(f"{rng.choice(['님', ' 고객님'])} 확인되었습니다. 청구서 받으실 이메일 주소가 ")
        d.e("EMAIL", email(rng)).t(" 맞으신가요?\n고객: 네 맞아요.\n")
    if rng.random() < 0.5:
        d.t("고객: 이사해서 주소도 바꿔 주세요. ").e("ADDRESS", address(rng)).t(rng.choice(["입니다.\n", " 으로요.\n"]))
    if rng.random() < 0.4:
        d.t(f"상담원: 이번 달 요금은 {price(rng)}이고 주문번호 {order_no(rng)}로 접수되었습니다.\n")
    if rng.random() < 0.35:
        d.t("고객: 자동이체 카드는 ")
        _maybe_evade(d, "CARD", card(rng), rng, 0.2)
        d.t(rng.choice(["로 해주세요.\n", "입니다\n"]))
    d.t("상담원: 처리 완료되었습니다. 좋은 하루 보내세요.")


def hr_note(d: Doc, rng: random.Random) -> None:
    name, mgr = kname(rng), kname(rng)
    post = rng.random() < 0.3
    number, _birth_date = rrn(rng, post2020=post)
    d.t(f"[인사 기록] {rng.choice(['신규 입사자', '인사 발령', '퇴직 정산'])}\n성명: ").e("PERSON", name)
    d.t(f"\n부서: {rng.choice(['개발팀', '재무팀', '영업1팀', '인사팀'])}  직급: {rng.choice(['사원', '대리', '과장'])}\n주민등록번호: ")
    _maybe_evade(d, "KR_RRN", number, rng, 0.2, "post2020" if post else None)
    d.t("\n연락처: ").e("PHONE", phone(rng)).t("\n주소: ").e("ADDRESS", address(rng))
    d.t(f"\n급여 계좌: {(bank := rng.choice(BANKS))} ").e("BANK_ACCOUNT", bank_account(rng, bank))
    d.t(" (예금주 ").e("PERSON", name).t(")\n")
    d.t(f"입사일: {other_date(rng)}  연봉: {rng.randint(3000, 9000)}만 원\n")
    d.t("비고: ").e("PERSON", mgr).t(f"{rng.choice([' 팀장', ' 부장', ' 과장'])} 승인. ")
    if rng.random() < 0.4:
        d.t("차량 등록 ").e("VEHICLE_PLATE", plate(rng)).t(" (주차 지원). ")
    if rng.random() < 0.3:
        d.t("운전면허번호 ").e("KR_DRIVER_LICENSE", driver_license(rng)).t(" 확인. ")
    d.t(f"사번 {rng.randint(2015, 2026)}{_digits(rng, 4)}.")


def medical_note(d: Doc, rng: random.Random) -> None:
    name, doc = kname(rng), kname(rng)
    birth = _birth(rng, 1935, 2015)
    d.t("진료 기록지\n환자명: ").e("PERSON", name).t(" (")
    d.e("DATE_OF_BIRTH", f"{birth:%Y.%m.%d}").t(f"생, {rng.choice(['남', '여'])})\n")
    d.t(f"등록번호 {_digits(rng, 8)}  내원일 {other_date(rng)}\n")
    d.t(f"주호소: {rng.choice(['두통 및 어지럼증', '당뇨 추적 관찰', '고혈압 약 처방', '무릎 통증'])}. ")
    d.t(f"혈압 {rng.randint(100, 160)}/{rng.randint(60, 100)} mmHg, 체온 36.{rng.randint(1, 9)}도.\n")
    d.t("보호자 연락처: ").e("PHONE", phone(rng)).t(f" ({rng.choice(['배우자', '자녀', '부모'])} ")
    d.e("PERSON", kname(rng)).t(")\n")
    if rng.random() < 0.5:
        post = rng.random() < 0.3
        number, _ = rrn(rng, post2020=post)
        d.t("주민번호 ")
        _maybe_evade(d, "KR_RRN", number, rng, 0.25, "post2020" if post else None)
        d.t("\n")
    d.t("담당의: ").e("PERSON", doc).t(f"{rng.choice([' 교수', ' 선생님', ''])}\n다음 예약: {other_date(rng)} 오전 {rng.randint(9, 11)}시")


def contract(d: Doc, rng: random.Random) -> None:
    co = rng.choice(COMPANIES)
    ceo, other = kname(rng), kname(rng)
    d.t(f"용역 계약서\n\n발주자(갑): 주식회사 {co}\n사업자등록번호: ")
    _maybe_evade(d, "KR_BRN", brn(rng), rng, 0.1)
    d.t("\n법인등록번호: ")
    _maybe_evade(d, "KR_CRN", crn(rng), rng, 0.1)
    d.t("\n대표이사: ").e("PERSON", ceo).t("\n소재지: ").e("ADDRESS", address(rng))
    d.t("\n\n수급자(을): ").e("PERSON", other).t("\n사업자등록번호 ")
    d.e("KR_BRN", brn(rng)).t("\n연락처 ").e("PHONE", phone(rng)).t(" / ").e("EMAIL", email(rng))
    d.t(f"\n\n제1조 (계약금액) 총 {price(rng)}(부가세 별도)으로 한다.\n제2조 (대금 지급) 갑은 을의 ")
    bank = rng.choice(BANKS)
    d.t(f"{bank} 계좌 ").e("BANK_ACCOUNT", bank_account(rng, bank))
    d.t(f"로 {other_date(rng)}까지 지급한다.\n제3조 계약번호 {order_no(rng)}.\n\n{other_date(rng)}")


def gov_form(d: Doc, rng: random.Random) -> None:
    foreign = rng.random() < 0.45
    name = kname(rng) if not foreign else en_name(rng)
    post = rng.random() < 0.35
    number, birth = rrn(rng, post2020=post, foreign=foreign, hyphen=rng.random() < 0.85)
    d.t(f"{rng.choice(['전입신고서', '여권 발급 신청서', '주민등록표 등본 발급 신청', '체류지 변경 신고서'])}\n")
    d.t("신청인 성명: ").e("PERSON", name)
    d.t("\n외국인등록번호: " if foreign else "\n주민등록번호: ")
    _maybe_evade(d, "KR_FRN" if foreign else "KR_RRN", number, rng, 0.2, "post2020" if post else None)
    d.t("\n생년월일: ").e("DATE_OF_BIRTH", dob_text(birth, rng))
    d.t("\n주소: ").e("ADDRESS", address(rng)).t("\n전화번호: ").e("PHONE", phone(rng))
    if rng.random() < 0.6:
        d.t("\n여권번호: ").e("KR_PASSPORT" if not foreign else "PASSPORT",
                           kr_passport(rng) if not foreign else foreign_passport(rng))
    if rng.random() < 0.3:
        d.t("\n운전면허번호: ").e("KR_DRIVER_LICENSE", driver_license(rng))
    d.t(f"\n접수번호: {impossible_rrn(rng) if rng.random() < 0.5 else order_no(rng)}\n신청일: {other_date(rng)}")
    d.t(f"\n수수료: {price(rng)}\n담당 공무원: ").e("PERSON", kname(rng)).t(" 주무관")


def bank_msg(d: Doc, rng: random.Random) -> None:
    bank = rng.choice(BANKS)
    name = kname(rng)
    d.t(f"[{bank}] ").e("PERSON", name).t(rng.choice(["님 ", " 고객님 "]))
    r = rng.random()
    if r < 0.4:
        d.t(f"{rng.randint(1, 12)}/{rng.randint(1, 28)} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d} 입금 {price(rng)} 계좌 ")
        _maybe_evade(d, "BANK_ACCOUNT", bank_account(rng, bank), rng, 0.1)
        d.t(f" 잔액 {price(rng)}")
    elif r < 0.7:
        d.t("카드 ")
        c = card(rng)
        _maybe_evade(d, "CARD", c, rng, 0.25)
        d.t(f" 승인 {price(rng)} {rng.choice(['스타벅스', '쿠팡', 'GS25', '배달의민족'])} 일시불")
    else:
        d.t("이체 안내: 받는 분 ").e("PERSON", kname(rng)).t(f" {rng.choice(BANKS)} ")
        d.e("BANK_ACCOUNT", bank_account(rng, rng.choice(BANKS))).t(f"로 {price(rng)} 이체 완료")
    d.t(f"\n문의 1588-{_digits(rng, 4)}")
    if rng.random() < 0.3:
        d.t(" / 보안코드 ").t(_digits(rng, 6))


def code_secret(d: Doc, rng: random.Random) -> None:
    key, _ = secret(rng)
    pw = password(rng)
    host = ip(rng) if rng.random() < 0.7 else None
    style = rng.random()
    if style < 0.35:
        d.t("# config.py\nimport os\n\n")
        d.t(f'{rng.choice(["OPENAI_API_KEY", "API_KEY", "SERVICE_TOKEN"])} = "').e("SECRET", key).t('"\n')
        d.t(f'BUILD_ID = "{_digits(rng, 6)}"  # commit {"".join(rng.choice("0123456789abcdef") for _ in range(12))}\n')
        if host:
            d.t('DB_HOST = "').e("IP_ADDRESS", host).t('"\n')
        d.t("DATABASE_URL = \"postgresql://app:").e("SECRET", pw).t(f"@db.internal:5432/{rng.choice(['orders', 'crm'])}\"\n")
    elif style < 0.7:
        d.t("# .env\n")
        d.t("AWS_ACCESS_KEY_ID=").e("SECRET", secret(rng, "aws")[0]).t("\n")
        other, kind = secret(rng)
        d.t(f"{kind.upper()}_TOKEN=").e("SECRET", other).t("\n")
        d.t(f"APP_VERSION=2.{rng.randint(0, 20)}.{rng.randint(0, 9)}\nREQUEST_ID=")
        d.t(f"{''.join(rng.choice('0123456789abcdef') for _ in range(8))}-{''.join(rng.choice('0123456789abcdef') for _ in range(4))}-4abc-8def-{''.join(rng.choice('0123456789abcdef') for _ in range(12))}\n")
        if host:
            d.t("REDIS_HOST=").e("IP_ADDRESS", host).t("\n")
        d.t("ADMIN_EMAIL=").e("EMAIL", email(rng)).t("\n")
    else:
        d.t("```yaml\n# 배포 설정 — 담당: ").e("PERSON", kname(rng)).t("\nserver:\n  bind: ")
        d.e("IP_ADDRESS", host or ip(rng)).t(f":{rng.choice([8080, 443, 9000])}\n  token: ").e("SECRET", key)
        d.t(f"\n  timeout_ms: {rng.randint(100, 9000)}\n  replicas: {rng.randint(1, 9)}\n```\n")
        d.t("위 토큰이 유출되었는지 확인 부탁드립니다.")


def english(d: Doc, rng: random.Random) -> None:
    name = en_name(rng)
    style = rng.random()
    if style < 0.5:
        d.t("Hi support,\n\nMy name is ").e("PERSON", name).t(" and I was charged twice on order ")
        d.t(f"#{_digits(rng, 8)} for ${rng.randint(10, 500)}.{_digits(rng, 2)}. You can reach me at ")
        d.e("PHONE", intl_phone(rng)).t(" or ").e("EMAIL", email(rng)).t(".\n")
        if rng.random() < 0.7:
            d.t("For verification, my SSN is ").e("US_SSN", ssn(rng)).t(" and my date of birth is ")
            b = _birth(rng, 1950, 2004)
            d.e("DATE_OF_BIRTH", rng.choice([f"{_MONTHS[b.month - 1]} {b.day}, {b.year}", f"{b:%m/%d/%Y}"])).t(".\n")
        d.t("Thanks,\n").e("PERSON", name)
    else:
        d.t("Traveler profile\nName: ").e("PERSON", name).t("\nPassport No.: ").e("PASSPORT", foreign_passport(rng))
        d.t("\nNationality: ").t(rng.choice(["United States", "Japan", "Canada", "Germany"]))
        d.t("\nMobile: ").e("PHONE", intl_phone(rng)).t("\nHome address in Korea: ").e("ADDRESS", address(rng))
        d.t(f"\nBooking ref: {rng.choice(string.ascii_uppercase)}{rng.choice(string.ascii_uppercase)}{_digits(rng, 4)}")
        d.t(f", flight KE{rng.randint(10, 999)} on {other_date(rng)}")
        if rng.random() < 0.4:
            d.t("\nLogin from IP ").e("IP_ADDRESS", ip(rng))


def mixed(d: Doc, rng: random.Random) -> None:
    name = kname(rng)
    d.t("회의록 (weekly sync)\n참석: ").e("PERSON", name).t(", ").e("PERSON", kname(rng))
    d.t(", ").e("PERSON", en_name(rng)).t(f"\n- Q{rng.randint(1, 4)} 매출 {price(rng)}, 전년 대비 {rng.randint(1, 40)}% 증가\n")
    d.t("- 파트너 contact: ").e("EMAIL", email(rng)).t(", 010 대신 ")
    d.e("PHONE", phone(rng)).t("로 연락\n")
    if rng.random() < 0.5:
        d.t("- VPN 접속 IP ").e("IP_ADDRESS", ip(rng)).t(" 차단 요청 (ticket ").t(f"JIRA-{rng.randint(100, 9999)})\n")
    if rng.random() < 0.4:
        d.t("- 법인카드 ")
        _maybe_evade(d, "CARD", card(rng), rng, 0.3)
        d.t(" 분실 신고\n")
    if rng.random() < 0.4:
        d.t("- 출장자 여권: ").e("KR_PASSPORT", kr_passport(rng)).t(" (").e("PERSON", name).t(")\n")
    d.t(f"- Next meeting {other_date(rng)} 14:00, 회의실 {rng.randint(2, 20)}층")


def delivery(d: Doc, rng: random.Random) -> None:
    name = kname(rng)
    d.t(f"[배송 안내] 주문번호 {order_no(rng)}\n상품: {rng.choice(PRODUCTS)} ({product_code(rng)}) {price(rng)}\n")
    d.t("받는 분: ").e("PERSON", name).t("\n연락처: ")
    _maybe_evade(d, "PHONE", phone(rng), rng, 0.2)
    d.t("\n배송지: ").e("ADDRESS", address(rng))
    d.t(f"\n운송장 {_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 4)} / 도착 예정 {other_date(rng)}")
    if rng.random() < 0.3:
        d.t("\n차량 ").e("VEHICLE_PLATE", plate(rng)).t(" 기사님이 배송합니다.")


def parking(d: Doc, rng: random.Random) -> None:
    d.t(f"주차 위반 안내\n일시: {other_date(rng)} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}\n차량번호: ")
    d.e("VEHICLE_PLATE", plate(rng)).t("\n소유자: ").e("PERSON", kname(rng)).t(" (").e("PHONE", phone(rng)).t(")")
    d.t(f"\n과태료: {price(rng)}\n위치: {rng.choice(ROADS)} 인근 공영주차장 {rng.randint(1, 5)}층")
    if rng.random() < 0.5:
        d.t("\n면허번호: ").e("KR_DRIVER_LICENSE", driver_license(rng))


def it_log(d: Doc, rng: random.Random) -> None:
    user = kname(rng)
    d.t(f"[보안 로그] {other_date(rng)} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} ")
    d.t("로그인 실패 5회 — 계정 ").e("EMAIL", email(rng)).t(" (사용자 ").e("PERSON", user).t(")\n")
    d.t("출발지 ").e("IP_ADDRESS", ip(rng)).t(f", 포트 {rng.randint(1024, 65535)}, 에이전트 Chrome/{rng.randint(100, 130)}.0.{_digits(rng, 4)}.{_digits(rng, 2)}\n")
    if rng.random() < 0.5:
        d.t("이전 접속 ").e("IP_ADDRESS", ip(rng)).t(f" (버전 {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)})")


def payment(d: Doc, rng: random.Random) -> None:
    name = kname(rng)
    d.t(f"쇼핑몰 1:1 문의\n주문 {order_no(rng)} 결제 건입니다. ")
    d.t(rng.choice(["결제한 카드가 ", "카드번호 ", "제 카드 "]))
    _maybe_evade(d, "CARD", card(rng), rng, 0.25)
    d.t(rng.choice(["인데 ", "입니다. ", "이고 "]))
    d.t(f"유효기간 {rng.randint(1, 12):02d}/{rng.randint(26, 31)}, 금액 {price(rng)}이 두 번 결제됐어요.\n")
    d.t("환불 계좌는 ").t(f"{(bank := rng.choice(BANKS))} ").e("BANK_ACCOUNT", bank_account(rng, bank))
    d.t(" 예금주 ").e("PERSON", name).t("입니다.\n")
    if rng.random() < 0.5:
        d.t("연락은 ").e("PHONE", phone(rng)).t("로 부탁드립니다.")
    d.t(f" (상품코드 {product_code(rng)})")


def us_form(d: Doc, rng: random.Random) -> None:
    name = en_name(rng)
    b = _birth(rng, 1950, 2004)
    d.t("Employee onboarding (US subsidiary)\nFull name: ").e("PERSON", name).t("\nSSN: ").e("US_SSN", ssn(rng))
    d.t("\nDate of birth: ").e("DATE_OF_BIRTH", rng.choice([f"{b:%m/%d/%Y}", f"{b:%Y-%m-%d}"]))
    d.t("\nPersonal email: ").e("EMAIL", email(rng)).t("\nPhone: ").e("PHONE", intl_phone(rng))
    if rng.random() < 0.5:
        d.t("\nCorporate card: ").e("CARD", card(rng))
    d.t(f"\nEmployee ID: E{_digits(rng, 6)}  Start date: {other_date(rng)}  Salary: ${rng.randint(50, 200)},000")


def encyclopedia(d: Doc, rng: random.Random) -> None:
    """Hard negatives only: historical figures, years and encyclopedic numbers."""
    picks = rng.sample(HISTORICAL, 2)
    for name, body in picks:
        topic = "은" if (ord(name[-1]) - 0xAC00) % 28 else "는"   # final consonant → 은
        d.t(f"{name}{topic} {body} ")
    d.t(f"관련 문헌은 국립중앙도서관 청구기호 {rng.randint(900, 999)}.{rng.randint(1, 99)}에 소장되어 있다. ")
    d.t(f"인구는 약 {rng.randint(10, 999)}만 {rng.randint(1000, 9999)}명(2020년 기준)이다.")


def commerce(d: Doc, rng: random.Random) -> None:
    """Hard negatives only: orders, invoices, prices, product codes, RRN-shaped impossible dates."""
    d.t(f"거래명세서 {order_no(rng)}\n품목: {rng.choice(PRODUCTS)} / 제품코드 {product_code(rng)}\n")
    d.t(f"수량 {rng.randint(1, 50)}개, 단가 {price(rng)}, 합계 {price(rng)}\n발행일 {other_date(rng)} / 납기 {other_date(rng)}\n")
    d.t(f"문서번호 {impossible_rrn(rng)}\n관리코드 {_digits(rng, 4)}-{_digits(rng, 2)}-{_digits(rng, 3)}\n")
    d.t(f"견적 유효기간 {rng.randint(7, 60)}일, 버전 {rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}")


KINDS: list[tuple[str, str, Callable[[Doc, random.Random], None], int]] = [
    ("cs_chat", "ko", cs_chat, 70),
    ("hr_note", "ko", hr_note, 50),
    ("medical_note", "ko", medical_note, 45),
    ("contract", "ko", contract, 40),
    ("gov_form", "ko", gov_form, 70),
    ("bank_msg", "ko", bank_msg, 55),
    ("code_secret", "mixed", code_secret, 45),
    ("english", "en", english, 40),
    ("mixed", "mixed", mixed, 35),
    ("delivery", "ko", delivery, 30),
    ("parking", "ko", parking, 30),
    ("payment", "ko", payment, 35),
    ("us_form", "en", us_form, 25),
    ("it_log", "ko", it_log, 20),
    ("encyclopedia", "ko", encyclopedia, 20),
    ("commerce", "ko", commerce, 25),
]


def generate(seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """All documents, in a fixed order; each has id, kind, lang, text and gold spans."""
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    for kind, lang, fn, n in KINDS:
        for i in range(n):
            d = Doc(f"{kind}-{i:03d}", kind, lang)
            fn(d, rng)
            docs.append(d.record())
    return docs


def to_jsonl(docs: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n" for doc in docs)


def load(path: str | Path = DEFAULT_PATH) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def stats(docs: list[dict[str, Any]]) -> dict[str, Any]:
    by_type = Counter(s["type"] for d in docs for s in d["spans"])
    variants = Counter(s.get("variant", "plain") for d in docs for s in d["spans"])
    variants["post2020"] = sum(1 for d in docs for s in d["spans"] if s.get("post2020"))
    return {"documents": len(docs), "spans": sum(by_type.values()), "by_type": dict(sorted(by_type.items())),
            "variants": dict(sorted(variants.items())),
            "kinds": dict(sorted(Counter(d["kind"] for d in docs).items()))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Generate Nuri's labelled personal-data corpus (JSONL).")
    ap.add_argument("--out", type=Path, default=DEFAULT_PATH)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    docs = generate(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_jsonl(docs), encoding="utf-8")
    print(json.dumps(stats(docs), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

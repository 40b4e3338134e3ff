"""Train the person-name tagger shipped in src/nuri/privacy/models/names.npz.

    .venv/bin/python scripts/train_names.py [--data ../shared/data/klue-ner] [--out PATH]
        [--synthetic 3000] [--seed 12] [--limit N]

Training data: the KLUE-NER half beside the repository (CC BY-SA 4.0; PS spans are people) and
synthetic sentences built here from name, title and context lists — the cases news text lacks:
names with no cue before phone numbers and e-mails, rare and two-syllable surnames, one-syllable
given names, Latin-script and foreign residents' names, people named by the surname alone before a
role (김 대표, 이모 씨), and place and organisation names that carry a surname or a historical name
(세종대왕기념관, 김포공항) as hard negatives; foreign names in Hangul in news and review contexts,
half of them drawn from Kiwi's list of people (KLUE has few of any one); form fields, identifiers
after bank and field names, loanwords, place names and determiners before nouns (이 영화) in the
same contexts as negatives.

Word lists come from the installed kiwipiepy_model (Apache-2.0; `kiwi_lexicon`): the first and
last words of people's names, proper nouns, words of places and firms, and Kiwi's common words.
They are shipped inside the model file, so the run time never loads Kiwi.

The model is a maximum-entropy classifier per piece (python-crfsuite on one-piece sequences),
exported as weights plus a gazetteer of the training names and the word lists to .npz; within
training, each sentence's gazetteer features come from the other parts only (`cross_fitted`).
Everything is seeded and sorted and the export fixes zip timestamps, so the same data, seed and
kiwipiepy_model give the same file.
"""

from __future__ import annotations

import argparse
import io
import random
import re
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from nuri.privacy import names_tagger as nt  # noqa: E402
from nuri.privacy.detectors.person import GIVEN, SURNAMES_1, SURNAMES_2  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "klue-ner"
Sentence = tuple[str, list[tuple[int, int]], str]   # text, name spans, sentence id

PARAMS = {"c1": 0.02, "c2": 0.02, "max_iterations": 150}


def load_klue(folder: Path) -> list[Sentence]:
    """(text, PS spans, id) for every sentence of the KLUE-NER .tsv files in `folder`."""
    out: list[Sentence] = []
    for path in sorted(folder.glob("*.tsv")):
        chars: list[str] = []
        tags: list[str] = []
        sid = ""
        for line in [*path.read_text(encoding="utf-8").split("\n"), ""]:
            if line.startswith("## klue"):
                sid = line.split("\t")[0][3:]
                continue
            if line.startswith("##"):
                continue
            if not line.strip("\r"):
                if chars:
                    spans: list[tuple[int, int]] = []
                    start = None
                    for i, tag in enumerate([*tags, "O"]):
                        if start is not None and tag != "I-PS":
                            spans.append((start, i))
                            start = None
                        if tag == "B-PS":
                            start = i
                    out.append(("".join(chars), spans, sid))
                chars, tags = [], []
                continue
            ch, _, tag = line.rpartition("\t")
            chars.append(ch if ch else " ")
            tags.append(tag.strip())
    return out


def fold_of(sid: str, k: int = 5) -> int:
    """Cross-validation fold of a sentence, from its id alone (stable across runs and files)."""
    return zlib.crc32(sid.encode()) % k


# ---- synthetic sentences -------------------------------------------------------------------------

_GIVEN = sorted(GIVEN)
_COMMON_GIVEN2 = ("민수", "서연", "지훈", "하은", "도윤", "수빈", "지민", "예준", "서준", "유진", "현우", "지아", "은서",
                  "성민", "영희", "철수", "길동", "미숙", "영수", "정희", "동현", "혜진", "승현", "다은", "태희", "준호")
_GIVEN1 = ("혁", "준", "민", "훈", "진", "솔", "별", "결", "찬", "율", "담", "휘", "웅", "강", "현", "윤", "린", "빈")
_RARE_SUR = ("남궁", "황보", "제갈", "선우", "독고", "사공", "서문", "동방", "견", "편", "탁", "어", "음", "빈", "승", "순",
             "옹", "좌", "호", "범", "피", "감", "태", "하", "국", "마", "여", "간", "갈", "곽", "견")
_LATIN_FIRST = ("John", "Mary", "Sarah", "Michael", "David", "James", "Emily", "Anna", "Maria", "Peter", "Daniel",
                "Laura", "Thomas", "Jessica", "Robert", "Linda", "Kevin", "Olivia", "William", "Sophie", "Chris",
                "Hannah", "Paul", "Julia", "Mark", "Elena", "Ivan", "Olga", "Ahmed", "Fatima", "Carlos", "Lucia")
_LATIN_LAST = ("Smith", "Johnson", "Brown", "Miller", "Davis", "Wilson", "Taylor", "Anderson", "Thomas", "Moore",
               "Martin", "Clark", "Walker", "Lee", "Kim", "Park", "Garcia", "Lopez", "Petrov", "Ivanova", "Muller",
               "Schmidt", "Rossi", "Dubois", "Khan", "Ali", "Tanaka", "Suzuki", "Wang", "Chen")
_FOREIGN = ("Nguyen Van An", "Tran Thi Mai", "Le Van Hung", "Pham Thi Lan", "Hoang Van Nam", "Vu Thi Hoa",
            "Nguyen Thi Thu", "Do Van Minh", "Wang Wei", "Zhang Li", "Liu Yang", "Chen Jing", "Li Na",
            "Maria Santos", "Jose Reyes", "Somchai Boonmee", "Siriporn Chai", "Bakhyt Nurlanov",
            "Dilnoza Karimova", "Ram Bahadur Thapa", "Sita Gurung", "Nurul Islam", "Batbayar Dorj",
            "Enkhjin Bold", "Aung Ko Ko", "Juan dela Cruz", "Tuan Anh", "Ngoc Lan", "Rahmat Hidayat")
_FOREIGN_KO = ("응우옌 반 안", "쩐 티 마이", "레 반 훙", "팜 티 란", "왕웨이", "장리", "리우양", "마리아 산토스",
               "솜차이", "바트바야르", "아웅 코", "누르 이슬람", "존 스미스", "사라 밀러", "마이클 브라운")
_TITLES = ("님", "씨", "고객님", "과장님", "대리", "팀장님", "부장", "선생님", "교수님", "환자분", "기사님", "매니저",
           "대표님", "주임", "사원", "원장님", "실장")
_LABELS = ("성명: ", "이름: ", "담당자: ", "예금주 ", "보호자 ", "신청인 ", "수취인: ", "작성자 ", "고객명: ")
_PLACES = ("세종대왕기념관", "김포공항", "이순신대교", "정부서울청사", "정부세종청사", "김해공항", "한국전력공사",
           "삼성전자", "현대자동차", "신한은행", "국민은행", "조선일보", "이화여대", "고려대학교", "연세대학교",
           "신세계백화점", "롯데월드", "홍대입구역", "강남역", "서울역", "정동진", "안중근의사기념관", "백범김구기념관",
           "김대중컨벤션센터", "장충체육관", "남산타워", "이태원", "한강공원", "정읍시청", "김천시청", "박물관",
           "최강제약", "한성무역", "유성온천", "조은병원", "이마트", "정관장", "한화생명", "신라호텔", "김밥천국",
           "문화센터", "민원실", "송도국제도시", "안산시청", "임진각", "오죽헌", "경복궁", "방송통신위원회",
           "김제평야", "한라산", "설악산", "성균관대", "유한양행", "동아제약", "류현진야구장", "도산공원",
           "세종문화회관", "충무로", "을지로", "퇴계로", "원효대교", "다산콜센터", "율곡로")
_PLACE_TEMPLATES = ("{p}에서 만나요.", "{p} 앞 정류장에 내렸다.", "내일 {p}에 방문할 예정입니다.",
                    "{p} 근처 식당을 추천해 주세요.", "주소: 서울특별시 {p} 3층", "{p}은 오전 9시에 문을 연다.",
                    "{p} 관계자는 말했다.", "{p}로 가는 버스가 있나요?", "어제 {p}를 다녀왔어요.",
                    "{p} 고객센터 1588-1234", "{p}의 발표에 따르면", "{p} 측은 답변을 거부했다.")
# Ordinary sentences with no name in them: the words a name tagger must leave alone (안녕하세요,
# 안건은, 정부는 …), also set before and after the name sentences so names are not always first.
_PLAIN = ("안녕하세요. 문의드릴 것이 있습니다.", "오늘 회의는 3시에 시작합니다.", "안건은 예산과 일정 검토입니다.",
          "참석자는 모두 10명입니다.", "감사합니다. 좋은 하루 되세요.", "신제품 출시 일정을 공유드립니다.",
          "정부는 이번 대책을 발표했다.", "이번 주말에 비가 온다고 합니다.", "확인 부탁드립니다.",
          "주문하신 상품이 발송되었습니다.", "전화 주시면 안내해 드리겠습니다.", "회의록을 첨부합니다.",
          "조금 늦을 것 같아요.", "지난달 매출이 크게 늘었다.", "고객센터 운영 시간은 평일 9시부터입니다.",
          "이용해 주셔서 감사합니다.", "신청서를 제출해 주세요.", "정말 재미있는 영화였다.", "강력 추천합니다.",
          "한국은행이 기준금리를 동결했다.", "전국에 한파 특보가 내려졌다.", "시간 되실 때 연락 주세요.",
          "민원 처리 결과를 알려드립니다.", "오후에 다시 전화드리겠습니다.", "배송지 변경을 요청합니다.",
          "지금 바로 확인해 보세요.", "문의하신 내용은 다음과 같습니다.", "유의사항을 반드시 읽어 주세요.",
          "이상으로 보고를 마칩니다.", "수고 많으셨습니다.", "다음 주 화요일까지 회신 바랍니다.",
          "선착순 100명에게 경품을 드립니다.", "안전한 비밀번호로 변경하세요.", "전체 일정은 아래와 같습니다.",
          "최근 들어 문의가 늘었다.", "주요 내용을 정리했습니다.", "한편 경찰은 수사를 시작했다.",
          "조사 결과 이상이 없었다.", "기존 계약은 유지됩니다.", "공지사항을 확인해 주세요.")
# Foreign names as Korean news writes them: transliterated given names and surnames, combined, in
# the contexts news and reviews put them in (… 감독의 신작, 배우 … 출연, …는 이날). KLUE has few
# of any one of them, and a third of its names have no Korean surname.
_FOREIGN_GIVEN_KO = ("존", "마이클", "데이비드", "제임스", "로버트", "윌리엄", "리처드", "토머스", "크리스", "다니엘",
                     "매튜", "앤드루", "조지", "폴", "스티븐", "케빈", "브라이언", "에릭", "피터", "톰", "잭", "해리",
                     "메리", "제니퍼", "엘리자베스", "사라", "제시카", "에밀리", "엠마", "올리비아", "소피아", "안나",
                     "니콜", "케이트", "줄리아", "레이첼", "앤젤리나", "스칼렛", "나탈리", "마리아", "루시", "한스",
                     "프랑수아", "장", "피에르", "마르코", "카를로스", "후안", "이반", "블라디미르", "알렉산드르",
                     "세르게이", "무함마드", "아마드", "라울", "루이스", "휴", "숀", "라이언", "맷", "벤", "샘")
_FOREIGN_SUR_KO = ("스미스", "존슨", "윌리엄스", "브라운", "존스", "밀러", "데이비스", "윌슨", "앤더슨", "테일러",
                   "토머스", "무어", "잭슨", "화이트", "해리스", "마틴", "톰슨", "로버츠", "워커", "영", "앨런", "킹",
                   "라이트", "스콧", "그린", "베이커", "애덤스", "넬슨", "캠벨", "에반스", "터너", "파커", "콜린스",
                   "에드워즈", "스튜어트", "모리스", "쿡", "로저스", "피터슨", "쿠퍼", "리드", "베일리", "벨",
                   "하워드", "워드", "콕스", "리처드슨", "우드", "왓슨", "브룩스", "그레이", "제임스", "헤이스",
                   "마이어스", "포드", "해밀턴", "그레이엄", "설리번", "월리스", "웨스트", "슐츠", "뮐러", "슈미트",
                   "베버", "피셔", "로시", "루소", "가르시아", "로페스", "마르티네스", "곤살레스", "페트로프",
                   "이바노프", "다나카", "스즈키", "사토", "야마다", "와타나베", "나카무라", "고바야시")
_NEWS = ("{n}{p} 이날 기자회견에서 입장을 밝혔다.", "{n}{p} 지난 5일 방한했다.", "{r} {n}{p} 이날 발표했다.",
         "{r} {n}의 신작이 개봉했다.", "{n} {r}{p} 말했다.", "{n}{p} 출연한 영화가 흥행했다.",
         "{n} 때문에 봤는데 역시 좋았다.", "{n}의 연기가 최고였다.", "{n} 나오는 영화는 다 본다.",
         "{n}{p} 결승골을 넣었다.", "{n}({age}) {r}{p} 밝혔다.", "{r} {n}, {r} {m} 등이 참석했다.",
         "{n}{p} {m}{q} 만났다.", "이번 작품에서 {n}{p} 주연을 맡았다.", "{n} {r} 측은 부인했다.",
         "특히 {n}의 활약이 돋보였다.", "{n} 짱!", "{n}랑 {m} 케미 최고.", "{n}{p} 이렇게 말했다.")
_ROLES = ("대통령", "총리", "장관", "감독", "선수", "배우", "가수", "래퍼", "작가", "교수", "회장", "대표", "의원",
          "위원장", "코치", "디자이너", "기자", "사무총장", "국무장관", "외무장관", "CEO", "씨", "전 대통령")


# Loanwords, countries, cities and neighbourhoods: words of a name's shape and syllables, put in
# the same news contexts as the names, so context alone does not make a name.
_NOT_NAMES = ("스마트폰", "인터넷", "프로그램", "시스템", "디자인", "스타일", "콘서트", "드라마", "스토리", "캐릭터",
              "액션", "코미디", "스릴러", "뮤지컬", "컴퓨터", "카메라", "에너지", "플랫폼", "서비스", "메시지",
              "비즈니스", "트렌드", "이벤트", "판타지", "미스터리", "다큐멘터리", "애니메이션", "브라질", "프랑스",
              "독일", "러시아", "캐나다", "호주", "이탈리아", "스페인", "베트남", "태국", "인도", "이집트", "칠레",
              "런던", "파리", "베를린", "뉴욕", "도쿄", "베이징", "시드니", "모스크바", "워싱턴", "로스앤젤레스",
              "신촌", "잠실", "명동", "종로구", "해운대", "검찰", "법원", "경찰청", "개정안", "행정부", "야당", "여당")
_NEWS_NEG = ("{w}{p} 이날 발표했다.", "{w}의 분위기가 좋았다.", "{w} 때문에 봤는데 역시 좋았다.",
             "{w}에서 열린 행사에 참석했다.", "{w} 관계자는 말했다.", "특히 {w}의 활약이 돋보였다.",
             "{w}{p} 지난 5일 밝혔다.", "{w}(승점 3) 2위", "{w} 일대에서 열렸다.")


def _foreign_ko(rng: random.Random) -> str:
    people = kiwi_people()
    if people and rng.random() < 0.5:
        words = rng.choice(people).split(" ")
        r = rng.random()
        return " ".join(words) if r < 0.6 else words[-1] if r < 0.9 else words[0]
    r = rng.random()
    if r < 0.45:
        return rng.choice(_FOREIGN_GIVEN_KO) + rng.choice((" ", "")) + rng.choice(_FOREIGN_SUR_KO)
    return rng.choice(_FOREIGN_SUR_KO) if r < 0.8 else rng.choice(_FOREIGN_GIVEN_KO)


# Form fields and their everyday values: "label: word" is a name only after a name label, so
# product, bank, department, symptom and street values after other labels are hard negatives.
_FIELDS = ("상품명", "제품", "소속", "직급", "직위", "은행", "계좌", "입금 계좌", "장소", "증상", "진단", "처방",
           "메모", "비고", "분류", "카테고리", "결제수단", "색상", "사이즈", "옵션", "배송", "상태", "구분", "지점",
           "브라우저", "기기", "만료일", "금액", "요금제", "제목", "용도", "업종", "직업", "취미", "국적", "언어",
           "팀", "진료과", "약품", "모델", "운영체제", "주차", "층", "좌석", "메뉴")
_VALUES = ("무선 마우스", "모니터 받침대", "백미 20kg", "휴대용 선풍기", "접이식 테이블", "무선 이어폰", "생수 2L",
           "인사팀", "영업부", "개발본부", "총무과", "마케팅팀", "기획실", "사원", "과장", "기업은행", "새마을금고",
           "수협", "씨티은행", "케이뱅크", "우체국", "당뇨", "두통", "감기 몸살", "허리 통증", "알레르기", "비염",
           "피부염", "역삼로 인근", "중앙로", "시청 앞", "을지로 입구", "정문 앞", "Edge/120.0", "Safari 17",
           "Firefox", "$120", "€80", "¥3,000", "신용카드", "계좌이체", "무통장입금", "검정", "흰색", "빨강",
           "대형", "소형", "완료", "대기", "정상", "처리 중", "서울", "부산", "강남점", "본점", "공무원", "회사원",
           "학생", "등산", "독서", "한국", "베트남", "영어", "일본어", "5G 요금제", "기본형", "내과", "정형외과",
           "타이레놀", "아이폰 15", "갤럭시 S24", "윈도우 11", "지하 2층", "창가석", "김치찌개", "비빔밥")
_NOCUE = ("{n} 010-{a}-{b}", "{n} {e}", "{n}, 010-{a}-{b}", "{n} / {e} / 010-{a}-{b}", "{n}\t010-{a}-{b}",
          "연락처 목록: {n} 010-{a}-{b}", "{n} ({e})", "{n} 1990.05.12 010-{a}-{b}", "{n} 서울시 강남구",
          "{n} 02-{a}-{b}")
_CUE = ("{n} {t} 안녕하세요.", "{n} {t}께 전달 부탁드립니다.", "{n}{p} 어제 회의에 참석했다.", "{l}{n}",
        "{l}{n} 010-{a}-{b}", "{n}{p} 보낸 메일을 확인했습니다.", "오늘 {n}{p} 만났다.", "{n} {t}, 문의하신 건입니다.",
        "{n}{p} 계약서에 서명했다.", "담당은 {n} {t}입니다.", "{n}{p} 말했다.", "참석자: {n}, {m}",
        "{n}{p} {m}에게 연락했다.", "{n} 기자 = ", "{n} 감독의 신작", "배우 {n}{p} 출연했다.", "{n}{p} 왔다.", "{n}{p} 전화했어요.", "어제 {n}{p} 봤어.")
_LATIN_T = ("{n} 고객님 문의 건입니다.", "{n} 씨가 방문했습니다.", "담당: {n}", "{n} ({e})", "{n} 010-{a}-{b}",
            "Dear {n}, 회신 부탁드립니다.", "{n}님이 예약하셨습니다.", "외국인 근로자 {n}의 체류 기간", "{n} 선생님께",
            "{n}, {e}", "신청인 {n}", "{n} 씨는 베트남 출신이다.")


def _josa(word: str, pair: tuple[str, str]) -> str:
    last = word[-1]
    batchim = "가" <= last <= "힣" and (ord(last) - 0xAC00) % 28 != 0
    return pair[0] if batchim else pair[1]


def _korean_name(rng: random.Random) -> str:
    r = rng.random()
    sur = rng.choice(_RARE_SUR) if r < 0.25 else rng.choice(SURNAMES_2) if r < 0.4 else rng.choice(SURNAMES_1)
    g = rng.random()
    if g < 0.2:
        given = rng.choice(_GIVEN1)
    elif g < 0.5:
        given = rng.choice(_COMMON_GIVEN2)
    else:
        given = rng.choice(_GIVEN) + rng.choice(_GIVEN)
    return sur + given


def _fill(template: str, spans_for: dict[str, str], rng: random.Random) -> tuple[str, list[tuple[int, int]]]:
    """`template` with its fields filled; spans of the fields named in `spans_for` (n, m)."""
    out = ""
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            key = template[i + 1:j]
            if key in spans_for:
                spans.append((len(out), len(out) + len(spans_for[key])))
                out += spans_for[key]
            elif key == "p":
                out += _josa(out, rng.choice((("은", "는"), ("이", "가"), ("을", "를"), ("과", "와"))))
            elif key == "q":
                out += _josa(out, ("을", "를"))
            elif key == "r":
                out += rng.choice(_ROLES)
            elif key == "age":
                out += str(rng.randrange(20, 80))
            elif key == "t":
                out += rng.choice(_TITLES)
            elif key == "l":
                out += rng.choice(_LABELS)
            elif key in "ab":
                out += f"{rng.randrange(10000):04d}"
            elif key == "e":
                out += rng.choice(("hong", "kim.m", "user01", "jsmith", "an.nguyen")) + "@" + rng.choice(
                    ("example.com", "naver.com", "corp.co.kr"))
            i = j + 1
        else:
            out += template[i]
            i += 1
    return out, spans


# Words that stand before an identifier as a name does before a phone number ("홍길동 010-…"):
# field labels (카드 + 번호, 주문 + 코드 …), every Korean bank and payment brand, software fields.
_ID_HEAD = ("카드", "계좌", "주문", "회원", "사업자", "제품", "상품", "송장", "운송장", "예약", "접수", "고객", "사원",
            "학번", "차량", "승인", "거래", "가맹점", "모델", "일련", "시리얼", "인증", "쿠폰", "티켓", "좌석", "환자")
_ID_TAIL = ("번호", "코드", "ID", "No", "#")
_BANKS = ("KB국민은행", "국민은행", "신한은행", "우리은행", "하나은행", "농협", "NH농협", "기업은행", "IBK기업은행", "SC제일은행",
          "씨티은행", "수협", "대구은행", "부산은행", "경남은행", "광주은행", "전북은행", "제주은행", "산업은행",
          "새마을금고", "신협", "우체국", "카카오뱅크", "케이뱅크", "토스뱅크", "카카오페이", "네이버페이", "토스",
          "페이코", "삼성페이")
_SOFT = ("브라우저", "에이전트", "운영체제", "앱", "앱 버전", "기기", "단말", "클라이언트", "버전", "서버")
_IDENT = ("3333-12-3456789", "110-234-567890", "4518-2233-4455-6677", "SKU-1234-B56", "A12-334455",
          "Chrome/120.0.1", "Firefox/118.0", "iOS 17.2", "Android 14", "v2.3.1", "2024-000123", "#88213")


def _identifier_line(rng: random.Random) -> str:
    r = rng.random()
    head = (rng.choice(_ID_HEAD) + rng.choice(_ID_TAIL) if r < 0.5 else rng.choice(_BANKS) if r < 0.8
            else rng.choice(_SOFT))
    return f"{head}{rng.choice((' ', ': ', ' '))}{rng.choice(_IDENT)}"


def _form(rng: random.Random) -> tuple[str, list[tuple[int, int]]]:
    """A few "field: value" lines, one of them sometimes a name label with a name."""
    lines = [f"{rng.choice(_FIELDS)}{rng.choice((': ', ':', ' '))}{rng.choice(_VALUES)}"
             + rng.choice(("", " / 코드 8801234567890", " 123-4567-8901", " 07/28", " 2층"))
             for _ in range(rng.randint(1, 4))]
    lines += [_identifier_line(rng) for _ in range(rng.randint(0, 2))]
    rng.shuffle(lines)
    text = rng.choice(("\n", " ", "  ", " | ", ", ")).join(lines)
    if rng.random() < 0.4:
        name = _korean_name(rng)
        head = f"{rng.choice(_LABELS)}{name}"
        return head + "\n" + text, [(len(head) - len(name), len(head))]
    return text, []


_SURNAME_ROLES = ("대표", "회장", "의원", "장관", "교수", "기자", "팀장", "감독", "병장", "전 교육감", "전 대표",
                  "변호사", "원장", "사장", "이사", "씨", "부장판사", "후보", "위원장", "총장")
_SURNAME_T = ("앞서 {s} {r}{p} 이날 밝혔다.", "{s} {r}{p} \"사실이 아니다\"라고 말했다.", "이에 대해 {s} {r}{p} 부인했다.",
              "{s}모({age})씨는 경찰 조사에서 혐의를 인정했다.", "{s}모 씨가 운영하는 가게", "{s} {r}{p} 1심에서 벌금형을 받았다.",
              "{s} {r}의 발언이 논란이 됐다.", "검찰은 {s}모 씨를 불러 조사했다.")
_DET_T = ("{d} {w}{p} 정말 좋았다.", "{d} {w}에 대해 설명했다.", "{d} {w} 때문에 걱정이다.", "{d} {w}{p} 이날 공개됐다.")
_DETS = ("이", "그", "저", "전", "한", "각", "매", "본", "총", "양", "남", "신", "고", "구", "제")
_DET_WORDS = ("영화", "제품", "문제", "사건", "세계", "지역", "국민", "기간", "회사", "정책", "학생", "시장", "드라마",
              "노래", "배우들", "작품", "장면", "프로그램", "방송", "경기", "선거", "이야기", "사람", "부분")


def _surname_only(rng: random.Random) -> tuple[str, list[tuple[int, int]]]:
    """A person named by the surname alone before a role (김 대표, 이모 씨), as news writes them; or
    a determiner before a noun (이 영화, 전 세계), which looks the same."""
    if rng.random() < 0.6:
        tpl = rng.choice(_SURNAME_T).replace("{s}", "{n}").replace("{r}", rng.choice(_SURNAME_ROLES))
        return _fill(tpl, {"n": rng.choice(SURNAMES_1)}, rng)
    d, w = rng.choice(_DETS), rng.choice(_DET_WORDS)
    text, _ = _fill(rng.choice(_DET_T).replace("{d}", d).replace("{w}", w), {}, rng)
    return text, []


def synthetic(n: int, seed: int) -> list[Sentence]:
    """`n` seeded sentences: Korean names with and without cues, Latin and foreign names, places."""
    rng = random.Random(seed)
    out: list[Sentence] = []
    for k in range(n):
        r = rng.random()
        if r < 0.3:
            text, spans = _fill(rng.choice(_NOCUE), {"n": _korean_name(rng)}, rng)
        elif r < 0.55:
            text, spans = _fill(rng.choice(_CUE), {"n": _korean_name(rng), "m": _korean_name(rng)}, rng)
        elif r < 0.7:
            name = rng.choice(_FOREIGN) if rng.random() < 0.4 else (
                rng.choice(_LATIN_FIRST) + " " + rng.choice(_LATIN_LAST))
            tpl = rng.choice(_LATIN_T + _NOCUE[:4])
            text, spans = _fill(tpl, {"n": name}, rng)
        elif r < 0.75:
            text, spans = _fill(rng.choice(_CUE[:3] + _NOCUE[:3]), {"n": rng.choice(_FOREIGN_KO)}, rng)
        else:
            place = rng.choice(_PLACES)
            text = rng.choice(_PLACE_TEMPLATES).format(p=place)
            if "{" in text:
                text = text.replace("{p}", place)
            text = text.replace(place + "은", place + _josa(place, ("은", "는")))
            text = text.replace(place + "를", place + _josa(place, ("을", "를")))
            spans = []
            if rng.random() < 0.3:     # a person beside the place, so places are learnt in context
                extra, s2 = _fill("{n} {t}", {"n": _korean_name(rng)}, rng)
                spans = [(a + len(text) + 1, b + len(text) + 1) for a, b in s2]
                text = text + " " + extra
        if rng.random() < 0.35:
            before = rng.choice(_PLAIN) + " "
            text = before + text
            spans = [(a + len(before), b + len(before)) for a, b in spans]
        if rng.random() < 0.35:
            text = text + " " + rng.choice(_PLAIN)
        out.append((text, spans, f"synthetic-{seed}-{k}"))
    for k in range(n // 4):        # form fields, a name label among them now and then
        text, spans = _form(rng)
        out.append((text, spans, f"synthetic-{seed}-form-{k}"))
    for k in range(n // 3):        # news and review sentences, foreign names in Hangul
        pick = _foreign_ko if rng.random() < 0.6 else _korean_name
        text, spans = _fill(rng.choice(_NEWS), {"n": pick(rng), "m": pick(rng)}, rng)
        out.append((text, spans, f"synthetic-{seed}-news-{k}"))
    for k in range(n // 6):        # the same contexts without a name
        w = rng.choice(_NOT_NAMES)
        text = rng.choice(_NEWS_NEG).replace("{w}{p}", w + _josa(w, ("은", "는"))).replace("{w}", w)
        out.append((text, [], f"synthetic-{seed}-notname-{k}"))
    for k in range(n // 8):        # surnames alone before a role, determiners before a noun
        text, spans = _surname_only(rng)
        out.append((text, spans, f"synthetic-{seed}-surname-{k}"))
    for k in range(n // 10):       # plain sentences alone and in pairs
        text = " ".join(rng.choice(_PLAIN) for _ in range(rng.randint(1, 3)))
        out.append((text, [], f"synthetic-{seed}-plain-{k}"))
    return out


# ---- training -----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def kiwi_people() -> tuple[str, ...]:
    """People's names in Hangul from kiwipiepy_model's multi.dict (entries typed Q5 in Wikidata)."""
    try:
        import kiwipiepy_model
    except ImportError:
        return ()
    folder = Path(kiwipiepy_model.get_model_path())
    out = set()
    for line in (folder / "multi.dict").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if line.endswith("# Q5") and len(parts) >= 3 and parts[1] == "NNP" and _HANGUL_WORDS.fullmatch(parts[0]):
            out.add(parts[0])
    return tuple(sorted(out))


_HANGUL_WORDS = re.compile(r"[가-힣]{1,8}(?: [가-힣]{1,8}){1,2}")


@lru_cache(maxsize=1)
def kiwi_lexicon() -> nt.Lexicon:
    """Word lists from the dictionaries of kiwipiepy_model (Apache-2.0): the first and last words
    of people's names (multi.dict entries typed Q5, "human", in Wikidata) seen in at least two
    names and more often in names than in other entries, and the single-word proper nouns of
    default.dict. Hangul only; an empty lexicon when the package is missing."""
    import re
    from collections import Counter
    try:
        import kiwipiepy_model
    except ImportError:
        return nt.NO_LEXICON
    folder = Path(kiwipiepy_model.get_model_path())
    hangul = re.compile(r"[가-힣]{2,}")
    first: Counter[str] = Counter()
    last: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for line in (folder / "multi.dict").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if line.startswith("#") or len(parts) < 3:
            continue
        words = parts[0].split(" ")
        if line.endswith("# Q5"):
            first[words[0]] += 1
            last[words[-1]] += 1
        else:
            other.update(words)
    proper = set()
    for line in (folder / "default.dict").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1] == "NNP" and hangul.fullmatch(parts[0]) and len(parts[0]) <= 8:
            proper.add(parts[0])

    def keep(counts: Counter[str]) -> frozenset[str]:
        return frozenset(w for w, c in counts.items() if c >= 2 and c > other[w] and hangul.fullmatch(w))

    people = first + last
    not_people = frozenset(w for w, c in other.items() if c >= 2 and c > people[w] and hangul.fullmatch(w))
    return nt.Lexicon(keep(first), keep(last), frozenset(proper), not_people, kiwi_common())


def kiwi_common() -> frozenset[str]:
    """Kiwi's common nouns, adverbs, determiners, pronouns and interjections of 2–8 syllables."""
    try:
        from kiwipiepy import Kiwi
    except ImportError:
        return frozenset()
    kiwi = Kiwi()
    hangul = re.compile(r"[가-힣]{2,8}")
    tags = {"NNG", "NNB", "NR", "NP", "MAG", "MAJ", "MM", "IC", "XR"}
    out = set()
    i = 0
    while True:
        try:
            m = kiwi.morpheme(i)
        except (IndexError, ValueError, RuntimeError):
            break
        i += 1
        if str(m.tag) in tags and hangul.fullmatch(m.form):
            out.add(m.form)
    return frozenset(out)


def items(sentences: Iterable[Sentence], gaz: frozenset[str] = frozenset(),
          lex: nt.Lexicon = nt.NO_LEXICON) -> Iterable[tuple[list[str], str]]:
    """(features, label) of every piece of every sentence."""
    for text, spans, _ in sentences:
        pieces = nt.tokenize(text)
        if pieces:
            yield from zip(nt.features(text, gaz, lex), nt.labels(pieces, spans), strict=True)


def names_of(sentences: Iterable[Sentence]) -> list[str]:
    return [text[a:b] for text, spans, _ in sentences for a, b in spans]


def cross_fitted(sentences: list[Sentence], parts: int = 5,
                 lex: nt.Lexicon = nt.NO_LEXICON) -> Iterable[tuple[list[str], str]]:
    """`items` with the gazetteer features of each sentence taken from the other parts only, so
    the model learns how far a name seen elsewhere is to be trusted, not that every name is known."""
    for j in range(parts):
        other = [s for s in sentences if zlib.crc32(b"gaz" + s[2].encode()) % parts != j]
        gaz = nt.gazetteer(names_of(other))
        yield from items([s for s in sentences if zlib.crc32(b"gaz" + s[2].encode()) % parts == j], gaz, lex)


def export(crf_model: Path, out: Path, gaz: frozenset[str] = frozenset(), lex: nt.Lexicon = nt.NO_LEXICON) -> Path:
    """The weights of a crfsuite model as the .npz the tagger loads; byte-identical for the same
    weights (fixed zip timestamps), so a rebuild can be compared with the shipped file."""
    import pycrfsuite

    tagger = pycrfsuite.Tagger()
    tagger.open(str(crf_model))
    state = tagger.info().state_features
    col = {lab: k for k, lab in enumerate(nt.LABELS)}
    attrs = sorted({a for a, _ in state})
    row = {a: i for i, a in enumerate(attrs)}
    weights = np.zeros((len(attrs), len(nt.LABELS)), np.float32)
    for (a, lab), w in state.items():
        weights[row[a], col[lab]] = w
    arrays = {"attrs": np.array(attrs), "labels": np.array(nt.LABELS), "weights": weights,
              "gazetteer": np.array(sorted(gaz), dtype=str),
              **{"lex_" + k: nt.pack_words(v) for k, v in lex._asdict().items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            z.writestr(zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue(),
                       compress_type=zipfile.ZIP_DEFLATED)
    return out


def train(sentences: Iterable[Sentence], out: Path, params: dict[str, object] | None = None) -> Path:
    """Fit the per-piece classifier on `sentences` and write its weights to `out` (.npz)."""
    import pycrfsuite

    sentences = list(sentences)
    trainer = pycrfsuite.Trainer(verbose=False)
    lex = kiwi_lexicon()
    for x, y in cross_fitted(sentences, lex=lex):
        trainer.append([x], [y])
    trainer.set_params({**PARAMS, **(params or {})})
    with tempfile.TemporaryDirectory() as tmp:
        crf = Path(tmp) / "names.crfsuite"
        trainer.train(str(crf))
        return export(crf, out, nt.gazetteer(names_of(sentences)), lex)


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description="train the person-name tagger")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=nt.MODEL_PATH)
    ap.add_argument("--synthetic", type=int, default=3000,
                    help="synthetic sentences of the main kinds (form, news and plain ones are added in proportion)")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--limit", type=int, default=0, help="only the first N KLUE sentences")
    ap.add_argument("--max-iterations", type=int, default=int(PARAMS["max_iterations"]))  # type: ignore[call-overload]
    args = ap.parse_args(argv)
    klue = load_klue(args.data) if args.data.is_dir() else []
    if not klue:
        print(f"no KLUE-NER data at {args.data}: training on synthetic sentences only", file=sys.stderr)
    if args.limit:
        klue = klue[: args.limit]
    made = synthetic(args.synthetic, args.seed)
    path = train(klue + made, args.out, {"max_iterations": args.max_iterations})
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB; {len(klue)} KLUE + {len(made)} synthetic sentences)")
    return path


if __name__ == "__main__":
    main()

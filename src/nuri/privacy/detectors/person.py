"""Person names: Korean names by surname + given-name shape + context, English names by title.

A Korean name is a surname (one syllable, or two: 남궁, 황보, 제갈 …) and a one- or two-syllable
given name. Alone that shape matches thousands of ordinary words (이번, 정부, 신문 …), so a
candidate counts only with evidence around it:

* a title or honorific after it (님, 씨, 과장, 고객, 환자, 선생님, 대통령 …) — strong;
* a label before it (성명, 이름, 고객, 환자, 담당자, 예금주 …) — strong;
* a case particle after a three-syllable candidate whose given-name syllables are common in names
  and which is not a listed common word — weaker (0.6);
* such a three-syllable candidate standing alone before a space or punctuation, not ending like a
  particle or a common noun suffix — weakest (0.5, reported at the default threshold).

Morphological analysis (kiwipiepy) does not pay for itself here. Measured on KLUE-NER PS tags
(tests/privacy/measure_klue_person.py): rules alone P 0.87 / R 0.37 / F1 0.51 at ~0.1–0.2 ms/KB;
with kiwi confirming the weak candidates P 0.97 / R 0.33 / F1 0.49 at tens of ms/KB (kiwi tokenises
Korean at ~13 ms/KB on this machine, forty times the scanner's whole budget). It stays available as
``PrivacySettings.person_model = "kiwi"`` for deployments that prefer precision to speed.

People news leaves unnamed are written as one capital letter before 씨/군/양 (A씨, B(44)씨) and
are found by a rule of their own.

A learned tagger (nuri.privacy.names_tagger) also runs, for names with no cue ("홍길동
010-1234-5678"), foreign names in Hangul (트럼프, 메르켈), rare surnames, people named by the surname
alone (이 팀장) and Latin-script names; see `combine`. On held-out KLUE text (5-fold) it lifts PERSON
F1 from 0.54 (rules alone) to 0.82 at precision 0.89 at the default ``privacy.person_threshold``
0.5; 1.0 switches it off (bench/pii_klue.py, docs/benchmarks.md).

Policy on historical figures: well-known historical persons (세종대왕, 이순신, 유관순 …) are not
personal data of living people and are common in encyclopedic and school text, so a name on
`HISTORICAL` is not reported unless a modern personal title follows it (김구 고객님, 이순신 씨).
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache
from typing import Any

from nuri.privacy.detectors.base import Hit, keyword_pattern
from nuri.privacy.types import Evidence

# Surnames carried by nearly all Koreans (Statistics Korea 2015 census, top ~110); rarer ones that
# are also everyday syllables (가, 대, 시, 상, 동 …) are left out: they cost precision, not recall.
SURNAMES_1 = (
    "김이박최정강조윤장임한오서신권황안송전홍유고문양손배백허남심노하곽성차주우구민류나진지엄채원천방공현"
    "함변염여추도소석선설마길연위표명기반라왕금옥육인맹제모탁국어은편용예경봉"
)
SURNAMES_2 = ("남궁", "황보", "제갈", "선우", "독고", "사공", "서문", "동방", "어금", "망절", "소봉", "장곡")
# Syllables frequent in Korean given names (Statistics Korea name statistics, common usage).
GIVEN = frozenset(
    "민서준지현우수영진하은도윤연재예성호유정주원희혜채다소아나시승태인경동상용석철훈혁규환기광대선미숙자순옥"
    "란화애향남길범빈율린별솔결온찬한건강겸웅욱종중창근균명문병보봉부삼섭세송식신안양엽오완요운의익일전제조"
    "직천청초충치택표필학해헌형효후휘흥가고관교국권금단덕두락래량려련렬록룡륜름리림만모묵백복분비사산설손"
    "슬심야월위음임작장처춘탁평허홍황흠힘열빛샘슬봄늘결새람롬"
)
TITLES = (
    "님", "씨", "군", "양", "여사", "과장", "대리", "부장", "차장", "팀장", "사장", "회장", "대표", "이사", "실장",
    "본부장", "상무", "전무", "주임", "사원", "인턴", "교수", "박사", "선생님", "선생", "강사", "고객", "고객님",
    "환자", "환자분", "의원", "장관", "차관", "대통령", "총리", "지사", "군수", "구청장", "감독", "선수", "코치",
    "기자", "작가", "배우", "가수", "변호사", "의사", "간호사", "원장", "소장", "총장", "위원장", "검사", "판사",
    "목사", "신부", "스님", "선배", "후배", "씨는", "씨가", "님께", "님이", "님은", "님의", "사무관", "주무관",
    "서기관", "계장", "국장", "처장", "청장", "수석", "책임", "선임", "연구원", "매니저", "프로", "셰프", "원사",
    "중사", "하사", "소위", "중위", "대위", "소령", "중령", "대령", "병장", "상병", "일병", "이병", "학생", "어머니",
    "아버지", "할머니", "할아버지",
)
LABELS = (
    "성명", "이름", "고객명", "환자명", "담당자", "담당", "신청인", "보호자", "예금주", "수신인", "받는 분", "받는분",
    "작성자", "피해자", "피의자", "피고인", "원고", "피고", "대표자", "계약자", "임차인", "임대인", "근로자", "지원자",
    "수취인", "발신인", "세대주", "고객", "환자", "성함", "차주", "소유자", "운전자", "가입자", "명의자", "주문자",
    "배우자", "부모", "남편", "아내", "자녀", "모친", "부친", "형제", "자매", "친구", "이름은", "이름이", "성함은",
    "참석", "참석자", "수급자", "사용자", "결재", "수신", "참조", "요청자", "승인자", "검토자",
    "성함이", "제 이름은", "저는",
    "from", "to", "name", "cc",
)
PARTICLES = (
    "은", "는", "이", "가", "을", "를", "에게", "한테", "의", "와", "과", "께서", "께", "도", "랑", "이랑", "이가",
    "이는", "이를", "이의", "이한테", "에게서", "처럼", "보다", "만", "까지", "부터", "이나", "이고", "이다", "이에요",
    "입니다", "였다", "이었다", "라는", "이라는", "로서", "으로서", "이라고", "라고", "이며", "께서는", "에게는",
    "한테서", "이에게", "씨의",
)
# Common words with a surname shape; never names on particle evidence alone.
STOP = frozenset((
    "이번", "이날", "이후", "이상", "이하", "이전", "이미", "이런", "이것", "이곳", "이제", "이들", "이유", "이용", "이해", "이름", "이야기",
    "이동", "이사", "이익", "이후에", "정부", "정도", "정말", "정리", "정보", "정책", "정치", "정상", "정신", "정확", "정해", "정한", "정원",
    "정의", "정식", "정지", "최근", "최고", "최대", "최초", "최소", "최종", "최선", "신규", "신문", "신청", "신고", "신분", "신용", "신호",
    "신경", "신인", "신작", "신제품", "전국", "전체", "전에", "전혀", "전화", "전문", "전략", "전달", "전쟁", "전통", "전반", "전기", "조사",
    "조건", "조금", "조치", "조정", "조직", "조심", "조합", "한국", "한편", "한번", "한때", "한창", "한국인", "한마디", "강조", "강화", "강의",
    "강력", "강한", "안전", "안내", "안에", "안정", "오늘", "오전", "오후", "오히려", "오랜", "오래", "유지", "유명", "유일", "유리", "유형",
    "장관", "장소", "장면", "장기", "장점", "장애", "문제", "문화", "문의", "방송", "방법", "방식", "방향", "방문", "고객", "고민", "고려",
    "고용", "고등", "주민", "주요", "주장", "주의", "주변", "주택", "주식", "주인", "공개", "공식", "공간", "공연", "공부", "공사", "국내",
    "국민", "국가", "국제", "임시", "임금", "지난", "지금", "지역", "지원", "지방", "지적", "지시", "진행", "진짜", "진심", "진단", "연기",
    "연구", "연결", "연말", "연합", "연속", "명확", "명의", "기자", "기업", "기간", "기존", "기록", "기대", "기준", "기술", "기본", "선수",
    "선택", "선거", "선물", "선정", "감독", "감사", "마지막", "마음", "마련", "우리", "우선", "우승", "배우", "배려", "하지만", "하나", "하루",
    "하고", "노래", "노력", "노동", "도시", "도움", "도입", "소식", "소리", "소비", "소개", "시장", "시간", "시작", "시민", "시대", "시설",
    "성공", "성장", "성격", "성적", "차량", "차이", "구조", "구매", "구성", "원래", "원인", "원작", "경우", "경기", "경제", "경찰", "경험",
    "경영", "동안", "동시", "동의", "동생", "대한", "대해", "대상", "대표", "대부분", "대신", "남자", "남편", "여자", "여성", "여러", "반대",
    "반면", "부분", "부모", "부족", "사람", "사실", "사용", "사업", "사회", "사건", "석방", "설명", "설치", "용기", "은행", "인간", "인기",
    "인정", "인해", "제공", "제품", "제대로", "제작", "모두", "모든", "모습", "모양", "상황", "상태", "상대", "상품", "서울", "서비스", "송금",
    "손님", "수준", "수사", "수도", "수상", "표현", "현재", "현장", "현실", "홍보", "황당", "양국", "왕자", "왕비", "금지", "금액", "육아",
    "예상", "예정", "예약", "국회", "권리", "권한", "피해", "평가", "범죄", "간단", "단계", "나라", "나중", "남북", "허가", "추가", "추천",
    "추진", "탁월", "편집", "편안", "화면", "화제", "함께", "천천히", "방안", "변화", "변경", "염려", "곽", "심사", "심각", "심리", "백신",
    "백만", "채널", "채용", "엄마", "진짜로", "민주", "민간", "민원", "반영", "길이", "오빠", "언니", "누나", "형님", "아들", "딸", "가족",
    "우리가", "정말로", "이러한", "이와", "여기", "이것은", "이곳은", "영화", "연출", "연기력", "배우들", "주연", "조연", "명작", "최악", "최고의",
    "감동", "재미", "재밌", "내용", "전문가", "신인상", "강남", "강북", "조선", "고려", "신라", "백제", "한양", "정부는", "대통령", "전화번호",
    "주소지", "이메일", "계좌", "카드", "하정", "우리는", "이렇게", "이어", "이때", "이건", "이게", "정작", "최신", "전부", "전혀", "조만간",
    "한참", "한다", "하면", "하는", "하게", "하며", "유튜브", "방탄", "성우", "노원", "구로", "강서", "강동", "서초", "송파", "동작", "관악",
    "마포", "용산", "성북", "도봉", "은평", "종로", "중구", "금천", "양천", "진주", "안양", "안산", "고양", "용인", "성남", "부천", "화성",
    "남양주", "시흥", "김포", "광명", "하남", "오산", "이천", "안성", "의왕", "양평", "여주", "동해", "남해", "서해", "황해", "제주", "울산",
    "부산", "대구", "인천", "광주", "대전", "세종", "경주", "포항", "구미", "전주", "목포", "여수", "순천", "원주", "춘천", "강릉", "속초",
    "충주", "청주", "천안", "공주", "아산", "서산", "논산", "당진", "김해", "양산", "창원", "진해", "통영", "거제", "사천", "밀양", "이영화",
    "이배우", "이드라마", "이감독", "한가지", "두가지", "여기서", "대해서", "이보다", "이미지", "우리나", "목소리", "동영상", "천만원", "여만원",
    "여만명", "만원", "천원", "백원", "한명", "두명", "세명", "이분", "그분", "이분들", "연기가", "연세대", "동양화", "지하철", "시상식", "시리아",
    "연락처", "주민번호", "전화번호", "휴대폰", "이메일", "계좌번호", "차량번호", "주소지", "생년월일", "성명란", "신청서", "확인서", "동의서", "진도",
    "연천", "순창", "신안", "인제", "소련", "여신", "선전", "경장", "위안부", "선교사", "국세청", "유치원",
))
STOP = STOP | frozenset(LABELS) | frozenset(TITLES) | frozenset(
    (
        "배송지", "수신지", "발신지", "소재지", "주거지", "거주지", "근무지", "출생지", "본적지", "등록지", "신청일",
        "작성일", "접수일", "발급일", "만료일", "계약일", "시작일", "종료일", "입사일", "퇴사일", "기록지", "신고서",
        "보고서", "계약서", "주호소", "공영주", "기사", "기사님", "택배기사", "권태기", "전성기", "나서기", "황금기",
        "사춘기", "갱년기", "연주기", "주기", "동기", "계기", "하반기", "상반기", "분기",
    )
)
HISTORICAL = frozenset((
    "세종대왕", "세종", "이순신", "장영실", "김구", "안중근", "유관순", "윤봉길", "이봉창", "정약용", "이황", "이이", "신사임당", "김유신", "을지문덕",
    "강감찬", "광개토대왕", "단군", "주몽", "온조", "박혁거세", "왕건", "이성계", "정몽주", "정도전", "황희", "허준", "김정호", "김홍도", "신윤복",
    "정조", "영조", "태조", "태종", "세조", "연산군", "광해군", "흥선대원군", "명성황후", "고종", "순종", "김옥균", "전봉준", "홍범도", "김좌진",
    "안창호", "이육사", "윤동주", "한용운", "김소월", "원효", "의상", "최치원", "장보고", "계백", "김춘추", "선덕여왕", "대조영", "서희", "최무선",
    "문익점", "이방원", "정철", "송시열", "박지원", "박제가", "유성룡", "류성룡", "권율", "곽재우", "논개", "김대건", "최제우", "방정환", "이중섭",
    "나운규", "이승훈", "서재필", "이토 히로부미",
))


_PERSONAL_TITLES = frozenset((
    "님", "씨", "군", "양", "여사", "고객", "고객님", "환자", "환자분", "씨는", "씨가", "님께", "님이", "님은", "님의",
    "과장", "대리", "부장", "차장", "팀장", "실장", "주임", "사원", "인턴", "선생님", "교수", "사무관", "주무관",
    "계장", "선배", "후배", "매니저", "책임", "선임", "어머니", "아버지", "할머니", "할아버지",
))
# Last syllables that make a surname-shaped word a common noun or verb (경기도, 전문가, 채택하…).
_NOT_LAST = frozenset("시부국관비가사단도장청실회권계세감력항간점측하자인대고위금리작용법률다려한요며면니까죠네해만동")


_GIVEN_CLASS = "".join(sorted(GIVEN))
# The lookbehind after the first syllable keeps the fast first-character scan and skips
# surname-shaped syllables inside words. Strong evidence (title, age) accepts 2–3 syllable names;
# weak evidence (particle, nothing) only three-syllable ones, and a bare word ending like a
# particle (안건은 = 안건 + 은) is a noun far more often than a name.
_SUR_START = rf"[{SURNAMES_1}](?<![가-힣][{SURNAMES_1}])"
_STRONG = (
    rf"(?:(?P<gap>\s?)(?P<title>{keyword_pattern([t for t in TITLES if t not in ('군', '양')])})"
    rf"|(?P<title_b>군|양)(?=[은는이가을의과와]?(?![가-힣]))"
    rf"|(?P<age>\s?\(\d{{1,3}}(?:세|살)?[,)]))"
)
_WEAK = (
    rf"(?:(?P<part>{keyword_pattern(PARTICLES)})(?![가-힣])"
    r"|(?P<bare>(?<![는을를의과와에은이가도])(?=[^가-힣]|$)))"
)
# One scan for both kinds of evidence: at each surname the strong forms are tried first, and a
# weak match `_korean` turns down (a two-syllable name on a particle) can hide no other name, as a
# name never starts right after Hangul.
_KO = re.compile(rf"(?P<name>{_SUR_START}[{_GIVEN_CLASS}]{{1,2}})(?:{_STRONG}|{_WEAK})")
_KO2 = re.compile(rf"(?P<name>{keyword_pattern(SURNAMES_2)}[{_GIVEN_CLASS}]{{1,2}})(?:{_STRONG}|{_WEAK})")
_NAME_AFTER_LABEL = re.compile(
    rf"(?:{keyword_pattern(SURNAMES_2)}|[{SURNAMES_1}])[{_GIVEN_CLASS}]{{1,2}}(?=(?:{keyword_pattern(PARTICLES)})?(?![가-힣]))"
    r"|[A-Z][a-z]+(?:[ -][A-Z][a-z]+){1,2}(?![A-Za-z])"
)
_NAME_FIRST = frozenset(SURNAMES_1) | {s[0] for s in SURNAMES_2} | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LABEL_GAP = re.compile(r"[ \t:：]*(?:\([^)\n]{0,6}\))?[ \t:：]*")
_LIST_SEP = re.compile(r"\s?[,·/]\s?")
_SSI_BACK = re.compile(rf"(?P<sur>[{SURNAMES_1}])\s?(?:모\s?)?(?:\(\d{{1,3}}\)\s?)?$")
_KO_LABELS = tuple(w for w in LABELS if not w.isascii())
_KO_LABEL_RE = re.compile(keyword_pattern(_KO_LABELS))
_EN_HINTS = ("name", "patient", "customer", "employee", "applicant", "contact", "account holder", "i am", "i'm", "dear")
_EN_TITLE = re.compile(
    r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Madam|Mister)\.?\s"
    r"(?P<name>[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?(?: [A-Z][a-z]+(?:-[a-z]+)?){0,2})"
)
_EN_LABEL = re.compile(
    r"(?:[Nn]ame|[Pp]atient|[Cc]ustomer|[Ee]mployee|[Aa]pplicant|[Cc]ontact|[Aa]ccount holder)\s?[:：]\s?"
    r"(?P<name>[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?(?: [A-Z][a-z]+(?:-[a-z]+)?){1,2})"
    r"|(?:[Mm]y name is|I am|I'm|Dear)\s(?P<name2>[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?(?: [A-Z][a-z]+(?:-[a-z]+)?){1,2})"
)
_ROMANIZED = re.compile(
    r"(?:Kim|Lee|Park|Choi|Jung|Jeong|Kang|Cho|Jo|Yoon|Yun|Jang|Lim|Han|Oh|Seo|Shin|Kwon|Hwang|Ahn|Song|"
    r"Jeon|Hong|Yoo|Ko|Moon|Yang|Son|Bae|Baek|Heo|Nam|Sim|Noh|Ha|Kwak|Sung|Cha|Joo|Woo|Koo|Min|Ryu|Na|Jin|Ji|Um|Chae|"
    r"Won|Chun|Bang|Gong|Hyun|Ham|Byun|Yeom|Yeo|Choo|Do|So|Seok|Sun)\s[A-Z][a-z]{1,5}-[a-z]{1,5}(?![A-Za-z])"
)
_HAS_UPPER = re.compile(r"[A-Z][a-z]")
# A person news does not name, written as one capital letter (A씨, B(44)씨가, K군을, A 씨는); the
# lookbehind after the letter keeps the engine's fast first-character scan.
_LETTER_PERSON = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])(?=\s?(?:\(\d{1,3}(?:세|살)?\)\s?)?(?:씨|군|양)(?![가-힣]{2}))")
_EN_TITLES = ("Mr", "Ms", "Dr", "Prof", "Sir", "Madam", "Mister", "Miss", "Mx")
# Whether any title or hint occurs (anywhere, as a substring): one scan each instead of a loop.
_EN_TITLE_SEEN = re.compile("|".join(_EN_TITLES))
_EN_HINT_SEEN = re.compile("|".join(map(re.escape, _EN_HINTS)))
_UPPER = re.compile(r"[A-Z]")
_ROMANIZED_HINT = re.compile(r" [A-Z][a-z]{1,5}-[a-z]")


def _hangul(ch: str) -> bool:
    return "가" <= ch <= "힣"


def _letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


class PersonDetector:
    """Rules for strong evidence, a learned tagger (`tagger`) for names with none beside them.

    Each hit's `detail` says what found it: "rule", "tagger p=0.93" or "rule+tagger p=0.93" (the
    tagger's probability that a name starts there). A name only the tagger found is reported from
    `threshold` up, its score that probability put on the scanner's scale (`scaled`); a weak rule
    candidate (a bare or particle-marked three-syllable word) the tagger scored below `threshold`
    is dropped: on real text those are mostly ordinary words. `use_kiwi` confirms weak
    candidates with kiwipiepy instead (slow).
    """

    def __init__(self, use_kiwi: bool = False, bare_names: bool = True, tagger: Any = None,
                 threshold: float = 0.5) -> None:
        self.use_kiwi = use_kiwi
        self.bare_names = bare_names
        self._kiwi: Any = None
        self.tagger = tagger
        self.threshold = threshold

    def _kiwi_says_name(self, text: str, start: int, end: int) -> bool:
        if self._kiwi is None:
            from kiwipiepy import Kiwi

            self._kiwi = Kiwi()
        lo, hi = max(0, start - 12), min(len(text), end + 12)
        for tok in self._kiwi.tokenize(text[lo:hi]):
            s = lo + tok.start
            if tok.tag == "NNP" and s <= start and s + tok.len >= end - 1:
                return True
        return False

    def _korean(self, text: str, m: re.Match[str], two_syllable_surname: bool) -> Hit | None:
        name = m.group("name")
        kind = m.lastgroup
        s_len = 2 if two_syllable_surname else 1
        three = len(name) >= s_len + 2
        if not three and (kind == "bare" or kind == "part") and name[-1] != "모":
            return None         # most matches: a two-syllable word with nothing beside it (주문, 배송)
        start = m.start()
        if two_syllable_surname and start and "가" <= text[start - 1] <= "힣":
            return None
        if name in STOP:
            return None
        end = start + len(name)
        title = m.group(kind) if kind in ("title", "title_b") else None
        if name in HISTORICAL and title not in _PERSONAL_TITLES:
            return None
        if len(name) == s_len + 1 and name[-1] == "모":      # 김모 씨, 김모(48)씨: the surname alone
            if kind in ("title", "title_b", "age") or (kind == "bare" and text.startswith("(", end)):
                return Hit("PERSON", start, start + s_len, 0.6, Evidence.CONTEXT)
            return None                                       # 추모, 부모님께: a word, not a name
        if title:
            if not three and title not in _PERSONAL_TITLES:
                return None
            return Hit("PERSON", start, end, 0.9 if title in _PERSONAL_TITLES else 0.8, Evidence.CONTEXT)
        if kind == "age":
            return Hit("PERSON", start, end, 0.85, Evidence.CONTEXT)
        if not three or name[-1] in _NOT_LAST or (kind == "bare" and not self.bare_names):
            return None
        if self.use_kiwi:
            if not self._kiwi_says_name(text, start, end):
                return None
            return Hit("PERSON", start, end, 0.75, Evidence.MODEL)
        return Hit("PERSON", start, end, 0.6 if kind == "part" else 0.5, Evidence.PATTERN)

    def _labelled_names(self, text: str) -> list[Hit]:
        """Names after a label (성명: 김민수, 예금주 이하늘, 제 이름은 조순자이고, 신청인 성명: Sarah Lee),
        and the rest of a list that starts there (참석: 정선영, 표혁, Michael Walker)."""
        hits: list[Hit] = []
        for lm in _KO_LABEL_RE.finditer(text):
            i = lm.start()
            if i and "가" <= text[i - 1] <= "힣" and lm.end() - i < 3:
                continue     # 업무담당 / 고객센터: the label inside a longer word
            gap = _LABEL_GAP.match(text, lm.end())
            pos = gap.end() if gap is not None else lm.end()
            if pos >= len(text) or text[pos] not in _NAME_FIRST:
                continue     # 고객센터, 고객: 요금제 …: no name can start here
            for _ in range(12):
                m = _NAME_AFTER_LABEL.match(text, pos)
                if not m or m.group(0) in STOP or m.group(0) in HISTORICAL:
                    break
                hits.append(Hit("PERSON", m.start(), m.end(), 0.9, Evidence.CONTEXT))
                sep = _LIST_SEP.match(text, m.end())
                if not sep:
                    break
                pos = sep.end()
        return hits

    def detect(self, text: str) -> list[Hit]:
        """Rule hits, combined with the tagger's names when there is a tagger."""
        hits = self.rule_hits(text)
        if self.tagger is None:
            return [Hit(h.type, h.start, h.end, h.score, h.evidence, "rule") for h in hits]
        return combine(text, hits, self.tagger.find(text), self.threshold)

    def rule_hits(self, text: str) -> list[Hit]:
        hits: list[Hit] = []
        for m in _KO.finditer(text):
            hit = self._korean(text, m, False)
            if hit:
                hits.append(hit)
        hits += self._labelled_names(text)
        for m in _KO2.finditer(text):      # starts with the surnames' first syllables: a fast scan
            hit = self._korean(text, m, True)
            if hit:
                hits.append(hit)
        i = text.find("씨")
        while i != -1:
            back = _SSI_BACK.search(text, max(0, i - 10), i)
            if back and not (back.start() and _hangul(text[back.start() - 1])) and not (
                i + 2 < len(text) and _hangul(text[i + 1]) and _hangul(text[i + 2])
            ):
                hits.append(Hit("PERSON", back.start("sur"), back.end("sur"), 0.6, Evidence.CONTEXT))
            i = text.find("씨", i + 1)
        upper = _UPPER.search(text)
        if upper is None:              # no capital letter: no person named by a letter, no Latin name
            return hits
        first = upper.start()
        hits += [Hit("PERSON", m.start(), m.end(), 0.8, Evidence.CONTEXT) for m in _LETTER_PERSON.finditer(text, first)]
        if _HAS_UPPER.search(text, first):
            lowered = text.lower()
            rxs = []
            if _EN_TITLE_SEEN.search(text):
                rxs.append(_EN_TITLE)
            if _ROMANIZED_HINT.search(text, max(0, first - 1)):
                rxs.append(_ROMANIZED)
            if _EN_HINT_SEEN.search(lowered):
                rxs.append(_EN_LABEL)
            for rx in rxs:
                for m in rx.finditer(text):
                    if m.start() and _letter(text[m.start() - 1]):
                        continue
                    g = "name" if rx is not _ROMANIZED else 0
                    if rx is _EN_LABEL and not m.group("name"):
                        g = "name2"
                    hits.append(Hit("PERSON", m.start(g), m.end(g), 0.8, Evidence.CONTEXT))
        return hits


_LATIN_WORD = re.compile(r"[A-Z][a-z]+(?:[-'][A-Za-z][a-z]+)?")
_EN_NOT_NAMES = frozenset(("The", "This", "That", "My", "Please", "Dear", "Hello", "Hi", "Thanks", "Ship", "Name",
                           "Team", "Inc", "Ltd", "Corp", "Street", "Avenue", "Road", "Seoul", "Korea"))


def _latin_name_in_korean(text: str, a: int, b: int) -> bool:
    """A Latin-script name the tagger alone found: two or three capitalised words, not glued to
    digits, in Korean text. The tagger learnt Latin names from Korean sentences and is not to be
    trusted on English prose (Apple Watch, Microsoft Teams), which the English rules cover."""
    words = text[a:b].split()
    if not 2 <= len(words) <= 4 or not all(_LATIN_WORD.fullmatch(w) for w in words) or words[0] in _EN_NOT_NAMES:
        return False
    if b < len(text) and text[b].isalnum() and not _hangul(text[b]):
        return False
    return any(_hangul(ch) for ch in text[max(0, a - 16):a] + text[b:b + 16])


_HANGUL_NAME = re.compile(r"[가-힣]+(?: [가-힣]+)*")
# Longer Hangul runs the tagger alone calls a name are words glued together (two fields joined,
# "안녕하세요김민수"); 7 of KLUE's 2,293 names are longer.
_LONGEST_GLUED = 6


def _glued(name: str) -> bool:
    return len(name) > _LONGEST_GLUED and " " not in name and _hangul(name[0])


# Words for people in general rather than titles: a lone surname syllable before one is a
# determiner or a numeral (이 고객 "this customer", 한 환자 "a patient", 그 사람), not a person,
# whereas before a title it usually is one (이 팀장, 김 대표).
_GENERIC_PEOPLE = ("고객", "환자", "손님", "회원", "학생", "사람", "분", "아이", "직원", "사용자", "이용자", "가입자",
                   "시민", "주민", "신청인", "신청자", "소비자", "어린이", "여성", "남성", "남자", "여자", "친구", "가족",
                   "부부", "경우", "사례", "계약자", "근로자", "보호자", "피해자")
_DETERMINERS = frozenset("이그저한두세네전각매본현모타동새첫온")   # this, that, one, two, former, each …
_NEXT_WORD = re.compile(r"\s+([가-힣]+)")


def _determiner(text: str, a: int, b: int) -> bool:
    """A determiner or numeral read as a surname alone (이 고객을, 한 환자가; 김 고객님 stays a name)."""
    if b - a != 1 or text[a] not in _DETERMINERS:
        return False
    m = _NEXT_WORD.match(text, b)
    if m is None:
        return False
    word = m.group(1)
    return any(word.startswith(w) and len(word) - len(w) <= 3 for w in _GENERIC_PEOPLE)


def _one_script(name: str) -> bool:
    """A name is Hangul words or Latin words, never symbols or both scripts (에이전트 Chrome, ₩)."""
    return bool(_HANGUL_NAME.fullmatch(name) or (name.isascii() and _HAS_UPPER.match(name)))


def combine(text: str, rules: list[Hit], tagged: list[tuple[int, int, float]], threshold: float) -> list[Hit]:
    """Rule hits and tagger spans as one list of hits, each saying which part found it."""
    out: list[Hit] = []
    used: set[int] = set()
    starts = [a for a, _, _ in tagged]      # tagged spans are sorted and disjoint, so ends are sorted too
    ends = [b for _, b, _ in tagged]
    for h in rules:
        lo, hi = bisect.bisect_right(ends, h.start), bisect.bisect_left(starts, h.end)
        over = [(k, tagged[k][2]) for k in range(lo, hi)]
        if over:
            p = max(q for _, q in over)
            used.update(k for k, _ in over)
            if h.evidence is not Evidence.PATTERN or p >= threshold:
                out.append(Hit(h.type, h.start, h.end, max(h.score, scaled(p, threshold)), h.evidence,
                               f"rule+tagger p={p:.2f}"))
        elif h.evidence is not Evidence.PATTERN:
            out.append(Hit(h.type, h.start, h.end, h.score, h.evidence, "rule"))
    for k, (a, b, p) in enumerate(tagged):
        if k in used or p < threshold:
            continue
        name = text[a:b]
        if name in HISTORICAL or name in STOP or not _one_script(name) or _glued(name) or _determiner(text, a, b) or (
                name.isascii() and not _latin_name_in_korean(text, a, b)):
            continue
        out.append(Hit("PERSON", a, b, scaled(p, threshold), Evidence.MODEL, f"tagger p={p:.2f}"))
    return out


def scaled(p: float, threshold: float) -> float:
    """A tagger probability on the scanner's score scale: `threshold` maps to 0.5 (the default
    `min_score`, the reporting bar) and 1.0 to 1.0, so a threshold below 0.5 still reports."""
    if threshold >= 1.0:
        return p
    return round(0.5 + 0.5 * max(0.0, p - threshold) / (1.0 - threshold), 3) if p >= threshold else p * 0.5 / threshold


@lru_cache(maxsize=8)
def detector(use_kiwi: bool = False, threshold: float | None = 0.5) -> PersonDetector:
    """The shared detector; `threshold` None or 1.0 means rules only (the tagger is not run)."""
    tagger = None
    if threshold is not None and threshold < 1.0:
        from nuri.privacy.names_tagger import shipped

        tagger = shipped()
    return PersonDetector(use_kiwi, tagger=tagger, threshold=threshold or 0.0)


def detect(text: str) -> list[Hit]:
    return detector(False).detect(text)

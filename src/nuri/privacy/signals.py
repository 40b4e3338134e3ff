"""Whole-text signals for policy: PIPA Art. 23 sensitive topics, N2SF grade markings, language
shares and AI Basic Act high-impact domains.

These describe what a text is about, not spans to mask. Sources: PIPA Art. 23 and Enforcement
Decree Art. 18 (sensitive information); N2SF guideline 1.0 (C classified / S sensitive / O open;
the highest grade in a system wins); AI Basic Act Art. 2 high-impact domains (REFERENCE §2).

Topic rule: a strong keyword (진단, 우울증, 전과, 노동조합 …) decides alone; weak ones (병원, 교회 …)
need two hits, so "병원 앞에서 만나요" is not a health record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from nuri.privacy.detectors.base import keyword_pattern

_ASCII_WORD = re.compile(r"[A-Za-z]")


# topic → (strong keywords, weak keywords)
_TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "health": (
        ["진단", "질환", "질병", "처방", "당뇨", "고혈압", "우울증", "공황장애", "정신과", "정신질환", "입원", "수술",
         "투약", "복용 중", "암 진단", "항암", "치매", "에이즈", "HIV", "임신", "장애등급", "병력", "진료기록", "의무기록",
         "diagnosis", "diagnosed", "disease", "cancer", "diabetes", "depression", "prescription", "medical history",
         "hospitalized", "hospitalised", "surgery", "chemotherapy", "pregnan", "disability", "mental health",
         "schizophrenia", "bipolar"],
        ["병원", "치료", "약물", "증상", "환자", "의사", "진료", "hospital", "treatment", "symptom", "patient", "medication"],
    ),
    "beliefs": (
        ["종교", "신앙", "기독교", "천주교", "불교 신자", "이슬람", "무슬림", "개신교", "세례", "사상", "이념", "신념",
         "religion", "religious", "christian", "muslim", "islam", "buddhist", "catholic", "atheist", "ideology",
         "jehovah", "여호와의 증인"],
        ["교회", "성당", "사찰", "절에", "church", "mosque", "temple", "faith", "belief"],
    ),
    "union_party": (
        ["노동조합", "노조 가입", "노조원", "조합원", "정당 가입", "당원", "입당", "탈당", "trade union", "labor union",
         "labour union", "union member", "party member", "party membership"],
        ["노조", "정당", "union"],
    ),
    "political_opinion": (
        ["정치 성향", "정치성향", "정치적 견해", "정치적 성향", "지지 정당", "지지하는 정당", "투표했", "political opinion",
         "political view", "political affiliation", "voted for"],
        ["진보", "보수", "정치", "politics", "liberal", "conservative"],
    ),
    "criminal_record": (
        ["전과", "범죄경력", "범죄 경력", "수사경력", "전과자", "유죄 판결", "징역", "집행유예", "벌금형", "실형", "기소",
         "criminal record", "convicted", "conviction", "felony", "prison sentence", "probation", "arrest record"],
        ["체포", "구속", "수감", "arrested", "jail", "prison"],
    ),
    "sex_life": (
        ["성생활", "성적 지향", "성적지향", "동성애", "성소수자", "성병", "성관계", "sexual orientation", "sex life",
         "sexually transmitted", "homosexual", "LGBT", "bisexual", "transgender"],
        ["gay", "lesbian", "게이", "레즈비언"],
    ),
    "genetic": (
        ["유전자 검사", "유전자검사", "유전정보", "유전체", "DNA", "genetic test", "genetic information", "genome", "genotype"],
        ["유전자", "genetic"],
    ),
    "biometric": (
        ["지문", "홍채", "안면인식", "얼굴인식", "정맥인식", "생체정보", "생체인식", "성문", "fingerprint", "iris scan",
         "facial recognition", "face recognition", "biometric", "voiceprint"],
        ["얼굴 사진", "face id"],
    ),
    "race_ethnicity": (
        ["인종", "민족", "피부색", "출신 민족", "race", "racial", "ethnicity", "ethnic origin"],
        ["ethnic", "혼혈"],
    ),
}

_DOMAINS: dict[str, list[str]] = {
    "hiring": ["채용", "면접", "지원자", "입사 지원", "이력서", "인사평가", "서류전형", "합격 여부", "hiring", "recruit",
               "job applicant", "resume", "résumé", "candidate screening", "interview"],
    "lending": ["대출", "여신", "신용평가", "신용점수", "대출심사", "상환능력", "loan", "credit scor", "lending", "mortgage",
                "underwriting", "creditworth"],
    "medical": ["진료", "진단", "환자", "의료", "처방", "의료기기", "임상", "병원", "medical", "patient", "diagnos",
                "clinical", "medical device", "hospital"],
    "education": ["학생 평가", "입학", "성적 평가", "채점", "학습자", "교육과정", "학생부", "admission", "grading",
                  "student assessment", "exam scoring", "student"],
    "energy": ["전력", "에너지", "발전소", "송전", "전력망", "power grid", "energy supply", "power plant", "electricity"],
    "water": ["먹는물", "상수도", "정수장", "수돗물", "drinking water", "water supply", "water treatment"],
    "nuclear": ["원자력", "원전", "핵연료", "방사성", "nuclear", "radioactive"],
    "transport": ["교통", "철도", "항공", "자율주행", "운송", "관제", "traffic", "railway", "aviation", "autonomous driving"],
    "biometric": ["생체인식", "얼굴인식", "안면인식", "지문인식", "홍채인식", "facial recognition", "biometric"],
    "public_decision": ["행정처분", "민원 심사", "복지 수급", "수급 자격", "인허가", "공공 의사결정", "행정 결정", "benefit eligibility",
                        "public service decision", "government decision", "welfare eligibility"],
}

# keyword (lower case) → what it signals: ("topic", name, weight) or ("domain", name, 0)
_KEYWORDS: dict[str, list[tuple[str, str, int]]] = {}
for _topic, (_strong, _weak) in _TOPICS.items():
    for _w in _strong:
        _KEYWORDS.setdefault(_w.lower(), []).append(("topic", _topic, 2))
    for _w in _weak:
        _KEYWORDS.setdefault(_w.lower(), []).append(("topic", _topic, 1))
for _domain, _words in _DOMAINS.items():
    for _w in _words:
        _KEYWORDS.setdefault(_w.lower(), []).append(("domain", _domain, 0))
_KEYWORD_RE = re.compile(keyword_pattern(_KEYWORDS))


def _signals(text: str) -> tuple[set[str], set[str]]:
    """(sensitive topics, high-impact domains) in one pass over the lower-cased text."""
    low = text.lower()
    weights: dict[str, int] = {}
    found_domains: set[str] = set()
    for m in _KEYWORD_RE.finditer(low):
        word = m.group(0)
        if _ASCII_WORD.match(word) and m.start() and low[m.start() - 1].isascii() and low[m.start() - 1].isalpha():
            continue   # "disease" inside "predisease" is fine, "race" inside "embrace" is not: left edge only
        for kind, name, weight in _KEYWORDS[word]:
            if kind == "domain":
                found_domains.add(name)
            else:
                weights[name] = weights.get(name, 0) + weight
    return {t for t, w in weights.items() if w >= 2}, found_domains

# N2SF markings (REFERENCE §2): C classified, S sensitive, in Hangul or Hanja (對外秘, 二級秘密).
# 비밀/기밀 only as whole words, so 비밀번호 (password) or 기밀유지계약 is not a marking. The
# syllables may stand apart ([대 외 비], 대·외·비): a marking written that way must then stand alone,
# so 대외 비용 is not one. Each pattern opens with a literal syllable the engine can skip to.
_GAP = r"[ \t.·・ㆍ\u119e•∙_\-]{0,3}"
_MARKINGS: list[tuple[re.Pattern[str], str, str, tuple[str, ...]]] = [
    (re.compile(rf"비(?:(?<![가-힣]비)|(?<=[Ⅰ-Ⅲ1-3I]급비)|(?<=[Ⅰ-Ⅲ1-3I]급\s비)){_GAP}밀(?![가-힣])"),
     "비밀", "C", ("밀",)),
    (re.compile(rf"秘(?:(?<![一-鿿]秘)|(?<=[一二三Ⅰ-Ⅲ1-3I]級秘)|(?<=[一二三Ⅰ-Ⅲ1-3I]級\s秘)){_GAP}密(?![一-鿿])"),
     "비밀", "C", ("秘",)),
    (re.compile(rf"극(?<![가-힣]극){_GAP}비(?![가-힣])"), "극비", "C", ("극",)),
    (re.compile(rf"極(?<![一-鿿]極){_GAP}秘(?![一-鿿])"), "극비", "C", ("極",)),
    (re.compile(rf"기(?<![가-힣]기){_GAP}밀(?![가-힣])"), "기밀", "C", ("밀",)),
    (re.compile(rf"機(?<![一-鿿]機){_GAP}密(?![一-鿿])"), "기밀", "C", ("機",)),
    (re.compile(r"\[C\]"), "[C]", "C", ("[C]",)),
    (re.compile(r"(?<![A-Za-z_])(?:TOP SECRET|CONFIDENTIAL|CLASSIFIED)(?![A-Za-z_])|\[SECRET\]|SECRET//"),
     "CONFIDENTIAL", "C", ("SECRET", "CONFIDENTIAL", "CLASSIFIED")),
    (re.compile(rf"대(?:외비|(?<![가-힣]대){_GAP}외{_GAP}비(?![가-힣]))"), "대외비", "S", ("외",)),
    (re.compile(rf"對{_GAP}外{_GAP}秘"), "대외비", "S", ("對",)),
    (re.compile(r"\[S\]"), "[S]", "S", ("[S]",)),
    (re.compile(r"(?<![A-Za-z_])(?:FOR OFFICIAL USE ONLY|FOUO|INTERNAL ONLY)(?![A-Za-z_])"), "FOUO", "S", ("FOUO", "ONLY")),
]
_GRADE_RANK = {"O": 0, "S": 1, "C": 2}
# Any marking's hint, in one scan: most texts hold none, and then no pattern is tried
_ANY_HINT = re.compile("|".join(sorted({re.escape(h) for *_, hints in _MARKINGS for h in hints}, key=len, reverse=True)))

# Script shares from UTF-8 lead bytes: bytes.count runs at memchr speed, where a character-class
# regex costs more than the whole scan on Korean text. Lead bytes 0xEA–0xED are U+A000–U+DFFF
# (Hangul syllables and a few rare scripts), 0xE4–0xE9 U+4000–U+9FFF (Han), 0xE3 holds kana and
# Hangul compatibility jamo (ㅋㅋ), which are counted exactly; 0xC3–0xC9 are accented Latin letters,
# 0xCD–0xDF and 0xE0 other alphabets (Greek, Cyrillic, Arabic, Indic …).
_ASCII_NON_LETTERS = bytes(c for c in range(256) if not (65 <= c <= 90 or 97 <= c <= 122))
_E3_SCRIPTS = re.compile(r"(?P<kana>[\u3040-\u30ff\u31f0-\u31ff]+)|(?P<hangul>[\u3131-\u318e]+)")


def topics(text: str) -> set[str]:
    return _signals(text)[0]


def domains(text: str) -> set[str]:
    return _signals(text)[1]


def topics_and_domains(text: str) -> tuple[set[str], set[str]]:
    return _signals(text)


def markings(text: str, extra: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """(highest grade, markings found); `extra` maps a literal marking to a grade C/S/O."""
    found: list[str] = []
    grade = "O"
    if _ANY_HINT.search(text) is not None:
        for rx, label, g, hint in _MARKINGS:
            if label not in found and any(map(text.__contains__, hint)) and rx.search(text):
                found.append(label)
                grade = higher(grade, g)
    for marking, g in (extra or {}).items():
        g = str(g).upper()
        if marking and g in _GRADE_RANK and marking in text:
            found.append(marking)
            grade = higher(grade, g)
    return grade, found


def higher(a: str, b: str) -> str:
    return a if _GRADE_RANK.get(a, 0) >= _GRADE_RANK.get(b, 0) else b


def _script_class_table() -> bytes:
    """UTF-8 byte → the script its character counts for: lead bytes of Hangul syllables (h), Han
    (c), Latin letters and Latin-1/Extended lead bytes (l), other scripts (o), the rest (.)."""
    table = bytearray(b"." * 256)
    for c in (*range(65, 91), *range(97, 123), *range(0xC3, 0xCA)):
        table[c] = ord("l")
    for c in range(0xEA, 0xEE):
        table[c] = ord("h")
    for c in range(0xE4, 0xEA):
        table[c] = ord("c")
    for c in range(0xCD, 0xE1):
        table[c] = ord("o")
    return bytes(table)


_SCRIPT_CLASS = _script_class_table()


def script_counts(text: str) -> dict[str, int]:
    """Letters per script (approximate at the block level): hangul, latin, han, kana, other.

    One byte-translate and four counts, all in C: every character's script is decided by its
    UTF-8 lead byte, so no Python code runs per character."""
    b = text.encode("utf-8", "surrogatepass")
    classes = b.translate(_SCRIPT_CLASS)
    counts = {
        "hangul": classes.count(b"h"),
        "latin": classes.count(b"l"),
        "han": classes.count(b"c"),
        "kana": 0,
        "other": classes.count(b"o"),
    }
    if 0xE3 in b:
        for m in _E3_SCRIPTS.finditer(text):
            counts[m.lastgroup or "kana"] += m.end() - m.start()
    return counts


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    if not total:
        return {}
    return {k: round(v / total, 4) for k, v in counts.items() if v and k != "other"}

"""Names the rules miss, found by the shipped tagger; places and organisations left alone."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from nuri.config import PrivacySettings
from nuri.privacy import names_tagger
from nuri.privacy.scanner import Scanner

ROOT = Path(__file__).resolve().parents[2]
SCANNER = Scanner(PrivacySettings(person_threshold=0.5))


def persons(text: str, scanner: Scanner = SCANNER) -> list[str]:
    return [e.text for e in scanner.scan(text) if e.type == "PERSON"]


def test_the_model_ships_inside_the_package() -> None:
    assert names_tagger.MODEL_PATH.is_file()
    assert names_tagger.MODEL_PATH.name == "names.npz"
    assert names_tagger.MODEL_PATH.stat().st_size < 3_000_000
    notice = (names_tagger.MODEL_PATH.parent / "NOTICE.md").read_text()
    assert "CC BY-SA 4.0" in notice and "Apache License 2.0" in notice and "kiwipiepy_model" in notice
    assert names_tagger.shipped() is not None


def test_kiwi_word_lists_ship_with_the_weights() -> None:
    """Kiwi's lists are read from the model file, never from Kiwi at run time."""
    tagger = names_tagger.shipped()
    assert tagger is not None
    lex = tagger._lex
    assert "제니퍼" in lex.first and "프리먼" in lex.last and "학부모" in lex.common
    assert len(lex.proper) > 50_000
    own = names_tagger.token_features("프리먼과", lex=lex)[0]
    assert "kl" in own


@pytest.mark.parametrize(("text", "name"), [
    ("홍길동 010-1234-5678", "홍길동"),                       # no cue at all
    ("김민수 minsu.kim@example.com", "김민수"),
    ("선우진 010-2222-3333", "선우진"),                       # two-syllable surnames
    ("황보현 과장", "황보현"),
    ("남궁민수 님께 전달 부탁드립니다", "남궁민수"),
    ("John Smith 고객님 문의입니다", "John Smith"),           # Latin script in Korean text
    ("Nguyen Van An 씨는 베트남 출신이다", "Nguyen Van An"),  # a foreign resident
    ("외국인 근로자 Tran Thi Mai의 체류 기간", "Tran Thi Mai"),
])
def test_names_without_strong_cues(text: str, name: str) -> None:
    assert persons(text) == [name]


@pytest.mark.parametrize(("text", "names"), [
    ("트럼프 대통령은 이날 성명을 냈다.", ["트럼프"]),            # no Korean surname at all
    ("바이든 대통령과 메르켈 총리가 통화했다.", ["바이든", "메르켈"]),
    ("카메론 디아즈가 출연한 영화", ["카메론 디아즈"]),          # a name over two pieces
])
def test_foreign_names_in_hangul(text: str, names: list[str]) -> None:
    assert persons(text) == names


def test_tagged_names_yield_to_addresses() -> None:
    """A tagged "name" inside an address is the address's, whatever the two scores are."""
    text = "배송지: 서울특별시 종로구 세종대로 175, 홍길동 010-1234-5678"
    found = {(e.type, e.text) for e in SCANNER.scan(text)}
    assert ("PERSON", "홍길동") in found
    assert any(t == "ADDRESS" and "세종대로 175" in v for t, v in found)
    assert not any(t == "PERSON" and "세종" in v for t, v in found)


def test_form_fields_are_not_names() -> None:
    text = "상품명: 무선 마우스\n결제수단: 신한은행 110-234-567890\n카드번호 4518-2233-4455-6677"
    assert persons(text) == []


def test_long_texts_are_tagged_in_chunks() -> None:
    """Texts longer than one table lookup give the same names as their parts."""
    line = "홍길동 010-1234-5678 확인 부탁드립니다. "
    text = line * (names_tagger._CHUNK // 4)
    tagger = names_tagger.shipped()
    assert tagger is not None
    found = tagger.find(text)
    assert len(found) == names_tagger._CHUNK // 4
    assert {text[a:b] for a, b, _ in found} == {"홍길동"}


@pytest.mark.parametrize(("text", "names"), [
    ("앞서 변 대표는 1심에서 벌금형을 받았다.", ["변"]),        # the surname alone before a role
    ("이에 대해 오 교수는 반박했다.", ["오"]),
    ("중학생 A(14)씨는 미성년자이고 B 씨는 회사원이다.", ["A", "B"]),   # people news leaves unnamed
    ("검찰은 K군을 불구속 입건했다.", ["K"]),
    ("모건 프리먼과 제니퍼 로렌스가 출연했다.", ["모건 프리먼", "제니퍼 로렌스"]),
])
def test_names_news_writes_without_a_given_name(text: str, names: list[str]) -> None:
    assert persons(text) == names


@pytest.mark.parametrize("text", [
    "학부모가 학원비를 쉽게 알아볼 수 있다.",
    "이 영화는 정말 재미있다. 더욱더 기대된다.",
    "우리나라 대표팀이 이겼다.",
])
def test_common_words_are_not_tagged(text: str) -> None:
    assert persons(text) == []


@pytest.mark.parametrize(("text", "name"), [
    ("이혁 010-5555-1234", "이혁"),                           # one-syllable given names
    ("박준 과장님께 보고드립니다", "박준"),
    ("제갈혁 010-3333-4444", "제갈혁"),
])
def test_single_syllable_given_names(text: str, name: str) -> None:
    assert persons(text) == [name]


@pytest.mark.parametrize("text", [
    "세종대왕기념관에서 만나요.",
    "김포공항 가는 버스가 있나요?",
    "내일 정부서울청사에 방문할 예정입니다.",
    "이순신대교를 건너 퇴근했다.",
    "주소: 서울특별시 종로구 세종대로 175 세종대왕기념관 3층",
    "삼성전자와 현대자동차가 투자를 발표했다.",
    "오늘 회의는 3시에 시작합니다. 안건은 2024년 예산과 신제품 출시 일정 검토입니다.",
])
def test_places_and_organisations_are_not_people(text: str) -> None:
    assert persons(text) == []


def test_detail_says_which_part_found_the_name() -> None:
    (tagged,) = [e for e in SCANNER.scan("홍길동 010-1234-5678") if e.type == "PERSON"]
    assert tagged.detail.startswith("tagger p=")
    assert tagged.score == pytest.approx(float(tagged.detail.split("=")[1]), abs=0.01)
    (both,) = [e for e in SCANNER.scan("황보현 과장") if e.type == "PERSON"]
    assert both.detail.startswith("rule+tagger p=")
    (rule,) = [e for e in SCANNER.scan("성명: 김민수") if e.type == "PERSON"]
    assert rule.detail.startswith("rule")


def test_threshold_one_keeps_only_what_the_rules_find() -> None:
    strict = Scanner(PrivacySettings(person_threshold=1.0))
    assert persons("홍길동 010-1234-5678", strict) == []
    assert persons("홍길동님 안녕하세요", strict) == ["홍길동"]


def _train_names():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("train_names", ROOT / "scripts" / "train_names.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_names"] = module
    spec.loader.exec_module(module)
    return module


def test_training_reproduces_a_tagger_on_a_small_subset(tmp_path: Path) -> None:
    """The training script, on synthetic sentences (and KLUE's first 200 when present), gives a
    model that tags a known sentence, and the same data give the same file byte for byte; the word
    lists it builds from kiwipiepy_model are the ones shipped."""
    tn = _train_names()
    shipped = names_tagger.shipped()
    assert shipped is not None and tn.kiwi_lexicon() == shipped._lex
    assert tn.synthetic(50, 3) == tn.synthetic(50, 3)
    data = tn.load_klue(tn.DEFAULT_DATA)[:200] if tn.DEFAULT_DATA.is_dir() else []
    data += tn.synthetic(300, 12)
    model = tn.train(data, tmp_path / "names.npz", {"max_iterations": 40})
    again = tn.train(data, tmp_path / "again.npz", {"max_iterations": 40})
    assert model.read_bytes() == again.read_bytes()
    tagger = names_tagger.NamesTagger(model)
    text = "홍길동 010-1234-5678 확인 부탁드립니다"
    found = [(text[a:b], p) for a, b, p in tagger.find(text)]
    assert [n for n, _ in found] == ["홍길동"]
    assert found[0][1] > 0.5


def test_gazetteer_features_come_from_other_parts_only() -> None:
    """In training, a sentence's own names never feed its gazetteer features."""
    tn = _train_names()
    only = [("트럼프가 왔다", [(0, 3)], "one")]
    feats = [x for x, _ in tn.cross_fitted(only)]
    assert feats and all("gz" not in f for f in feats)
    assert "gz" in names_tagger.features("트럼프가 왔다", names_tagger.gazetteer(["트럼프"]))[0]


def test_nuri_scan_json_says_which_part_found_each_name() -> None:
    """`nuri scan --json --person-threshold 0.5`: each PERSON's detail names rule, tagger or both,
    with the tagger's score."""
    import json

    import typer
    from typer.testing import CliRunner

    from nuri.privacy.cli import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    text = "홍길동 010-1234-5678, 황보현 과장, 성명: 김민수"
    result = CliRunner().invoke(app, ["scan", text, "--json", "--person-threshold", "0.5"])
    assert result.exit_code == 0, result.output
    people = {text[e["start"]:e["end"]]: e for e in json.loads(result.output)["entities"] if e["type"] == "PERSON"}
    assert set(people) == {"홍길동", "황보현", "김민수"}
    assert people["홍길동"]["detail"].startswith("tagger p=") and people["홍길동"]["evidence"] == "model"
    assert people["황보현"]["detail"].startswith("rule+tagger p=")
    assert people["김민수"]["detail"].startswith("rule")
    assert people["홍길동"]["score"] >= 0.5


def test_the_tagger_is_on_by_default() -> None:
    """A new user's first try: a name with no title beside it is found with the default settings."""
    assert PrivacySettings().person_threshold == 0.5
    assert persons("홍길동 010-1234-5678", Scanner()) == ["홍길동"]


@pytest.mark.parametrize(("text", "names"), [
    ("이 고객을 조회해 주세요.", []),                # "this customer"
    ("한 환자가 응급실에 왔다.", []),                # "a patient"
    ("그 사람은 어제 왔다.", []),
    ("이 팀장에게 전달해 주세요.", ["이"]),           # a surname before a title stays a name
    ("김 고객님께 연락드렸습니다.", ["김"]),
])
def test_a_determiner_before_a_word_for_people_is_not_a_surname(text: str, names: list[str]) -> None:
    assert persons(text) == names


def test_short_and_long_texts_are_gated_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short texts are gated by a bound and scored in plain Python, long ones by exact scores in
    NumPy: the names and probabilities are the same either way."""
    tagger = names_tagger.NamesTagger()
    texts = ["홍길동 010-1234-5678", "카메론 디아즈가 출연한 영화", "앞서 변 대표는 1심에서 벌금형을 받았다.",
             "Nguyen Van An 씨는 베트남 출신이다", "학부모가 학원비를 쉽게 알아볼 수 있다.",
             "모건 프리먼과 제니퍼 로렌스가 출연했다. 트럼프 대통령은 이날 성명을 냈다."]
    short = [tagger.find(t) for t in texts]
    monkeypatch.setattr(names_tagger, "_SHORT", 0)
    long = [tagger.find(t) for t in texts]
    assert [[(a, b) for a, b, _ in f] for f in short] == [[(a, b) for a, b, _ in f] for f in long]
    assert all(abs(p - q) < 1e-5 for f, g in zip(short, long, strict=True) for (_, _, p), (_, _, q) in zip(f, g, strict=True))
    assert any(short)


def test_new_numbers_share_their_shape_row() -> None:
    """Order ids and amounts are new in nearly every request: a number costs a lookup of its shape,
    not a new table row, and tags as that shape does."""
    tagger = names_tagger.NamesTagger()
    first = tagger.find("홍길동 고객 주문번호 2024010512345 확인")
    rows = tagger._rows
    again = tagger.find("홍길동 고객 주문번호 2024120598765 확인")
    assert tagger._rows == rows
    assert first == again and [a for a, _, _ in first] == [0]

"""What a streaming reply guard found, in the offsets of the text it emitted (`record=True`).

The Responses API stores a streamed reply's output redacted from these findings instead of scanning
the assembled text again, so they must place every value the text still carries: a value the client
sent (let through) is found wherever the stream was cut, a value that was masked is a marker and
needs nothing, and text after a marker keeps its offsets. An entity that reaches back into text
already emitted cannot be placed: the findings are then withheld, and the text is scanned whole.
"""

from __future__ import annotations

import random

import pytest

from nuri.config import NuriConfig
from nuri.gateway.conversations import redact_spans
from nuri.privacy.guard import ReplyGuard
from nuri.privacy.scanner import Scanner
from nuri.privacy.types import Entity, Evidence, PipaCategory

PHONE, OTHER_PHONE, RRN = "010-2345-6789", "010-9876-5432", "900101-1234568"
TEXTS = [
    f"확인했습니다. 고객님 연락처 {PHONE} 로 내일 오전에 연락드리겠습니다.",
    f"주민등록번호 {RRN} 는 저장하지 않습니다. 연락처는 {PHONE} 입니다.",
    f"담당자 번호 {OTHER_PHONE} 로 문의하시고, 고객님 번호 {PHONE} 도 확인했습니다.",
    f"{PHONE}",
]


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(NuriConfig().privacy)


def pieces(text: str, rng: random.Random, size: int | None) -> list[str]:
    out, i = [], 0
    while i < len(text):
        n = size or rng.randint(1, 12)
        out.append(text[i:i + n])
        i += n
    return out


def streamed(guard: ReplyGuard, parts: list[str]) -> str:
    return "".join(guard.feed(p) for p in parts) + guard.flush()


@pytest.mark.parametrize("size", [1, 3, 8, 24, None])
@pytest.mark.parametrize("text", TEXTS)
def test_findings_place_every_value_the_emitted_text_carries(scanner: Scanner, text: str, size: int | None) -> None:
    rng = random.Random(len(text) * 31 + (size or 0))
    guard = ReplyGuard(scanner, sent_values=[PHONE], record=True, min_emit=8)
    out = streamed(guard, pieces(text, rng, size))
    found = guard.findings()
    assert found is not None
    emitted, entities = found
    assert emitted == out
    for e in entities:
        assert out[e.start:e.end] == e.text and e.text
    assert RRN not in out and OTHER_PHONE not in out              # never sent: masked by the guard itself
    stored = redact_spans(out, entities)
    assert PHONE not in stored                                     # sent, let through, found where it went
    assert stored.count("<PHONE_REDACTED>") >= text.count(PHONE)
    # what a scan of the whole emitted text finds, the windows found too
    whole = {(e.type, e.text) for e in scanner.scan(out)}
    assert whole <= {(e.type, e.text) for e in entities}


def test_offsets_after_a_marker_are_those_of_the_emitted_text(scanner: Scanner) -> None:
    guard = ReplyGuard(scanner, sent_values=[RRN], record=True)
    out = streamed(guard, [f"번호 {OTHER_PHONE} 그리고 주민등록번호 {RRN} 입니다."])
    assert "<PHONE_REDACTED>" in out
    found = guard.findings()
    assert found is not None
    [rrn] = [e for e in found[1] if e.type == "KR_RRN"]
    assert out[rrn.start:rrn.end] == RRN


def test_without_record_there_are_no_findings(scanner: Scanner) -> None:
    guard = ReplyGuard(scanner, sent_values=[PHONE])
    streamed(guard, [TEXTS[0]])
    assert guard.findings() is None


class _Reaching:
    """A scanner that, once it sees `끝`, reports an entity starting well before it."""

    def scan(self, text: str) -> list[Entity]:
        at = text.find("끝")
        if at < 0:
            return []
        start = max(0, at - 20)
        return [Entity("PERSON", start, at + 1, text[start:at + 1], 0.9, Evidence.MODEL, PipaCategory.PERSONAL)]


def test_an_entity_reaching_into_text_already_emitted_withholds_the_findings() -> None:
    guard = ReplyGuard(_Reaching(), sent_values=[], record=True, min_emit=4, hold_chars=8)
    out = streamed(guard, ["가나다라 마바사아 자차카타 파하가나 ", "다라마바 사아 끝"])
    assert out                                              # the stream itself goes on
    assert guard.findings() is None

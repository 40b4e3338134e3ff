"""What the Responses API stores: every string redacted, in one pass, with as few scans as it can.

A counting scanner around the real one shows which strings were scanned: the request's strings
come from its classification, a whole reply's output from the reply guard's scan, ids Nuri made
and protocol words are kept; everything else (unknown keys, metadata, a streamed output) is
scanned, and nothing personal is stored either way.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nuri.config import NuriConfig
from nuri.gateway.conversations import NOT_KEPT, Known, Redactor, Stored
from nuri.privacy.classify import classify_texts
from nuri.privacy.fields import walk
from nuri.privacy.scanner import Scanner
from nuri.privacy.types import Entity

PHONE, RRN = "010-2345-6789", "900101-1234568"


class Counting:
    def __init__(self, scanner: Scanner) -> None:
        self.scanner = scanner
        self.seen: list[str] = []

    def scan(self, text: str) -> list[Entity]:
        self.seen.append(text)
        return self.scanner.scan(text)


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(NuriConfig().privacy)


def stored_turn() -> tuple[dict[str, Any], Stored, str]:
    request = {"model": "default", "instructions": f"고객 연락처는 {PHONE} 입니다.",
               "input": [{"type": "message", "role": "user", "content": [
                   {"type": "input_text", "text": f"주민등록번호는 {RRN} 입니다."},
                   {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}]}
    output_text = f"확인했습니다. {PHONE} 로 연락드리겠습니다."
    response = {"id": "resp_" + "a1" * 24, "object": "response", "status": "completed", "model": "us",
                "instructions": request["instructions"], "truncation": "disabled",
                "metadata": {"note": f"메모 {PHONE}"},
                "output": [{"id": "msg_" + "b2" * 24, "type": "message", "status": "completed", "role": "assistant",
                            "content": [{"type": "output_text", "text": output_text, "annotations": []}]}]}
    return request, Stored([*request["input"], *response["output"]], response), output_text


def test_known_strings_and_own_ids_are_not_scanned_and_nothing_personal_is_stored(scanner: Scanner) -> None:
    request, stored, output_text = stored_turn()
    texts, unscanned = walk(request)
    known = Known.of(texts, classify_texts(texts, unscanned, scanner))
    counting = Counting(scanner)
    scans = {output_text: scanner.scan(output_text)}        # the reply guard's scan of the output
    own = frozenset([stored.response["id"], stored.response["output"][0]["id"], "us"])
    body = Redactor(counting, known, scans, own).encode(stored)
    assert PHONE not in body and RRN not in body and "iVBOR" not in body
    assert body.count("<PHONE_REDACTED>") == 4 and "<KR_RRN_REDACTED>" in body and NOT_KEPT in body
    assert counting.seen == [f"메모 {PHONE}"]                  # only what nobody had scanned: metadata
    data = json.loads(body)
    assert data["response"]["id"] == stored.response["id"] and data["response"]["status"] == "completed"


def test_without_known_scans_everything_is_scanned_and_redacted(scanner: Scanner) -> None:
    _request, stored, _output = stored_turn()
    counting = Counting(scanner)
    body = Redactor(counting).encode(stored)
    assert PHONE not in body and RRN not in body
    assert stored.response["id"] in counting.seen            # not Nuri's own here: scanned like any
    assert "completed" not in counting.seen                  # a protocol word under `status`


def test_unusual_keys_and_data_urls_anywhere_are_not_kept(scanner: Scanner) -> None:
    odd = {"type": "message", "role": "user", "content": "안녕하세요",
           "extra": {f"{PHONE}": "값", "file": "data:application/pdf;base64,JVBERi0xLjQ="}}
    body = Redactor(scanner).encode(Stored([odd], {"status": "completed"}))
    assert PHONE not in body and "JVBERi" not in body
    assert json.loads(body)["items"][0]["extra"] == {"<PHONE_REDACTED>": "값", "file": NOT_KEPT}


def test_a_status_that_is_not_a_protocol_word_is_scanned(scanner: Scanner) -> None:
    counting = Counting(scanner)
    body = Redactor(counting).encode(Stored([], {"status": f"연락처 {PHONE}"}))
    assert PHONE not in body and f"연락처 {PHONE}" in counting.seen

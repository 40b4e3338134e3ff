"""Streaming restoration: every split of every placeholder, random chunkings, hold-back bound."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nuri.privacy.pseudonymizer import Pseudonymizer
from nuri.privacy.restorer import StreamRestorer

VALUES = {"PERSON": "김철수", "PHONE": "010-2345-6789", "EMAIL": "a.b@example.com", "ADDRESS": "서울특별시 중구 세종대로 110"}


def _pseudo(surrogates: bool = False) -> Pseudonymizer:
    p = Pseudonymizer(surrogates=surrogates)
    for etype, value in VALUES.items():
        p.token_for(etype, value)
    for i in range(2, 13):                      # <PERSON_1> is a prefix of <PERSON_12>… only with ">" cut
        p.token_for("PERSON", f"이름{i:02d}")
    return p


def _run(r: StreamRestorer, chunks: list[str]) -> tuple[str, list[str]]:
    outs = []
    for c in chunks:
        outs.append(r.feed(c))
        assert r.held <= r.max_hold, "never holds more than the longest token"
    outs.append(r.flush())
    return "".join(outs), outs


def test_every_split_point_of_every_token() -> None:
    p = _pseudo()
    for token in p.mapping:
        text = f"안녕하세요 {token}님, 확인했습니다."
        expected = p.restore_text(text)
        for i in range(len(text) + 1):
            for j in range(i, len(text) + 1):
                r = StreamRestorer(p)
                out, outs = _run(r, [text[:i], text[i:j], text[j:]])
                assert out == expected
                assert token not in out
                for o in outs:            # no emitted piece is a fragment of the token
                    assert not (o and o in token and len(o) < len(token) and o != "<")


def test_hold_back_is_only_the_partial_prefix() -> None:
    p = _pseudo()
    r = StreamRestorer(p)
    assert r.feed("가나다 <PER") == "가나다 "
    assert r.held == len("<PER")
    assert r.feed("X") == "<PERX"          # no token starts with <PERX: released at once
    assert r.held == 0
    assert r.feed("<PERSON_1") == ""       # could still be <PERSON_1> or <PERSON_10>…<PERSON_12>
    assert r.feed("0>") == "이름10"
    assert r.feed("a <") == "a "           # "<" could start a token
    assert r.feed(" b") == "< b"
    assert r.flush() == ""


def test_incomplete_token_at_end_is_emitted_as_text() -> None:
    r = StreamRestorer(_pseudo())
    assert r.feed("끝 <PERSON_") == "끝 "
    assert r.flush() == "<PERSON_"


def test_tokens_added_mid_stream_are_seen() -> None:
    p = Pseudonymizer()
    r = StreamRestorer(p)
    assert r.feed("x <EMAIL_1") == "x <EMAIL_1"
    p.token_for("EMAIL", "q@example.com")
    assert r.feed("<EMAIL_1> y") == "q@example.com y"


def test_json_escape_for_tool_arguments() -> None:
    p = Pseudonymizer()
    tok = p.token_for("SECRET", 'a"b\\c')
    r = StreamRestorer(p, json_escape=True)
    args = json.dumps({"k": tok})
    out = "".join(r.feed(ch) for ch in args) + r.flush()
    assert json.loads(out) == {"k": 'a"b\\c'}


def test_surrogates_split_anywhere() -> None:
    p = _pseudo(surrogates=True)
    for token in p.mapping:
        text = f"연락처는 {token}입니다"
        for i in range(len(text) + 1):
            r = StreamRestorer(p)
            out, _ = _run(r, [text[:i], text[i:]])
            assert out == p.restore_text(text) == text.replace(token, p.mapping[token])


_PIECES = st.sampled_from(
    ["안녕하세요 ", "고객님 ", "<", ">", "<PERSON", "_", "1", "<PERSON_1>", "<PHONE_1>", "<EMAIL_1>",
     "<ADDRESS_1>", "<PERSON_12>", "<PERSON_99>", "<KR_RRN_REDACTED>", "a<b", "\n", "SON_", "님께서 ", "0"]
)


@st.composite
def _text_and_cuts(draw):
    text = "".join(draw(st.lists(_PIECES, min_size=1, max_size=25)))
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    chunks, prev = [], 0
    for c in cuts:
        chunks.append(text[prev:c])
        prev = c
    chunks.append(text[prev:])
    return text, chunks


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_text_and_cuts())
def test_random_chunkings_equal_whole_text_restore(case) -> None:
    text, chunks = case
    p = _pseudo()
    r = StreamRestorer(p)
    out, _ = _run(r, chunks)
    expected = p.restore_text(text)
    assert out == expected
    for token in p.mapping:
        assert out.count(token) == expected.count(token)

"""Names with no cue beside them are masked at the boundary by default, as a new user would try it:
"홍길동 010-1234-5678" sent to a foreign model under kr-pipa arrives with neither value in clear,
and the client reads both back restored. Assertions are on the bytes the recording upstream got."""

from __future__ import annotations

import openai
import pytest

from support.boundary import Boundary

NAMES = ["홍길동", "남궁민수", "제갈혁", "John Smith", "Nguyen Van An"]


def client(setup: Boundary) -> openai.OpenAI:
    return openai.OpenAI(base_url=setup.gateway.base_url, api_key="sk-test", max_retries=0, timeout=20)


@pytest.mark.parametrize("name", NAMES)
def test_a_bare_name_goes_abroad_masked_and_comes_back(fresh: Boundary, name: str) -> None:
    text = f"{name} 010-1234-5678 고객 정보를 정리해 주세요."
    raw = client(fresh).chat.completions.with_raw_response.create(
        model="default", messages=[{"role": "user", "content": text}])
    assert raw.headers["x-nuri-deployment"] == "us"
    sent = fresh.us.received_bodies()
    assert sent, "the request did not reach the foreign upstream"
    assert not any(name in body for body in sent), f"{name!r} reached the foreign upstream in clear"
    assert "<PERSON_1>" in sent[-1]
    reply = raw.parse().choices[0].message.content or ""
    assert name in reply              # the upstream echoed the placeholder; the client reads the name


def test_this_customer_is_not_a_name(fresh: Boundary) -> None:
    """"이 고객" is "this customer": nothing of it is masked."""
    client(fresh).chat.completions.create(
        model="default", messages=[{"role": "user", "content": "이 고객을 조회해 주세요."}])
    assert "이 고객을 조회해 주세요." in fresh.us.received_bodies()[-1]

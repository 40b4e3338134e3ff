"""The scan cache changes nothing a classification reports, holds no text, and stays bounded.

Identity is checked over the labelled corpus (each document alone, cold and warm, and as growing
conversations) and over values split across messages, where a history string that was cached on
its own must still join with the next message's text."""

from __future__ import annotations

import gc
import random
import threading
from typing import Any

import pytest

from nuri.config import NuriConfig
from nuri.privacy.classify import classify_request, classify_texts
from nuri.privacy.fields import walk
from nuri.privacy.scan_cache import ScanCache
from nuri.privacy.scanner import Scanner
from nuri.privacy.types import Classification
from support.pii_corpus import PII, generator


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return generator().load(PII / "corpus.jsonl")


def view(c: Classification) -> tuple[Any, ...]:
    """Everything a classification reports, values and paths included, in order."""
    return ([(e.type, e.start, e.end, e.text, e.score, e.evidence, e.category, e.detail, e.path) for e in c.entities],
            c.categories, c.sensitive_topics, c.n2sf_grade, c.markings, c.languages, c.domains, c.chars,
            c.unscanned)


def both(body: dict[str, Any], scanner: Scanner, cache: ScanCache) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    texts, unscanned = walk(body)
    return view(classify_texts(texts, unscanned, scanner)), view(classify_texts(texts, unscanned, scanner, cache))


def chat(*contents: str) -> dict[str, Any]:
    roles = ["user", "assistant"]
    return {"model": "default", "messages": [{"role": roles[i % 2], "content": c} for i, c in enumerate(contents)]}


def test_every_corpus_document_classifies_the_same_cold_and_warm(scanner: Scanner, docs: list[dict[str, Any]]) -> None:
    cache = ScanCache(1 << 16)
    found = 0
    for d in docs:
        body = chat(d["text"])
        plain, cold = both(body, scanner, cache)
        _, warm = both(body, scanner, cache)
        assert cold == plain == warm, d["id"]
        found += len(plain[0])
    assert found >= 3000          # the corpus' spans were found at all
    assert cache.hits >= len(docs)


def test_growing_conversations_of_corpus_documents(scanner: Scanner, docs: list[dict[str, Any]]) -> None:
    """Corpus documents as turns of chats, each turn resending the history: identical every turn."""
    cache = ScanCache(1 << 16)
    for start in range(0, len(docs), 8):
        turns = [d["text"] for d in docs[start:start + 8]]
        for n in range(1, len(turns) + 1):
            plain, cached = both(chat(*turns[:n]), scanner, cache)
            assert plain == cached, (start, n)
    assert cache.hits > cache.misses


def test_labelled_values_split_across_messages(scanner: Scanner, docs: list[dict[str, Any]]) -> None:
    """Each labelled value cut in two at a random point, the halves in consecutive messages, the
    first message sent (and cached) alone the turn before: the joined view still finds it."""
    rng = random.Random(21)
    cache = ScanCache(1 << 16)
    joined = 0
    for d in docs[::3]:
        for span in d["spans"]:
            if span["end"] - span["start"] < 4:
                continue
            cut = rng.randint(span["start"] + 1, span["end"] - 1)
            left, right = d["text"][:cut], d["text"][cut:]
            both(chat(left), scanner, cache)                       # the turn before: left alone
            plain, cached = both(chat(left, right), scanner, cache)
            assert plain == cached, (d["id"], span)
            joined += any(e[8] == ("<joined>",) for e in plain[0])
            # the turn after: the split pair is history, its boundary window a cache hit
            plain, cached = both(chat(left, right, "다음 질문입니다."), scanner, cache)
            assert plain == cached, (d["id"], span, "history")
    assert joined >= 200


@pytest.mark.parametrize(("left", "right", "kind"), [
    ("제 주민등록번호는 900101", "-1234568 입니다", "KR_RRN"),
    ("제 주민등록번호는 900101-", "1234568", "KR_RRN"),
    ("연락처 010-2345", "-6789 로 주세요", "PHONE"),
])
def test_a_cached_history_message_still_joins_with_the_next(scanner: Scanner, left: str, right: str,
                                                             kind: str) -> None:
    cache = ScanCache(1024)
    first = classify_request(chat(left), "chat", scanner)
    texts, unscanned = walk(chat(left))
    assert view(classify_texts(texts, unscanned, scanner, cache)) == view(first)
    assert kind not in first.entity_types
    texts, unscanned = walk(chat(left, right))
    c = classify_texts(texts, unscanned, scanner, cache)
    assert cache.hits >= 1                                         # the left message came from the cache
    assert kind in c.entity_types
    assert view(c) == view(classify_texts(texts, unscanned, scanner))
    texts, unscanned = walk(chat(left, right, "감사합니다"))       # next turn: the window is a hit
    hits = cache.hits
    c = classify_texts(texts, unscanned, scanner, cache)
    assert cache.hits >= hits + 2 and kind in c.entity_types
    assert view(c) == view(classify_texts(texts, unscanned, scanner))


def test_a_marking_split_across_cached_messages_sets_the_grade(scanner: Scanner) -> None:
    cache = ScanCache(1024)
    body = chat("[대", "외비] 보고서")
    for _ in range(2):
        texts, unscanned = walk(body)
        assert classify_texts(texts, unscanned, scanner, cache).n2sf_grade == "S"
    assert cache.hits >= 3


def test_the_cache_holds_no_text(scanner: Scanner) -> None:
    cache = ScanCache(1024)
    values = ["900101-1234568", "010-2345-6789", "hong.gildong@example.co.kr", "홍길동"]
    body = chat(f"제 이름은 {values[3]}이고 주민등록번호 {values[0]}, 전화 {values[1]}", f"메일 {values[2]} 입니다")
    texts, unscanned = walk(body)
    c = classify_texts(texts, unscanned, scanner, cache)
    assert {"KR_RRN", "PHONE", "EMAIL"} <= c.entity_types
    stored = repr(list(cache._table.items()))
    for value in values + [t for _p, t in texts]:
        assert value not in stored
    for key in cache._table:
        assert isinstance(key, bytes) and len(key) == 16


def test_bounded_least_recently_used_first_out(scanner: Scanner) -> None:
    cache = ScanCache(8)
    for i in range(20):
        cache.analyse(f"문장 {i}", scanner.analyse)
    assert len(cache) == 8 and cache._weight <= 8
    cache.analyse("문장 12", scanner.analyse)                        # a hit refreshes it
    cache.analyse("새 문장", scanner.analyse)
    hits = cache.hits
    cache.analyse("문장 12", scanner.analyse)
    assert cache.hits == hits + 1
    misses = cache.misses
    cache.analyse("문장 13", scanner.analyse)                        # the oldest went first
    assert cache.misses == misses + 1


def test_findings_count_against_the_bound(scanner: Scanner) -> None:
    cache = ScanCache(9)
    dense = " ".join(f"010-2345-{6000 + i}" for i in range(12))     # 12 findings: over the budget alone
    part, _ = cache.analyse(dense, scanner.analyse)
    assert len(part.entities) == 12 and len(cache) == 0
    cache.analyse(" ".join(f"010-2345-{6000 + i}" for i in range(4)), scanner.analyse)
    cache.analyse(" ".join(f"010-3456-{6000 + i}" for i in range(4)), scanner.analyse)
    assert len(cache) == 1 and cache._weight == 5


def test_size_zero_is_off(scanner: Scanner) -> None:
    cache = ScanCache(0)
    texts, unscanned = walk(chat("전화 010-2345-6789", "안녕하세요"))
    for _ in range(2):
        classify_texts(texts, unscanned, scanner, cache)
    assert len(cache) == 0 and cache.hits == 0


def test_threads_sharing_a_cache_get_the_same_results(scanner: Scanner, docs: list[dict[str, Any]]) -> None:
    bodies = [chat(*(d["text"] for d in docs[i:i + 4])) for i in range(0, 80, 4)]
    expected = [both(b, scanner, ScanCache(0))[0] for b in bodies]
    cache = ScanCache(64)                    # small, so threads evict under each other
    failures: list[str] = []

    def work(seed: int) -> None:
        order = list(range(len(bodies)))
        random.Random(seed).shuffle(order)
        for i in order * 2:
            texts, unscanned = walk(bodies[i])
            if view(classify_texts(texts, unscanned, scanner, cache)) != expected[i]:
                failures.append(f"body {i}")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert cache._weight <= 64


def test_the_evaluator_classifies_through_a_cache_sized_from_config() -> None:
    from nuri.gateway.evaluator import Evaluator
    from nuri.gateway.request import parse_request
    from nuri.routing.health import HealthBook
    from nuri.routing.router import Router

    def evaluator(privacy: dict[str, Any]) -> Evaluator:
        config = NuriConfig.model_validate({"privacy": privacy})
        return Evaluator.from_config(config, Router(config.routing, HealthBook(config.routing)))

    on = evaluator({})
    assert on.scan_cache is not None and on.scan_cache.capacity == NuriConfig().privacy.scan_cache_size > 0
    req = parse_request(chat("전화 010-2345-6789 로 주세요"), "chat")
    first, again = on.classify(req), on.classify(req)
    assert view(first) == view(again) and "PHONE" in first.entity_types
    assert on.scan_cache.hits > 0
    off = evaluator({"scan_cache_size": 0})
    assert off.scan_cache is not None and off.scan_cache.capacity == 0
    off.classify(req)
    assert len(off.scan_cache) == 0


def test_mostly_cached_counts_fresh_text_and_boundary_reach(scanner: Scanner) -> None:
    cache = ScanCache(1024)
    history = [f"{i}번째 메시지입니다. " * 20 for i in range(10)]
    assert not cache.mostly_cached(history, 1000)                  # nothing cached yet
    for text in history:
        cache.analyse(text, scanner.analyse)
    assert cache.mostly_cached(history, 9 * 96)                    # only the boundary windows' reach
    assert not cache.mostly_cached(history, 9 * 96 - 1)
    fresh = "새 메시지 " * 100
    assert cache.mostly_cached([*history, fresh], 10 * 96 + len(fresh))
    assert not cache.mostly_cached([*history, fresh], 10 * 96 + len(fresh) - 1)
    assert not ScanCache(0).mostly_cached(["a"], 10**6)


def test_a_cached_long_conversation_is_classified_on_the_loop() -> None:
    """Over `classify_inline_max_bytes` a body is classified on a worker thread, unless nearly all
    of it is in the scan cache (a long chat's history): then inline, as a small body is."""
    import asyncio

    from nuri.gateway.evaluator import Evaluator
    from nuri.gateway.request import parse_request
    from nuri.routing.health import HealthBook
    from nuri.routing.router import Router

    config = NuriConfig.model_validate({"server": {"classify_inline_max_bytes": 8192}})
    ev = Evaluator.from_config(config, Router(config.routing, HealthBook(config.routing)))
    turns = [f"{i}번째 질문입니다. 연락처는 010-2345-{6000 + i}입니다. " + "배송 문의드립니다. " * 30 for i in range(8)]
    req = parse_request(chat(*turns), "chat")
    assert req.chars * 3 > 8192
    first = asyncio.run(ev.classify_off_loop(None, req))
    assert first is not None and "PHONE" in first.entity_types     # fresh: on the worker thread
    nxt = parse_request(chat(*turns, "감사합니다"), "chat")
    assert asyncio.run(ev.classify_off_loop(None, nxt)) is None       # cached history: inline
    assert view(ev.classify(nxt)) == view(classify_texts(nxt.texts, nxt.unscanned, ev.scanner))
    big = parse_request(chat(*turns, "새 질문 " * 2000), "chat")
    assert asyncio.run(ev.classify_off_loop(None, big)) is not None   # a large fresh message: thread


def test_entries_cost_the_collector_nothing(scanner: Scanner, docs: list[dict[str, Any]]) -> None:
    """Entries are plain tuples of strings and numbers, which the cyclic collector stops tracking:
    a busy gateway's cache of thousands of entries must not be walked by every full collection."""
    cache = ScanCache(4096)
    for doc in docs[:200]:
        texts, unscanned = walk(chat(doc["text"], "고객님 확인 부탁드립니다"))
        classify_texts(texts, unscanned, scanner, cache)
    assert len(cache) > 200 and any(len(entry[0]) for entry, _w in cache._table.values())
    for _ in range(6):       # a collection untracks a tuple once its items are: a level of nesting a pass
        gc.collect()
    assert not [entry for entry in cache._table.values() if gc.is_tracked(entry)]
    hit = classify_texts(texts, unscanned, scanner, cache)           # and a hit still reports the same
    assert view(hit) == view(classify_texts(texts, unscanned, scanner, None))

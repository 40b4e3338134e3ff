"""The labelled corpus: reproducible from its generator, well-formed, and as described."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

import pytest

from nuri.privacy.checksums import brn_valid, crn_valid, frn_valid, luhn_valid, rrn_valid
from support.pii_corpus import PII, generator

FIXTURE = PII / "corpus.jsonl"
corpus = generator()


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return corpus.load(FIXTURE)


def test_generator_reproduces_the_committed_file() -> None:
    assert corpus.to_jsonl(corpus.generate(corpus.DEFAULT_SEED)) == FIXTURE.read_text(encoding="utf-8")


def test_size_and_coverage(docs) -> None:
    st = corpus.stats(docs)
    assert st["spans"] >= 1500
    assert set(st["by_type"]) == set(corpus.TYPES)
    assert all(n >= 30 for n in st["by_type"].values()), st["by_type"]
    assert {"fullwidth", "zero_width", "spaced", "post2020"} <= set(st["variants"])
    for kind in ("cs_chat", "hr_note", "medical_note", "contract", "gov_form", "bank_msg", "code_secret",
                 "english", "mixed", "encyclopedia", "commerce"):
        assert st["kinds"].get(kind, 0) >= 10, kind


def test_spans_are_well_formed(docs) -> None:
    ids = set()
    for d in docs:
        assert d["id"] not in ids
        ids.add(d["id"])
        last = 0
        for s in sorted(d["spans"], key=lambda s: s["start"]):
            assert s["type"] in corpus.TYPES
            assert last <= s["start"] < s["end"] <= len(d["text"])
            value = d["text"][s["start"]:s["end"]]
            assert value == value.strip()
            last = s["end"]


def _plain_digits(value: str) -> str:
    v = unicodedata.normalize("NFKC", value)
    return "".join(c for c in v if c.isdigit())


def test_identifiers_are_valid(docs) -> None:
    checks = {"KR_BRN": brn_valid, "KR_CRN": crn_valid, "CARD": luhn_valid}
    for d in docs:
        for s in d["spans"]:
            value = d["text"][s["start"]:s["end"]]
            digits = _plain_digits(value)
            if s["type"] in checks:
                assert checks[s["type"]](digits), (d["id"], s)
            if s["type"] in ("KR_RRN", "KR_FRN"):
                assert len(digits) == 13
                g = int(digits[6])
                assert g in ((1, 2, 3, 4) if s["type"] == "KR_RRN" else (5, 6, 7, 8))
                century = 1900 if g in (1, 2, 5, 6) else 2000
                dt.date(century + int(digits[:2]), int(digits[2:4]), int(digits[4:6]))  # a real date
                if not s.get("post2020"):
                    assert (rrn_valid if s["type"] == "KR_RRN" else frn_valid)(digits), (d["id"], s)
            if s["type"] == "KR_PASSPORT":
                assert re.fullmatch(r"[MSROD](\d{8}|\d{3}[A-Z]\d{4})", value)
            if s["type"] == "KR_DRIVER_LICENSE":
                assert int(value[:2]) in (*range(11, 27), 28)


def test_post_2020_numbers_include_failing_checksums(docs) -> None:
    post = [d["text"][s["start"]:s["end"]] for d in docs for s in d["spans"] if s.get("post2020")]
    assert len(post) >= 20
    assert any(not rrn_valid(_plain_digits(v)) and not frn_valid(_plain_digits(v)) for v in post)


def test_hard_negatives_carry_no_labels(docs) -> None:
    negatives = [d for d in docs if d["kind"] in ("encyclopedia", "commerce")]
    assert negatives and all(not d["spans"] for d in negatives)
    text = "\n".join(d["text"] for d in negatives)
    assert "세종대왕" in text and "이순신" in text
    # RRN-shaped numbers with impossible dates are present and unlabelled
    shaped = re.findall(r"(?<!\d)(\d{6})-[1-4]\d{6}(?!\d)", text)
    assert shaped
    for yymmdd in shaped:
        with pytest.raises(ValueError):
            dt.date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6]))


def test_evasions_really_evade(docs) -> None:
    for d in docs:
        for s in d["spans"]:
            value = d["text"][s["start"]:s["end"]]
            if s.get("variant") == "fullwidth":
                assert re.search("[０-９]", value)
            elif s.get("variant") == "zero_width":
                assert re.search("[\u200b\u200c\u200d\u2060]", value)
            elif s.get("variant") == "spaced":
                assert re.search(r"\d \d \d", value)

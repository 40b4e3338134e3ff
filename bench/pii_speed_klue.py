"""Scanner speed on Korean news and review text of 1 KB and 32 KB, identifiers mixed in.

    .venv/bin/python bench/pii_speed_klue.py

Text: KLUE-NER v1.1 dev sentences (CC BY-SA 4.0, https://klue-benchmark.com) with identifiers
mixed in, so both the prefilters and the detectors do real work (bench/pii_speed.py uses the
labelled corpus instead, denser in personal data, and compares with Presidio).
CPU time of this process (time.process_time), so other load on the machine does not count.
"""

from __future__ import annotations

import statistics
import time

from nuri.privacy.scanner import Scanner
from pii_person_rules import DEFAULT, load

PII = [
    "고객 김민수님 연락처 010-1234-5678", "주민번호 900101-1234568", "카드 4111-1111-1111-1111입니다",
    "주소: 서울특별시 강남구 테헤란로 152", "이메일 minsu@example.com", "국민은행 계좌 123456-01-234567",
    "차량 12가3456", "주문번호 2024010512345 결제 35,000원",
]


def document(size: int) -> str:
    sents = [t for t, _, _ in load(DEFAULT)]
    out, i = [], 0
    while len("\n".join(out).encode()) < size:
        out.append(sents[i % len(sents)])
        if i % 6 == 5:
            out.append(PII[(i // 6) % len(PII)])
        i += 1
    text = "\n".join(out)
    while len(text.encode()) > size:
        text = text[:-1]
    return text


def _per_kb(fn, text: str, reps: int) -> tuple[float, float]:
    fn(text)
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        fn(text)
        times.append((time.process_time() - t0) * 1000)
    times.sort()
    kb = len(text.encode()) / 1024
    return statistics.median(times) / kb, times[int(len(times) * 0.99) - 1] / kb


def main() -> None:
    scanner = Scanner()
    for size, reps in ((1024, 2000), (32 * 1024, 100)):
        text = document(size)
        for name, fn in (("scan", scanner.scan), ("classify_text", scanner.classify_text)):
            p50, p99 = _per_kb(fn, text, reps)
            print(f"{size // 1024:>3} KB {name:13s}: p50 {p50:.3f} ms/KB  p99 {p99:.3f} ms/KB"
                  f"  ({len(scanner.scan(text))} entities)")


if __name__ == "__main__":
    main()

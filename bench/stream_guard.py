"""The reply guard on a streamed reply: CPU per 1 KB reply streamed against the same reply guarded whole.

A streamed reply is guarded in windows: each scan reads the new text with up to 64 characters
already emitted before it (context words count), so a stream costs more scanning than its text
alone. This measures how much more, on the gateway's settings (the default scanner with the
name tagger, `min_emit` 8, 8-character chunks as most upstreams send them): a 1 KB Korean reply
guarded whole (`check_text`, the baseline, one scan) and streamed through the restore-and-guard
filter, in the same run, min of interleaved batches. With `--baseline REV` the same is measured
for revision REV (a git worktree) beside this tree, each side in child processes that take turns
(`--turns`), the best of each side kept: a shared machine's slow spells then fall on both.

    .venv/bin/python bench/stream_guard.py [--baseline REV] [--turns 3] [--batches 15] [--chunk 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import korean_prompt, worktrees, write_result

ROOT = Path(__file__).resolve().parents[1]


def measure(batches: int, chunk: int) -> dict[str, Any]:
    """ms of CPU per 1 KB reply: guarded whole and streamed, and the scans the stream made."""
    from nuri.config import PrivacySettings
    from nuri.privacy.guard import ReplyFilter, ReplyGuard
    from nuri.privacy.pseudonymizer import Pseudonymizer
    from nuri.privacy.scanner import Scanner

    settings = PrivacySettings()
    scanner = Scanner(settings)
    reply = korean_prompt(1.0)
    pieces = [reply[i:i + chunk] for i in range(0, len(reply), chunk)]
    scans = 0

    class Counting:
        def scan(self, text: str) -> Any:
            nonlocal scans
            scans += 1
            return scanner.scan(text)

    def whole() -> None:
        ReplyGuard(scanner).check_text(reply)

    def streamed() -> None:
        f = ReplyFilter(Pseudonymizer(settings), scanner, hold_chars=settings.guard_hold_chars, min_emit=8)
        out = [f.feed(p) for p in pieces]
        out.append(f.flush())
        assert "".join(out) == reply

    counted = ReplyFilter(Pseudonymizer(settings), Counting(), hold_chars=settings.guard_hold_chars, min_emit=8)
    for p in pieces:
        counted.feed(p)
    counted.flush()
    best = {"whole": float("inf"), "streamed": float("inf")}
    runs = {"whole": 40, "streamed": 4}
    for _ in range(batches):
        for name, fn in (("whole", whole), ("streamed", streamed)):
            t0 = time.process_time()
            for _ in range(runs[name]):
                fn()
            best[name] = min(best[name], (time.process_time() - t0) / runs[name])
    return {"reply_chars": len(reply), "chunks": len(pieces), "scans_per_stream": scans,
            "whole_ms": round(best["whole"] * 1000, 3), "streamed_ms": round(best["streamed"] * 1000, 3),
            "streamed_vs_whole": round(best["streamed"] / best["whole"], 2)}


def _child(src: Path, batches: int, chunk: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, __file__, "--child", "--batches", str(batches), "--chunk", str(chunk)],
                         env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def _best(results: list[dict[str, Any]]) -> dict[str, Any]:
    best = min(results, key=lambda r: r["streamed_ms"])
    whole = min(r["whole_ms"] for r in results)
    return {**best, "whole_ms": whole, "streamed_vs_whole": round(best["streamed_ms"] / whole, 2)}


def against(rev: str, turns: int, batches: int, chunk: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """`measure` by revision `rev`'s code and by this tree's, in child processes taking turns."""
    with tempfile.TemporaryDirectory(prefix="nuri-guard-") as tmp, worktrees({"tree": rev}, Path(tmp)) as trees:
        before, after = [], []
        for _ in range(turns):
            before.append(_child(trees["tree"] / "src", batches, chunk))
            after.append(_child(ROOT / "src", batches, chunk))
    return _best(before), _best(after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=None, metavar="REV")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.batches, args.chunk)))
        return
    result: dict[str, Any] = {"settings": {"chunk_chars": args.chunk, "min_emit": 8, "names": "tagger (default)"}}
    if args.baseline:
        before, result["after"] = against(args.baseline, args.turns, args.batches, args.chunk)
        result["before"] = {"revision": args.baseline, **before}
    else:
        result["after"] = measure(args.batches, args.chunk)
    for side in ("before", "after"):
        if side in result:
            r = result[side]
            print(f"{side:6s} 1 KB reply: whole {r['whole_ms']:.3f} ms, streamed {r['streamed_ms']:.3f} ms "
                  f"({r['streamed_vs_whole']}x, {r['scans_per_stream']} scans for {r['chunks']} chunks)")
    if "before" in result:
        result["streamed_after_vs_before"] = round(result["after"]["streamed_ms"] / result["before"]["streamed_ms"], 3)
        print(f"streamed, after / before: {result['streamed_after_vs_before']}")
    print(f"written {write_result('stream_guard', result)}")


if __name__ == "__main__":
    main()

"""Where the time goes: a py-spy profile of `nuri serve` (full mode) under load.

Full mode as in bench/overhead.py (kr-pipa policy, reply guard, SQLite ledger), pinned to core 0,
the lean upstream of bench/conversation.py and this load generator on core 1; a closed loop of 1 KB Korean chat requests
at concurrency 16 (or, with --conversation, turn 20 of bench/conversation.py's chats, so the
profile shows what a long history still costs). py-spy samples the gateway twice under the same
load: once for the flame graph (SVG), once as collapsed stacks, from which the frames with the
most self time (the innermost frame of each sample) and the most total time are listed.

    .venv/bin/python bench/flame.py [--seconds 20] [--conversation]

Writes bench/results/flame-full.svg (flame-conversation.svg) and flame-full.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    RESULTS,
    ROOT,
    chat_body,
    closed_loop,
    gateway_process,
    korean_prompt,
    make_sender,
    pin_self,
    write_result,
)
from conversation import SYSTEM, Chat, answer, port_pid, upstream_process
from overhead import gateway_config

PY_SPY = Path(sys.executable).parent / "py-spy"


def conversation_bodies(n: int, turn: int = 20) -> list[bytes]:
    """Turn `turn` of `n` chats, history as the bench's upstream would have answered."""
    out = []
    for i in range(n):
        chat, history = Chat(10_000 + i), [{"role": "system", "content": SYSTEM}]
        for t in range(turn):
            history.append({"role": "user", "content": chat.user(t)})
            if t < turn - 1:
                reply = json.loads(answer(json.dumps({"messages": history}).encode()).split(b"\r\n\r\n", 1)[1])
                history.append({"role": "assistant", "content": reply["choices"][0]["message"]["content"]})
        out.append(json.dumps({"model": "default", "messages": history, "max_tokens": 256},
                              ensure_ascii=False).encode())
    return out


def load(url: str, bodies: list[bytes], stop: threading.Event) -> None:
    """Requests back to back at concurrency 16 until `stop` is set."""
    async def run() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
            sends = [make_sender(session, url + "/chat/completions", b) for b in bodies]
            i = 0
            while not stop.is_set():
                i += 1
                await closed_loop(sends[i % len(sends)], 16, 160)

    asyncio.run(run())


def record(pid: int, seconds: int, fmt: str, out: Path) -> None:
    subprocess.run([str(PY_SPY), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200",
                    "--format", fmt, "--output", str(out), "--nonblocking"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_frames(raw: Path, n: int = 25) -> dict[str, Any]:
    """Self and total samples per frame (function and file), and self samples per line, from
    py-spy's collapsed stacks."""
    self_time: collections.Counter[str] = collections.Counter()
    self_lines: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    by_area: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        samples += k
        lines = stack.split(";")
        frames = [f.rsplit(":", 1)[0] for f in lines]     # drop line numbers
        self_time[frames[-1]] += k
        self_lines[lines[-1]] += k
        by_area[area(frames[-1])] += k
        for f in set(frames):
            total[f] += k
    share = lambda c: [{"frame": f, "share": round(k / samples, 4)} for f, k in c.most_common(n)]  # noqa: E731
    return {"samples": samples, "self": share(self_time), "self_lines": share(self_lines), "total": share(total), "self_by_area": share(by_area)}


def area(frame: str) -> str:
    """Where a frame's code lives: a Nuri package (nuri/privacy, nuri/ledger, …) or a library."""
    path = frame.rsplit("(", 1)[-1].rstrip(")")
    parts = path.split("/")
    if parts[0] == "nuri" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0] if len(parts) > 1 else path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--conversation", action="store_true", help="turn 20 of long chats instead of 1 KB prompts")
    args = parser.parse_args()
    if not PY_SPY.exists() and not shutil.which("py-spy"):
        sys.exit("py-spy is not installed (.venv/bin/python -m pip install py-spy)")
    name = "flame-conversation" if args.conversation else "flame-full"
    bodies = conversation_bodies(16) if args.conversation else [chat_body(korean_prompt(1.0))]
    pin_self(1)
    with upstream_process(cpu=1) as upstream, gateway_process(gateway_config(upstream, "full"), cpu=0) as gw:
        pid = port_pid(gw)
        stop = threading.Event()
        worker = threading.Thread(target=load, args=(gw, bodies, stop), daemon=True)
        worker.start()
        try:
            time.sleep(3)                                                    # warm-up under load
            svg = RESULTS / f"{name}.svg"
            record(pid, args.seconds, "flamegraph", svg)
            # py-spy titles the graph with its command line: keep it free of this machine's paths
            svg.write_text(svg.read_text().replace(str(ROOT) + "/", "").replace(str(PY_SPY.parent) + "/", ""))
            raw = RESULTS / f"{name}.txt"
            record(pid, args.seconds, "raw", raw)
        finally:
            stop.set()
            worker.join(30)
    res = top_frames(raw)
    raw.unlink()
    res.update({"load": "turn 20 of 16 chats" if args.conversation else "1 KB Korean prompt", "concurrency": 16,
                "seconds": args.seconds, "svg": f"bench/results/{name}.svg"})
    print(f"{res['samples']} samples; most self time:")
    for row in res["self"][:15]:
        print(f"  {row['share'] * 100:5.1f}%  {row['frame']}")
    print("most self time by line:")
    for row in res["self_lines"][:15]:
        print(f"  {row['share'] * 100:5.1f}%  {row['frame']}")
    print("self time by area:")
    for row in res["self_by_area"][:12]:
        print(f"  {row['share'] * 100:5.1f}%  {row['frame']}")
    print(f"written {write_result(name, res)}")


if __name__ == "__main__":
    main()

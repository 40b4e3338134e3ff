"""Long conversations: the gateway's CPU per request and added latency, turn by turn, as history grows.

A chat client resends the whole conversation every turn, so without care the gateway's work
grows with the turn number. Here each of `--chats` conversations runs 20 turns: a system prompt,
then Korean user turns of 300–500 characters (about one in three with personal data: a name,
phone, e-mail, address or account), each followed by the assistant turn the upstream answered.
The chats advance in lockstep, one turn at a time; each turn is sent to every target in turn
(rotating the order), one request at a time:

  - direct:   the upstream called directly (the baseline of the added latency)
  - nocache:  `nuri serve` full mode (kr-pipa policy, reply guard, SQLite ledger) with
              `privacy.scan_cache_size: 0`, i.e. every string rescanned every turn (before)
  - cache:    the same with the default scan cache (after)
  - core:     proxy only (no policy, no ledger): the part of the growth that is parsing and
              forwarding a larger body, which every gateway pays

CPU per request is the gateway process's CPU time (all threads, from /proc schedstat, in ns) over
one batch of a turn (one request per chat) divided by the batch; each round starts fresh chats,
so a turn's newest message is never in the cache. Reported per turn: min and median over rounds,
and the added latency p50 (gateway p50 − direct p50, requests pooled over rounds). The figure of
merit is CPU at turn 20 ÷ CPU at turn 1 (target ≤ 1.5). Gateways pinned to core 0, the upstream
and this client to core 1.

    .venv/bin/python bench/conversation.py [--quick] [--chats 20] [--rounds 5] [--turns 20]
                                           [--sides nocache,cache,core]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LeanUpstream, gateway_process, lean_process, pct, pin_self, serve_lean, write_result

console = Console()

SYSTEM = ("당신은 누리쇼핑 고객센터의 상담 도우미입니다. 고객의 문의에 정중하고 간결하게 답하고, 주문·배송·교환·환불 "
          "정책을 정확히 안내하세요. 개인정보는 상담에 필요한 범위에서만 다루고, 확인되지 않은 내용은 추측하지 마세요.")

_NAMES = ["김민준", "이서연", "박지훈", "최수아", "정예준", "강하은", "조현우", "윤지아", "장도윤", "임서윤"]
_STREETS = ["서울특별시 마포구 월드컵북로 396", "부산광역시 해운대구 센텀중앙로 79", "대전광역시 유성구 대학로 291",
            "경기도 성남시 분당구 판교역로 166", "인천광역시 연수구 송도과학로 32"]
_BANKS = ["국민은행", "신한은행", "우리은행", "하나은행", "농협은행"]
_TOPICS = [
    "지난주에 주문한 겨울 패딩이 아직 도착하지 않아서 문의드립니다. 주문 내역에는 출고 완료로 나오는데 배송 조회를 "
    "눌러 보면 사흘째 같은 터미널에 머물러 있다고 표시됩니다.",
    "받은 운동화의 사이즈가 생각보다 작아서 한 치수 큰 것으로 교환하고 싶습니다. 상자와 태그는 그대로 보관하고 있고, "
    "실내에서 한 번 신어 본 것 말고는 사용하지 않았습니다.",
    "같은 상품을 실수로 두 번 결제한 것 같습니다. 카드 명세서에 같은 금액이 두 번 찍혀 있는데 주문 목록에는 한 건만 "
    "보여서 어떻게 된 것인지 확인을 부탁드립니다.",
    "선물용으로 주문한 화장품 세트의 포장이 찢어진 채로 도착했습니다. 내용물은 괜찮아 보이지만 선물하기에는 곤란해서 "
    "새 상품으로 다시 보내 주실 수 있는지 궁금합니다.",
    "정기 배송으로 받고 있는 생수의 배송 주기를 2주에서 4주로 바꾸고 싶습니다. 앱에서 변경하려고 했는데 버튼이 "
    "회색으로 눌리지 않아서 직접 문의드립니다.",
    "회원 등급 혜택으로 받은 쿠폰이 결제 단계에서 적용되지 않습니다. 유효 기간은 이번 달 말까지로 되어 있고 최소 주문 "
    "금액도 넘겼는데 적용 불가라는 안내만 나옵니다.",
]
_FILLERS = [
    "바쁘신 와중에 번거롭게 해 드려 죄송합니다.",
    "가능하면 이번 주 안에 처리되면 좋겠습니다.",
    "혹시 추가로 필요한 서류나 사진이 있으면 알려 주세요.",
    "이전에 상담받았을 때는 다른 안내를 받아서 조금 헷갈립니다.",
    "주말에는 집에 없어서 평일 오후에 받을 수 있으면 좋겠습니다.",
    "처리 결과는 문자로도 받아 볼 수 있을까요?",
    "앞으로도 계속 이용할 생각이라 잘 해결되었으면 합니다.",
    "답변 기다리겠습니다. 감사합니다.",
]
_ANSWERS = [
    "문의 주셔서 감사합니다. 말씀하신 주문을 확인해 보니 택배사 터미널에서 분류가 지연되고 있습니다. 오늘 중으로 택배사에 "
    "재확인을 요청드렸고, 내일까지 이동이 없으면 같은 상품을 새로 출고해 드리겠습니다.",
    "불편을 드려 죄송합니다. 교환은 상품 수령 후 7일 이내에 신청하실 수 있으며, 단순 변심에 의한 사이즈 교환의 경우 "
    "왕복 배송비 6,000원이 부과됩니다. 회수 기사님이 방문하시면 원래 상자에 담아 전달해 주세요.",
    "확인해 보니 결제가 두 번 승인된 뒤 한 건은 자동 취소 대기 중입니다. 카드사 사정에 따라 취소 반영까지 영업일 기준 "
    "3~5일이 걸릴 수 있으며, 그 뒤에도 청구되면 다시 말씀해 주세요.",
    "포장 손상으로 불편을 드려 죄송합니다. 사진을 첨부해 주시면 확인 후 새 상품을 바로 발송해 드리겠습니다. 받으신 "
    "상품은 회수하지 않으셔도 됩니다.",
    "정기 배송 주기는 다음 결제일 3일 전까지 변경하실 수 있습니다. 지금은 변경 마감이 지나 버튼이 비활성화되어 있으며, "
    "이번 회차 이후부터 4주 주기로 바꾸어 두었습니다.",
    "해당 쿠폰은 할인 상품과 중복 적용되지 않습니다. 장바구니에 할인 상품이 함께 담겨 있어 적용되지 않은 것으로 보이니 "
    "해당 상품을 따로 주문하시면 쿠폰을 사용하실 수 있습니다.",
]


class Chat:
    """One customer's conversation: its user turns are fixed by its seed, so every target gets the same."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        r = self.rng
        self.name = r.choice(_NAMES)
        self.phone = f"010-{r.randint(2000, 9999)}-{r.randint(1000, 9999)}"
        self.email = f"user{r.randint(100, 99999)}@example.co.kr"
        self.address = r.choice(_STREETS)
        self.account = f"{r.choice(_BANKS)} {r.randint(100, 999)}-{r.randint(10, 99)}-{r.randint(100000, 999999)}"
        self.order = r.randint(10**11, 10**12 - 1)

    def user(self, turn: int) -> str:
        """Turn `turn` (0-based): 300–500 characters of Korean, personal data every third turn."""
        r = self.rng
        parts = [f"주문번호 {self.order + turn}번 관련입니다.", r.choice(_TOPICS)]
        if turn % 3 == 0:
            parts.append(r.choice([
                f"제 이름은 {self.name}이고 연락처는 {self.phone}입니다.",
                f"영수증은 {self.email}로 보내 주세요.",
                f"배송지는 {self.address}입니다.",
                f"환불은 {self.account} 계좌로 부탁드립니다.",
            ]))
        target = r.randint(300, 500)
        while sum(len(p) + 1 for p in parts) < target:
            parts.append(r.choice(_FILLERS + _TOPICS))
        return " ".join(parts)[:500]


def answer(body: bytes) -> bytes:
    """The upstream's reply to a chat request: an answer chosen by the last user turn."""
    messages = json.loads(body).get("messages") or [{}]
    last = str(messages[-1].get("content", ""))
    h = int.from_bytes(hashlib.blake2b(last.encode(), digest_size=4).digest(), "big")
    text = f"{_ANSWERS[h % len(_ANSWERS)]} 처리 번호는 {h % 1000000:06d}입니다. 더 궁금하신 점이 있으면 말씀해 주세요."
    reply = {"id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "m",
             "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": len(body) // 4, "completion_tokens": len(text) // 2,
                       "total_tokens": len(body) // 4 + len(text) // 2}}
    data = json.dumps(reply, ensure_ascii=False).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(len(data)).encode() + \
        b"\r\n\r\n" + data


class _Upstream(LeanUpstream):
    """Every POST is a chat completion (see `answer`)."""

    def answer(self, body: bytes) -> bytes:
        return answer(body) if body else b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


def serve_upstream(port: int) -> None:
    serve_lean(_Upstream, port)


def upstream_process(cpu: int = 1) -> contextlib.AbstractContextManager[str]:
    """This file's lean upstream in a process of its own on core `cpu`; yields its base URL."""
    return lean_process(str(Path(__file__).resolve()), cpu)


SIDES: dict[str, dict[str, Any]] = {
    "nocache": {"policy": {"enabled": True, "packs": ["kr-pipa"]}, "ledger": {"enabled": True},
                "privacy": {"scan_cache_size": 0}},
    "cache": {"policy": {"enabled": True, "packs": ["kr-pipa"]}, "ledger": {"enabled": True}},
    "core": {"policy": {"enabled": False}, "ledger": {"enabled": False}},
}


def gateway_config(upstream: str, side: str) -> dict[str, Any]:
    return {"deployments": [{"id": "fast", "provider": "openai_compatible", "model": "m", "base_url": upstream,
                             "jurisdiction": "KR", "hosting": "domestic_cloud", "max_concurrency": 64}],
            "aliases": {"default": ["fast"]}, **SIDES[side]}


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of `pid` so far, in nanoseconds (schedstat: exact, not in ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def port_pid(base_url: str) -> int:
    """The process listening on the URL's port (the `nuri serve` to measure)."""
    port = int(base_url.rsplit(":", 1)[1].split("/", 1)[0])
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == "0A":
            inode = f[9]
    if inode is None:
        raise RuntimeError(f"nothing listens on {port}")
    target = f"socket:[{inode}]"
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if any(str(Path(fd).readlink()) == target for fd in (proc / "fd").iterdir()):
                    return int(proc.name)
    raise RuntimeError(f"no process owns port {port}")


async def send(session: aiohttp.ClientSession, url: str, messages: list[dict[str, str]]) -> tuple[float, str]:
    body = json.dumps({"model": "default", "messages": messages, "max_tokens": 256}, ensure_ascii=False).encode()
    t0 = time.perf_counter()
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
        data = await resp.read()
        elapsed = time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:300]!r}")
    return elapsed, json.loads(data)["choices"][0]["message"]["content"]


async def measure(targets: dict[str, str], pids: dict[str, int], chats: int, rounds: int, turns: int,
                  seed: int) -> dict[str, Any]:
    names = list(targets)
    cpu: dict[str, list[list[float]]] = {n: [[] for _ in range(turns)] for n in names if n in pids}
    lat: dict[str, list[list[float]]] = {n: [[] for _ in range(turns)] for n in names}
    chars = [0.0] * turns
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4)) as session:
        warm = Chat(seed - 1)
        for url in targets.values():                      # warm-up: imports, pools, first scans
            history: list[dict[str, str]] = [{"role": "system", "content": SYSTEM}]
            for t in range(3):
                history.append({"role": "user", "content": warm.user(t)})
                _, reply = await send(session, url + "/chat/completions", history)
                history.append({"role": "assistant", "content": reply})
        for r in range(rounds):
            convs = [Chat(seed + r * 1000 + i) for i in range(chats)]
            user_turns = [[c.user(t) for t in range(turns)] for c in convs]
            histories = {n: [[{"role": "system", "content": SYSTEM}] for _ in convs] for n in names}
            for t in range(turns):
                order = names[t % len(names):] + names[:t % len(names)]
                for name in order:
                    url = targets[name] + "/chat/completions"
                    pid = pids.get(name)
                    before = cpu_ns(pid) if pid else 0
                    for i in range(chats):
                        msgs = [*histories[name][i], {"role": "user", "content": user_turns[i][t]}]
                        elapsed, reply = await send(session, url, msgs)
                        lat[name][t].append(elapsed * 1000)
                        histories[name][i] = [*msgs, {"role": "assistant", "content": reply}]
                        if name == names[0] and r == 0:
                            chars[t] += sum(len(m["content"]) for m in msgs) / chats
                    if pid:
                        cpu[name][t].append((cpu_ns(pid) - before) / chats / 1e6)
            console.print(f"round {r + 1}/{rounds} done")
    out: dict[str, Any] = {"chats": chats, "rounds": rounds, "turns": turns,
                           "request_chars_per_turn": [round(c) for c in chars], "sides": {}}
    direct = [pct(lat["direct"][t], 50) for t in range(turns)]
    out["direct_p50_ms"] = [round(x, 3) for x in direct]
    for name in names:
        if name == "direct":
            continue
        per_turn = []
        for t in range(turns):
            samples = cpu[name][t]
            per_turn.append({"turn": t + 1, "cpu_ms_min": round(min(samples), 3),
                             "cpu_ms_median": round(statistics.median(samples), 3),
                             "p50_ms": round(pct(lat[name][t], 50), 3),
                             "added_p50_ms": round(pct(lat[name][t], 50) - direct[t], 3),
                             "added_p99_ms": round(pct(lat[name][t], 99) - pct(lat["direct"][t], 99), 3)})
        first, last = per_turn[0], per_turn[-1]
        out["sides"][name] = {"per_turn": per_turn,
                              "cpu_ratio_last_first_median": round(last["cpu_ms_median"] / first["cpu_ms_median"], 3),
                              "cpu_ratio_last_first_min": round(last["cpu_ms_min"] / first["cpu_ms_min"], 3),
                              "cpu_ratio_last_first_fit": fitted_ratio([p["cpu_ms_median"] for p in per_turn]),
                              "cpu_ms_total_median": round(sum(p["cpu_ms_median"] for p in per_turn), 3)}
    return out


def fitted_ratio(cpu_per_turn: list[float]) -> float:
    """Last turn over first read from the least-squares line through every turn's CPU: on a
    shared machine one turn's figure moves by ±20 % from run to run, the trend of twenty far less."""
    turns = list(range(1, len(cpu_per_turn) + 1))
    slope, intercept = statistics.linear_regression(turns, cpu_per_turn)
    return round((intercept + slope * turns[-1]) / (intercept + slope), 3)


def report(res: dict[str, Any]) -> None:
    sides = list(res["sides"])
    t = Table(title=f"{res['turns']}-turn chats × {res['chats']}, {res['rounds']} rounds: gateway CPU per request "
                    "(median / min, ms) and added p50 (ms)")
    t.add_column("turn")
    t.add_column("chars")
    t.add_column("direct p50")
    for s in sides:
        t.add_column(f"{s} CPU")
        t.add_column(f"{s} added")
    for i in range(res["turns"]):
        row = [str(i + 1), str(res["request_chars_per_turn"][i]), f"{res['direct_p50_ms'][i]:.2f}"]
        for s in sides:
            p = res["sides"][s]["per_turn"][i]
            row += [f"{p['cpu_ms_median']:.3f} / {p['cpu_ms_min']:.3f}", f"{p['added_p50_ms']:+.2f}"]
        t.add_row(*row)
    console.print(t)
    for s in sides:
        d = res["sides"][s]
        console.print(f"{s}: CPU turn {res['turns']} / turn 1 = {d['cpu_ratio_last_first_median']:.2f}× (median), "
                      f"{d['cpu_ratio_last_first_min']:.2f}× (min), {d['cpu_ratio_last_first_fit']:.2f}× (line "
                      f"fitted to every turn's median); whole chat {d['cpu_ms_total_median']:.1f} ms CPU")
    if "nocache" in res["sides"] and "cache" in res["sides"]:
        a, b = res["sides"]["nocache"], res["sides"]["cache"]
        console.print(f"whole chat, cache / no cache: {b['cpu_ms_total_median'] / a['cpu_ms_total_median']:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 chats, 2 rounds")
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--sides", default="nocache,cache,core")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)   # run as the upstream process
    args = parser.parse_args()
    if args.upstream:
        serve_upstream(args.upstream)
        return
    chats, rounds = (4, 2) if args.quick else (args.chats, args.rounds)
    sides = [s for s in args.sides.split(",") if s]
    pin_self(1)
    with upstream_process(cpu=1) as upstream, contextlib.ExitStack() as stack:
        targets = {"direct": upstream}
        for side in sides:
            targets[side] = stack.enter_context(gateway_process(gateway_config(upstream, side), cpu=0))
        pids = {side: port_pid(targets[side]) for side in sides}
        res = asyncio.run(measure(targets, pids, chats, rounds, args.turns, args.seed))
    from nuri.config import PrivacySettings

    res["note"] = "CPU from /proc schedstat of the gateway process (all threads); gateways pinned to core 0"
    res["privacy_defaults"] = {"scan_cache_size": PrivacySettings().scan_cache_size,
                               "person_threshold": PrivacySettings().person_threshold}
    report(res)
    console.print(f"results: {write_result('conversation', res)}")


if __name__ == "__main__":
    main()

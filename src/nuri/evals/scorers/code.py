"""Code: generated Python is run against the item's unit tests in a subprocess.

The subprocess has a wall-clock timeout, CPU, memory and file-size limits (setrlimit), an empty
working directory and environment, and an audit hook that refuses sockets and new processes, so
a generated program can neither reach the network nor escape the time budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

from nuri.evals.scorers.base import Score, ScoreContext, Scorer

_SANDBOX = Path(__file__).with_name("_sandbox.py")
_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(reply: str, entry_point: str | None = None, prompt_code: str | None = None) -> str:
    """The fenced block that defines the entry point, else the first block, else the whole reply.
    A reply that only continues a given signature gets the signature put back in front."""
    blocks = _FENCE.findall(reply)
    code = reply
    if blocks:
        code = next((b for b in blocks if entry_point and f"def {entry_point}" in b), blocks[0])
    if entry_point and prompt_code and f"def {entry_point}" not in code:
        code = prompt_code.rstrip("\n") + "\n" + code
    return code


def _limits(cpu_seconds: int, memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024 * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


async def run_tests(code: str, tests: str, *, timeout: float = 10.0, memory_mb: int = 512) -> tuple[bool, str]:
    """(passed, last lines of stderr). Never raises for a bad program."""
    with tempfile.TemporaryDirectory(prefix="nuri-code-") as tmp:
        sol, tst = Path(tmp, "solution.py"), Path(tmp, "tests.py")
        sol.write_text(code, encoding="utf-8")
        tst.write_text(tests, encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", str(_SANDBOX), str(sol), str(tst),
            cwd=tmp, env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            preexec_fn=lambda: _limits(int(timeout) + 1, memory_mb),
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            return False, f"timed out after {timeout:g} s"
        tail = err.decode("utf-8", errors="replace").strip().splitlines()[-3:]
        return proc.returncode == 0, "\n".join(tail)[:500]


class CodeScorer(Scorer):
    name = "code"

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        code = extract_code(reply, item.get("entry_point"), item.get("prompt_code"))
        passed, error = await run_tests(
            code, item["tests"], timeout=float(self.options.get("timeout", 10)),
            memory_mb=int(self.options.get("memory_mb", 512)))
        return Score(float(passed), {} if passed else {"error": error})

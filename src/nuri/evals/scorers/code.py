"""Code: generated Python is run against the item's unit tests in an operating-system sandbox.

Model-written code is hostile until shown otherwise, so it runs under bubblewrap as its own
unprivileged user, without network, with a read-only filesystem but a scratch directory, resource
limits and a deadline that kills every process it started (see `_sandbox` and docs/security.md).
Where that isolation is not available the scorer refuses, unless the caller explicitly accepted
running code unisolated (`nuri eval run --unsafe-code`).
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

from nuri.evals.scorers._sandbox import (
    INPUTS,
    PYTHON,
    Limits,
    SandboxUnavailable,
    isolation,
    next_uid,
    prepare_inputs,
    run_isolated,
)
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


def _tail(stderr: str) -> str:
    return "\n".join(stderr.strip().splitlines()[-3:])[:500]


async def _run_unisolated(code: str, tests: str, timeout: float, memory_mb: int) -> tuple[bool, str]:
    """Only with --unsafe-code: a plain subprocess with rlimits and the audit hook, which a hostile
    program can defeat."""
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
        return proc.returncode == 0, _tail(err.decode("utf-8", errors="replace"))


async def run_tests(code: str, tests: str, *, timeout: float = 10.0, memory_mb: int = 512,
                    unsafe: bool = False) -> tuple[bool, str]:
    """(passed, last lines of stderr). Never raises for a bad program; raises SandboxUnavailable
    when isolation is missing and `unsafe` was not given."""
    if not isolation().available:
        if not unsafe:
            raise SandboxUnavailable(unavailable_message())
        return await _run_unisolated(code, tests, timeout, memory_mb)
    limits = Limits(cpu_seconds=int(timeout) + 1, memory_mb=memory_mb)
    uid = next_uid()
    with tempfile.TemporaryDirectory(prefix="nuri-code-") as tmp:
        prepare_inputs(Path(tmp), {"runner.py": _SANDBOX.read_text(encoding="utf-8"), "solution.py": code,
                                   "tests.py": tests}, uid)
        argv = [PYTHON, "-I", "-S", f"{INPUTS}/runner.py", f"{INPUTS}/solution.py", f"{INPUTS}/tests.py"]
        out = await run_isolated(argv, inputs=Path(tmp), timeout=timeout, limits=limits, uid=uid)
    if out.timed_out:
        return False, f"timed out after {timeout:g} s"
    return out.returncode == 0, _tail(out.stderr)


def unavailable_message() -> str:
    """Why code suites will not run here, and what the caller can do."""
    return (f"the code sandbox is not available: {isolation().reason}. Model-written code is run only "
            "isolated by the operating system (separate user, no network, read-only filesystem); install "
            "bubblewrap, or pass --unsafe-code to run it without isolation on a machine you can afford to lose")


class CodeScorer(Scorer):
    name = "code"
    unsafe = False  # set by the runner (or the CLI) when --unsafe-code was given

    async def score(self, item: dict[str, Any], reply: str, ctx: ScoreContext) -> Score:
        code = extract_code(reply, item.get("entry_point"), item.get("prompt_code"))
        passed, error = await run_tests(
            code, item["tests"], timeout=float(self.options.get("timeout", 10)),
            memory_mb=int(self.options.get("memory_mb", 512)), unsafe=self.unsafe)
        return Score(float(passed), {} if passed else {"error": error})

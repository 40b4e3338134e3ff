"""The code sandbox against hostile programs: each known escape is tried and must fail.

Most programs run raw in the sandbox (no audit hook), so they test the operating-system boundary
itself; a few go through the code scorer to show the whole path. Each program exits 0 when the
attempt failed as it should and 3 when it escaped, so a sandbox that never started cannot pass.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eval_helpers import make_suite, shipped

from nuri.evals.runner import EvalRunner, RunOptions
from nuri.evals.scorers import ScoreContext, get_scorer
from nuri.evals.scorers import _sandbox as sandbox
from nuri.evals.scorers import code as code_scorer
from nuri.evals.scorers._sandbox import (
    PYTHON,
    SCRATCH,
    Isolation,
    Limits,
    Outcome,
    SandboxUnavailable,
    run_isolated,
)

ISO = sandbox.isolation()
needs_isolation = pytest.mark.skipif(not ISO.available, reason=f"no OS isolation on this machine: {ISO.reason}")
ESCAPED = 3
REPO = Path(__file__).resolve().parents[2]


async def attempt(program: str, *, timeout: float = 3.0, limits: Limits | None = None,
                  scratch: Path | None = None) -> Outcome:
    """Run a raw Python program in the sandbox (no audit hook)."""
    inputs = Path(os.environ.get("TMPDIR", "/tmp")) / f"nuri-sbx-test-{os.getpid()}-{time.monotonic_ns()}"
    inputs.mkdir()
    try:
        uid = sandbox.next_uid()
        sandbox.prepare_inputs(inputs, {"prog.py": textwrap.dedent(program)}, uid)
        return await run_isolated([PYTHON, "-I", "-S", f"{sandbox.INPUTS}/prog.py"], inputs=inputs, uid=uid,
                                  timeout=timeout, limits=limits or Limits(cpu_seconds=3), scratch=scratch)
    finally:
        for f in inputs.iterdir():
            f.unlink()
        inputs.rmdir()


def held(out: Outcome) -> None:
    assert not out.timed_out, out.stderr
    assert out.returncode == 0, f"rc={out.returncode}: {out.stderr[-800:]}"


def alive_as(uid: int | None) -> list[int]:
    """Host pids still running as the run's uid (root mode only)."""
    if uid is None:
        return []
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                status = Path(entry.path, "status").read_text()
            except OSError:
                continue
            if any(ln.startswith("Uid:") and int(ln.split()[1]) == uid for ln in status.splitlines()):
                pids.append(int(entry.name))
    return pids


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, int]]:
    """A TCP listener on the host (all interfaces) that the sandbox must not reach."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv, srv.getsockname()[1]
    srv.close()


def accepted(srv: socket.socket) -> bool:
    try:
        conn, _ = srv.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def host_ip() -> str | None:
    """The host's outward address (no packet is sent), to try reaching it past loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
        except OSError:
            return None


# -- identity ----------------------------------------------------------------------------------
@needs_isolation
async def test_blocked_trick_then_subprocess_id_is_not_root() -> None:
    out = await attempt("""
        import os, subprocess, sys
        sys.modules["__main__"]._BLOCKED = ()
        uid = subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip()
        print("id -u:", uid, "getuid:", os.getuid(), file=sys.stderr)
        status = open("/proc/self/status").read()
        caps = [ln.split()[1] for ln in status.splitlines() if ln.startswith(("CapEff", "CapPrm", "CapBnd"))]
        nnp = [ln.split()[1] for ln in status.splitlines() if ln.startswith("NoNewPrivs")]
        root = uid == "0" or os.getuid() == 0 or os.geteuid() == 0
        sys.exit(3 if root or any(int(c, 16) for c in caps) or nnp != ["1"] else 0)
    """)
    held(out)
    if ISO.privileged:
        assert out.uid is not None and out.uid >= sandbox.UID_BASE and f"getuid: {out.uid}" in out.stderr


@needs_isolation
async def test_scorer_blocked_trick_still_cannot_spawn_or_connect(listener: tuple[socket.socket, int]) -> None:
    srv, port = listener
    s = get_scorer("code", {"timeout": 3})
    item = {"entry_point": "add", "tests": "assert add(2, 3) == 5"}
    reply = f"""```python
import sys, subprocess, socket
sys.modules["__main__"]._BLOCKED = ()
def add(a, b):
    try:
        socket.create_connection(("127.0.0.1", {port}), 1)
    except OSError:
        pass
    assert subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0"
    return a + b
```"""
    scored = await s.score(item, reply, ScoreContext())
    assert scored.value == 0.0
    assert not accepted(srv)


@needs_isolation
async def test_user_namespaces_cannot_be_created_inside() -> None:
    if not ISO.nested_userns_blocked:
        pytest.skip(f"user namespaces inside are not blocked here: {ISO.reason}")
    out = await attempt("""
        import subprocess, sys
        r = subprocess.run(["unshare", "-Ur", "id", "-u"], capture_output=True, text=True)
        print(r.returncode, r.stdout, r.stderr, file=sys.stderr)
        sys.exit(3 if r.returncode == 0 else 0)
    """)
    held(out)


# -- filesystem --------------------------------------------------------------------------------
@needs_isolation
async def test_cannot_read_shadow_and_passwd_lists_no_host_account() -> None:
    out = await attempt("""
        import sys
        try:
            open("/etc/shadow").read()
            sys.exit(3)
        except PermissionError:
            pass
        passwd = open("/etc/passwd").read()
        sys.exit(3 if "root:" in passwd else 0)
    """)
    held(out)


@needs_isolation
async def test_parent_environment_and_host_processes_are_invisible(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"s3cret-{os.getpid()}-{time.time_ns()}"
    monkeypatch.setenv("NURI_TEST_SECRET", secret)
    out = await attempt(f"""
        import os, sys
        secret = {secret!r}
        found = secret in repr(os.environ)
        for pid in [os.getppid(), 1, {os.getpid()}] + [int(p) for p in os.listdir("/proc") if p.isdigit()]:
            for part in ("environ", "cmdline"):
                try:
                    data = open(f"/proc/{{pid}}/{{part}}", "rb").read()
                except OSError:
                    continue
                found |= secret.encode() in data or b"pytest" in data
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        print("pids", pids, file=sys.stderr)
        sys.exit(3 if found or len(pids) > 5 else 0)
    """)
    held(out)


@needs_isolation
async def test_writes_outside_scratch_fail_and_scratch_works(tmp_path: Path) -> None:
    stamp = f"nuri-escape-{os.getpid()}-{time.time_ns()}"
    targets = [f"/tmp/{stamp}", str(REPO / stamp), f"{os.getcwd()}/{stamp}", f"/root/{stamp}",
               f"/var/tmp/{stamp}", f"/etc/{stamp}", f"/dev/shm/{stamp}", f"{tmp_path}/{stamp}"]
    out = await attempt(f"""
        import sys
        wrote = []
        for path in {targets!r}:
            try:
                with open(path, "w") as fh:
                    fh.write("x")
                wrote.append(path)
            except OSError:
                pass
        with open({SCRATCH + "/ok.txt"!r}, "w") as fh:
            fh.write("scratch is writable")
        print("wrote", wrote, file=sys.stderr)
        sys.exit(3 if any(not p.startswith(("/tmp/", "/root/", "/var/", "/dev/shm/")) for p in wrote) else 0)
    """)
    held(out)
    for target in targets:  # what the sandbox wrote in its private tmpfs views never reaches the host
        assert not Path(target).exists(), target


@needs_isolation
async def test_callers_directory_is_hidden() -> None:
    out = await attempt(f"""
        import os, sys
        cwd = {os.getcwd()!r}
        sys.exit(3 if os.path.exists({str(REPO / "pyproject.toml")!r}) or (os.path.isdir(cwd) and os.listdir(cwd))
                 else 0)
    """)
    held(out)


# -- resources ---------------------------------------------------------------------------------
@needs_isolation
async def test_fork_bomb_is_capped_and_cleaned_up() -> None:
    out = await attempt("""
        import os, sys, time
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                children += 1
        except OSError:
            pass
        print("children", children, file=sys.stderr)
        sys.exit(3 if children >= 16 else 0)
    """, limits=Limits(cpu_seconds=3, processes=16))
    held(out)
    await asyncio.sleep(0.2)
    assert alive_as(out.uid) == []


@needs_isolation
async def test_memory_bomb_fails() -> None:
    out = await attempt("""
        import sys
        hog = []
        try:
            while True:
                hog.append(bytearray(64 * 1024 * 1024))
        except MemoryError:
            pass
        sys.exit(3 if len(hog) * 64 > 256 else 0)
    """, limits=Limits(cpu_seconds=3, memory_mb=256))
    held(out)


@needs_isolation
async def test_file_size_and_scratch_size_bombs_fail() -> None:
    out = await attempt(f"""
        import errno, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        try:
            with open({SCRATCH + "/big"!r}, "wb") as fh:
                fh.write(b"x" * (8 * 1024 * 1024))
            sys.exit(3)
        except OSError as exc:
            assert exc.errno == errno.EFBIG, exc
        written = 0
        try:
            for n in range(64):
                with open(f"{SCRATCH}/f{{n}}", "wb") as fh:
                    fh.write(b"x" * (512 * 1024))
                written += 1
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        sys.exit(3 if written * 512 > 4 * 1024 else 0)
    """, limits=Limits(cpu_seconds=3, file_mb=1, scratch_mb=4))
    held(out)


# -- network -----------------------------------------------------------------------------------
@needs_isolation
async def test_dns_fails() -> None:
    out = await attempt("""
        import socket, sys
        for name in ("pypi.org", "localhost.localdomain", "deb.debian.org"):
            try:
                socket.getaddrinfo(name, 443)
                if name != "localhost.localdomain":
                    sys.exit(3)
            except socket.gaierror:
                pass
        sys.exit(0)
    """)
    held(out)


@needs_isolation
async def test_host_services_on_loopback_are_unreachable(listener: tuple[socket.socket, int]) -> None:
    srv, port = listener
    targets = [("127.0.0.1", 6379), ("127.0.0.1", port)] + ([(ip, port)] if (ip := host_ip()) else [])
    out = await attempt(f"""
        import socket, sys
        reached = []
        for host, port in {targets!r}:
            try:
                socket.create_connection((host, port), 1).close()
                reached.append((host, port))
            except OSError:
                pass
        print("reached", reached, file=sys.stderr)
        sys.exit(3 if reached else 0)
    """)
    held(out)
    assert not accepted(srv)


# -- deadline ----------------------------------------------------------------------------------
@needs_isolation
@pytest.mark.parametrize("parent", ["hangs past the deadline", "exits at once"])
async def test_new_session_children_die_with_the_sandbox(tmp_path: Path, parent: str) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    late = f"import time; time.sleep(2); open('{SCRATCH}/late', 'w').write('alive')"
    out = await attempt(f"""
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {late!r}], start_new_session=True)
        if os.fork() == 0:  # a double-forked daemon, reparented to the namespace's init
            os.setsid()
            if os.fork() == 0:
                exec({late!r})
            os._exit(0)
        open({SCRATCH + "/started"!r}, "w").write("x")
        if {parent == "hangs past the deadline"!r}:
            time.sleep(30)
    """, timeout=1.0, scratch=scratch)
    assert (scratch / "started").exists(), out.stderr
    assert out.timed_out == (parent == "hangs past the deadline")
    await asyncio.sleep(0.3)
    assert alive_as(out.uid) == []
    await asyncio.sleep(2.2)
    assert not (scratch / "late").exists()


# -- correct code and the refusal path ------------------------------------------------------------
@needs_isolation
async def test_correct_code_scores_right() -> None:
    s = get_scorer("code", {"timeout": 3})
    item = {"entry_point": "add", "prompt_code": "def add(a, b):", "tests": "assert add(2, 3) == 5"}
    assert (await s.score(item, "```python\ndef add(a, b):\n    return a + b\n```", ScoreContext())).value == 1.0
    assert (await s.score(item, "def add(a, b):\n    return a - b", ScoreContext())).value == 0.0
    suite = shipped("code")
    scorer = get_scorer(suite.scorer.name, suite.scorer.options)
    for item in suite.items[:3]:
        assert (await scorer.score(item, f"```python\n{item['reference']}```", ScoreContext())).value == 1.0


NO_ISOLATION = Isolation(False, "bubblewrap (bwrap) is not installed")


async def test_without_isolation_code_is_refused_unless_unsafe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(code_scorer, "isolation", lambda: NO_ISOLATION)
    with pytest.raises(SandboxUnavailable, match="--unsafe-code"):
        await code_scorer.run_tests("x = 1", "assert x == 1", timeout=3)
    assert await code_scorer.run_tests("x = 1", "assert x == 1", timeout=3, unsafe=True) == (True, "")


async def test_runner_refuses_code_suites_without_isolation(monkeypatch: pytest.MonkeyPatch, upstream_fast, cfg,
                                                           store, tmp_path: Path) -> None:
    monkeypatch.setattr(code_scorer, "isolation", lambda: NO_ISOLATION)
    suite = make_suite(tmp_path, "tiny-code", [{"id": "1", "question": "add", "entry_point": "add",
                                                "tests": "assert add(2, 3) == 5"}], scorer="code")
    upstream_fast.state.answers = {"add": "```python\ndef add(a, b):\n    return a + b\n```"}
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        await EvalRunner(store, cfg, [suite], ["dom"], RunOptions()).run()
    assert store.list_runs() == []  # refused before anything was stored
    summary = await EvalRunner(store, cfg, [suite], ["dom"], RunOptions(unsafe_code=True)).run()
    assert [r["score"] for r in summary["results"]] == [1.0]


def test_cli_says_why_it_refuses(tmp_path: Path, config_file: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NURI_CONFIG"} | {"PATH": "/nonexistent"}
    probe = ("import sys; from nuri.evals.__main__ import app; "
             "sys.argv = ['nuri', 'eval', 'run', 'code', '--limit', '1', '--models', 'dom', '--json', "
             f"'--config', {str(config_file)!r}, '--data-dir', {str(tmp_path)!r}]; app()")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "not installed" in done.stderr and "--unsafe-code" in done.stderr

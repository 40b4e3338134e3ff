"""An operating-system sandbox for model-written code, plus the runner that executes inside it.

Model-written code is treated as hostile. Python audit hooks cannot contain it (the code runs in
the same interpreter and can switch them off), so isolation comes from the kernel, via bubblewrap:

* a separate unprivileged user: as root, bwrap builds the sandbox and `setpriv` drops to a
  per-run uid with no capabilities, no supplementary groups and no_new_privs; a second,
  unprivileged bwrap then disables user namespaces inside (less kernel surface). Run as an
  ordinary user, bwrap maps that user to 65534 in a user namespace (the outer uid stays the
  caller's, so the caller's home is hidden but the uid is shared).
* no network: a new network namespace holding only its own loopback, so neither host services on
  127.0.0.1 nor DNS are reachable.
* a read-only view of `/` with empty tmpfs over /tmp, /home, /root, /run, /var, /srv, /mnt,
  /media and the caller's working directory; a fresh /proc in a new PID namespace (no other
  process, no parent environment); a synthetic /etc/passwd; a size-capped tmpfs scratch at
  `/tmp/work` (or a given host directory) as the only writable place.
* resource limits (CPU seconds, address space, process count, file size, no core dumps).
* a deadline: the bwrap process is killed, its PID-namespace init dies with it, which kills every
  process in the namespace (also those started in a new session); as root, anything still owned
  by the run's uid is killed as well.

Run as a script (`python -I -S _sandbox.py solution.py tests.py`), this file is the runner: it
reads both files, installs an audit hook that gives a clear error for sockets and subprocesses
(a courtesy, not the boundary), then executes the solution and its tests. Exit 0 means every test
passed. Only light standard-library modules are imported at the top, as they load on every run.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SCRATCH = "/tmp/work"  # the only writable directory inside
INPUTS = "/tmp/in"  # read-only files handed to the sandboxed program
HIDDEN = ("/tmp", "/home", "/root", "/run", "/var", "/srv", "/mnt", "/media")
_SYSTEM = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sys", "/dev", "/boot")
UID_BASE = 1_500_000_000  # per-run uids (as root) come from here; no account uses this range
UID_SLOTS = 100_000
INNER_UID = 65534  # the uid seen inside when run without root
PYTHON = os.path.realpath(sys.executable)
_uids = itertools.count(os.getpid() * 7919)


class SandboxUnavailable(RuntimeError):
    """Raised when code would have to run without operating-system isolation."""


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits; `processes` counts every process of the run's uid."""

    cpu_seconds: int = 10
    memory_mb: int = 512
    processes: int = 32
    file_mb: int = 16
    scratch_mb: int = 64


@dataclass
class Outcome:
    returncode: int | None  # None when killed at the deadline
    stderr: str  # the last few kilobytes
    timed_out: bool = False
    uid: int | None = None  # the outer uid the program ran as (root mode)


@dataclass(frozen=True)
class Isolation:
    available: bool
    reason: str
    privileged: bool = False  # root: a dedicated uid per run
    nested_userns_blocked: bool = False


# -- building the command -------------------------------------------------------------------------
def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _hidden_dirs() -> list[str]:
    """The usual places for secrets and state, plus the caller's working directory (the data dir
    and configuration usually live there)."""
    dirs = [d for d in HIDDEN if os.path.isdir(d)]
    cwd = os.path.realpath(os.getcwd())
    if cwd != "/" and not _under(cwd, _SYSTEM) and not _under(cwd, tuple(dirs)):
        dirs.append(cwd)
    return dirs


def _interpreter_binds() -> list[str]:
    """Put the interpreter back when a hidden directory holds it (pyenv under /root, a venv under
    /home)."""
    prefixes = {os.path.realpath(sys.base_prefix), os.path.dirname(os.path.dirname(PYTHON))}
    hidden = tuple(_hidden_dirs())
    args: list[str] = []
    for prefix in sorted(prefixes):
        if _under(prefix, hidden) and os.path.isdir(prefix):
            parents = [str(p) for p in reversed(Path(prefix).parents) if _under(str(p), hidden)]
            for parent in parents[1:]:  # traversable by the sandbox user, whatever the host's mode
                args += ["--perms", "0755", "--dir", parent]
            args += ["--ro-bind", prefix, prefix]
    return args


def build_command(argv: list[str], *, inputs: Path, uid: int | None, limits: Limits,
                  scratch: Path | None = None, nested: bool = True) -> list[str]:
    """The bwrap command line that runs `argv` isolated. `uid` is the dedicated outer uid when the
    caller is root, else None (an unprivileged bwrap in a user namespace)."""
    bwrap = shutil.which("bwrap") or "bwrap"
    cmd = [bwrap, "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid", "--unshare-net",
           "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if uid is None:
        cmd += ["--unshare-user", "--disable-userns", "--uid", str(INNER_UID), "--gid", str(INNER_UID)]
    cmd += ["--ro-bind", "/", "/"]
    for d in _hidden_dirs():
        cmd += ["--tmpfs", d]
    cmd += ["--proc", "/proc", "--dev", "/dev", *_interpreter_binds(), "--ro-bind", str(inputs), INPUTS]
    passwd = inputs / ".passwd"
    if passwd.is_file():
        cmd += ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(inputs / ".group"), "/etc/group"]
    if scratch is None:
        cmd += ["--size", str(limits.scratch_mb * 1024 * 1024), "--tmpfs", SCRATCH, "--chmod", "1777", SCRATCH]
    else:
        cmd += ["--bind", str(scratch), SCRATCH]
    cmd += ["--chdir", SCRATCH, "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", SCRATCH,
            "--setenv", "TMPDIR", SCRATCH, "--setenv", "PYTHONHASHSEED", "0", "--setenv", "LANG", "C.UTF-8", "--"]
    if uid is not None:
        cmd += [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        if nested:  # an unprivileged bwrap whose only job is to forbid user namespaces inside
            cmd += [bwrap, "--unshare-user", "--disable-userns", "--uid", str(uid), "--gid", str(uid),
                    "--bind", "/", "/", "--die-with-parent", "--"]
    return cmd + argv


def _set_limits(limits: Limits) -> None:
    """Runs in the child before exec; the limits pass through bwrap and setpriv unchanged."""
    cpu = max(1, limits.cpu_seconds)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * 1024 * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * 1024 * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def prepare_inputs(directory: Path, files: dict[str, str], uid: int | None) -> None:
    """Write the files the program reads (readable by the sandbox user) and a passwd that names
    only the sandbox user, so the host's accounts are not listed."""
    directory.chmod(0o755)
    for name, text in files.items():
        Path(directory, name).write_text(text, encoding="utf-8")
    inner = uid if uid is not None else INNER_UID
    Path(directory, ".passwd").write_text(f"sandbox:x:{inner}:{inner}::{SCRATCH}:/usr/sbin/nologin\n")
    Path(directory, ".group").write_text(f"sandbox:x:{inner}:\n")
    for path in directory.iterdir():
        path.chmod(0o644)


def next_uid() -> int | None:
    """A fresh outer uid per run when root (so process limits and leftovers are per run), else None."""
    return UID_BASE + next(_uids) % UID_SLOTS if os.geteuid() == 0 else None


# -- availability ---------------------------------------------------------------------------------
def _try(nested: bool) -> tuple[bool, str]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nuri-probe-") as tmp:
        uid = next_uid()
        prepare_inputs(Path(tmp), {}, uid)
        cmd = build_command([PYTHON, "-I", "-S", "-c", "pass"], inputs=Path(tmp), uid=uid, limits=Limits(),
                            nested=nested)
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env={}, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return done.returncode == 0, done.stderr.decode(errors="replace").strip()[-300:]


@functools.cache
def isolation() -> Isolation:
    """Whether this machine can isolate code, checked once per process by starting a sandbox."""
    if not sys.platform.startswith("linux"):
        return Isolation(False, "the code sandbox needs Linux namespaces")
    if shutil.which("bwrap") is None:
        return Isolation(False, "bubblewrap (bwrap) is not installed; on Debian: apt-get install bubblewrap")
    privileged = os.geteuid() == 0
    if privileged and shutil.which("setpriv") is None:
        return Isolation(False, "setpriv (util-linux) is not installed")
    ok, err = _try(nested=True)
    if ok:
        return Isolation(True, "bubblewrap", privileged, nested_userns_blocked=True)
    if privileged:  # the kernel refuses unprivileged user namespaces: keep the rest of the isolation
        ok2, err2 = _try(nested=False)
        if ok2:
            return Isolation(True, "bubblewrap (user namespaces inside not blocked: the kernel refuses them "
                             "to unprivileged users anyway)", True, nested_userns_blocked=False)
        err = err2 or err
    return Isolation(False, f"bubblewrap cannot create namespaces here ({err or 'no message'})")


# -- running --------------------------------------------------------------------------------------
def _sweep(uid: int) -> None:
    """Kill whatever still runs as the run's uid (root mode), in case a process slipped the
    namespace teardown."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            status = Path(entry.path, "status").read_text()
            line = next(ln for ln in status.splitlines() if ln.startswith("Uid:"))
            if int(line.split()[1]) == uid:
                os.kill(int(entry.name), signal.SIGKILL)


async def run_isolated(argv: list[str], *, inputs: Path, timeout: float, limits: Limits,
                       uid: int | None = None, scratch: Path | None = None,
                       stderr_limit: int = 8192) -> Outcome:
    """Run `argv` in the sandbox until it exits or `timeout` seconds pass; never raises for a bad
    program. stderr is read as it comes and only its tail kept, so a flood cannot fill memory."""
    import asyncio

    iso = isolation()
    if not iso.available:
        raise SandboxUnavailable(iso.reason)
    if uid is None:
        uid = next_uid()
    if scratch is not None and uid is not None:
        os.chown(scratch, uid, uid)
    cmd = build_command(argv, inputs=inputs, uid=uid, limits=limits, scratch=scratch,
                        nested=iso.nested_userns_blocked)
    proc = await asyncio.create_subprocess_exec(
        *cmd, env={}, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, preexec_fn=lambda: _set_limits(limits))
    stream = proc.stderr
    assert stream is not None
    tail = bytearray()

    async def drain() -> None:
        while chunk := await stream.read(65536):
            tail.extend(chunk)
            del tail[:-stderr_limit]

    timed_out = False
    reader = asyncio.create_task(drain())
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    finally:
        if uid is not None:
            _sweep(uid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, 2)
        reader.cancel()
    return Outcome(None if timed_out else proc.returncode, tail.decode("utf-8", errors="replace"), timed_out, uid)


# -- the runner, executed inside the sandbox ------------------------------------------------------
_BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.spawn",
            "os.kill", "pty.", "ctypes.", "urllib.", "http.", "ftplib.", "smtplib.", "webbrowser.")


def _hook(blocked: tuple[str, ...]) -> Callable[[str, tuple], None]:
    def guard(event: str, args: tuple) -> None:
        if event.startswith(blocked):
            raise PermissionError(f"blocked in the evaluation sandbox: {event}")
    return guard


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as fh:
        solution = fh.read()
    with open(sys.argv[2], encoding="utf-8") as fh:
        tests = fh.read()
    sys.addaudithook(_hook(_BLOCKED))  # bound now: rebinding the module's _BLOCKED changes nothing
    namespace: dict = {"__name__": "__candidate__"}
    exec(compile(solution, "solution.py", "exec"), namespace)
    exec(compile(tests, "tests.py", "exec"), namespace)


if __name__ == "__main__":
    main()


"""Runs inside the code scorer's subprocess: blocks network and process creation, then runs the
candidate solution followed by its tests. Exit 0 means every test passed."""

import sys

_BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.spawn",
            "os.kill", "pty.", "ctypes.", "urllib.", "http.", "ftplib.", "smtplib.", "webbrowser.")


def _guard(event: str, args: tuple) -> None:
    if event.startswith(_BLOCKED):
        raise PermissionError(f"blocked in the evaluation sandbox: {event}")


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as fh:
        solution = fh.read()
    with open(sys.argv[2], encoding="utf-8") as fh:
        tests = fh.read()
    sys.addaudithook(_guard)
    namespace: dict = {"__name__": "__candidate__"}
    exec(compile(solution, "solution.py", "exec"), namespace)
    exec(compile(tests, "tests.py", "exec"), namespace)


if __name__ == "__main__":
    main()

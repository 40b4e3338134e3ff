"""`nuri serve --workers N`: N gateway processes on one port, sharing one ledger.

The supervisor prepares the store once (migrations, audit keys), then starts N ordinary
`nuri serve` processes. Each binds the port with SO_REUSEPORT, so the kernel spreads connections
over them and no process hands sockets to another. They share state the way replicas do
(docs/deploy.md): one database holds keys, the usage table and the one audit chain (SQLite in WAL
mode, whose write lock serialises chain appends across processes, or PostgreSQL); each worker
spools its own audit records (`durability: process`) under its own locked file and ships them to
the chain; rate and budget counters are counted in the database (or in Redis when configured),
never in one process's memory, so limits stay exact across workers.

Signals: SIGHUP is passed to every worker (each reloads the config file); SIGUSR1 comes from a
worker that reloaded through the admin API and is passed on so the others follow; SIGTERM/SIGINT
stop every worker gracefully. A worker that dies is started again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from nuri.config import NuriConfig, env

SUPERVISOR_ENV = "NURI_WORKER_SUPERVISOR"
RESTART_DELAY = 1.0
EARLY_EXIT_SECONDS = 10.0         # a worker failing this soon after its start could not start at all
STOP_SECONDS = 30.0               # a worker still running this long after SIGTERM is killed


def shared_counters(config: NuriConfig) -> None:
    """Counters every worker sees: `auto` on SQLite would count in each process's memory."""
    ledger = config.ledger
    if ledger.enabled and ledger.counters in ("auto", "memory") and not ledger.redis_url:
        ledger.counters = "database"


def prepare_store(config: NuriConfig, data_dir: Path) -> None:
    """Migrate the database and create the audit keys once, before workers race to."""
    if not config.ledger.enabled:
        return
    from nuri.ledger.audit.secrets import Keys
    from nuri.ledger.store.db import Database

    db = Database(config.ledger, data_dir)
    try:
        db.migrate()
    finally:
        db.close()
    Keys.load(data_dir)


def listening_socket(host: str, port: int) -> socket.socket:
    """This worker's own socket on the shared port (SO_REUSEPORT: the kernel balances connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def is_worker() -> bool:
    supervisor = env(SUPERVISOR_ENV)
    return bool(supervisor) and supervisor == str(os.getppid())


def watch_supervisor() -> None:
    """A worker whose supervisor is gone (killed with SIGKILL) stops itself rather than linger."""
    supervisor = env(SUPERVISOR_ENV)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if str(os.getppid()) != supervisor:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="nuri-supervisor-watch", daemon=True).start()


class Supervisor:
    def __init__(self, command: list[str], workers: int) -> None:
        self.command = command
        self.count = workers
        self.children: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.stopping = False
        self.pending: list[int] = []
        self.started_at = [0.0] * workers
        self.exit_code = 0

    def _spawn(self, index: int) -> None:
        child_env = {**os.environ, SUPERVISOR_ENV: str(os.getpid()), "NURI_WORKER_INDEX": str(index)}
        self.children[index] = subprocess.Popen(self.command, env=child_env)
        self.started_at[index] = time.monotonic()

    def _forward(self, signum: int) -> None:
        for child in self.children:
            if child is not None and child.poll() is None:
                with contextlib.suppress(OSError):
                    child.send_signal(signum)

    def run(self) -> int:
        def on_signal(signum: int, _frame: object) -> None:
            self.pending.append(signum)

        for handled in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
            signal.signal(handled, on_signal)
        for index in range(self.count):
            self._spawn(index)
        died_at: dict[int, float] = {}
        stop_deadline: float | None = None
        while True:
            while self.pending:
                signum = self.pending.pop(0)
                if signum in (signal.SIGTERM, signal.SIGINT):
                    self.stopping = True
                    self._forward(signal.SIGTERM)
                elif signum == signal.SIGUSR1:
                    self._forward(signal.SIGUSR1)   # a worker reloaded: the others follow if the file changed
                else:
                    self._forward(signal.SIGHUP)
            alive = 0
            for index, child in enumerate(self.children):
                if child is None or child.poll() is None:
                    alive += 1
                    continue
                if self.stopping:
                    continue
                if time.monotonic() - self.started_at[index] < EARLY_EXIT_SECONDS and child.returncode != 0:
                    # it could not start (a config or store problem, an open gateway on a public
                    # address): starting it again would fail the same way, so stop them all
                    sys.stderr.write(f"nuri: worker {index} could not start (exit {child.returncode}); stopping\n")
                    self.stopping, self.exit_code = True, child.returncode or 1
                    self._forward(signal.SIGTERM)
                    continue
                if index not in died_at:
                    died_at[index] = time.monotonic()
                    sys.stderr.write(f"nuri: worker {index} exited with {child.returncode}; starting it again\n")
                elif time.monotonic() - died_at[index] >= RESTART_DELAY:
                    del died_at[index]
                    self._spawn(index)
                alive += 1
            if self.stopping and alive == 0:
                codes = [c.returncode for c in self.children if c is not None]
                if self.exit_code:
                    return self.exit_code
                return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1
            if self.stopping and stop_deadline is None:
                stop_deadline = time.monotonic() + STOP_SECONDS
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                self._forward(signal.SIGKILL)             # a worker that would not stop in time
            time.sleep(0.1)

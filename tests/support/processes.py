"""Start real `nuri serve` processes on loopback for end-to-end tests and benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from support.upstream_server import RunningUpstream, free_port


class GatewayProcess:
    """`nuri serve` in a subprocess with its own config file, port and data directory."""

    def __init__(self, workdir: Path, config: dict[str, Any] | None = None, *, port: int | None = None,
                 env: dict[str, str] | None = None, wait_ready: bool = True, data_dir: Path | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.data_dir = data_dir or workdir / "data"
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = workdir / f"nuri-{self.port}.yaml"
            self.config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault("NURI_AUDIT_HMAC_KEY", "test-hmac-key-0123456789")
        self.wait_ready = wait_ready
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"gateway-{self.port}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "nuri", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        return cmd

    def start(self, timeout: float = 120.0) -> GatewayProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), cwd=self.workdir, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        path = "/readyz" if self.wait_ready else "/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nuri serve exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.root_url + path, timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"nuri serve did not become ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the crash test's way to stop a gateway."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def upstream_deployment(server: RunningUpstream, dep_id: str = "up", **extra: Any) -> dict[str, Any]:
    """A catalog entry for a test upstream (foreign cloud unless told otherwise)."""
    entry: dict[str, Any] = {
        "id": dep_id, "provider": "openai_compatible", "model": "test-model", "base_url": server.base_url,
        "api_key": "sk-upstream-secret-value", "jurisdiction": "US", "hosting": "foreign_cloud",
        "timeouts": {"connect": 2, "read": 3, "total": 10},
    }
    entry.update(extra)
    return entry


def create_key(data_dir: Path, team: str, *options: str) -> str:
    """A new API key for `team` in the ledger under `data_dir`, made by the real `nuri keys create`
    (extra CLI options such as `--models kr --rpm 5` pass through)."""
    out = subprocess.run([sys.executable, "-m", "nuri", "keys", "create", "--team", team, "--json",
                          "--data-dir", str(data_dir), *options],
                         capture_output=True, text=True, timeout=60, check=True,
                         env={**GatewayProcess(data_dir.parent).env})
    return json.loads(out.stdout)["key"]

"""The two ledger keys: one for keyed hashes of personal values, one for signing checkpoints.

Each comes from the environment (NURI_AUDIT_HMAC_KEY, NURI_AUDIT_SIGNING_KEY) or, when unset,
from a key file generated once in the data directory. Replicas that share one audit chain must
share the keys, so multi-replica deployments set both variables (from a Kubernetes secret).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from nuri.config import env

HMAC_ENV = "NURI_AUDIT_HMAC_KEY"
SIGNING_ENV = "NURI_AUDIT_SIGNING_KEY"


def load_key(env_name: str, data_dir: Path, filename: str) -> bytes:
    """The key from the environment, else from <data_dir>/<filename>, created 0600 if missing."""
    value = env(env_name)
    if value:
        return value.encode("utf-8")
    path = data_dir / filename
    try:
        return path.read_text(encoding="ascii").strip().encode("ascii")
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return path.read_text(encoding="ascii").strip().encode("ascii")
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(fresh + "\n")
    return fresh.encode("ascii")


class Keys:
    """Holds the HMAC and signing keys; computes keyed hashes and signatures."""

    def __init__(self, hmac_key: bytes, signing_key: bytes) -> None:
        self._hmac_key = hmac_key
        self._signing_key = signing_key

    @classmethod
    def load(cls, data_dir: Path) -> Keys:
        return cls(
            load_key(HMAC_ENV, data_dir, "audit-hmac.key"),
            load_key(SIGNING_ENV, data_dir, "audit-signing.key"),
        )

    def keyed_hash(self, value: str) -> str:
        """HMAC-SHA256 of a personal value, truncated to 32 hex chars: linkable, not reversible."""
        return hmac.new(self._hmac_key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def sign(self, seq: int, chain_hash: str) -> str:
        return hmac.new(self._signing_key, f"{seq}\n{chain_hash}".encode(), hashlib.sha256).hexdigest()

    def signature_ok(self, seq: int, chain_hash: str, signature: str | None) -> bool:
        return bool(signature) and hmac.compare_digest(self.sign(seq, chain_hash), signature or "")

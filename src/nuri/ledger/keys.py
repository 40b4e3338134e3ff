"""Teams and API keys: creation, salted hashes, lookup, revocation.

A key reads `nuri-<key_id>-<secret>`. Only key_id, a random salt and sha256(salt ‖ secret) are
stored. The secret holds 256 random bits, so a salted SHA-256 resists guessing as well as a slow
KDF would, and checking it costs microseconds instead of the ~50 ms scrypt would add per request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from nuri.ledger.db import AsyncRawConn, RawConn
from nuri.principal import Principal

PREFIX = "nuri-"
KEY_ID_LEN = 12


@dataclass(frozen=True, slots=True)
class NewKey:
    key: str          # shown once
    key_id: str
    team: str


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    team: str
    created_at: str
    revoked_at: str | None
    rpm: int | None
    tpm: int | None
    models: list[str] | None
    name: str | None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def hash_secret(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8")).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(key_id, secret) from `nuri-<key_id>-<secret>`, or None when it is not shaped like one."""
    if not key.startswith(PREFIX) or len(key) < len(PREFIX) + KEY_ID_LEN + 2:
        return None
    key_id = key[len(PREFIX): len(PREFIX) + KEY_ID_LEN]
    if key[len(PREFIX) + KEY_ID_LEN] != "-" or not all(c in "0123456789abcdef" for c in key_id):
        return None
    return key_id, key[len(PREFIX) + KEY_ID_LEN + 1:]


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def upsert_team(conn: Connection, team: str, *, budget: float | None = None, rpm: int | None = None,
                tpm: int | None = None) -> None:
    """Create the team if missing; given limits replace the team's current ones."""
    conn.execute(
        text("INSERT INTO teams (name, created_at) VALUES (:n, :t) ON CONFLICT (name) DO NOTHING"),
        {"n": team, "t": now_iso()},
    )
    for column, value in (("budget", budget), ("rpm", rpm), ("tpm", tpm)):
        if value is not None:
            conn.execute(text(f"UPDATE teams SET {column} = :v WHERE name = :n"), {"v": value, "n": team})


def create_key(conn: Connection, team: str, *, rpm: int | None = None, tpm: int | None = None,
               models: list[str] | None = None, name: str | None = None) -> NewKey:
    key_id = secrets.token_hex(KEY_ID_LEN // 2)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    conn.execute(
        text(
            "INSERT INTO api_keys (key_id, team, salt, secret_hash, created_at, rpm, tpm, models, name) "
            "VALUES (:k, :team, :salt, :h, :t, :rpm, :tpm, :models, :name)"
        ),
        {"k": key_id, "team": team, "salt": salt, "h": hash_secret(salt, secret), "t": now_iso(),
         "rpm": rpm, "tpm": tpm, "models": json.dumps(models) if models else None, "name": name},
    )
    return NewKey(key=f"{PREFIX}{key_id}-{secret}", key_id=key_id, team=team)


def revoke_key(conn: Connection, key_id: str) -> bool:
    result = conn.execute(
        text("UPDATE api_keys SET revoked_at = :t WHERE key_id = :k AND revoked_at IS NULL"),
        {"t": now_iso(), "k": key_id},
    )
    return bool(result.rowcount)


def list_keys(conn: Connection) -> list[KeyInfo]:
    rows = conn.execute(
        text("SELECT key_id, team, created_at, revoked_at, rpm, tpm, models, name FROM api_keys "
             "ORDER BY created_at, key_id")
    ).all()
    return [KeyInfo(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else None, r[7])
            for r in rows]


# One row whatever the key id: the key epoch, read in the same statement as the key, tells the
# cache which epoch the row belongs to (see keycache.py); the key columns are NULL for unknown ids.
_LOOKUP = (
    "SELECT k.salt, k.secret_hash, k.revoked_at, k.rpm, k.tpm, k.models, "
    "t.name, t.budget, t.rpm, t.tpm, t.tags, t.roles, t.latency_tier, e.epoch "
    "FROM key_epoch e LEFT JOIN api_keys k ON k.key_id = :k LEFT JOIN teams t ON t.name = k.team "
    "WHERE e.id = 1"
)
_EPOCH = "SELECT epoch, EXISTS (SELECT 1 FROM api_keys) FROM key_epoch WHERE id = 1"


def _split(row: Any) -> tuple[Any, int]:
    """(key row or None, epoch) from a _LOOKUP row."""
    if row is None:
        raise RuntimeError("the key_epoch row is missing: run the ledger migrations")
    return (row if row[0] is not None else None), int(row[13])


def lookup(conn: RawConn, key_id: str) -> tuple[Any, int]:
    return _split(conn.one(_LOOKUP, {"k": key_id}))


async def lookup_async(conn: AsyncRawConn, key_id: str) -> tuple[Any, int]:
    return _split(await conn.one(_LOOKUP, {"k": key_id}))


def epoch(conn: RawConn) -> tuple[int, bool]:
    """(key epoch, whether any key exists), in one statement."""
    row = conn.one(_EPOCH)
    if row is None:
        raise RuntimeError("the key_epoch row is missing: run the ledger migrations")
    return int(row[0]), bool(row[1])


async def epoch_async(conn: AsyncRawConn) -> tuple[int, bool]:
    row = await conn.one(_EPOCH)
    if row is None:
        raise RuntimeError("the key_epoch row is missing: run the ledger migrations")
    return int(row[0]), bool(row[1])


def principal_from(row: Any, key_id: str, secret: str) -> Principal | None:
    """The Principal when the secret matches and the key is live; None otherwise."""
    if row is None:
        hmac.compare_digest("0" * 64, hash_secret("00", secret))  # same work on a miss
        return None
    salt, stored, revoked_at = row[0], row[1], row[2]
    if not hmac.compare_digest(stored, hash_secret(salt, secret)) or revoked_at is not None:
        return None
    models = json.loads(row[5]) if row[5] else None
    return Principal(
        team=row[6],
        key_id=key_id,
        roles=frozenset(json.loads(row[11] or "[]")),
        tags=frozenset(json.loads(row[10] or "[]")),
        allowed_models=frozenset(models) if models else None,
        latency_tier=row[12] or "standard",
        budget=row[7],
        rpm=row[3],
        tpm=row[4],
        team_rpm=row[8],
        team_tpm=row[9],
    )

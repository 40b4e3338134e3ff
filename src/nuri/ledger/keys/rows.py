"""Teams and API keys: creation, salted hashes, lookup, revocation, expiry.

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

from nuri.ledger.store.db import AsyncRawConn, RawConn
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
    expires_at: str | None = None
    user_id: str | None = None
    workload: str | None = None            # the workload a request of this key belongs to by default

    def status(self, now: str | None = None) -> str:
        """active | revoked | expired."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if expired(self.expires_at, now) else "active"


@dataclass(frozen=True, slots=True)
class TeamInfo:
    name: str
    budget: float | None
    rpm: int | None
    tpm: int | None
    tags: list[str]
    roles: list[str]
    latency_tier: str
    created_at: str


LATENCY_TIERS = ("interactive", "standard", "batch")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    """The one text form of a time in these tables (UTC, seconds, Z): it sorts as the time does."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def expired(expires_at: str | None, now: str | None = None) -> bool:
    return expires_at is not None and expires_at <= (now or now_iso())


def hash_secret(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8")).hexdigest()


_LOWER_HEX = frozenset("0123456789abcdef")


def split_key(key: str) -> tuple[str, str] | None:
    """(key_id, secret) from `nuri-<key_id>-<secret>`, or None when it is not shaped like one."""
    if not key.startswith(PREFIX) or len(key) < len(PREFIX) + KEY_ID_LEN + 2:
        return None
    key_id = key[len(PREFIX): len(PREFIX) + KEY_ID_LEN]
    if key[len(PREFIX) + KEY_ID_LEN] != "-" or not _LOWER_HEX.issuperset(key_id):
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
                tpm: int | None = None, tags: list[str] | None = None, roles: list[str] | None = None,
                latency_tier: str | None = None, clear: tuple[str, ...] = ()) -> None:
    """Create the team if missing; given settings replace the team's current ones, and the limits
    named in `clear` (budget, rpm, tpm) are removed."""
    conn.execute(
        text("INSERT INTO teams (name, created_at) VALUES (:n, :t) ON CONFLICT (name) DO NOTHING"),
        {"n": team, "t": now_iso()},
    )
    values: dict[str, Any] = {"budget": budget, "rpm": rpm, "tpm": tpm, "latency_tier": latency_tier,
                              "tags": None if tags is None else json.dumps(sorted(set(tags))),
                              "roles": None if roles is None else json.dumps(sorted(set(roles)))}
    for column, value in values.items():
        if value is not None:
            conn.execute(text(f"UPDATE teams SET {column} = :v WHERE name = :n"), {"v": value, "n": team})
    for column in clear:
        if column in ("budget", "rpm", "tpm"):
            conn.execute(text(f"UPDATE teams SET {column} = NULL WHERE name = :n"), {"n": team})


_TEAM_COLUMNS = "name, budget, rpm, tpm, tags, roles, latency_tier, created_at"


def _team(r: Any) -> TeamInfo:
    return TeamInfo(r[0], r[1], r[2], r[3], json.loads(r[4] or "[]"), json.loads(r[5] or "[]"), r[6] or "standard",
                    r[7])


def list_teams(conn: Connection) -> list[TeamInfo]:
    return [_team(r) for r in conn.execute(text(f"SELECT {_TEAM_COLUMNS} FROM teams ORDER BY name")).all()]


def get_team(conn: Connection, team: str) -> TeamInfo | None:
    row = conn.execute(text(f"SELECT {_TEAM_COLUMNS} FROM teams WHERE name = :n"), {"n": team}).first()
    return None if row is None else _team(row)


def create_key(conn: Connection, team: str, *, rpm: int | None = None, tpm: int | None = None,
               models: list[str] | None = None, name: str | None = None, expires_at: str | None = None,
               user_id: str | None = None, workload: str | None = None) -> NewKey:
    key_id = secrets.token_hex(KEY_ID_LEN // 2)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    conn.execute(
        text(
            "INSERT INTO api_keys (key_id, team, salt, secret_hash, created_at, rpm, tpm, models, name, "
            "expires_at, user_id, workload) "
            "VALUES (:k, :team, :salt, :h, :t, :rpm, :tpm, :models, :name, :exp, :user, :workload)"
        ),
        {"k": key_id, "team": team, "salt": salt, "h": hash_secret(salt, secret), "t": now_iso(),
         "rpm": rpm, "tpm": tpm, "models": json.dumps(models) if models else None, "name": name,
         "exp": expires_at, "user": user_id, "workload": workload},
    )
    return NewKey(key=f"{PREFIX}{key_id}-{secret}", key_id=key_id, team=team)


def expire_key(conn: Connection, key_id: str, at: str) -> bool:
    """Bring a live key's expiry forward to `at` (never later than it already was)."""
    result = conn.execute(
        text("UPDATE api_keys SET expires_at = :t WHERE key_id = :k AND revoked_at IS NULL "
             "AND (expires_at IS NULL OR expires_at > :t)"),
        {"t": at, "k": key_id},
    )
    return bool(result.rowcount)


def revoke_key(conn: Connection, key_id: str) -> bool:
    result = conn.execute(
        text("UPDATE api_keys SET revoked_at = :t WHERE key_id = :k AND revoked_at IS NULL"),
        {"t": now_iso(), "k": key_id},
    )
    return bool(result.rowcount)


_KEY_COLUMNS = "key_id, team, created_at, revoked_at, rpm, tpm, models, name, expires_at, user_id, workload"


def _key(r: Any) -> KeyInfo:
    return KeyInfo(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]) if r[6] else None, r[7], r[8], r[9],
                   r[10])


def list_keys(conn: Connection, team: str | None = None, user_id: str | None = None) -> list[KeyInfo]:
    where, params = [], {}
    if team is not None:
        where.append("team = :team")
        params["team"] = team
    if user_id is not None:
        where.append("user_id = :user")
        params["user"] = user_id
    sql = f"SELECT {_KEY_COLUMNS} FROM api_keys" + (" WHERE " + " AND ".join(where) if where else "")
    return [_key(r) for r in conn.execute(text(sql + " ORDER BY created_at, key_id"), params).all()]


def get_key(conn: Connection, key_id: str) -> KeyInfo | None:
    row = conn.execute(text(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = :k"), {"k": key_id}).first()
    return None if row is None else _key(row)


# One row whatever the key id: the key epoch, read in the same statement as the key, tells the
# cache which epoch the row belongs to (see cache.py); the key columns are NULL for unknown ids.
_LOOKUP = (
    "SELECT k.salt, k.secret_hash, k.revoked_at, k.rpm, k.tpm, k.models, "
    "t.name, t.budget, t.rpm, t.tpm, t.tags, t.roles, t.latency_tier, e.epoch, k.expires_at, k.workload "
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
    """The Principal when the secret matches and the key is live (not revoked, not expired);
    None otherwise. The secret and expiry are checked on every call; what the row says of the key
    (team, roles, models, limits) is read once per row the key cache holds (`_principal_of`)."""
    if row is None:
        hmac.compare_digest("0" * 64, hash_secret("00", secret))  # same work on a miss
        return None
    salt, stored, revoked_at = row[0], row[1], row[2]
    if not hmac.compare_digest(stored, hash_secret(salt, secret)) or revoked_at is not None:
        return None
    if expired(row[14]):
        return None
    return _principal_of(row, key_id)


# Principals built from the key cache's rows, by the row's identity: the cache hands out the same
# tuple for a key until it reloads it, and parsing its three JSON columns into a new frozen
# Principal on every request cost more than checking the secret. Holds no secret; bounded.
_PRINCIPALS: dict[int, tuple[Any, str, Principal]] = {}
_PRINCIPALS_MAX = 4096


def _principal_of(row: Any, key_id: str) -> Principal:
    known = _PRINCIPALS.get(id(row))
    if known is not None and known[0] is row and known[1] == key_id:
        return known[2]
    models = json.loads(row[5]) if row[5] else None
    principal = Principal(
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
        workload=row[15],
    )
    if len(_PRINCIPALS) >= _PRINCIPALS_MAX:
        _PRINCIPALS.clear()
    _PRINCIPALS[id(row)] = (row, key_id, principal)
    return principal

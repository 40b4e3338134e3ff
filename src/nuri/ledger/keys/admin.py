"""Key and team management: the one implementation behind `nuri keys|teams …` and the admin API.

Teams carry budgets, limits and what policy reads (tags, roles, latency tier); keys are created
with an optional expiry and, for per-user keys, the user they were issued to; they are listed,
revoked and rotated. A change that replicas may have cached (a revocation, new team settings, the
first key ending open mode) returns only once every replica obeys it; each change leaves an admin
record naming who made it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from nuri.errors import InvalidRequest
from nuri.ledger.keys import rows
from nuri.ledger.keys.auth import AdminEvent, Authenticator
from nuri.ledger.store.db import Database

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class NotFound(InvalidRequest):
    status = 404
    code = "not_found"


def check_name(what: str, value: str) -> str:
    if not _NAME.match(value):
        raise InvalidRequest(f"{what} {value!r} must be 1-128 letters, digits or . _ : @ / - (starting with a "
                             "letter or digit)", code="invalid_name", param=what)
    return value


def expiry(value: str | datetime | None, *, now: datetime | None = None) -> str | None:
    """An expiry as stored: an ISO 8601 time (a naive one is UTC) or a duration from now (`90d`,
    `12h`, `30m`, `45s`, `2w`); None: never."""
    if value is None or value == "":
        return None
    now = now or datetime.now(UTC)
    if isinstance(value, datetime):
        moment = value
    elif (m := _DURATION.match(value.strip())) is not None:
        moment = now + timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    else:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidRequest(f"expires {value!r} is neither an ISO 8601 time nor a duration such as 90d",
                                 code="invalid_expiry", param="expires_at") from exc
    return rows.iso(_ceil_second(moment))


def _ceil_second(moment: datetime) -> datetime:
    """Times are stored to the second: round up, so a key never expires before it was asked to."""
    return moment + timedelta(microseconds=1_000_000 - moment.microsecond) if moment.microsecond else moment


class KeyAdmin:
    def __init__(self, db: Database, auth: Authenticator, admin_event: AdminEvent) -> None:
        self.db = db
        self.auth = auth
        self._admin_event = admin_event

    # --- keys -------------------------------------------------------------------------------

    async def create_key(self, team: str, *, budget: float | None = None, rpm: int | None = None,
                         tpm: int | None = None, team_rpm: int | None = None, team_tpm: int | None = None,
                         models: list[str] | None = None, name: str | None = None,
                         expires_at: str | datetime | None = None, user_id: str | None = None,
                         workload: str | None = None, actor: str = "cli") -> rows.NewKey:
        check_name("team", team)
        if user_id is not None:
            check_name("user_id", user_id)
        if workload is not None:
            check_name("workload", workload)
        expires = expiry(expires_at)
        if expires is not None and rows.expired(expires):
            raise InvalidRequest(f"expires_at {expires} is already past", code="invalid_expiry", param="expires_at")

        def work(conn: Connection) -> tuple[rows.NewKey, bool]:
            first = conn.execute(text("SELECT 1 FROM api_keys LIMIT 1")).first() is None
            known = conn.execute(text("SELECT 1 FROM teams WHERE name = :n"), {"n": team}).first() is not None
            rows.upsert_team(conn, team, budget=budget, rpm=team_rpm, tpm=team_tpm)
            new = rows.create_key(conn, team, rpm=rpm, tpm=tpm, models=models, name=name, expires_at=expires,
                                  user_id=user_id, workload=workload)
            # replicas must learn of it before we return only if it ends open mode or changes the
            # limits of a team whose keys they may have cached (a new key id is never in a cache)
            changes_cached = first or (known and any(v is not None for v in (budget, team_rpm, team_tpm)))
            return new, changes_cached

        new, changes_cached = await self.db.run(work, write=True)
        self.auth.open_mode = False
        if changes_cached:
            await self.auth.keys_changed()
        await self._admin_event("key_created", actor, {"key_id": new.key_id, "team": team, "budget": budget,
                                                       "rpm": rpm, "tpm": tpm, "team_rpm": team_rpm,
                                                       "team_tpm": team_tpm, "models": models or [],
                                                       "expires_at": expires, "per_user": user_id is not None})
        return new

    async def revoke_key(self, key_id: str, *, actor: str = "cli") -> bool:
        done = await self.db.run(lambda conn: rows.revoke_key(conn, key_id), write=True)
        if done:
            await self.auth.keys_changed()
            await self._admin_event("key_revoked", actor, {"key_id": key_id})
        return done

    async def rotate_key(self, key_id: str, *, grace_seconds: int = 0, expires_at: str | datetime | None = None,
                         actor: str = "cli") -> rows.NewKey:
        """A new key with the old one's team, user, limits, models and name; the old one is revoked,
        or with `grace_seconds` keeps working that long (clients switch over meanwhile)."""
        expires = expiry(expires_at)

        def work(conn: Connection) -> rows.NewKey:
            old = rows.get_key(conn, key_id)
            if old is None or old.status() != "active":
                raise NotFound(f"no active key {key_id}", code="key_not_found", param="key_id")
            new = rows.create_key(conn, old.team, rpm=old.rpm, tpm=old.tpm, models=old.models, name=old.name,
                                  expires_at=expires if expires is not None else old.expires_at,
                                  user_id=old.user_id, workload=old.workload)
            if grace_seconds > 0:
                rows.expire_key(conn, key_id, rows.iso(_ceil_second(datetime.now(UTC) + timedelta(seconds=grace_seconds))))
            else:
                rows.revoke_key(conn, key_id)
            return new

        new = await self.db.run(work, write=True)
        await self.auth.keys_changed()
        await self._admin_event("key_rotated", actor, {"key_id": key_id, "new_key_id": new.key_id,
                                                       "team": new.team, "grace_seconds": grace_seconds})
        return new

    async def list_keys(self, team: str | None = None, user_id: str | None = None) -> list[rows.KeyInfo]:
        return await self.db.run(lambda conn: rows.list_keys(conn, team, user_id))

    async def get_key(self, key_id: str) -> rows.KeyInfo:
        info = await self.db.run(lambda conn: rows.get_key(conn, key_id))
        if info is None:
            raise NotFound(f"no key {key_id}", code="key_not_found", param="key_id")
        return info

    # --- teams ------------------------------------------------------------------------------

    async def set_team(self, team: str, *, budget: float | None = None, rpm: int | None = None,
                       tpm: int | None = None, tags: list[str] | None = None, roles: list[str] | None = None,
                       latency_tier: str | None = None, clear: tuple[str, ...] = (),
                       actor: str = "cli") -> rows.TeamInfo:
        """Create or update a team; only the settings given change. Policy reads tags, roles and
        the latency tier from the next request of any of the team's keys on."""
        check_name("team", team)
        for tag in (tags or []) + (roles or []):
            check_name("tag", tag)
        if latency_tier is not None and latency_tier not in rows.LATENCY_TIERS:
            raise InvalidRequest(f"latency_tier must be one of {', '.join(rows.LATENCY_TIERS)}",
                                 code="invalid_latency_tier", param="latency_tier")
        unknown = [c for c in clear if c not in ("budget", "rpm", "tpm")]
        if unknown:
            raise InvalidRequest(f"only budget, rpm and tpm can be cleared, not {', '.join(unknown)}",
                                 code="invalid_request", param="clear")

        def work(conn: Connection) -> rows.TeamInfo:
            rows.upsert_team(conn, team, budget=budget, rpm=rpm, tpm=tpm, tags=tags, roles=roles,
                             latency_tier=latency_tier, clear=tuple(clear))
            info = rows.get_team(conn, team)
            assert info is not None
            return info

        info = await self.db.run(work, write=True)
        await self.auth.keys_changed()
        await self._admin_event("team_updated", actor, {
            "team": team, "budget": budget, "rpm": rpm, "tpm": tpm, "tags": tags, "roles": roles,
            "latency_tier": latency_tier, "cleared": list(clear)})
        return info

    async def list_teams(self) -> list[rows.TeamInfo]:
        return await self.db.run(rows.list_teams)

    async def get_team(self, team: str) -> rows.TeamInfo:
        info = await self.db.run(lambda conn: rows.get_team(conn, team))
        if info is None:
            raise NotFound(f"no team {team!r}", code="team_not_found", param="team")
        return info

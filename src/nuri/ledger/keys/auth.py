"""Authentication: the caller's API key to a Principal, and refused credentials counted.

Key rows come from the epoch-leased cache (cache.py) or, on a miss, from the database; either way
a revocation on any replica holds from the request after `revoke_key` returned. Refusals are
counted per client address (failures.py): an address over `auth_failure_limit` gets 429 before
its key is even looked up, and each window's refusals become one audit record per address.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nuri.config import LedgerSettings
from nuri.errors import RateLimited, ServiceUnavailable, Unauthorized
from nuri.ledger.keys import rows
from nuri.ledger.keys.cache import KeyCache, revocation_wait
from nuri.ledger.keys.failures import AuthFailures
from nuri.ledger.store.db import Database
from nuri.observability import metrics
from nuri.principal import ANONYMOUS, Principal

log = logging.getLogger("nuri.ledger")
AdminEvent = Callable[[str, str, dict[str, Any]], Awaitable[None]]


class Authenticator:
    """Who is calling, for one gateway process; also whether any key exists yet (open mode)."""

    def __init__(self, settings: LedgerSettings, db: Database, keyed_hash: Callable[[str], str],
                 admin_event: AdminEvent) -> None:
        self.settings = settings
        self.db = db
        self.cache = KeyCache(settings.key_cache_lease_seconds)   # salted hashes only, never secrets
        self.open_mode = False
        self._keyed_hash = keyed_hash
        self._admin_event = admin_event
        self._failures = AuthFailures(settings.auth_failure_limit, settings.auth_failure_window_seconds)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Read the key epoch, then renew the cache's lease and summarise refusals in the background."""
        sent = time.monotonic()
        epoch, any_key = await self.db.run_raw(rows.epoch, tx=False)
        self.open_mode = not any_key
        self.cache.confirm(epoch, sent, any_key)
        loop = asyncio.get_running_loop()
        if self.cache.enabled:
            self._tasks.append(loop.create_task(self._poll_keys(), name="nuri-key-epoch"))
        self._tasks.append(loop.create_task(self._summarise_failures(), name="nuri-auth-failures"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        try:
            await self._record_failures(everything=True)
        except Exception as exc:
            log.warning("auth failure summary not recorded at shutdown", extra={"error_type": type(exc).__name__})

    async def authenticate(self, authorization_header: str | None, client: str | None = None) -> Principal:
        """See `Ledger.authenticate`."""
        if self.open_mode and not await self._any_key():
            return ANONYMOUS
        wait = self.retry_after(client)
        if wait is not None:
            self.failed(client, "rate_limited")
            raise RateLimited(f"too many requests with refused API keys from this address; retry in {wait}s",
                              code="too_many_auth_failures", headers={"retry-after": str(wait)})
        token = rows.bearer(authorization_header)
        if token is None:
            self.failed(client, "missing")
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
        parts = rows.split_key(token)
        if parts is None:
            self.failed(client, "malformed")
            raise Unauthorized("invalid API key")
        key_id, secret = parts
        row = self.cache.row(key_id)
        if row is None:
            sent = time.monotonic()
            row, epoch = await self._read(lambda conn: rows.lookup(conn, key_id),
                                          lambda conn: rows.lookup_async(conn, key_id))
            self.cache.confirm(epoch, sent)
            self.cache.put(key_id, row, epoch)     # unknown ids are never cached
        principal = rows.principal_from(row, key_id, secret)
        if principal is None:
            genuine = row is not None and hmac.compare_digest(rows.hash_secret(row[0], secret), row[1])
            if genuine and row[2] is not None:
                self.failed(client, "revoked")
                raise Unauthorized("this API key has been revoked", code="revoked_api_key")
            if genuine and rows.expired(row[14]):
                self.failed(client, "expired")
                raise Unauthorized(f"this API key expired at {row[14]}; ask for a new one", code="key_expired")
            self.failed(client, "invalid")
            raise Unauthorized("invalid API key")
        return principal

    def failed(self, client: str | None, reason: str) -> None:
        metrics.AUTH_FAILURES.labels(reason).inc()
        self._failures.note(client, reason)

    def retry_after(self, client: str | None) -> int | None:
        return self._failures.retry_after(client)

    async def any_key(self) -> bool:
        return not self.open_mode or await self._any_key()

    async def keys_changed(self) -> None:
        """Return only once every replica obeys a change to keys or teams (see cache.py)."""
        self.cache.expire()
        await asyncio.sleep(revocation_wait(self.settings.key_cache_lease_seconds))

    async def _any_key(self) -> bool:
        """Whether any API key exists yet (while none does, the gateway serves anonymously)."""
        if not (self.cache.fresh() and self.cache.any_key is not None):
            sent = time.monotonic()
            epoch, any_key = await self._read(rows.epoch, rows.epoch_async)
            self.cache.confirm(epoch, sent, any_key)
            if not any_key:
                return False
        elif not self.cache.any_key:
            return False
        self.open_mode = False
        return True

    async def _poll_keys(self) -> None:
        """Renew the key cache's lease: read the key epoch every `key_poll_seconds`."""
        failing = False
        while True:
            await asyncio.sleep(self.settings.key_poll_seconds)
            sent = time.monotonic()
            try:
                epoch, any_key = await self.query(rows.epoch, rows.epoch_async)
            except Exception:
                if not failing:
                    log.warning("key epoch unreadable: cached keys expire, requests read their keys")
                failing = True
                continue
            failing = False
            self.cache.confirm(epoch, sent, any_key)

    async def query(self, fn: Any, afn: Any) -> Any:
        """One autocommit read on the event loop. On SQLite it is a primary-key or one-row read
        of a WAL database (readers never wait for the writer), tens of microseconds: handing it
        to a thread cost more than the read, in the wake-up and the GIL hand-off both ways, and
        the key epoch is read ten times a second."""
        if not self.db.is_sqlite:
            async with self.db.aconn() as conn:
                return await afn(conn)
        return self.db.call_raw(fn, tx=False)

    async def _read(self, fn: Any, afn: Any) -> Any:
        """A request's read; a store that is down refuses the request (fail closed, 503)."""
        try:
            return await self.query(fn, afn)
        except Exception as exc:
            log.error("key store unavailable", extra={"error_type": type(exc).__name__})
            raise ServiceUnavailable("the key store is unavailable; request refused", code="ledger_unavailable") from exc

    async def _summarise_failures(self) -> None:
        """Every window, one audit record per client address that had refused credentials."""
        while True:
            await asyncio.sleep(self.settings.auth_failure_window_seconds)
            try:
                await self._record_failures()
            except Exception as exc:
                log.warning("auth failure summary not recorded", extra={"error_type": type(exc).__name__})

    async def _record_failures(self, *, everything: bool = False) -> None:
        for win in self._failures.take(everything=everything):
            start = datetime.fromtimestamp(win.start, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            await self._admin_event("auth_failures", "gateway", {
                "client": self._keyed_hash(win.client), "window_start": start,
                "window_seconds": self.settings.auth_failure_window_seconds, "failures": win.total,
                **{f"reason_{k}": v for k, v in sorted(win.reasons.items())},
            })

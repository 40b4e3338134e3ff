"""Cached key rows that stay coherent across replicas: a lease on the key epoch.

Reading the key row on every request costs a database round trip, which on a busy or virtualised
host is most of the ledger's time. Instead each replica reads one number, the key epoch (bumped by
triggers on every change to teams or keys), every `poll` seconds in the background, and trusts its
cached rows only until `lease` seconds after it *sent* the last read that found the epoch unchanged.

Why a revocation still holds from the next request on every replica: `revoke` waits `lease` after
its commit before it returns. Any replica still trusting its cache after that must have sent an
epoch read after the commit, and that read saw the new epoch and emptied the cache. A replica that
cannot reach the database stops trusting its cache when the lease runs out, and then reads keys
directly, which fails closed.
"""

from __future__ import annotations

import time
from typing import Any

LEASE_MARGIN = 1.1      # clocks on two hosts may run at slightly different rates


class KeyCache:
    """Key rows by key id, plus whether any key exists, valid while the epoch lease holds."""

    def __init__(self, lease_seconds: float, max_entries: int = 10_000) -> None:
        self.lease = lease_seconds
        self.max_entries = max_entries
        self.epoch: int | None = None
        self.any_key: bool | None = None
        self._valid_until = 0.0
        self._rows: dict[str, Any] = {}

    @property
    def enabled(self) -> bool:
        return self.lease > 0

    def fresh(self) -> bool:
        return self.enabled and time.monotonic() < self._valid_until

    def confirm(self, epoch: int, sent_at: float, any_key: bool | None = None) -> None:
        """Record an epoch read sent at `sent_at` (monotonic); a newer epoch empties the cache.

        Epochs only grow, so a read that answers late with an older epoch is ignored: it must not
        revive rows from before a change another read has already reported.
        """
        if self.epoch is not None and epoch < self.epoch:
            return
        if epoch != self.epoch:
            self._rows.clear()
            self.epoch = epoch
            self.any_key = any_key
        elif any_key is not None:
            self.any_key = any_key
        self._valid_until = max(self._valid_until, sent_at + self.lease)

    def expire(self) -> None:
        self._valid_until = 0.0

    def row(self, key_id: str) -> Any:
        """The cached row, or None when absent or the lease has run out."""
        return self._rows.get(key_id) if self.fresh() else None

    def put(self, key_id: str, row: Any, epoch: int | None) -> None:
        """Cache a row read under `epoch`; rows read under an older epoch are not kept."""
        if not self.enabled or row is None or epoch is None or epoch != self.epoch:
            return
        if len(self._rows) >= self.max_entries:
            self._rows.clear()
        self._rows[key_id] = row


def revocation_wait(lease_seconds: float) -> float:
    """How long a change to keys must wait before it may report that every replica obeys it."""
    return lease_seconds * LEASE_MARGIN + 0.01 if lease_seconds > 0 else 0.0

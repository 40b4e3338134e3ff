"""The audit spool: a replica's local, append-only file of audit records not yet in the database.

With `durability: process` (SQLite or PostgreSQL) a request is acknowledged once its audit record
is in this replica's spool file: one `os.write` on an O_APPEND descriptor, no fsync, no round trip,
no thread hand-off (~0.04 ms paced; a commit on the request's path cost 0.3–0.45 ms). The page cache
keeps the write through a kill -9 of the gateway, not through a power loss of the host. The audit
writer ships the spool to the chain in the background.

A spool file is

    nuri-audit-spool v1 shipped=0000000000000045\\n     the header: bytes shipped so far
    ["<canonical body>", time, kind, request_id, team, usage | null]\\n   one record a line
    …

The header's shipped offset is rewritten in place (`os.pwrite` on a second descriptor) after
every shipped batch. The record lines after it are not yet known to be in the database; those of
the last batch in flight when a replica died may be, so recovery skips records already there.

Every live spool file is held under an exclusive `flock` by the process writing it, for life:
a file whose lock can be taken belongs to a dead replica (or to this replica's previous
incarnation), and whoever takes the lock ships what it still holds, then deletes it. A file is
created under a hidden temporary name, locked, and only then renamed into view, so no scan can
take a file that a live replica is just creating.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from nuri.errors import ServiceUnavailable
from nuri.ledger.audit.chain import Pending, UsageDelta

log = logging.getLogger("nuri.ledger")

_PREFIX = b"nuri-audit-spool v1 shipped="
_DIGITS = 16
HEADER_LEN = len(_PREFIX) + _DIGITS + 1
PATTERN = "spool-*.jsonl"
_TMP_PATTERN = ".spool-*.tmp"
_TMP_GRACE = 60.0        # a hidden file younger than this may be one a live replica is creating


class SpoolFull(ServiceUnavailable):
    """The spool holds more unshipped records than allowed: refuse rather than acknowledge a
    request whose audit record might be lost."""


@dataclass(slots=True)
class Spooled:
    """A record read back from a spool file; `end` is the offset just past its line."""

    pending: Pending
    usage: UsageDelta | None
    end: int


def encode(pending: Pending, usage: UsageDelta | None) -> bytes:
    """One spool line: compact JSON, UTF-8 as is (orjson: a record is spooled on every request)."""
    u = None if usage is None else [usage.day, usage.team, usage.deployment, usage.requests,
                                    usage.prompt_tokens, usage.completion_tokens, usage.cost_nanos]
    return orjson.dumps([pending.body_text, pending.time, pending.kind, pending.request_id, pending.team, u]) + b"\n"


def decode(line: bytes) -> tuple[Pending, UsageDelta | None]:
    body, t, kind, rid, team, u = json.loads(line)
    usage = None if u is None else UsageDelta(str(u[0]), str(u[1]), str(u[2]), int(u[3]), int(u[4]), int(u[5]),
                                              int(u[6]))
    return Pending(str(body), str(t), str(kind), str(rid), str(team)), usage


def _header(shipped: int) -> bytes:
    return _PREFIX + b"%0*d\n" % (_DIGITS, shipped)


class SpoolFile:
    """One spool file, open and locked by this process."""

    def __init__(self, path: Path, fd: int, hfd: int, size: int, shipped: int) -> None:
        self.path = path
        self._fd = fd           # O_APPEND: records; holds the flock
        self._hfd = hfd         # plain read/write: the header's shipped offset, reading back
        self.size = size
        self.shipped = shipped

    @property
    def done(self) -> bool:
        """Every record in the file has shipped."""
        return self.shipped >= self.size

    # --- opening ----------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path) -> SpoolFile:
        """A new, empty, locked spool file with a name no other replica uses."""
        for _ in range(5):
            name = f"spool-{os.getpid()}-{secrets.token_hex(6)}"
            tmp, final = directory / f".{name}.tmp", directory / f"{name}.jsonl"
            fd = os.open(tmp, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                _write_all(fd, _header(HEADER_LEN))
                hfd = os.open(tmp, os.O_RDWR | os.O_CLOEXEC)
                try:
                    os.rename(tmp, final)
                except FileNotFoundError:      # a scan took an abandoned-looking file: try another name
                    os.close(hfd)
                    os.close(fd)
                    continue
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            return cls(final, fd, hfd, HEADER_LEN, HEADER_LEN)
        raise OSError(errno.EEXIST, f"could not create an audit spool file in {directory}")

    @classmethod
    def take(cls, path: Path) -> SpoolFile | None:
        """The spool file of a dead writer, locked for this process; None if a live process holds
        it, it is gone, or it is not a spool file."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            st = os.fstat(fd)
            try:
                same = os.stat(path).st_ino == st.st_ino
            except FileNotFoundError:
                same = False
            if st.st_nlink == 0 or not same:   # its owner's recovery deleted it meanwhile
                os.close(fd)
                return None
            hfd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        head = os.pread(hfd, HEADER_LEN, 0)
        shipped = _parse_header(head)
        if shipped is None:
            log.error("audit spool %s has no valid header; left in place", path)
            os.close(hfd)
            os.close(fd)
            return None
        return cls(path, fd, hfd, st.st_size, min(max(shipped, HEADER_LEN), st.st_size))

    # --- writing ----------------------------------------------------------------------------

    def append(self, data: bytes) -> int:
        """Append one record line; returns the offset past it. All or nothing: a failed write is
        cut off again, so the file never holds half a line before a whole one."""
        try:
            _write_all(self._fd, data)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self.size)
            raise
        self.size += len(data)
        return self.size

    def mark_shipped(self, offset: int) -> None:
        if offset > self.shipped:
            os.pwrite(self._hfd, b"%0*d" % (_DIGITS, offset), len(_PREFIX))
            self.shipped = offset

    # --- reading back -----------------------------------------------------------------------

    def unshipped(self) -> list[Spooled]:
        """The complete records after the shipped offset. A last line without its newline is a
        write the dead process never finished, so never acknowledged: it is left out."""
        out: list[Spooled] = []
        offset = self.shipped
        chunks = []
        at = offset
        while True:
            chunk = os.pread(self._hfd, 1 << 20, at)
            if not chunk:
                break
            chunks.append(chunk)
            at += len(chunk)
        data = b"".join(chunks)
        pos = 0
        while True:
            nl = data.find(b"\n", pos)
            if nl < 0:
                if pos < len(data):
                    log.warning("audit spool %s ends in an unfinished record (never acknowledged); skipped",
                                self.path)
                break
            line = data[pos:nl]
            pos = nl + 1
            try:
                pending, usage = decode(line)
            except (ValueError, TypeError, IndexError):
                log.error("audit spool %s holds an unreadable record at offset %d; skipped", self.path,
                          offset + pos - len(line) - 1)
                continue
            out.append(Spooled(pending, usage, offset + pos))
        return out

    # --- closing ----------------------------------------------------------------------------

    def remove(self) -> None:
        """Delete the file (everything in it shipped), then let go of it."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.close()

    def close(self) -> None:
        """Let go of the file (and its lock), keeping it for whoever takes it next."""
        for fd in (self._hfd, self._fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._hfd = -1


def scan(directory: Path) -> list[SpoolFile]:
    """Take every spool file in `directory` that no live process holds, oldest first; also clear
    away hidden files left by a process that died while creating its spool."""
    if not directory.is_dir():
        return []
    now = time.time()
    for tmp in directory.glob(_TMP_PATTERN):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > _TMP_GRACE:
                fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    os.unlink(tmp)
                except BlockingIOError:
                    pass
                finally:
                    os.close(fd)
    found: list[tuple[float, str, SpoolFile]] = []
    for path in directory.glob(PATTERN):
        try:
            taken = SpoolFile.take(path)
        except OSError as exc:
            log.error("audit spool %s could not be opened: %s", path, exc)
            continue
        if taken is not None:
            found.append((os.fstat(taken._fd).st_mtime, path.name, taken))
    found.sort(key=lambda f: (f[0], f[1]))
    return [f for _, _, f in found]


def _parse_header(head: bytes) -> int | None:
    if len(head) != HEADER_LEN or not head.startswith(_PREFIX) or not head.endswith(b"\n"):
        return None
    digits = head[len(_PREFIX):-1]
    return int(digits) if digits.isdigit() else None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]

"""Unpacked pack versions on local disk, fetched once per worker and reused by later executions.

A storage key names one immutable pack version (a reload writes a new key),
so an unpacked copy never goes stale while this worker lives. Each cache
instance unpacks under a directory of its own (`w<pid>-<random>`): a storage
key is only unique within one database and bucket, and a database that was
reset (or a test's cloned one) reuses tenant ids and pack versions, so copies
are never shared across worker processes. Directories of dead workers are
swept when a new cache first writes.

A copy is unpacked into a temporary directory and renamed into place, so an
execution never sees a half-written pack, and a failed fetch leaves nothing
behind. Threads asking for the same key wait for the one fetch.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from chalicelib.aws.storage import fetch_pack

log = logging.getLogger(__name__)

Fetch = Callable[[str, Path], Path]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class PackCache:
    """Storage key -> local directory holding that pack version's files."""

    def __init__(self, base: Path, fetch: Fetch = fetch_pack) -> None:
        self.base = base
        self.root = base / f"w{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._fetch = fetch
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._ready: dict[str, Path] = {}
        self.fetches = 0

    def get(self, storage_key: str) -> Path:
        """The pack's directory, fetching it on first use; storage errors propagate (the caller retries)."""
        found = self._ready.get(storage_key)
        if found is not None:
            return found
        with self._lock_for(storage_key):
            found = self._ready.get(storage_key)
            if found is None:
                found = self.root / hashlib.sha256(storage_key.encode()).hexdigest()[:32]
                if not found.is_dir():
                    self._fetch_into(storage_key, found)
                self._ready[storage_key] = found
        return found

    def has(self, storage_key: str) -> bool:
        """Whether the pack version is unpacked here already (`get` would not touch storage)."""
        return storage_key in self._ready

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _fetch_into(self, key: str, dest: Path) -> None:
        if not self.root.is_dir():
            self._sweep_dead()
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=self.root))
        try:
            self._fetch(key, partial)
            _readable_by_actions(partial)
            os.rename(partial, dest)
        finally:
            shutil.rmtree(partial, ignore_errors=True)  # gone already after a successful rename
        self.fetches += 1
        log.info("pack %s unpacked into %s", key, dest)

    def _sweep_dead(self) -> None:
        """Remove the caches of worker processes that no longer exist (killed workers leave theirs)."""
        if not self.base.is_dir():
            return
        for entry in self.base.iterdir():
            pid_text = entry.name[1:].partition("-")[0]
            if entry.name.startswith("w") and pid_text.isdigit() and not _pid_alive(int(pid_text)):
                shutil.rmtree(entry, ignore_errors=True)

    def clear(self) -> None:
        """Remove this cache's copies (worker shutdown); nothing may be running from them."""
        with self._guard:
            self._ready.clear()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.root)


def _readable_by_actions(root: Path) -> None:
    """Let sandboxed actions (their own unprivileged uid) read the unpacked files, never write them.

    The cache root above stays 0700, so other users of the machine still see
    nothing; the sandbox binds this version dir directly (read-only).
    """
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        extra = 0o055 if path.is_dir() else 0o044
        os.chmod(path, (mode | extra) & ~0o022)

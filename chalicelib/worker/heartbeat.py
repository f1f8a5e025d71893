"""Heartbeats for the executions a worker process runs, and the way a cancel reaches them.

One thread beats for all of the process's running executions with a single
UPDATE every period (not a thread and a query per execution: at hundreds of
executions a second that would be the database's main load). An execution
beats from the moment it is added until it is removed, i.e. exactly while its
action runs; the reaper fails executions whose beat stops (the worker died).

What the UPDATE returns doubles as a status check: an execution found
`canceling` is asked to stop, and one no longer `running` at all (the reaper
or a cancel finished it) is stopped too, since nobody will record its result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from chalicelib.core import status
from chalicelib.core.errors import AttuneError
from chalicelib.db import executions as executions_db
from chalicelib.db.pool import system_tx

log = logging.getLogger(__name__)

Key = tuple[int, int]  # (tenant_id, execution_id)
Beat = Callable[[list[Key]], dict[int, str]]


def beat_in_db(keys: list[Key]) -> dict[int, str]:
    """One heartbeat UPDATE for all `keys`; execution id -> current status of those still active."""
    with system_tx() as cur:
        return executions_db.heartbeat(cur, keys)


class Heartbeat:
    """Beats every `period` seconds for the executions added to it."""

    def __init__(self, period: float, beat: Beat = beat_in_db) -> None:
        self.period = period
        self._beat = beat
        self._lock = threading.Lock()
        self._runs: dict[Key, threading.Event] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, key: Key, cancel: threading.Event) -> None:
        """Start beating for an execution; `cancel` is set if it must stop."""
        with self._lock:
            self._runs[key] = cancel
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="worker-heartbeat", daemon=True)
                self._thread.start()

    def remove(self, key: Key) -> None:
        """Stop beating for an execution (its run has ended and its result is recorded)."""
        with self._lock:
            self._runs.pop(key, None)

    def stop(self) -> None:
        """End the thread (worker shutdown)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self.period + 5)

    def beat_once(self) -> int:
        """Beat now for every execution added; how many were beaten for."""
        with self._lock:
            runs = dict(self._runs)
        if not runs:
            return 0
        try:
            current = self._beat(list(runs))
        except AttuneError as exc:  # the database is away; the next beat retries, the reaper waits 30 s
            log.warning("heartbeat for %d execution(s) failed: %s", len(runs), exc.message)
            return 0
        for (_tenant, execution_id), cancel in runs.items():
            found = current.get(execution_id)
            if found != status.RUNNING and not cancel.is_set():
                log.info("execution %d is %s; stopping its action", execution_id, found or "no longer running")
                cancel.set()
        return len(runs)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.beat_once()

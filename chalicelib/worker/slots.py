"""A worker process's action slots: at most N actions at once, each on a thread of its own.

The queue handler takes a slot *before* it claims an execution (so nothing is
marked running that cannot start at once), hands the run to the slot's thread
and moves on to the next record: a slow action never holds up the messages
received with it. When every slot is busy the handler waits, which is the
back-pressure that keeps further messages in the queue.

Each slot has a number; with the host name and pid it is the worker id the
execution and the audit log record (`host:pid:slot`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib.core.errors import ServiceUnavailable

log = logging.getLogger(__name__)


class WorkerStopping(ServiceUnavailable):
    """The worker is shutting down and takes no new work; the message goes back to the queue."""


@dataclass
class Run:
    """One action in a slot: the event that stops it, and why the worker stopped it (if it did)."""

    slot: int
    cancel: threading.Event = field(default_factory=threading.Event)
    aborted: str | None = None

    def abort(self, reason: str) -> None:
        """Stop the action for a reason of the worker's own (shutdown), not a user's cancel."""
        if self.aborted is None:
            self.aborted = reason
        self.cancel.set()


class Slots:
    """`size` numbered slots; `acquire` blocks while all are taken, `close` turns new work away."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a worker needs at least one slot")
        self.size = size
        self._cond = threading.Condition()
        self._free = list(range(size))
        self._runs: dict[int, Run] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether new work is turned away."""
        return self._closed

    def acquire(self) -> int:
        """A free slot's number; waits for one, raises WorkerStopping once closed."""
        with self._cond:
            while not self._free and not self._closed:
                self._cond.wait()
            if self._closed:
                raise WorkerStopping("the worker is shutting down and takes no new work")
            return self._free.pop(0)

    def release(self, slot: int) -> None:
        """Give back a slot that was acquired but not started."""
        with self._cond:
            self._runs.pop(slot, None)
            self._free.append(slot)
            self._cond.notify_all()

    def start(self, slot: int, name: str, work: Callable[[Run], object]) -> Run:
        """Run `work` on a thread of its own in an acquired slot; the slot is freed when it returns."""
        run = Run(slot)

        def target() -> None:
            try:
                work(run)
            except Exception:  # the work records its own failures; this is a bug's last stop
                log.exception("worker slot %d: %s failed", slot, name)
            finally:
                self.release(slot)

        with self._cond:
            self._runs[slot] = run
        threading.Thread(target=target, name=name, daemon=True).start()
        return run

    def busy(self) -> int:
        """Slots acquired or running."""
        with self._cond:
            return self.size - len(self._free)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every slot is free; True if they are."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._free) == self.size, timeout)

    def close(self) -> None:
        """Take no new work: waiting and future `acquire` calls raise WorkerStopping."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def abort_all(self, reason: str) -> int:
        """Stop every running action (shutdown grace running out); how many were running."""
        with self._cond:
            runs = list(self._runs.values())
        for run in runs:
            run.abort(reason)
        return len(runs)

"""Stopping long-lived processes: the stop signal a main loop gets, and signals delivered safely.

A role's main (`main(stop, ready)`) learns its shutdown grace from the
signal itself, so code that drains work (the worker, T3.30) never has to
import the local cloud's role table to find out.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

DEFAULT_GRACE_SECONDS = 60.0


class StopSignal(threading.Event):
    """A `threading.Event` that also says how many seconds the process has between SIGTERM and SIGKILL."""

    def __init__(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        super().__init__()
        self.grace_seconds = grace_seconds


def grace_of(stop: threading.Event) -> float:
    """The grace a stop signal carries; the default for a plain event."""
    return stop.grace_seconds if isinstance(stop, StopSignal) else DEFAULT_GRACE_SECONDS


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: nothing. The wake-up fd already carries the signal to the watcher."""


def watch_signals(on_signal: Callable[[int], None], signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """Call `on_signal(signum)` for each of `signals`, from a thread of its own, never from the handler.

    A handler that sets a `threading.Event` (or logs) can deadlock the
    process for good: it runs on the main thread between two bytecodes, so
    when the main thread was inside `Event.wait()` on that same Event, the
    handler's `set()` blocks on the Condition lock the interrupted wait
    holds (issue 10: a hung `attune dev` after SIGTERM). Instead the
    interpreter writes each signal's number to a wake-up pipe
    (`signal.set_wakeup_fd`, async-signal-safe, C level) and a daemon thread
    reads it and calls `on_signal` like any other code. Main thread only.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for signum in signals:
        signal.signal(signum, _ignore)
    wanted = set(signals)

    def pump() -> None:
        while True:
            try:
                data = os.read(read_fd, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in wanted:
                    on_signal(signum)

    threading.Thread(target=pump, name="signal-watcher", daemon=True).start()

"""The stop signal a long-lived process hands its main loop: when to stop, and how long stopping may take.

A role's main (`main(stop, ready)`) learns its shutdown grace from the
signal itself, so code that drains work (the worker, T3.30) never has to
import the local cloud's role table to find out.
"""

from __future__ import annotations

import threading

DEFAULT_GRACE_SECONDS = 60.0


class StopSignal(threading.Event):
    """A `threading.Event` that also says how many seconds the process has between SIGTERM and SIGKILL."""

    def __init__(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        super().__init__()
        self.grace_seconds = grace_seconds


def grace_of(stop: threading.Event) -> float:
    """The grace a stop signal carries; the default for a plain event."""
    return stop.grace_seconds if isinstance(stop, StopSignal) else DEFAULT_GRACE_SECONDS

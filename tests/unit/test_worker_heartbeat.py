"""The shared heartbeat: one beat for every running execution; a cancel or a reap stops the action."""

from __future__ import annotations

import threading

from chalicelib.core.errors import ServiceUnavailable
from chalicelib.worker.heartbeat import Heartbeat, Key


class FakeBeat:
    """Stands in for the heartbeat UPDATE: returns the statuses it is told to."""

    def __init__(self, statuses: dict[int, str]) -> None:
        self.statuses = statuses
        self.calls: list[list[Key]] = []
        self.fail = False

    def __call__(self, keys: list[Key]) -> dict[int, str]:
        self.calls.append(sorted(keys))
        if self.fail:
            raise ServiceUnavailable("database unavailable, retry later")
        return {i: s for (_, i), s in ((k, self.statuses.get(k[1])) for k in keys) if s is not None}


def test_one_beat_covers_every_run_and_stops_the_ones_no_longer_running() -> None:
    # GIVEN three runs: one running, one being canceled, one already reaped
    beat = FakeBeat({1: "running", 2: "canceling"})
    heart = Heartbeat(60, beat)
    cancels = {i: threading.Event() for i in (1, 2, 3)}
    for i, event in cancels.items():
        heart.add((7, i), event)
    # WHEN a beat happens
    assert heart.beat_once() == 3
    # THEN one query beat for all three; the canceling and the vanished ones are told to stop
    assert beat.calls == [[(7, 1), (7, 2), (7, 3)]]
    assert not cancels[1].is_set() and cancels[2].is_set() and cancels[3].is_set()
    # AND removed runs are no longer beaten for; with none left, nothing is queried
    for i in (1, 2, 3):
        heart.remove((7, i))
    assert heart.beat_once() == 0 and len(beat.calls) == 1
    heart.stop()


def test_a_database_outage_skips_a_beat_without_stopping_anything() -> None:
    beat = FakeBeat({1: "running"})
    beat.fail = True
    heart = Heartbeat(60, beat)
    cancel = threading.Event()
    heart.add((7, 1), cancel)
    assert heart.beat_once() == 0
    assert not cancel.is_set()
    heart.stop()

"""Execution and inquiry status transitions, checked in this one place.

Every status change in the system is one of the named `MOVES` below: a
compare-and-set whose allowed "from" states are the move's `sources`, so a
redelivered message, a racing worker, the reaper and a cancel can never move
an execution backwards or out of a final state. Moves are named (claim,
complete, cancel...) rather than derived from the target alone, because two
moves can share a target with different sources: a claim takes only a
`scheduled` execution to `running`, a resume only a `paused` one.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.core.errors import Conflict

REQUESTED = "requested"
SCHEDULED = "scheduled"
RUNNING = "running"
PAUSED = "paused"
CANCELING = "canceling"
SUCCEEDED = "succeeded"
SUCCEEDED_WITH_ERRORS = "succeeded_with_errors"
FAILED = "failed"
CANCELED = "canceled"

FINAL = frozenset({SUCCEEDED, SUCCEEDED_WITH_ERRORS, FAILED, CANCELED})
ACTIVE = frozenset({REQUESTED, SCHEDULED, RUNNING, PAUSED, CANCELING})
ALL = FINAL | ACTIVE
# An enforcement follows its execution: created, scheduled, then the execution's final status.
ENFORCEMENT = frozenset({"created", SCHEDULED}) | FINAL

TRANSITIONS: dict[str, frozenset[str]] = {
    REQUESTED: frozenset({SCHEDULED, RUNNING, PAUSED, FAILED, CANCELED}),
    SCHEDULED: frozenset({RUNNING, FAILED, CANCELING, CANCELED}),
    RUNNING: frozenset({SCHEDULED, SUCCEEDED, SUCCEEDED_WITH_ERRORS, FAILED, PAUSED, CANCELING, CANCELED}),
    PAUSED: frozenset({RUNNING, SUCCEEDED, SUCCEEDED_WITH_ERRORS, FAILED, CANCELING, CANCELED}),
    CANCELING: frozenset({CANCELED, FAILED, SUCCEEDED, SUCCEEDED_WITH_ERRORS}),
}
for _final in FINAL:
    TRANSITIONS[_final] = frozenset()


@dataclass(frozen=True)
class Move:
    """A named status change: from any of `sources` to one of `targets`."""

    name: str
    sources: frozenset[str]
    targets: frozenset[str]

    def allows(self, current: str, to: str) -> bool:
        """Whether this move may take an execution in `current` to `to`."""
        return current in self.sources and to in self.targets and can_move(current, to)

    def sources_for(self, to: str) -> list[str]:
        """The WHERE clause of this move's compare-and-set towards `to` (sorted: stable SQL parameters)."""
        if to not in self.targets:
            raise ValueError(f"move {self.name!r} never leads to {to!r}")
        return sorted(s for s in self.sources if can_move(s, to))


# What each lifecycle move may do. The lifecycle module (chalicelib/executions)
# is the only caller; its compare-and-set uses `sources_for`.
MOVES: dict[str, Move] = {
    # requested -> scheduled: handed to the path its runner kind takes (the work queue).
    "dispatch": Move("dispatch", frozenset({REQUESTED}), frozenset({SCHEDULED})),
    # requested -> running: a workflow, whose state machine (not a worker) runs it.
    "start": Move("start", frozenset({REQUESTED}), frozenset({RUNNING})),
    # requested -> paused: an inquiry, waiting for a human from the start.
    "ask": Move("ask", frozenset({REQUESTED}), frozenset({PAUSED})),
    # running <-> paused: a workflow while one of its inquiries waits, and once none does.
    "pause": Move("pause", frozenset({RUNNING}), frozenset({PAUSED})),
    "resume": Move("resume", frozenset({PAUSED}), frozenset({RUNNING})),
    # requested -> failed: refused before dispatch (parameters, template, no path for the runner).
    "reject": Move("reject", frozenset({REQUESTED}), frozenset({FAILED})),
    # scheduled -> running: a worker took it; only one claim can win.
    "claim": Move("claim", frozenset({SCHEDULED}), frozenset({RUNNING})),
    # scheduled -> failed: a worker found it cannot be run (action gone, files missing).
    "refuse": Move("refuse", frozenset({SCHEDULED}), frozenset({FAILED})),
    # running/canceling/paused -> final: the action (or workflow) ended.
    "complete": Move("complete", frozenset({RUNNING, CANCELING, PAUSED}), FINAL),
    # not yet running -> canceled at once; running or paused -> canceling (the worker stops it).
    "cancel": Move("cancel", frozenset({REQUESTED, SCHEDULED, RUNNING, PAUSED}), frozenset({CANCELED, CANCELING})),
    # running -> scheduled again: a retry policy or a lost worker's execution, with a new work message.
    "retry": Move("retry", frozenset({RUNNING}), frozenset({SCHEDULED})),
    # a worker stopped beating: running -> failed, canceling -> canceled.
    "reap": Move("reap", frozenset({RUNNING, CANCELING}), frozenset({FAILED, CANCELED})),
}


def can_move(current: str, to: str) -> bool:
    """Whether an execution in `current` may move to `to` at all."""
    return to in TRANSITIONS.get(current, frozenset())


def cancel_target(current: str, *, stoppable: bool = True) -> str:
    """Where a cancel takes an execution: straight to `canceled` unless something is running that must stop.

    `stoppable`: something (a worker's process, a workflow's state machine)
    runs it and must be stopped first; an inquiry waiting for a human has
    nothing to stop and is canceled at once.
    """
    return CANCELING if stoppable and current in (RUNNING, PAUSED) else CANCELED


def require_move(move: str, current: str, to: str) -> None:
    """Raise a 409 naming both states when the move is not allowed."""
    if not MOVES[move].allows(current, to):
        raise Conflict(f"execution is {current}; it cannot become {to}")
